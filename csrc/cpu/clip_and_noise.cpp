// CPU kernels of kernels.clip_and_noise (OpenMP). The noise is generated inside pass 2, one tile at a
// time into a per-thread buffer: Philox4x32-10 in uint32 arithmetic and Box–Muller with the float
// polynomials of csrc/common/philox.h, so the generator loop vectorizes (no libm calls in it).
// fill_normals is compiled for AVX-512, AVX2 and generic x86-64 (gcc target_clones, chosen at load).
#include "cpu/clip_and_noise.h"

#include <omp.h>

#include <algorithm>
#include <cstring>
#include <stdexcept>
#include <vector>

#include "common/cpu_num.h"
#include "common/philox.h"

namespace pykernels::cpu {
namespace {

constexpr int64_t kTile = 16384;  // elements per work item (a multiple of 4)
constexpr int kQuads = 64;        // quads generated per inner vector loop

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define PK_ISA_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define PK_ISA_CLONES
#endif

// z[0 .. 4 nq) = the normals of quads q0 .. q0 + nq - 1.
PK_ISA_CLONES void fill_normals(float* __restrict z, uint64_t q0, int64_t nq, uint64_t seed,
                                uint64_t offset) {
  const uint32_t k0 = static_cast<uint32_t>(seed), k1 = static_cast<uint32_t>(seed >> 32);
  const uint32_t o0 = static_cast<uint32_t>(offset), o1 = static_cast<uint32_t>(offset >> 32);
  // Three separate loops (Philox, then Box–Muller per pair): each vectorizes; fused, gcc gives up.
  uint32_t x0[kQuads], x1[kQuads], x2[kQuads], x3[kQuads];
  float a0[kQuads], a1[kQuads], a2[kQuads], a3[kQuads];
  for (int64_t j0 = 0; j0 < nq; j0 += kQuads) {
    const int m = static_cast<int>(std::min<int64_t>(kQuads, nq - j0));
    const uint64_t base = q0 + static_cast<uint64_t>(j0);
    for (int j = 0; j < kQuads; ++j) {  // full width: a fixed trip count vectorizes best
      const uint64_t q = base + static_cast<uint64_t>(j);
      uint32_t c0 = static_cast<uint32_t>(q), c1 = static_cast<uint32_t>(q >> 32), c2 = o0, c3 = o1;
      philox::philox4x32_10(c0, c1, c2, c3, k0, k1);
      x0[j] = c0;
      x1[j] = c1;
      x2[j] = c2;
      x3[j] = c3;
    }
    for (int j = 0; j < kQuads; ++j) philox::box_muller(x0[j], x1[j], a0[j], a1[j]);
    for (int j = 0; j < kQuads; ++j) philox::box_muller(x2[j], x3[j], a2[j], a3[j]);
    float* zz = z + 4 * j0;
    for (int j = 0; j < m; ++j) {
      zz[4 * j + 0] = a0[j];
      zz[4 * j + 1] = a1[j];
      zz[4 * j + 2] = a2[j];
      zz[4 * j + 3] = a3[j];
    }
  }
}

// z[0 .. n) = z_start .. z_{start+n-1}; buf holds at least n + 8 floats.
void normals_into(float* z, float* buf, uint64_t start, int64_t n, uint64_t seed, uint64_t offset) {
  if (n <= 0) return;
  const uint64_t q0 = start >> 2;
  const int64_t shift = static_cast<int64_t>(start & 3u);
  const int64_t nq = (shift + n + 3) / 4;
  if (shift == 0 && n % 4 == 0) {
    fill_normals(z, q0, nq, seed, offset);
    return;
  }
  fill_normals(buf, q0, nq, seed, offset);
  std::memcpy(z, buf + shift, static_cast<size_t>(n) * sizeof(float));
}

template <typename S>
double sumsq_range(const S* x, int64_t n) {
  double acc[8] = {0, 0, 0, 0, 0, 0, 0, 0};
  int64_t i = 0;
  for (; i + 8 <= n; i += 8) {
    for (int k = 0; k < 8; ++k) {
      const double v = static_cast<double>(Num<S>::load(x[i + k]));
      acc[k] += v * v;
    }
  }
  for (; i < n; ++i) {
    const double v = static_cast<double>(Num<S>::load(x[i]));
    acc[0] += v * v;
  }
  return ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]));
}

