// CPU kernels of kernels.rotate_filter_bank. Both directions are rows of small matrix products:
//   forward   W[o·n + r, i·n_in + s, :] (kk)  = coeffs[o, i, (s − r) mod n_in, :] (nb) · basis[r] (nb × kk)
//   backward  grad[o, i, t, :] (nb) += grad_W[o·n + r, i·n_in + (t + r) mod n_in, :] (kk) · basisᵀ[r] (kk × nb)
// Both run through one register-blocked micro-kernel (block_rows: 4 rows x the row length padded to
// 16, a compile-time constant up to 64) so the accumulators stay in vector registers; longer rows
// fall back to plain loops.
// OpenMP over output rows (o, r) forward and over (o, i) backward: every output entry has one writer,
// deterministic for any thread count. gcc's target_clones compiles the row functions for AVX-512,
// AVX2 and baseline x86-64 and picks one at load time.
#include "cpu/rotate_filter_bank.h"

#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace pykernels::cpu {
namespace {

#if defined(__GNUC__) && !defined(__clang__) && defined(__x86_64__)
#define PK_RFB_CLONES __attribute__((target_clones("avx512f", "avx2", "default"), flatten))
#else
#define PK_RFB_CLONES
#endif

void check_dims(int64_t c_out, int64_t c_in, int64_t n_in, int64_t n, int64_t nb, int64_t kk) {
  if (c_out < 0 || c_in < 0 || n < 1 || nb < 0 || kk < 0 || (n_in != 1 && n_in != n)) {
    throw std::invalid_argument("rotate_filter_bank: bad sizes (c_out=" + std::to_string(c_out) +
                                ", c_in=" + std::to_string(c_in) + ", n_in=" + std::to_string(n_in) +
                                ", n=" + std::to_string(n) + ", nb=" + std::to_string(nb) +
                                ", kk=" + std::to_string(kk) + ")");
  }
}

// Register-blocked micro-kernel: RB rows at once, acc[r][0:MP] += Σ_{j < J} a_r[j] · mat[j·MP : (j+1)·MP].
// MP (the row length padded to 16 elements, with zero padding in mat) is a compile-time constant, so
// the RB·MP accumulators are whole vector registers and every mat row loaded serves RB rows.
template <typename T, int MP, int RB>
inline void block_rows(const T* const* a, int64_t J, const T* __restrict mat, T (*acc)[MP]) {
  for (int64_t j = 0; j < J; ++j) {
    const T* row = mat + j * MP;
    for (int q = 0; q < RB; ++q) {
      const T aq = a[q][j];
      for (int m = 0; m < MP; ++m) acc[q][m] += aq * row[m];
    }
  }
}

// The forward output row o·n + r of W: Q = c_in·n_in rows of kk taps; row q = i·n_in + s uses the
// coefficient row (o, i, (s − r) mod n_in) and the padded basis of rotation r (nb × MP).
template <typename T, int MP>
inline void forward_row(const T* coeffs, const T* basis_p, T* W, int64_t row, int64_t c_in, int64_t n_in,
                        int64_t n, int64_t nb, int64_t kk) {
  constexpr int RB = 4;
  const int64_t o = row / n, r = row % n, Q = c_in * n_in;
  const T* bas = basis_p + r * nb * MP;
  T* out = W + row * Q * kk;
  auto coeff_row = [&](int64_t q) {
    const int64_t i = q / n_in, s = q % n_in;
    const int64_t t = ((s - r) % n_in + n_in) % n_in;
    return coeffs + ((o * c_in + i) * n_in + t) * nb;
  };
  int64_t q0 = 0;
  for (; q0 + RB <= Q; q0 += RB) {
    const T* a[RB];
    for (int q = 0; q < RB; ++q) a[q] = coeff_row(q0 + q);
    T acc[RB][MP] = {};
    block_rows<T, MP, RB>(a, nb, bas, acc);
    for (int q = 0; q < RB; ++q) {
      for (int64_t m = 0; m < kk; ++m) out[(q0 + q) * kk + m] = acc[q][m];
    }
  }
  for (; q0 < Q; ++q0) {
    const T* a[1] = {coeff_row(q0)};
    T acc[1][MP] = {};
    block_rows<T, MP, 1>(a, nb, bas, acc);
    for (int64_t m = 0; m < kk; ++m) out[q0 * kk + m] = acc[0][m];
  }
}

// grad[o, i, :, :] (n_in rows of nb) from every rotation r; basis_tp is the basis transposed per
// rotation and padded: (n, kk, MP), MP >= nb.
template <typename T, int MP>
inline void backward_pair(const T* grad_W, const T* basis_tp, T* grad, int64_t pair, int64_t c_in, int64_t n_in,
                          int64_t n, int64_t nb, int64_t kk) {
  constexpr int RB = 4;
  const int64_t o = pair / c_in, i = pair % c_in;
  T* g = grad + pair * n_in * nb;
  auto run = [&](auto rb_tag, int64_t t0) {
    constexpr int R = decltype(rb_tag)::value;
    T acc[R][MP] = {};
    for (int64_t r = 0; r < n; ++r) {
      const T* gw_field = grad_W + ((o * n + r) * c_in + i) * n_in * kk;
      const T* a[R];
      for (int q = 0; q < R; ++q) a[q] = gw_field + ((t0 + q + r) % n_in) * kk;
      block_rows<T, MP, R>(a, kk, basis_tp + r * kk * MP, acc);
    }
    for (int q = 0; q < R; ++q) {
      for (int64_t b = 0; b < nb; ++b) g[(t0 + q) * nb + b] = acc[q][b];
    }
  };
  int64_t t0 = 0;
  for (; t0 + RB <= n_in; t0 += RB) run(std::integral_constant<int, RB>{}, t0);
  for (; t0 < n_in; ++t0) run(std::integral_constant<int, 1>{}, t0);
}

// One function per (direction, dtype), compiled for AVX-512, AVX2 and baseline x86-64 (flatten:
// everything inlined into each clone, so the templates get the clone's instruction set).
#define PK_RFB_ROW_FNS(T, SUFFIX)                                                                           \
  PK_RFB_CLONES void forward_row_##SUFFIX(const T* c, const T* bp, T* w, int64_t row, int64_t c_in,          \
                                          int64_t n_in, int64_t n, int64_t nb, int64_t kk, int64_t mp) {     \
    switch (mp) {                                                                                           \
      case 16: return forward_row<T, 16>(c, bp, w, row, c_in, n_in, n, nb, kk);                             \
      case 32: return forward_row<T, 32>(c, bp, w, row, c_in, n_in, n, nb, kk);                             \
      case 48: return forward_row<T, 48>(c, bp, w, row, c_in, n_in, n, nb, kk);                             \
      default: return forward_row<T, 64>(c, bp, w, row, c_in, n_in, n, nb, kk);                             \
    }                                                                                                       \
  }                                                                                                         \
  PK_RFB_CLONES void backward_pair_##SUFFIX(const T* gw, const T* btp, T* g, int64_t pair, int64_t c_in,     \
                                            int64_t n_in, int64_t n, int64_t nb, int64_t kk, int64_t mp) {   \
    switch (mp) {                                                                                           \
      case 16: return backward_pair<T, 16>(gw, btp, g, pair, c_in, n_in, n, nb, kk);                        \
      case 32: return backward_pair<T, 32>(gw, btp, g, pair, c_in, n_in, n, nb, kk);                        \
      case 48: return backward_pair<T, 48>(gw, btp, g, pair, c_in, n_in, n, nb, kk);                        \
      default: return backward_pair<T, 64>(gw, btp, g, pair, c_in, n_in, n, nb, kk);                        \
    }                                                                                                       \
  }                                                                                                         \
  inline void forward_row_any(const T* c, const T* bp, T* w, int64_t row, int64_t c_in, int64_t n_in,         \
                              int64_t n, int64_t nb, int64_t kk, int64_t mp) {                               \
    forward_row_##SUFFIX(c, bp, w, row, c_in, n_in, n, nb, kk, mp);                                         \
  }                                                                                                         \
  inline void backward_pair_any(const T* gw, const T* btp, T* g, int64_t pair, int64_t c_in, int64_t n_in,    \
                                int64_t n, int64_t nb, int64_t kk, int64_t mp) {                             \
    backward_pair_##SUFFIX(gw, btp, g, pair, c_in, n_in, n, nb, kk, mp);                                    \
  }

