#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace pykernels::cpu {

// Multiresolution hash encoding (kernels.hash_grid_encode; the math is in kernels/reference/).
// x: (n, d) contiguous, float32 for float32/float16 tables, float64 for float64 tables.
// table: (levels, T, f) contiguous of `dtype`; out: (n, levels·f) of `dtype`.
// resolutions[l] >= 1 per level; d in 1..4, f in {1, 2, 4, 8}.
void hash_grid_encode_forward(const void* x, const void* table, void* out, int64_t n, int d,
                              int64_t levels, int64_t T, int f, const int64_t* resolutions, DType dtype);

// grad_out: (n, levels·f) of `dtype`. grad_table: (levels, T, f) zero-filled, in x's dtype (fp32 for
// fp16 tables). grad_x: (n, d) in x's dtype or null (not wanted). The table gradient runs one level
// per thread over the points in order: race-free and deterministic for any thread count.
void hash_grid_encode_backward(const void* grad_out, const void* x, const void* table, void* grad_table,
                               void* grad_x, int64_t n, int d, int64_t levels, int64_t T, int f,
                               const int64_t* resolutions, DType dtype);

}  // namespace pykernels::cpu
