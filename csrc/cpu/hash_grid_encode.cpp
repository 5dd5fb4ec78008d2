// CPU kernels of kernels.hash_grid_encode. Forward: OpenMP over points, every level per point.
// Backward to the table: OpenMP over levels (each level owns its slice of the table), points in order,
// so there are no races and the sums are deterministic. Backward to x: OpenMP over points.
#include "cpu/hash_grid_encode.h"

#include <cmath>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/hash_grid_dispatch.h"

namespace pykernels::cpu {
namespace {

constexpr uint32_t kPrimes[4] = {1u, 2654435761u, 805459861u, 3674653429u};

template <typename S>
struct Num {  // storage S, math type A
  using A = S;
  static A load(S v) { return v; }
  static S store(A v) { return v; }
};
template <>
struct Num<uint16_t> {  // float16 storage, float32 math
  using A = float;
  static float load(uint16_t v) { return fp16_to_float(v); }
  static uint16_t store(float v) { return float_to_fp16(v); }
};

template <int D>
struct Level {
  int64_t res;
  bool dense;
  int64_t stride[D];  // row-major over the (res + 1)^D vertices, axis 0 slowest
};

template <int D>
std::vector<Level<D>> make_levels(int64_t levels, int64_t T, const int64_t* resolutions) {
  std::vector<Level<D>> out(levels);
  for (int64_t l = 0; l < levels; ++l) {
    const int64_t res = resolutions[l];
    if (res < 1) throw std::invalid_argument("resolutions must be >= 1, got " + std::to_string(res));
    out[l].res = res;
    // (res + 1)^D <= T, without overflow
    bool dense = true;
    int64_t verts = 1;
    for (int i = 0; i < D && dense; ++i) {
      dense = verts <= T / (res + 1);
      verts *= res + 1;
    }
    out[l].dense = dense;
    int64_t s = 1;
    for (int i = D - 1; i >= 0; --i) {
      out[l].stride[i] = s;
      s *= (res + 1);
    }
  }
  return out;
}

// Clamp to [0, 1] (NaN -> 0), p = x·res, corner c = min(floor(p), res - 1), weight w = p - c.
template <int D, typename A>
inline void cell(const A* xi, int64_t res, int64_t* c, A* w) {
  for (int i = 0; i < D; ++i) {
    const A v = xi[i] >= A(0) ? (xi[i] <= A(1) ? xi[i] : A(1)) : A(0);
    const A p = v * static_cast<A>(res);
    int64_t ci = static_cast<int64_t>(std::floor(p));
    if (ci > res - 1) ci = res - 1;
    c[i] = ci;
    w[i] = p - static_cast<A>(ci);
  }
}

template <int D>
inline int64_t corner_index(const Level<D>& lv, const int64_t* c, int k, uint32_t T) {
  if (lv.dense) {
    int64_t idx = 0;
    for (int i = 0; i < D; ++i) idx += (c[i] + ((k >> i) & 1)) * lv.stride[i];
    return idx;
  }
  uint32_t h = 0;
  for (int i = 0; i < D; ++i) h ^= static_cast<uint32_t>(c[i] + ((k >> i) & 1)) * kPrimes[i];
  // T is almost always a power of two (2^log2_hashmap_size): a mask instead of a division.
  return static_cast<int64_t>((T & (T - 1)) == 0 ? (h & (T - 1)) : (h % T));
}

template <int D, typename A>
inline A corner_weight(const A* w, int k) {
  A wk = A(1);
  for (int i = 0; i < D; ++i) wk *= ((k >> i) & 1) ? w[i] : A(1) - w[i];
  return wk;
}

template <int D, int F, typename S>
void forward_impl(const void* xp, const void* tp, void* op, int64_t n, int64_t levels, int64_t T,
                  const int64_t* resolutions) {
  using A = typename Num<S>::A;
  const A* x = static_cast<const A*>(xp);
  const S* table = static_cast<const S*>(tp);
  S* out = static_cast<S*>(op);
  const auto lvs = make_levels<D>(levels, T, resolutions);
  const uint32_t T32 = static_cast<uint32_t>(T);
  // Levels outside, points inside: the threads gather from one level's table at a time (T·F
  // entries, a few MB) instead of from all L levels at once, so the random reads hit the cache far
  // more often (measured: 2^18 points, d=3, L=16, T=2^19, F=2, 2 cores: 213 -> 73 ms, same output bits).
#pragma omp parallel
  for (int64_t l = 0; l < levels; ++l) {
    const Level<D> lv = lvs[l];
    const S* tl = table + l * T * F;
#pragma omp for schedule(static)
    for (int64_t i = 0; i < n; ++i) {
      int64_t c[D];
      A w[D];
      cell<D>(x + i * D, lv.res, c, w);
      A acc[F] = {};
      for (int k = 0; k < (1 << D); ++k) {
        const A wk = corner_weight<D>(w, k);
        const S* row = tl + corner_index<D>(lv, c, k, T32) * F;
        for (int f = 0; f < F; ++f) acc[f] += wk * Num<S>::load(row[f]);
      }
      S* o = out + (i * levels + l) * F;
      for (int f = 0; f < F; ++f) o[f] = Num<S>::store(acc[f]);
    }
  }
}

template <int D, int F, typename S>
void backward_impl(const void* gp, const void* xp, const void* tp, void* gtp, void* gxp, int64_t n,
                   int64_t levels, int64_t T, const int64_t* resolutions) {
  using A = typename Num<S>::A;
  const S* gout = static_cast<const S*>(gp);
  const A* x = static_cast<const A*>(xp);
  const S* table = static_cast<const S*>(tp);
  A* gtable = static_cast<A*>(gtp);
  A* gx = static_cast<A*>(gxp);
  const auto lvs = make_levels<D>(levels, T, resolutions);
  const uint32_t T32 = static_cast<uint32_t>(T);

#pragma omp parallel for schedule(dynamic, 1)
  for (int64_t l = 0; l < levels; ++l) {
    A* gl = gtable + l * T * F;
    for (int64_t i = 0; i < n; ++i) {
      int64_t c[D];
      A w[D];
      cell<D>(x + i * D, lvs[l].res, c, w);
      A g[F];
      for (int f = 0; f < F; ++f) g[f] = Num<S>::load(gout[(i * levels + l) * F + f]);
      for (int k = 0; k < (1 << D); ++k) {
        const A wk = corner_weight<D>(w, k);
        A* row = gl + corner_index<D>(lvs[l], c, k, T32) * F;
        for (int f = 0; f < F; ++f) row[f] += wk * g[f];
      }
    }
  }

  if (gx == nullptr) return;
#pragma omp parallel for schedule(static)
  for (int64_t i = 0; i < n; ++i) {
    const A* xi = x + i * D;
    A acc[D] = {};
    for (int64_t l = 0; l < levels; ++l) {
      int64_t c[D];
      A w[D];
      cell<D>(xi, lvs[l].res, c, w);
      const S* tl = table + l * T * F;
      A g[F];
      for (int f = 0; f < F; ++f) g[f] = Num<S>::load(gout[(i * levels + l) * F + f]);
      const A res = static_cast<A>(lvs[l].res);
      for (int k = 0; k < (1 << D); ++k) {
        const S* row = tl + corner_index<D>(lvs[l], c, k, T32) * F;
        A dot = A(0);
        for (int f = 0; f < F; ++f) dot += g[f] * Num<S>::load(row[f]);
        for (int a = 0; a < D; ++a) {
          A dw = ((k >> a) & 1) ? A(1) : A(-1);
          for (int j = 0; j < D; ++j) {
            if (j != a) dw *= ((k >> j) & 1) ? w[j] : A(1) - w[j];
          }
          acc[a] += dot * dw * res;
        }
      }
    }
    for (int a = 0; a < D; ++a) {
      // clamp's gradient: zero outside [0, 1] (and for NaN)
      gx[i * D + a] = (xi[a] >= A(0) && xi[a] <= A(1)) ? acc[a] : A(0);
    }
  }
}

template <template <int, int, typename> class Fn, typename... Args>
void dispatch(int d, int f, DType dtype, Args... args) {
  dispatch_hash_grid<uint16_t>(d, f, dtype, [&](auto dd, auto ff, auto sv) {
    return Fn<decltype(dd)::value, decltype(ff)::value, decltype(sv)>::run(args...);
  });
}

template <int D, int F, typename S>
struct Forward {
  template <typename... Args>
  static void run(Args... args) { forward_impl<D, F, S>(args...); }
};
template <int D, int F, typename S>
struct Backward {
  template <typename... Args>
  static void run(Args... args) { backward_impl<D, F, S>(args...); }
};

void check_sizes(int64_t n, int64_t levels, int64_t T) {
  if (n < 0 || levels < 1 || T < 1 || T > 0xffffffffLL) {
    throw std::invalid_argument("hash_grid_encode: need n >= 0, levels >= 1 and 1 <= T < 2^32");
  }
}

}  // namespace

void hash_grid_encode_forward(const void* x, const void* table, void* out, int64_t n, int d,
                              int64_t levels, int64_t T, int f, const int64_t* resolutions, DType dtype) {
  check_sizes(n, levels, T);
  dispatch<Forward>(d, f, dtype, x, table, out, n, levels, T, resolutions);
}

void hash_grid_encode_backward(const void* grad_out, const void* x, const void* table, void* grad_table,
                               void* grad_x, int64_t n, int d, int64_t levels, int64_t T, int f,
                               const int64_t* resolutions, DType dtype) {
  check_sizes(n, levels, T);
  dispatch<Backward>(d, f, dtype, grad_out, x, table, grad_table, grad_x, n, levels, T, resolutions);
}

}  // namespace pykernels::cpu
