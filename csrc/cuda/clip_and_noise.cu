// CUDA kernels of kernels.clip_and_noise: a deterministic multi-tensor sum of squares and a clip-and-
// noise pass that draws z from the Philox stream of csrc/common/philox.h (the same code as the CPU).
// One thread per quad of global indices (one Philox call gives the 4 normals of a quad).
#include "cuda/clip_and_noise.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "common/cuda_check.cuh"
#include "common/cuda_num.cuh"
#include "common/philox.h"

namespace pykernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kPartials = 1024;

__device__ double block_sum(double v) {
  __shared__ double shared[kThreads];
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int stride = blockDim.x / 2; stride > 0; stride >>= 1) {  // fixed tree: deterministic
    if (threadIdx.x < stride) shared[threadIdx.x] += shared[threadIdx.x + stride];
    __syncthreads();
  }
  return shared[0];
}

template <typename T>
__global__ void sumsq_kernel(const int64_t* ptrs, const int64_t* numels, int64_t n, double* partials) {
  double acc = 0.0;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t t = 0; t < n; ++t) {
    const T* x = reinterpret_cast<const T*>(ptrs[t]);
    const int64_t numel = numels[t];
    for (int64_t i = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < numel; i += stride) {
      const double v = static_cast<double>(Num<T>::to(x[i]));
      acc += v * v;
    }
  }
  const double total = block_sum(acc);
  if (threadIdx.x == 0) partials[blockIdx.x] = total;
}

__global__ void final_sum_kernel(const double* partials, int64_t count, double* out) {
  double acc = 0.0;
  for (int64_t i = threadIdx.x; i < count; i += blockDim.x) acc += partials[i];
  const double total = block_sum(acc);
  if (threadIdx.x == 0) out[0] = total;
}

__device__ double scale_of(double norm, double max_norm) {
  return (norm == 0.0 || max_norm >= norm) ? 1.0 : max_norm / norm;
}

template <typename T>
__global__ void apply_kernel(const int64_t* ptrs, const int64_t* numels, int64_t n, const double* norm,
                             double max_norm, double noise_std, uint64_t seed, uint64_t offset) {
  using C = typename Num<T>::Acc;
  const C scale = static_cast<C>(scale_of(norm[0], max_norm));
  const C sigma = static_cast<C>(noise_std);
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  int64_t base = 0;
  for (int64_t t = 0; t < n; ++t) {
    const T* x = reinterpret_cast<const T*>(ptrs[t]);
    T* y = reinterpret_cast<T*>(ptrs[n + t]);
    const int64_t numel = numels[t];
    const int64_t end = base + numel;
    const int64_t q_first = base >> 2;
    const int64_t nq = numel > 0 ? ((end - 1) >> 2) - q_first + 1 : 0;
    for (int64_t k = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; k < nq; k += stride) {
      const int64_t q = q_first + k;
      float z[4] = {0.f, 0.f, 0.f, 0.f};
      if (noise_std != 0.0) philox::normals4(static_cast<uint64_t>(q), seed, offset, z);
#pragma unroll
      for (int lane = 0; lane < 4; ++lane) {
        const int64_t g = 4 * q + lane;
        if (g < base || g >= end) continue;
        const int64_t i = g - base;
        C v = Num<T>::to(x[i]) * scale;
        if (noise_std != 0.0) v += sigma * static_cast<C>(z[lane]);
        y[i] = Num<T>::from(v);
      }
    }
    base = end;
  }
}

template <typename T>
__global__ void sum_apply_kernel(const T* x, T* out, int64_t rows, int64_t cols, const double* norms,
                                 double max_norm, double noise_std, uint64_t seed, uint64_t offset) {
  using C = typename Num<T>::Acc;
  const C sigma = static_cast<C>(noise_std);
  const int64_t nq = (cols + 3) / 4;
  const int64_t stride = static_cast<int64_t>(gridDim.x) * blockDim.x;
  for (int64_t q = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; q < nq; q += stride) {
    double acc[4] = {0.0, 0.0, 0.0, 0.0};
    for (int64_t s = 0; s < rows; ++s) {
      const C scale = static_cast<C>(scale_of(norms[s], max_norm));
#pragma unroll
      for (int lane = 0; lane < 4; ++lane) {
        const int64_t j = 4 * q + lane;
        if (j < cols) acc[lane] += static_cast<double>(Num<T>::to(x[s * cols + j]) * scale);
      }
    }
    float z[4] = {0.f, 0.f, 0.f, 0.f};
    if (noise_std != 0.0) philox::normals4(static_cast<uint64_t>(q), seed, offset, z);
#pragma unroll
    for (int lane = 0; lane < 4; ++lane) {
      const int64_t j = 4 * q + lane;
      if (j >= cols) continue;
      C v = static_cast<C>(acc[lane]);
      if (noise_std != 0.0) v += sigma * static_cast<C>(z[lane]);
      out[j] = Num<T>::from(v);
    }
  }
}

int grid_for(int64_t work) {
  const int64_t blocks = (work + kThreads - 1) / kThreads;
  return static_cast<int>(blocks < 1 ? 1 : (blocks > 65535 ? 65535 : blocks));
}

template <typename F>
void dispatch(DType dtype, F&& f) {
  switch (dtype) {
    case DType::Float32: f(float{}); return;
    case DType::Float64: f(double{}); return;
    case DType::Float16: f(__half{}); return;
    case DType::BFloat16: f(__nv_bfloat16{}); return;
  }
  throw std::invalid_argument("clip_and_noise: unsupported dtype");
}

}  // namespace

int64_t clip_and_noise_partials() { return kPartials; }

void clip_and_noise_sumsq(const int64_t* ptrs, const int64_t* numels, int64_t n, int64_t total, DType dtype,
                          double* scratch, double* out, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    sumsq_kernel<T><<<kPartials, kThreads, 0, s>>>(ptrs, numels, n, scratch);
  });
  check_launch("clip_and_noise", "sumsq_kernel");
  final_sum_kernel<<<1, kThreads, 0, s>>>(scratch, kPartials, out);
  check_launch("clip_and_noise", "final_sum_kernel");
}

void clip_and_noise_apply(const int64_t* ptrs, const int64_t* numels, int64_t n, int64_t total, DType dtype,
                          const double* norm, double max_norm, double noise_std, uint64_t seed,
                          uint64_t offset, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  const int grid = grid_for((total + 3) / 4);
  dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    apply_kernel<T><<<grid, kThreads, 0, s>>>(ptrs, numels, n, norm, max_norm, noise_std, seed, offset);
  });
  check_launch("clip_and_noise", "apply_kernel");
}

void clip_and_noise_sum_apply(const void* x, void* out, int64_t rows, int64_t cols, DType dtype,
                              const double* norms, double max_norm, double noise_std, uint64_t seed,
                              uint64_t offset, void* stream) {
  auto s = static_cast<cudaStream_t>(stream);
  const int grid = grid_for((cols + 3) / 4);
  dispatch(dtype, [&](auto tag) {
    using T = decltype(tag);
    sum_apply_kernel<T><<<grid, kThreads, 0, s>>>(static_cast<const T*>(x), static_cast<T*>(out), rows, cols,
                                                   norms, max_norm, noise_std, seed, offset);
  });
  check_launch("clip_and_noise", "sum_apply_kernel");
}

}  // namespace pykernels::cuda
