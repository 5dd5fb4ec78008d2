#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace pykernels::cuda {

constexpr int kHashGridMaxLevels = 64;

// Same contract as csrc/cpu/hash_grid_encode.h; launched on `stream`, never synchronizes.
// One thread per (point, level). The table gradient uses atomicAdd into grad_table (fp32 for fp16
// tables — fp32 accumulate, cast by the caller — fp64 for fp64 tables): not deterministic.
void hash_grid_encode_forward(const void* x, const void* table, void* out, int64_t n, int d,
                              int64_t levels, int64_t T, int f, const int64_t* resolutions, DType dtype,
                              void* stream);

void hash_grid_encode_backward(const void* grad_out, const void* x, const void* table, void* grad_table,
                               void* grad_x, int64_t n, int d, int64_t levels, int64_t T, int f,
                               const int64_t* resolutions, DType dtype, void* stream);

}  // namespace pykernels::cuda
