#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace pykernels::cpu {

// Newton–Schulz orthogonalization of `batch` row-major matrices of shape (m, n) with m <= n
// (the Python layer transposes tall inputs). `coeffs` holds 3 * steps doubles: (a, b, c) per step.
//   X = G / (||G||_F + eps);  repeat: A = X X^T;  B = b A + c A A;  X = a X + B X
// float32 and float64 compute in their own precision; float16 / bfloat16 are read into fp32 state
// and rounded once on output. `out` may not alias `x`.
void newton_schulz(const void* x, void* out, int64_t batch, int64_t m, int64_t n, DType dtype,
                   const double* coeffs, int64_t steps, double eps);

// The instruction set newton_schulz dispatched to ("avx512", "avx2" or "generic"), chosen once per
// process from the CPU; PYKERNELS_NS_ISA=generic|avx2 lowers it (to test every path).
const char* newton_schulz_isa();

}  // namespace pykernels::cpu
