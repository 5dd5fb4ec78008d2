#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace pykernels::cpu {

// Filter-bank expansion of a C_N group convolution (kernels.rotate_filter_bank; the math is in
// kernels/reference/rotate_filter_bank.py). All arrays contiguous, float32 or float64 (`dtype`):
// coeffs (c_out, c_in, n_in, nb), basis (n, nb, kk), W (c_out·n, c_in·n_in, kk), n_in ∈ {1, n}:
//   W[o·n + r, i·n_in + s, :] = Σ_b coeffs[o, i, (s − r) mod n_in, b] · basis[r, b, :]
void rotate_filter_bank_forward(const void* coeffs, const void* basis, void* W, int64_t c_out, int64_t c_in,
                                int64_t n_in, int64_t n, int64_t nb, int64_t kk, DType dtype);

// The transposed contraction: grad (c_out, c_in, n_in, nb) from grad_W (c_out·n, c_in·n_in, kk):
//   grad[o, i, t, b] = Σ_r Σ_xy grad_W[o·n + r, i·n_in + (t + r) mod n_in, xy] · basis[r, b, xy]
// Each output entry is written by one thread (no atomics): deterministic for any thread count.
void rotate_filter_bank_backward(const void* grad_W, const void* basis, void* grad, int64_t c_out, int64_t c_in,
                                 int64_t n_in, int64_t n, int64_t nb, int64_t kk, DType dtype);

}  // namespace pykernels::cpu
