#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace pykernels::cpu {

// Client-level DP on one update made of `n` contiguous tensors, treated as one vector (concatenated
// in order). Element i of that vector gets the noise z_i of stream (seed, offset) — csrc/common/philox.h.
//
// Pass 1: the sum of squares, from per-tile fp64 partials combined in a fixed order (deterministic
// for any thread count).
double clip_and_noise_sumsq(const void* const* ptrs, const int64_t* numels, int64_t n, DType dtype);

// Pass 2: out = u·scale + noise_std·z with scale = min(1, max_norm / norm) (1 when norm == 0),
// computed in float32 (float64 for float64 tensors; 16-bit rounded once). out may equal in.
void clip_and_noise_apply(const void* const* in, void* const* out, const int64_t* numels, int64_t n,
                          DType dtype, double norm, double max_norm, double noise_std, uint64_t seed,
                          uint64_t offset);

// Batched form on contiguous (S, N) rows: norms_sq[s] = ‖row s‖² (fp64 partials, fixed order).
void clip_and_noise_rows_sumsq(const void* x, int64_t rows, int64_t cols, DType dtype, double* norms_sq);

// out (N,) = Σ_s row_s·min(1, max_norm / norms[s]) + noise_std·z (z of stream (seed, offset),
// element j of the sum taking z_j). Row products in the compute dtype, summed in fp64.
void clip_and_noise_sum_apply(const void* x, void* out, int64_t rows, int64_t cols, DType dtype,
                              const double* norms, double max_norm, double noise_std, uint64_t seed,
                              uint64_t offset);

// z_start .. z_{start+n-1} of stream (seed, offset) as float32 (tests and the known-answer check).
void normals(float* out, uint64_t start, int64_t n, uint64_t seed, uint64_t offset);

// The raw Philox4x32-10 block function (Random123 known-answer tests).
void philox4x32_10(const uint32_t counter[4], const uint32_t key[2], uint32_t out[4]);

}  // namespace pykernels::cpu