PK_RFB_ROW_FNS(float, f32)
PK_RFB_ROW_FNS(double, f64)
#undef PK_RFB_ROW_FNS

constexpr int64_t kMaxPadded = 64;
int64_t padded(int64_t m) { return (m + 15) / 16 * 16; }

// The plain loops, for rows longer than kMaxPadded (k > 7 forward, B > 64 backward).
template <typename T>
void forward_rows_generic(const T* coeffs, const T* basis, T* W, int64_t row, int64_t c_in, int64_t n_in,
                          int64_t n, int64_t nb, int64_t kk) {
  const int64_t o = row / n, r = row % n;
  const T* bas = basis + r * nb * kk;
  for (int64_t q = 0; q < c_in * n_in; ++q) {
    const int64_t i = q / n_in, s = q % n_in, t = ((s - r) % n_in + n_in) % n_in;
    const T* c = coeffs + ((o * c_in + i) * n_in + t) * nb;
    T* out = W + (row * c_in * n_in + q) * kk;
    for (int64_t m = 0; m < kk; ++m) out[m] = T(0);
    for (int64_t b = 0; b < nb; ++b) {
#pragma omp simd
      for (int64_t m = 0; m < kk; ++m) out[m] += c[b] * bas[b * kk + m];
    }
  }
}

