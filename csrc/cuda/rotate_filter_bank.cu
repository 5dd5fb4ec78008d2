// CUDA kernels of kernels.rotate_filter_bank (math: kernels/reference/rotate_filter_bank.py).
// Forward: one thread per element W[o·n + r, i·n_in + s, xy] (xy fastest, so a warp reads a basis
// row contiguously and one coefficient row as a broadcast), a loop over the nb basis filters.
// Backward: one thread per grad[o, i, t, b] (b fastest), a loop over the n rotations and kk taps.
// Grid-stride loops over int64 indices.
#include "cuda/rotate_filter_bank.h"

#include <cuda_runtime.h>

#include <algorithm>
#include <stdexcept>
#include <string>

#include "common/cuda_check.cuh"

namespace pykernels::cuda {
namespace {

constexpr int kThreads = 256;

template <typename T>
__global__ void forward_kernel(const T* __restrict__ coeffs, const T* __restrict__ basis, T* __restrict__ W,
                               int64_t c_out, int64_t c_in, int64_t n_in, int64_t n, int64_t nb, int64_t kk) {
  const int64_t total = c_out * n * c_in * n_in * kk;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t xy = e % kk;
    int64_t rest = e / kk;
    const int64_t s = rest % n_in;
    rest /= n_in;
    const int64_t i = rest % c_in;
    rest /= c_in;
    const int64_t r = rest % n;
    const int64_t o = rest / n;
    const int64_t t = ((s - r) % n_in + n_in) % n_in;
    const T* c = coeffs + ((o * c_in + i) * n_in + t) * nb;
    const T* phi = basis + r * nb * kk + xy;
    T acc = T(0);
    for (int64_t b = 0; b < nb; ++b) acc += c[b] * phi[b * kk];
    W[e] = acc;
  }
}

template <typename T>
__global__ void backward_kernel(const T* __restrict__ grad_W, const T* __restrict__ basis, T* __restrict__ grad,
                                int64_t c_out, int64_t c_in, int64_t n_in, int64_t n, int64_t nb, int64_t kk) {
  const int64_t total = c_out * c_in * n_in * nb;
  for (int64_t e = blockIdx.x * static_cast<int64_t>(blockDim.x) + threadIdx.x; e < total;
       e += static_cast<int64_t>(gridDim.x) * blockDim.x) {
    const int64_t b = e % nb;
    int64_t rest = e / nb;
    const int64_t t = rest % n_in;
    rest /= n_in;
    const int64_t i = rest % c_in;
    const int64_t o = rest / c_in;
    T acc = T(0);
    for (int64_t r = 0; r < n; ++r) {
      const int64_t s = (t + r) % n_in;
      const T* gw = grad_W + ((o * n + r) * c_in * n_in + i * n_in + s) * kk;
      const T* phi = basis + (r * nb + b) * kk;
      for (int64_t xy = 0; xy < kk; ++xy) acc += gw[xy] * phi[xy];
    }
    grad[e] = acc;
  }
}

void check_rfb_dims(int64_t c_out, int64_t c_in, int64_t n_in, int64_t n, int64_t nb, int64_t kk) {
  if (c_out < 0 || c_in < 0 || n < 1 || nb < 0 || kk < 0 || (n_in != 1 && n_in != n)) {
    throw std::invalid_argument("rotate_filter_bank: bad sizes (c_out=" + std::to_string(c_out) +
                                ", c_in=" + std::to_string(c_in) + ", n_in=" + std::to_string(n_in) +
                                ", n=" + std::to_string(n) + ", nb=" + std::to_string(nb) +
                                ", kk=" + std::to_string(kk) + ")");
  }
}

unsigned blocks_for(int64_t total) {
  return static_cast<unsigned>(std::min<int64_t>((total + kThreads - 1) / kThreads, 65535LL * 32));
}

[[noreturn]] void bad_dtype(DType dtype) {
  throw std::invalid_argument(std::string("rotate_filter_bank: dtype ") + dtype_name(dtype) +
                              " is not supported (float32 or float64)");
}

}  // namespace

void rotate_filter_bank_forward(const void* coeffs, const void* basis, void* W, int64_t c_out, int64_t c_in,
                                int64_t n_in, int64_t n, int64_t nb, int64_t kk, DType dtype, void* stream) {
  check_rfb_dims(c_out, c_in, n_in, n, nb, kk);
  const int64_t total = c_out * n * c_in * n_in * kk;
  if (total == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case DType::Float32:
      forward_kernel<float><<<blocks_for(total), kThreads, 0, s>>>(static_cast<const float*>(coeffs),
                                                                  static_cast<const float*>(basis),
                                                                  static_cast<float*>(W), c_out, c_in, n_in, n, nb, kk);
      break;
    case DType::Float64:
      forward_kernel<double><<<blocks_for(total), kThreads, 0, s>>>(static_cast<const double*>(coeffs),
                                                                   static_cast<const double*>(basis),
                                                                   static_cast<double*>(W), c_out, c_in, n_in, n, nb,
                                                                   kk);
      break;
    default:
      bad_dtype(dtype);
  }
  check_launch("rotate_filter_bank", "forward");
}

void rotate_filter_bank_backward(const void* grad_W, const void* basis, void* grad, int64_t c_out, int64_t c_in,
                                 int64_t n_in, int64_t n, int64_t nb, int64_t kk, DType dtype, void* stream) {
  check_rfb_dims(c_out, c_in, n_in, n, nb, kk);
  const int64_t total = c_out * c_in * n_in * nb;
  if (total == 0) return;
  auto s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case DType::Float32:
      backward_kernel<float><<<blocks_for(total), kThreads, 0, s>>>(static_cast<const float*>(grad_W),
                                                                   static_cast<const float*>(basis),
                                                                   static_cast<float*>(grad), c_out, c_in, n_in, n,
                                                                   nb, kk);
      break;
    case DType::Float64:
      backward_kernel<double><<<blocks_for(total), kThreads, 0, s>>>(static_cast<const double*>(grad_W),
                                                                    static_cast<const double*>(basis),
                                                                    static_cast<double*>(grad), c_out, c_in, n_in,
                                                                    n, nb, kk);
      break;
    default:
      bad_dtype(dtype);
  }
  check_launch("rotate_filter_bank", "backward");
}

}  // namespace pykernels::cuda
