// CUDA kernels of kernels.hash_grid_encode (math: kernels/reference/hash_grid_encode.py).
// grid = (ceil(n / 128), levels): one thread per (point, level), so a warp reads one level's table.
// Backward to the table: atomicAdd (fp32 accumulate for fp16 tables). Backward to x: atomicAdd of
// each level's contribution into grad_x (zeroed first), then a pass that zeroes clamped coordinates.
#include "cuda/hash_grid_encode.h"

#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>
#include <type_traits>

#include "common/cuda_check.cuh"
#include "common/cuda_num.cuh"
#include "common/hash_grid_dispatch.h"

namespace pykernels::cuda {
namespace {

constexpr int kThreads = 128;

struct Resolutions {
  int64_t res[kHashGridMaxLevels];
};

template <int D, typename A>
__device__ inline void cell(const A* xi, int64_t res, int64_t* c, A* w) {
#pragma unroll
  for (int i = 0; i < D; ++i) {
    const A v = xi[i] >= A(0) ? (xi[i] <= A(1) ? xi[i] : A(1)) : A(0);
    const A p = v * static_cast<A>(res);
    int64_t ci = static_cast<int64_t>(floor(p));
    if (ci > res - 1) ci = res - 1;
    c[i] = ci;
    w[i] = p - static_cast<A>(ci);
  }
}

template <int D>
__device__ inline bool level_dense(int64_t res, int64_t T) {
  int64_t verts = 1;
#pragma unroll
  for (int i = 0; i < D; ++i) {
    if (verts > T / (res + 1)) return false;
    verts *= res + 1;
  }
  return true;
}

template <int D>
__device__ inline int64_t corner_index(bool dense, int64_t res, const int64_t* c, int k, uint32_t T) {
  if (dense) {
    int64_t idx = 0;
#pragma unroll
    for (int i = 0; i < D; ++i) idx = idx * (res + 1) + c[i] + ((k >> i) & 1);
    return idx;
  }
  constexpr uint32_t primes[4] = {1u, 2654435761u, 805459861u, 3674653429u};
  uint32_t h = 0;
#pragma unroll
  for (int i = 0; i < D; ++i) h ^= static_cast<uint32_t>(c[i] + ((k >> i) & 1)) * primes[i];
  return static_cast<int64_t>(h % T);
}

template <int D, typename A>
__device__ inline A corner_weight(const A* w, int k) {
  A wk = A(1);
#pragma unroll
  for (int i = 0; i < D; ++i) wk *= ((k >> i) & 1) ? w[i] : A(1) - w[i];
  return wk;
}

template <int D, int F, typename S>
__global__ void forward_kernel(const typename Num<S>::Acc* __restrict__ x, const S* __restrict__ table,
                               S* __restrict__ out, int64_t n, int64_t levels, int64_t T, Resolutions rs) {
  using A = typename Num<S>::Acc;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t l = blockIdx.y;
  if (i >= n) return;
  const int64_t res = rs.res[l];
  const bool dense = level_dense<D>(res, T);
  int64_t c[D];
  A w[D];
  cell<D>(x + i * D, res, c, w);
  const S* tl = table + l * T * F;
  A acc[F];
#pragma unroll
  for (int f = 0; f < F; ++f) acc[f] = A(0);
#pragma unroll
  for (int k = 0; k < (1 << D); ++k) {
    const A wk = corner_weight<D>(w, k);
    const S* row = tl + corner_index<D>(dense, res, c, k, static_cast<uint32_t>(T)) * F;
#pragma unroll
    for (int f = 0; f < F; ++f) acc[f] += wk * Num<S>::to(row[f]);
  }
  S* o = out + (i * levels + l) * F;
#pragma unroll
  for (int f = 0; f < F; ++f) o[f] = Num<S>::from(acc[f]);
}

template <int D, int F, typename S>
__global__ void backward_kernel(const S* __restrict__ grad_out, const typename Num<S>::Acc* __restrict__ x,
                                const S* __restrict__ table, typename Num<S>::Acc* __restrict__ grad_table,
                                typename Num<S>::Acc* __restrict__ grad_x, int64_t n, int64_t levels, int64_t T,
                                Resolutions rs) {
  using A = typename Num<S>::Acc;
  const int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  const int64_t l = blockIdx.y;
  if (i >= n) return;
  const int64_t res = rs.res[l];
  const bool dense = level_dense<D>(res, T);
  int64_t c[D];
  A w[D];
  cell<D>(x + i * D, res, c, w);
  A g[F];
#pragma unroll
  for (int f = 0; f < F; ++f) g[f] = Num<S>::to(grad_out[(i * levels + l) * F + f]);
  A* gl = grad_table + l * T * F;
  const S* tl = table + l * T * F;
  A gx[D];
#pragma unroll
  for (int a = 0; a < D; ++a) gx[a] = A(0);
#pragma unroll
  for (int k = 0; k < (1 << D); ++k) {
    const int64_t idx = corner_index<D>(dense, res, c, k, static_cast<uint32_t>(T));
    const A wk = corner_weight<D>(w, k);
#pragma unroll
    for (int f = 0; f < F; ++f) atomicAdd(gl + idx * F + f, wk * g[f]);
    if (grad_x != nullptr) {
      A dot = A(0);
#pragma unroll
      for (int f = 0; f < F; ++f) dot += g[f] * Num<S>::to(tl[idx * F + f]);
#pragma unroll
      for (int a = 0; a < D; ++a) {
        A dw = ((k >> a) & 1) ? A(1) : A(-1);
#pragma unroll
        for (int j = 0; j < D; ++j) {
          if (j != a) dw *= ((k >> j) & 1) ? w[j] : A(1) - w[j];
        }
        gx[a] += dot * dw * static_cast<A>(res);
      }
    }
  }
  if (grad_x != nullptr) {
#pragma unroll
    for (int a = 0; a < D; ++a) {
      const A xa = x[i * D + a];
      if (xa >= A(0) && xa <= A(1)) atomicAdd(grad_x + i * D + a, gx[a]);
    }
  }
}

Resolutions pack(const int64_t* resolutions, int64_t levels) {
  if (levels < 1 || levels > kHashGridMaxLevels) {
    throw std::invalid_argument("hash_grid_encode: levels must be in 1.." + std::to_string(kHashGridMaxLevels));
  }
  Resolutions rs{};
  for (int64_t l = 0; l < levels; ++l) {
    if (resolutions[l] < 1) throw std::invalid_argument("hash_grid_encode: resolutions must be >= 1");
    rs.res[l] = resolutions[l];
  }
  return rs;
}

void check_sizes(int64_t n, int64_t T) {
  if (n < 0 || T < 1 || T > 0xffffffffLL) {
    throw std::invalid_argument("hash_grid_encode: need n >= 0 and 1 <= T < 2^32");
  }
  if ((n + kThreads - 1) / kThreads > 0x7fffffffLL) throw std::invalid_argument("hash_grid_encode: n too large");
}

}  // namespace

void hash_grid_encode_forward(const void* x, const void* table, void* out, int64_t n, int d,
                              int64_t levels, int64_t T, int f, const int64_t* resolutions, DType dtype,
                              void* stream) {
  check_sizes(n, T);
  const Resolutions rs = pack(resolutions, levels);
  if (n == 0) return;
  const dim3 grid(static_cast<unsigned>((n + kThreads - 1) / kThreads), static_cast<unsigned>(levels));
  auto s = static_cast<cudaStream_t>(stream);
  dispatch_hash_grid<__half>(d, f, dtype, [&](auto dd, auto ff, auto sv) {
    constexpr int D = decltype(dd)::value;
    constexpr int F = decltype(ff)::value;
    using S = decltype(sv);
    using A = typename Num<S>::Acc;
    forward_kernel<D, F, S><<<grid, kThreads, 0, s>>>(static_cast<const A*>(x), static_cast<const S*>(table),
                                                       static_cast<S*>(out), n, levels, T, rs);
  });
  check_launch("hash_grid_encode", "forward");
}

void hash_grid_encode_backward(const void* grad_out, const void* x, const void* table, void* grad_table,
                               void* grad_x, int64_t n, int d, int64_t levels, int64_t T, int f,
                               const int64_t* resolutions, DType dtype, void* stream) {
  check_sizes(n, T);
  const Resolutions rs = pack(resolutions, levels);
  if (n == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  const size_t acc_size = dtype == DType::Float64 ? sizeof(double) : sizeof(float);
  if (grad_x != nullptr) {
    const cudaError_t err = cudaMemsetAsync(grad_x, 0, static_cast<size_t>(n) * d * acc_size, s);
    if (err != cudaSuccess) {
      throw std::runtime_error(std::string("hash_grid_encode: memset of grad_x failed: ") + cudaGetErrorString(err));
    }
  }
  const dim3 grid(static_cast<unsigned>((n + kThreads - 1) / kThreads), static_cast<unsigned>(levels));
  dispatch_hash_grid<__half>(d, f, dtype, [&](auto dd, auto ff, auto sv) {
    constexpr int D = decltype(dd)::value;
    constexpr int F = decltype(ff)::value;
    using S = decltype(sv);
    using A = typename Num<S>::Acc;
    backward_kernel<D, F, S><<<grid, kThreads, 0, s>>>(
        static_cast<const S*>(grad_out), static_cast<const A*>(x), static_cast<const S*>(table),
        static_cast<A*>(grad_table), static_cast<A*>(grad_x), n, levels, T, rs);
  });
  check_launch("hash_grid_encode", "backward");
}

}  // namespace pykernels::cuda