template <typename T>
void backward_pair_generic(const T* grad_W, const T* basis, T* grad, int64_t pair, int64_t c_in, int64_t n_in,
                           int64_t n, int64_t nb, int64_t kk) {
  const int64_t o = pair / c_in, i = pair % c_in;
  T* g = grad + pair * n_in * nb;
  for (int64_t e = 0; e < n_in * nb; ++e) g[e] = T(0);
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t t = 0; t < n_in; ++t) {
      const T* gw = grad_W + ((o * n + r) * c_in * n_in + i * n_in + (t + r) % n_in) * kk;
      for (int64_t b = 0; b < nb; ++b) {
        const T* phi = basis + (r * nb + b) * kk;
        T acc = T(0);
#pragma omp simd reduction(+ : acc)
        for (int64_t m = 0; m < kk; ++m) acc += gw[m] * phi[m];
        g[t * nb + b] += acc;
      }
    }
  }
}

// Below this many multiply-adds (~0.13 ms on one core) the kernel stays on one thread. On 2 idle
// cores the OpenMP team would save ~40% of the 8 -> 8-field C_8 k=5 bank (2.6M
// multiply-adds: forward 0.08 -> 0.045 ms), but on busy cores a descheduled thread holds the
// barrier for whole scheduler ticks: measured on this shared machine, forward min 8 ms (!) with the
// team vs 0.125 ms alone, and forward + backward p90 24 ms vs 0.15 ms. Next to the conv2d that uses
// the bank (~100 ms here) 0.035 ms is not worth that tail.
constexpr int64_t kParallelMacs = 1 << 22;

