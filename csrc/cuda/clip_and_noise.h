#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace pykernels::cuda {

// Blocks of the sum-of-squares pass: the caller allocates that many doubles of scratch.
int64_t clip_and_noise_partials();

// All pointers are device pointers; ptrs is an int64 pointer table (kernels._multi_tensor): row 0 the
// inputs (and for apply, row 1 the outputs), n tensors with numels[t] elements, total = Σ numels.
// Everything launches on `stream` without synchronizing; a failed launch throws std::runtime_error.

// out[0] = Σ x² over all tensors: per-block fp64 partials, then one block sums them in a fixed order
// (deterministic).
void clip_and_noise_sumsq(const int64_t* ptrs, const int64_t* numels, int64_t n, int64_t total, DType dtype,
                          double* scratch, double* out, void* stream);

// y = x·scale + noise_std·z, scale = min(1, max_norm / norm[0]) computed in the kernel from the norm
// in device memory (1 when it is 0); z from csrc/common/philox.h at each element's global index.
void clip_and_noise_apply(const int64_t* ptrs, const int64_t* numels, int64_t n, int64_t total, DType dtype,
                          const double* norm, double max_norm, double noise_std, uint64_t seed,
                          uint64_t offset, void* stream);

// out[j] = Σ_s x[s, j]·min(1, max_norm / norms[s]) + noise_std·z_j for contiguous (rows, cols) x.
void clip_and_noise_sum_apply(const void* x, void* out, int64_t rows, int64_t cols, DType dtype,
                              const double* norms, double max_norm, double noise_std, uint64_t seed,
                              uint64_t offset, void* stream);

}  // namespace pykernels::cuda