struct Tile {
  int64_t tensor;
  int64_t start;
  int64_t len;
};

std::vector<Tile> make_tiles(const int64_t* numels, int64_t n) {
  std::vector<Tile> tiles;
  for (int64_t t = 0; t < n; ++t) {
    for (int64_t s = 0; s < numels[t]; s += kTile) tiles.push_back({t, s, std::min(kTile, numels[t] - s)});
  }
  return tiles;
}

double scale_of(double norm, double max_norm) {
  return (norm == 0.0 || max_norm >= norm) ? 1.0 : max_norm / norm;
}

template <typename S>
double sumsq_impl(const void* const* ptrs, const int64_t* numels, int64_t n) {
  const std::vector<Tile> tiles = make_tiles(numels, n);
  const int64_t count = static_cast<int64_t>(tiles.size());
  std::vector<double> partial(tiles.size());
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < count; ++k) {
    const Tile& tile = tiles[k];
    partial[k] = sumsq_range(static_cast<const S*>(ptrs[tile.tensor]) + tile.start, tile.len);
  }
  double total = 0.0;
  for (double p : partial) total += p;  // fixed order: deterministic
  return total;
}

template <typename S>
void apply_impl(const void* const* in, void* const* out, const int64_t* numels, int64_t n, double norm,
                double max_norm, double noise_std, uint64_t seed, uint64_t offset) {
  using C = typename Num<S>::Acc;
  const std::vector<Tile> tiles = make_tiles(numels, n);
  std::vector<uint64_t> base(static_cast<size_t>(n) + 1, 0);
  for (int64_t t = 0; t < n; ++t) base[t + 1] = base[t] + static_cast<uint64_t>(numels[t]);
  const C scale = static_cast<C>(scale_of(norm, max_norm));
  const C sigma = static_cast<C>(noise_std);
  const int64_t count = static_cast<int64_t>(tiles.size());
#pragma omp parallel
  {
    std::vector<float> z(kTile + 8), buf(kTile + 8);
#pragma omp for schedule(static)
    for (int64_t k = 0; k < count; ++k) {
      const Tile& tile = tiles[k];
      const S* x = static_cast<const S*>(in[tile.tensor]) + tile.start;
      S* y = static_cast<S*>(out[tile.tensor]) + tile.start;
      const int64_t len = tile.len;
      if (noise_std == 0.0) {
        for (int64_t i = 0; i < len; ++i) y[i] = Num<S>::store(Num<S>::load(x[i]) * scale);
        continue;
      }
      normals_into(z.data(), buf.data(), base[tile.tensor] + static_cast<uint64_t>(tile.start), len, seed,
                   offset);
      const float* zp = z.data();
      for (int64_t i = 0; i < len; ++i) {
        y[i] = Num<S>::store(Num<S>::load(x[i]) * scale + sigma * static_cast<C>(zp[i]));
      }
    }
  }
}

template <typename S>
void rows_sumsq_impl(const void* x, int64_t rows, int64_t cols, double* norms_sq) {
  std::vector<int64_t> numels(static_cast<size_t>(rows), cols);
  std::vector<const void*> ptrs(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) ptrs[r] = static_cast<const S*>(x) + r * cols;
  // Parallel over the tiles of all rows, then one fixed-order sum per row.
  const std::vector<Tile> tiles = make_tiles(numels.data(), rows);
  const int64_t count = static_cast<int64_t>(tiles.size());
  std::vector<double> partial(tiles.size());
#pragma omp parallel for schedule(static)
  for (int64_t k = 0; k < count; ++k) {
    const Tile& tile = tiles[k];
    partial[k] = sumsq_range(static_cast<const S*>(ptrs[tile.tensor]) + tile.start, tile.len);
  }
  for (int64_t r = 0; r < rows; ++r) norms_sq[r] = 0.0;
  for (int64_t k = 0; k < count; ++k) norms_sq[tiles[k].tensor] += partial[k];
}

