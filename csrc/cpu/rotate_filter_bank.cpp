// CPU kernels of kernels.rotate_filter_bank. Forward: OpenMP over the output rows (o, r); per input
// channel (i, s) one k·k row accumulated over the basis, the k·k loop vectorized. Backward: OpenMP
// over (o, i); per (t, r) the k·k row of grad_W is dotted with every basis filter of rotation r.
#include "cpu/rotate_filter_bank.h"

#include <stdexcept>
#include <string>

namespace pykernels::cpu {
namespace {

void check_dims(int64_t c_out, int64_t c_in, int64_t n_in, int64_t n, int64_t nb, int64_t kk) {
  if (c_out < 0 || c_in < 0 || n < 1 || nb < 0 || kk < 0 || (n_in != 1 && n_in != n)) {
    throw std::invalid_argument("rotate_filter_bank: bad sizes (c_out=" + std::to_string(c_out) +
                                ", c_in=" + std::to_string(c_in) + ", n_in=" + std::to_string(n_in) +
                                ", n=" + std::to_string(n) + ", nb=" + std::to_string(nb) +
                                ", kk=" + std::to_string(kk) + ")");
  }
}

template <typename T>
void forward_impl(const T* __restrict coeffs, const T* __restrict basis, T* __restrict W, int64_t c_out,
                  int64_t c_in, int64_t n_in, int64_t n, int64_t nb, int64_t kk) {
  const int64_t rows = c_out * n;
#pragma omp parallel for schedule(static)
  for (int64_t row = 0; row < rows; ++row) {
    const int64_t o = row / n, r = row % n;
    const T* bas = basis + r * nb * kk;
    T* out_row = W + row * c_in * n_in * kk;
    for (int64_t i = 0; i < c_in; ++i) {
      for (int64_t s = 0; s < n_in; ++s) {
        const int64_t t = ((s - r) % n_in + n_in) % n_in;
        const T* c = coeffs + ((o * c_in + i) * n_in + t) * nb;
        T* out = out_row + (i * n_in + s) * kk;
        for (int64_t xy = 0; xy < kk; ++xy) out[xy] = T(0);
        for (int64_t b = 0; b < nb; ++b) {
          const T cb = c[b];
          const T* phi = bas + b * kk;
#pragma omp simd
          for (int64_t xy = 0; xy < kk; ++xy) out[xy] += cb * phi[xy];
        }
      }
    }
  }
}

template <typename T>
void backward_impl(const T* __restrict grad_W, const T* __restrict basis, T* __restrict grad, int64_t c_out,
                   int64_t c_in, int64_t n_in, int64_t n, int64_t nb, int64_t kk) {
  const int64_t pairs = c_out * c_in;
#pragma omp parallel for schedule(static)
  for (int64_t p = 0; p < pairs; ++p) {
    const int64_t o = p / c_in, i = p % c_in;
    T* g = grad + p * n_in * nb;
    for (int64_t e = 0; e < n_in * nb; ++e) g[e] = T(0);
    for (int64_t r = 0; r < n; ++r) {
      const T* bas = basis + r * nb * kk;
      for (int64_t t = 0; t < n_in; ++t) {
        const int64_t s = (t + r) % n_in;
        const T* gw = grad_W + ((o * n + r) * c_in * n_in + i * n_in + s) * kk;
        T* gt = g + t * nb;
        for (int64_t b = 0; b < nb; ++b) {
          const T* phi = bas + b * kk;
          T acc = T(0);
#pragma omp simd reduction(+ : acc)
          for (int64_t xy = 0; xy < kk; ++xy) acc += gw[xy] * phi[xy];
          gt[b] += acc;
        }
      }
    }
  }
}

}  // namespace

void rotate_filter_bank_forward(const void* coeffs, const void* basis, void* W, int64_t c_out, int64_t c_in,
                                int64_t n_in, int64_t n, int64_t nb, int64_t kk, DType dtype) {
  check_dims(c_out, c_in, n_in, n, nb, kk);
  switch (dtype) {
    case DType::Float32:
      forward_impl(static_cast<const float*>(coeffs), static_cast<const float*>(basis), static_cast<float*>(W),
                   c_out, c_in, n_in, n, nb, kk);
      return;
    case DType::Float64:
      forward_impl(static_cast<const double*>(coeffs), static_cast<const double*>(basis),
                   static_cast<double*>(W), c_out, c_in, n_in, n, nb, kk);
      return;
    default:
      throw std::invalid_argument(std::string("rotate_filter_bank: dtype ") + dtype_name(dtype) +
                                  " is not supported (float32 or float64)");
  }
}

void rotate_filter_bank_backward(const void* grad_W, const void* basis, void* grad, int64_t c_out, int64_t c_in,
                                 int64_t n_in, int64_t n, int64_t nb, int64_t kk, DType dtype) {
  check_dims(c_out, c_in, n_in, n, nb, kk);
  switch (dtype) {
    case DType::Float32:
      backward_impl(static_cast<const float*>(grad_W), static_cast<const float*>(basis), static_cast<float*>(grad),
                    c_out, c_in, n_in, n, nb, kk);
      return;
    case DType::Float64:
      backward_impl(static_cast<const double*>(grad_W), static_cast<const double*>(basis),
                    static_cast<double*>(grad), c_out, c_in, n_in, n, nb, kk);
      return;
    default:
      throw std::invalid_argument(std::string("rotate_filter_bank: dtype ") + dtype_name(dtype) +
                                  " is not supported (float32 or float64)");
  }
}

}  // namespace pykernels::cpu