template <typename T>
void forward_impl(const T* coeffs, const T* basis, T* W, int64_t c_out, int64_t c_in, int64_t n_in, int64_t n,
                  int64_t nb, int64_t kk) {
  const int64_t rows = c_out * n;
  const bool parallel = rows * c_in * n_in * nb * kk >= kParallelMacs;
  const int64_t mp = padded(kk);
  if (mp > kMaxPadded) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t row = 0; row < rows; ++row) forward_rows_generic(coeffs, basis, W, row, c_in, n_in, n, nb, kk);
    return;
  }
  std::vector<T> basis_p(static_cast<size_t>(n * nb * mp), T(0));  // (n, nb, mp), zero-padded taps
  for (int64_t rb = 0; rb < n * nb; ++rb) {
    for (int64_t m = 0; m < kk; ++m) basis_p[rb * mp + m] = basis[rb * kk + m];
  }
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t row = 0; row < rows; ++row) {
    forward_row_any(coeffs, basis_p.data(), W, row, c_in, n_in, n, nb, kk, mp);
  }
}

template <typename T>
void backward_impl(const T* grad_W, const T* basis, T* grad, int64_t c_out, int64_t c_in, int64_t n_in, int64_t n,
                   int64_t nb, int64_t kk) {
  const int64_t pairs = c_out * c_in;
  const bool parallel = pairs * n * n_in * nb * kk >= kParallelMacs;
  const int64_t mp = padded(nb);
  if (mp > kMaxPadded) {
#pragma omp parallel for schedule(static) if (parallel)
    for (int64_t p = 0; p < pairs; ++p) backward_pair_generic(grad_W, basis, grad, p, c_in, n_in, n, nb, kk);
    return;
  }
  std::vector<T> basis_tp(static_cast<size_t>(n * kk * mp), T(0));  // (n, kk, mp): transposed, padded
  for (int64_t r = 0; r < n; ++r) {
    for (int64_t b = 0; b < nb; ++b) {
      for (int64_t m = 0; m < kk; ++m) basis_tp[(r * kk + m) * mp + b] = basis[(r * nb + b) * kk + m];
    }
  }
#pragma omp parallel for schedule(static) if (parallel)
  for (int64_t p = 0; p < pairs; ++p) {
    backward_pair_any(grad_W, basis_tp.data(), grad, p, c_in, n_in, n, nb, kk, mp);
  }
}

[[noreturn]] void bad_dtype(DType dtype) {
  throw std::invalid_argument(std::string("rotate_filter_bank: dtype ") + dtype_name(dtype) +
                              " is not supported (float32 or float64)");
}

}  // namespace

void rotate_filter_bank_forward(const void* coeffs, const void* basis, void* W, int64_t c_out, int64_t c_in,
                                int64_t n_in, int64_t n, int64_t nb, int64_t kk, DType dtype) {
  check_dims(c_out, c_in, n_in, n, nb, kk);
  switch (dtype) {
    case DType::Float32:
      return forward_impl(static_cast<const float*>(coeffs), static_cast<const float*>(basis),
                          static_cast<float*>(W), c_out, c_in, n_in, n, nb, kk);
    case DType::Float64:
      return forward_impl(static_cast<const double*>(coeffs), static_cast<const double*>(basis),
                          static_cast<double*>(W), c_out, c_in, n_in, n, nb, kk);
    default: bad_dtype(dtype);
  }
}

void rotate_filter_bank_backward(const void* grad_W, const void* basis, void* grad, int64_t c_out, int64_t c_in,
                                 int64_t n_in, int64_t n, int64_t nb, int64_t kk, DType dtype) {
  check_dims(c_out, c_in, n_in, n, nb, kk);
  if (nb == 0 || c_out * c_in * n_in == 0) return;
  switch (dtype) {
    case DType::Float32:
      return backward_impl(static_cast<const float*>(grad_W), static_cast<const float*>(basis),
                           static_cast<float*>(grad), c_out, c_in, n_in, n, nb, kk);
    case DType::Float64:
      return backward_impl(static_cast<const double*>(grad_W), static_cast<const double*>(basis),
                           static_cast<double*>(grad), c_out, c_in, n_in, n, nb, kk);
    default: bad_dtype(dtype);
  }
}

}  // namespace pykernels::cpu
