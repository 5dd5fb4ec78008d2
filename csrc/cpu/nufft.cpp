// CPU NUFFT spreading / interpolation (see nufft.h for the contract).
//
// Per trajectory the samples are counting-sorted into tiles ("bins") of the fine grid, once, and the
// sort is reused by every coil. A bin owns the samples whose floor(t) falls in it; their footprints
// stay inside the bin grown by P = ceil(w/2) + 1 points on each side (the padded tile).
// - spread: the bins are split into 2^d colours by the parity of their bin coordinates; bins of one
//   colour are at least two tiles apart, and a tile is at least w + 4 points wide, so their padded
//   tiles are disjoint. Colour by colour, threads take bins dynamically, spread the bin's samples for
//   all coils into a private zeroed padded tile (contiguous, no wrap in the inner loop), then add the
//   tile into the grid with periodic wrap (tiles are coil-innermost, see tile_exchange). No atomics, and every grid point receives its
//   contributions in a fixed order, so the result does not depend on the thread count.
// - interp: threads take bins dynamically, copy the bin's padded tile (with wrap) out of the grid for
//   all coils, then gather every sample's footprint from it.
// With fewer than 4 bins along an axis (small grids) there are 2 bins of one tile each there; a padded
// tile may then wrap onto itself, which the single thread that owns it handles in order.
#include "cpu/nufft.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

