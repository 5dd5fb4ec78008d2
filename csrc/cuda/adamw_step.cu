// CUDA multi-tensor AdamW step (see adamw_step.h). One block per chunk of the chunk table; each
// thread walks the chunk with a block-sized stride, so loads of consecutive threads coalesce.
// 16-bit parameters are widened to float, updated against float32 state and rounded once.
#include "cuda/adamw_step.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cmath>
#include <stdexcept>
#include <string>

#include "common/cuda_check.cuh"

namespace pykernels::cuda {
namespace {

constexpr int kThreads = 512;

template <typename S>
struct Consts {
  S decay, w, one_minus_w, beta2, one_minus_beta2, neg_step_size, bc2_sqrt, eps, neg_lr_alpha, gsign;
  bool lerp_small;
};

template <typename S>
Consts<S> make_consts(const AdamWScalars& s) {
  Consts<S> k;
  k.decay = static_cast<S>(1.0 - s.lr * s.weight_decay);
  k.w = static_cast<S>(1.0 - s.beta1);
  k.one_minus_w = S(1) - k.w;
  k.beta2 = static_cast<S>(s.beta2);
  k.one_minus_beta2 = static_cast<S>(1.0 - s.beta2);
  k.neg_step_size = static_cast<S>(-(s.lr / s.bc1));
  k.bc2_sqrt = static_cast<S>(std::sqrt(s.bc2));
  k.eps = static_cast<S>(s.eps);
  k.neg_lr_alpha = static_cast<S>(-(s.lr * s.alpha));
  k.gsign = s.maximize ? S(-1) : S(1);
  k.lerp_small = std::fabs(1.0 - s.beta1) < 0.5;
  return k;
}

__device__ __forceinline__ float to_compute(float x) { return x; }
__device__ __forceinline__ double to_compute(double x) { return x; }
__device__ __forceinline__ float to_compute(__nv_bfloat16 x) { return __bfloat162float(x); }
__device__ __forceinline__ float to_compute(__half x) { return __half2float(x); }

template <typename P, typename S>
__device__ __forceinline__ P from_compute(S x);
template <>
__device__ __forceinline__ float from_compute<float, float>(float x) { return x; }
template <>
__device__ __forceinline__ double from_compute<double, double>(double x) { return x; }
template <>
__device__ __forceinline__ __nv_bfloat16 from_compute<__nv_bfloat16, float>(float x) {
  return __float2bfloat16_rn(x);
}
template <>
__device__ __forceinline__ __half from_compute<__half, float>(float x) { return __float2half_rn(x); }

template <typename P, typename S, bool AMS, bool CORR>
__global__ void __launch_bounds__(kThreads)
    adamw_step_kernel(const int64_t* __restrict__ pointers, const int64_t* __restrict__ chunks,
                      const int64_t* __restrict__ numels, int64_t n, int64_t n_chunks, Consts<S> k) {
  const int64_t chunk = blockIdx.x;
  const int64_t t = chunks[chunk];
  const int64_t start = chunks[n_chunks + chunk];
  const int64_t end = min(start + kAdamWChunk, numels[t]);
  P* __restrict__ p = reinterpret_cast<P*>(pointers[t]);
  const P* __restrict__ g = reinterpret_cast<const P*>(pointers[n + t]);
  S* __restrict__ m = reinterpret_cast<S*>(pointers[2 * n + t]);
  S* __restrict__ v = reinterpret_cast<S*>(pointers[3 * n + t]);
  S* __restrict__ vmax = reinterpret_cast<S*>(pointers[4 * n + t]);
  const S* __restrict__ c = reinterpret_cast<const S*>(pointers[5 * n + t]);
  for (int64_t i = start + threadIdx.x; i < end; i += kThreads) {
    const S gi = to_compute(g[i]) * k.gsign;
    S pi = to_compute(p[i]) * k.decay;
    const S mi0 = m[i];
    const S diff = gi - mi0;
    const S mi = k.lerp_small ? mi0 + k.w * diff : gi - diff * k.one_minus_w;
    S vi = v[i] * k.beta2;
    vi = vi + k.one_minus_beta2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    S second = vi;
    if constexpr (AMS) {
      second = max(vmax[i], vi);
      vmax[i] = second;
    }
    const S denom = sqrt(second) / k.bc2_sqrt + k.eps;
    pi = pi + k.neg_step_size * mi / denom;
    if constexpr (CORR) pi = pi + k.neg_lr_alpha * c[i];
    p[i] = from_compute<P, S>(pi);
  }
}

template <typename P, typename S>
void launch(const int64_t* pointers, const int64_t* chunks, const int64_t* numels, int64_t n, int64_t n_chunks,
            bool amsgrad, bool has_correction, const AdamWScalars& s, cudaStream_t stream) {
  const Consts<S> k = make_consts<S>(s);
  const dim3 grid(static_cast<unsigned>(n_chunks));
  if (amsgrad) {
    if (has_correction) {
      adamw_step_kernel<P, S, true, true><<<grid, kThreads, 0, stream>>>(pointers, chunks, numels, n, n_chunks, k);
    } else {
      adamw_step_kernel<P, S, true, false><<<grid, kThreads, 0, stream>>>(pointers, chunks, numels, n, n_chunks, k);
    }
  } else {
    if (has_correction) {
      adamw_step_kernel<P, S, false, true><<<grid, kThreads, 0, stream>>>(pointers, chunks, numels, n, n_chunks, k);
    } else {
      adamw_step_kernel<P, S, false, false><<<grid, kThreads, 0, stream>>>(pointers, chunks, numels, n, n_chunks,
                                                                           k);
    }
  }
  check_launch("adamw_step", "the step kernel over " + std::to_string(n_chunks) + " chunks");
}

}  // namespace

void adamw_step(const int64_t* pointers, const int64_t* chunks, const int64_t* numels, int64_t n,
                int64_t n_chunks, bool amsgrad, bool has_correction, DType param_dtype, const AdamWScalars& s,
                void* stream) {
  if (n < 0 || n_chunks < 0) {
    throw std::invalid_argument("adamw_step: n and n_chunks must be >= 0, got " + std::to_string(n) + ", " +
                                std::to_string(n_chunks));
  }
  if (n == 0 || n_chunks == 0) return;
  if (n_chunks > 0x7fffffffLL) {
    throw std::invalid_argument("adamw_step: too many chunks for one launch: " + std::to_string(n_chunks));
  }
  const cudaStream_t st = static_cast<cudaStream_t>(stream);
  switch (param_dtype) {
    case DType::Float32:
      return launch<float, float>(pointers, chunks, numels, n, n_chunks, amsgrad, has_correction, s, st);
    case DType::Float64:
      return launch<double, double>(pointers, chunks, numels, n, n_chunks, amsgrad, has_correction, s, st);
    case DType::BFloat16:
      return launch<__nv_bfloat16, float>(pointers, chunks, numels, n, n_chunks, amsgrad, has_correction, s, st);
    case DType::Float16:
      return launch<__half, float>(pointers, chunks, numels, n, n_chunks, amsgrad, has_correction, s, st);
  }
  throw std::invalid_argument("adamw_step: unknown dtype");
}

}  // namespace pykernels::cuda
