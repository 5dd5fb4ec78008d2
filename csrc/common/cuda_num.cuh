// Number traits shared by the CUDA kernels: each storage type T is read into its accumulation type
// Num<T>::Acc (float for float / half / bfloat16, double for double) and rounded back once on store
// (round to nearest even).
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

namespace pykernels::cuda {

template <typename T>
struct Num;

template <>
struct Num<float> {
  using Acc = float;
  __device__ static float to(float v) { return v; }
  __device__ static float from(float v) { return v; }
};

template <>
struct Num<double> {
  using Acc = double;
  __device__ static double to(double v) { return v; }
  __device__ static double from(double v) { return v; }
};

template <>
struct Num<__half> {
  using Acc = float;
  __device__ static float to(__half v) { return __half2float(v); }
  __device__ static __half from(float v) { return __float2half_rn(v); }
};

template <>
struct Num<__nv_bfloat16> {
  using Acc = float;
  __device__ static float to(__nv_bfloat16 v) { return __bfloat162float(v); }
  __device__ static __nv_bfloat16 from(float v) { return __float2bfloat16_rn(v); }
};

}  // namespace pykernels::cuda