namespace pykernels::cpu {
namespace {

constexpr int kMaxW = 16;

struct Bins {
  int d = 0;
  int64_t nf[3] = {1, 1, 1};
  int64_t nb[3] = {1, 1, 1};
  std::vector<int64_t> start[3];   // bin b of axis a covers [start[a][b], start[a][b+1])
  std::vector<int32_t> bin_of[3];  // fine index -> bin along axis a
  int64_t pad = 0;                 // P
  int64_t max_tile = 0;            // max over bins of prod_a (size_a + 2P)
  int64_t count() const { return nb[0] * nb[1] * nb[2]; }
};

Bins make_bins(int d, const int64_t* nf, int w) {
  Bins g;
  g.d = d;
  g.pad = (w + 1) / 2 + 1;
  const int64_t target = std::max<int64_t>(d == 2 ? 32 : 16, w + 4);
  g.max_tile = 1;
  for (int a = 0; a < 3; ++a) {
    const int64_t n = a < d ? nf[a] : 1;
    g.nf[a] = n;
    int64_t nb = 1;
    if (a < d) nb = std::max<int64_t>(2, 2 * (n / (2 * target)));  // even, so colours alternate
    g.nb[a] = nb;
    g.start[a].resize(nb + 1);
    for (int64_t b = 0; b <= nb; ++b) g.start[a][b] = b * n / nb;
    g.bin_of[a].resize(n);
    int64_t widest = 0;
    for (int64_t b = 0; b < nb; ++b) {
      for (int64_t p = g.start[a][b]; p < g.start[a][b + 1]; ++p) g.bin_of[a][p] = static_cast<int32_t>(b);
      widest = std::max(widest, g.start[a][b + 1] - g.start[a][b]);
    }
    g.max_tile *= a < d ? widest + 2 * g.pad : 1;
  }
  return g;
}

// order: sample indices sorted by bin; offsets: bin b's samples are order[offsets[b] .. offsets[b+1]).
void sort_samples(const Bins& g, const double* t, int64_t m, std::vector<int64_t>& order,
                  std::vector<int64_t>& offsets) {
  const int d = g.d;
  std::vector<int64_t> bin(m);
  offsets.assign(g.count() + 1, 0);
  for (int64_t j = 0; j < m; ++j) {
    int64_t b = 0;
    for (int a = 0; a < d; ++a) {
      int64_t p = static_cast<int64_t>(std::floor(t[j * d + a]));
      p = std::min<int64_t>(std::max<int64_t>(p, 0), g.nf[a] - 1);  // t is in [0, nf) up to rounding
      b = b * g.nb[a] + g.bin_of[a][p];
    }
    bin[j] = b;
    ++offsets[b + 1];
  }
  for (int64_t b = 0; b < g.count(); ++b) offsets[b + 1] += offsets[b];
  order.resize(m);
  std::vector<int64_t> cursor(offsets.begin(), offsets.end() - 1);
  for (int64_t j = 0; j < m; ++j) order[cursor[bin[j]]++] = j;
}

// The padded tile of bin (b0, b1, b2): origin (may be negative) and sizes per axis.
struct Tile {
  int64_t origin[3] = {0, 0, 0};
  int64_t size[3] = {1, 1, 1};
  int64_t count() const { return size[0] * size[1] * size[2]; }
};

Tile tile_of(const Bins& g, int64_t bin) {
  Tile tile;
  int64_t coord[3];
  coord[2] = bin % g.nb[2];
  coord[1] = (bin / g.nb[2]) % g.nb[1];
  coord[0] = bin / (g.nb[2] * g.nb[1]);
  for (int a = 0; a < g.d; ++a) {
    tile.origin[a] = g.start[a][coord[a]] - g.pad;
    tile.size[a] = g.start[a][coord[a] + 1] - g.start[a][coord[a]] + 2 * g.pad;
  }
  return tile;
}

int colour_of(const Bins& g, int64_t bin) {
  const int64_t c2 = bin % g.nb[2];
  const int64_t c1 = (bin / g.nb[2]) % g.nb[1];
  const int64_t c0 = bin / (g.nb[2] * g.nb[1]);
  return static_cast<int>((c0 & 1) | ((c1 & 1) << 1) | ((c2 & 1) << 2));
}

// Kernel weights of one sample along each axis and the local offset of its footprint in the tile.
template <typename T>
struct Footprint {
  T ker[3][kMaxW];
  int64_t off[3];
};

template <typename T>
inline void footprint(const double* tj, int d, int w, double beta, const Tile& tile, Footprint<T>& f) {
  const double half = 0.5 * w;
  const double inv = 2.0 / w;
  for (int a = 0; a < d; ++a) {
    const double s = std::ceil(tj[a] - half);
    f.off[a] = static_cast<int64_t>(s) - tile.origin[a];
    for (int i = 0; i < w; ++i) {
      const double z = (s + i - tj[a]) * inv;
      const double q = 1.0 - z * z;
      f.ker[a][i] = q > 0 ? static_cast<T>(std::exp(beta * (std::sqrt(q) - 1.0))) : T(0);
    }
  }
  if (d == 2) {
    f.off[2] = 0;
    f.ker[2][0] = T(1);
  }
}

// Small problems (gradcheck, tests) run on one thread: waking a team costs more than the work, and
// on a loaded machine every parallel region can stall on a descheduled thread.
inline bool parallel_worth_it(int64_t m, int64_t ncoil) { return m * ncoil >= 4096; }

// Tiles are coil-innermost: cell p of the padded tile holds the ncoil complex values at
// buf[2 * (p * ncoil + c)], so the per-sample inner loops run over 2·ncoil contiguous values (and
// vectorize), while the kernel weights are computed once per sample for every coil.
//
// Adds (acc = true) the tile into the ncoil grids, or copies (acc = false) the grids' values into
// the tile, with periodic wrap.
template <typename T>
void tile_exchange(const Bins& g, const Tile& tile, T* tiles, T* grids, int64_t ncoil, bool acc) {
  int64_t idx[3][256 + 2 * kMaxW];
  for (int a = 0; a < 3; ++a) {
    for (int64_t i = 0; i < tile.size[a]; ++i) {
      int64_t p = (tile.origin[a] + i) % g.nf[a];
      idx[a][i] = p < 0 ? p + g.nf[a] : p;
    }
  }
  const int64_t grid_n = g.nf[0] * g.nf[1] * g.nf[2];
  for (int64_t i0 = 0; i0 < tile.size[0]; ++i0) {
    for (int64_t i1 = 0; i1 < tile.size[1]; ++i1) {
      const int64_t grow = (idx[0][i0] * g.nf[1] + idx[1][i1]) * g.nf[2];
      T* trow = tiles + 2 * ncoil * ((i0 * tile.size[1] + i1) * tile.size[2]);
      for (int64_t q = 0; q < tile.size[2]; ++q) {
        T* cell = trow + 2 * ncoil * q;
        T* gp = grids + 2 * (grow + idx[2][q]);
        if (acc) {
          for (int64_t c = 0; c < ncoil; ++c) {
            gp[2 * c * grid_n] += cell[2 * c];
            gp[2 * c * grid_n + 1] += cell[2 * c + 1];
          }
        } else {
          for (int64_t c = 0; c < ncoil; ++c) {
            cell[2 * c] = gp[2 * c * grid_n];
            cell[2 * c + 1] = gp[2 * c * grid_n + 1];
          }
        }
      }
    }
  }
}

template <typename T>
void spread_traj(const Bins& g, const double* t, int64_t ncoil, int64_t m, int w, double beta,
                 const T* samples, T* grids) {
  std::vector<int64_t> order, offsets;
  sort_samples(g, t, m, order, offsets);
  const int d = g.d;
  const int64_t grid_n = g.nf[0] * g.nf[1] * g.nf[2];
  const int64_t nbins = g.count();
  const int w2 = d == 3 ? w : 1;
  const int64_t nv = 2 * ncoil;
  std::vector<std::vector<int64_t>> by_colour(8);
  for (int64_t b = 0; b < nbins; ++b) {
    if (offsets[b + 1] > offsets[b]) by_colour[colour_of(g, b)].push_back(b);
  }
  std::memset(grids, 0, sizeof(T) * 2 * grid_n * ncoil);
#pragma omp parallel if (parallel_worth_it(m, ncoil))
  {
    std::vector<T> buf(nv * g.max_tile);
    std::vector<T> vals(nv);
    Footprint<T> f;
    for (int colour = 0; colour < 8; ++colour) {
      const std::vector<int64_t>& bins = by_colour[colour];
      const int64_t nb = static_cast<int64_t>(bins.size());
#pragma omp for schedule(dynamic, 1)
      for (int64_t ib = 0; ib < nb; ++ib) {
        const int64_t bin = bins[ib];
        const Tile tile = tile_of(g, bin);
        std::fill(buf.begin(), buf.begin() + nv * tile.count(), T(0));
        for (int64_t s = offsets[bin]; s < offsets[bin + 1]; ++s) {
          const int64_t j = order[s];
          footprint(t + j * d, d, w, beta, tile, f);
          for (int64_t c = 0; c < ncoil; ++c) {
            vals[2 * c] = samples[2 * (c * m + j)];
            vals[2 * c + 1] = samples[2 * (c * m + j) + 1];
          }
          const T* __restrict v = vals.data();
          for (int i0 = 0; i0 < w; ++i0) {
            for (int i1 = 0; i1 < w; ++i1) {
              const T k01 = f.ker[0][i0] * f.ker[1][i1];
              const int64_t base = ((f.off[0] + i0) * tile.size[1] + f.off[1] + i1) * tile.size[2] + f.off[2];
              for (int i2 = 0; i2 < w2; ++i2) {
                const T kk = k01 * f.ker[2][i2];
                T* __restrict cell = buf.data() + nv * (base + i2);
                for (int64_t q = 0; q < nv; ++q) cell[q] += kk * v[q];
              }
            }
          }
        }
        tile_exchange(g, tile, buf.data(), grids, ncoil, true);
      }
    }
  }
}

template <typename T>
void interp_traj(const Bins& g, const double* t, int64_t ncoil, int64_t m, int w, double beta,
                 const T* grids, T* samples) {
  std::vector<int64_t> order, offsets;
  sort_samples(g, t, m, order, offsets);
  const int d = g.d;
  const int64_t nbins = g.count();
  const int w2 = d == 3 ? w : 1;
  const int64_t nv = 2 * ncoil;
#pragma omp parallel if (parallel_worth_it(m, ncoil))
  {
    std::vector<T> buf(nv * g.max_tile);
    std::vector<T> acc(nv);
    Footprint<T> f;
#pragma omp for schedule(dynamic, 1)
    for (int64_t bin = 0; bin < nbins; ++bin) {
      if (offsets[bin + 1] == offsets[bin]) continue;
      const Tile tile = tile_of(g, bin);
      tile_exchange(g, tile, buf.data(), const_cast<T*>(grids), ncoil, false);
      for (int64_t s = offsets[bin]; s < offsets[bin + 1]; ++s) {
        const int64_t j = order[s];
        footprint(t + j * d, d, w, beta, tile, f);
        T* __restrict a = acc.data();
        std::fill(acc.begin(), acc.end(), T(0));
        for (int i0 = 0; i0 < w; ++i0) {
          for (int i1 = 0; i1 < w; ++i1) {
            const T k01 = f.ker[0][i0] * f.ker[1][i1];
            const int64_t base = ((f.off[0] + i0) * tile.size[1] + f.off[1] + i1) * tile.size[2] + f.off[2];
            for (int i2 = 0; i2 < w2; ++i2) {
              const T kk = k01 * f.ker[2][i2];
              const T* __restrict cell = buf.data() + nv * (base + i2);
              for (int64_t q = 0; q < nv; ++q) a[q] += kk * cell[q];
            }
          }
        }
        for (int64_t c = 0; c < ncoil; ++c) {
          samples[2 * (c * m + j)] = a[2 * c];
          samples[2 * (c * m + j) + 1] = a[2 * c + 1];
        }
      }
    }
  }
}

void check_args(int d, const int64_t* nf, int w) {
  if (d != 2 && d != 3) throw std::invalid_argument("nufft: d must be 2 or 3, got " + std::to_string(d));
  if (w < 2 || w > kMaxW) throw std::invalid_argument("nufft: kernel width must be in [2, 16], got " + std::to_string(w));
  for (int a = 0; a < d; ++a) {
    if (nf[a] < 2 * w) throw std::invalid_argument("nufft: fine grid axis smaller than 2w");
  }
}

}  // namespace

void nufft_spread(int d, const int64_t* nf, const double* t, int64_t ntraj, int64_t ncoil, int64_t m,
                  int w, double beta, const void* samples, void* grid, DType dtype) {
  check_args(d, nf, w);
  const Bins g = make_bins(d, nf, w);
  const int64_t grid_n = g.nf[0] * g.nf[1] * g.nf[2];
  for (int64_t r = 0; r < ntraj; ++r) {
    const double* tr = t + r * m * d;
    if (dtype == DType::Float32) {
      spread_traj(g, tr, ncoil, m, w, beta, static_cast<const float*>(samples) + 2 * r * ncoil * m,
                  static_cast<float*>(grid) + 2 * r * ncoil * grid_n);
    } else if (dtype == DType::Float64) {
      spread_traj(g, tr, ncoil, m, w, beta, static_cast<const double*>(samples) + 2 * r * ncoil * m,
                  static_cast<double*>(grid) + 2 * r * ncoil * grid_n);
    } else {
      throw std::invalid_argument(std::string("nufft_spread: dtype must be float32 or float64, got ") + dtype_name(dtype));
    }
  }
}

void nufft_interp(int d, const int64_t* nf, const double* t, int64_t ntraj, int64_t ncoil, int64_t m,
                  int w, double beta, const void* grid, void* samples, DType dtype) {
  check_args(d, nf, w);
  const Bins g = make_bins(d, nf, w);
  const int64_t grid_n = g.nf[0] * g.nf[1] * g.nf[2];
  for (int64_t r = 0; r < ntraj; ++r) {
    const double* tr = t + r * m * d;
    if (dtype == DType::Float32) {
      interp_traj(g, tr, ncoil, m, w, beta, static_cast<const float*>(grid) + 2 * r * ncoil * grid_n,
                  static_cast<float*>(samples) + 2 * r * ncoil * m);
    } else if (dtype == DType::Float64) {
      interp_traj(g, tr, ncoil, m, w, beta, static_cast<const double*>(grid) + 2 * r * ncoil * grid_n,
                  static_cast<double*>(samples) + 2 * r * ncoil * m);
    } else {
      throw std::invalid_argument(std::string("nufft_interp: dtype must be float32 or float64, got ") + dtype_name(dtype));
    }
  }
}

}  // namespace pykernels::cpu
