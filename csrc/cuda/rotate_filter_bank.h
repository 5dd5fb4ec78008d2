#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace pykernels::cuda {

// Same contract as csrc/cpu/rotate_filter_bank.h (float32 or float64); launched on `stream`, never
// synchronizes. Forward: one thread per element of W; backward: one thread per element of grad (no
// atomics, deterministic).
void rotate_filter_bank_forward(const void* coeffs, const void* basis, void* W, int64_t c_out, int64_t c_in,
                                int64_t n_in, int64_t n, int64_t nb, int64_t kk, DType dtype, void* stream);

void rotate_filter_bank_backward(const void* grad_W, const void* basis, void* grad, int64_t c_out, int64_t c_in,
                                 int64_t n_in, int64_t n, int64_t nb, int64_t kk, DType dtype, void* stream);

}  // namespace pykernels::cuda