template <typename S>
void sum_apply_impl(const void* xv, void* outv, int64_t rows, int64_t cols, const double* norms,
                    double max_norm, double noise_std, uint64_t seed, uint64_t offset) {
  using C = typename Num<S>::Acc;
  const S* x = static_cast<const S*>(xv);
  S* out = static_cast<S*>(outv);
  std::vector<C> scale(static_cast<size_t>(rows));
  for (int64_t r = 0; r < rows; ++r) scale[r] = static_cast<C>(scale_of(norms[r], max_norm));
  const C sigma = static_cast<C>(noise_std);
  const int64_t ntiles = (cols + kTile - 1) / kTile;
#pragma omp parallel
  {
    std::vector<float> z(kTile + 8), buf(kTile + 8);
    std::vector<double> acc(kTile);
#pragma omp for schedule(static)
    for (int64_t k = 0; k < ntiles; ++k) {
      const int64_t start = k * kTile;
      const int64_t len = std::min(kTile, cols - start);
      std::fill(acc.begin(), acc.begin() + len, 0.0);
      for (int64_t r = 0; r < rows; ++r) {
        const S* xr = x + r * cols + start;
        const C sr = scale[r];
        for (int64_t i = 0; i < len; ++i) acc[i] += static_cast<double>(Num<S>::load(xr[i]) * sr);
      }
      S* y = out + start;
      if (noise_std == 0.0) {
        for (int64_t i = 0; i < len; ++i) y[i] = Num<S>::store(static_cast<C>(acc[i]));
        continue;
      }
      normals_into(z.data(), buf.data(), static_cast<uint64_t>(start), len, seed, offset);
      for (int64_t i = 0; i < len; ++i) {
        y[i] = Num<S>::store(static_cast<C>(acc[i]) + sigma * static_cast<C>(z[i]));
      }
    }
  }
}

template <template <typename> class F, typename... Args>
auto dispatch(DType dtype, Args&&... args) {
  switch (dtype) {
    case DType::Float32: return F<float>::run(args...);
    case DType::Float64: return F<double>::run(args...);
    case DType::Float16: return F<Half>::run(args...);
    case DType::BFloat16: return F<BFloat16>::run(args...);
  }
  throw std::invalid_argument("clip_and_noise: unsupported dtype");
}

template <typename S>
struct SumsqF {
  template <typename... A>
  static double run(A... a) { return sumsq_impl<S>(a...); }
};
template <typename S>
struct ApplyF {
  template <typename... A>
  static void run(A... a) { apply_impl<S>(a...); }
};
template <typename S>
struct RowsSumsqF {
  template <typename... A>
  static void run(A... a) { rows_sumsq_impl<S>(a...); }
};
template <typename S>
struct SumApplyF {
  template <typename... A>
  static void run(A... a) { sum_apply_impl<S>(a...); }
};

}  // namespace

double clip_and_noise_sumsq(const void* const* ptrs, const int64_t* numels, int64_t n, DType dtype) {
  return dispatch<SumsqF>(dtype, ptrs, numels, n);
}

void clip_and_noise_apply(const void* const* in, void* const* out, const int64_t* numels, int64_t n,
                          DType dtype, double norm, double max_norm, double noise_std, uint64_t seed,
                          uint64_t offset) {
  dispatch<ApplyF>(dtype, in, out, numels, n, norm, max_norm, noise_std, seed, offset);
}

void clip_and_noise_rows_sumsq(const void* x, int64_t rows, int64_t cols, DType dtype, double* norms_sq) {
  dispatch<RowsSumsqF>(dtype, x, rows, cols, norms_sq);
}

void clip_and_noise_sum_apply(const void* x, void* out, int64_t rows, int64_t cols, DType dtype,
                              const double* norms, double max_norm, double noise_std, uint64_t seed,
                              uint64_t offset) {
  dispatch<SumApplyF>(dtype, x, out, rows, cols, norms, max_norm, noise_std, seed, offset);
}

void normals(float* out, uint64_t start, int64_t n, uint64_t seed, uint64_t offset) {
  const int64_t ntiles = (n + kTile - 1) / kTile;
#pragma omp parallel
  {
    std::vector<float> buf(kTile + 8);
#pragma omp for schedule(static)
    for (int64_t k = 0; k < ntiles; ++k) {
      const int64_t begin = k * kTile;
      normals_into(out + begin, buf.data(), start + static_cast<uint64_t>(begin), std::min(kTile, n - begin),
                   seed, offset);
    }
  }
}

void philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]) {
  uint32_t c0 = counter[0], c1 = counter[1], c2 = counter[2], c3 = counter[3];
  philox::philox4x32_10(c0, c1, c2, c3, key[0], key[1]);
  out[0] = c0;
  out[1] = c1;
  out[2] = c2;
  out[3] = c3;
}

}  // namespace pykernels::cpu
