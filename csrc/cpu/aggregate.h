#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace pykernels::cpu {

// The server's weighted reduction over S clients, each a contiguous buffer of `numel` elements of
// `dtype`, read through the pointer list `clients` (no stacked copy). `weights`: S doubles, already
// normalized by the caller.
//
// aggregate_mean:  out[i] = sum_s w_s * x_s[i]     (numel elements, `dtype`)
//   fp32 accumulation (fp64 for float64); 16-bit inputs rounded once on output. The elements are
//   processed in blocks that stay in L2 while the clients go by, four per pass; OpenMP over blocks.
//   Each element's sum runs over s in order, so the result does not depend on the thread count.
//
// aggregate_mean_of_blocks:  out[b] = sum_s w_s * mean_{i in block b} x_s[i]
//   `blocks`: num_blocks sizes (>= 1) of consecutive blocks summing to numel. fp64 accumulation;
//   out is float32 (float64 for float64 inputs). Per chunk (inside one block) and client, a fp64
//   sum; per-chunk partials are added per block in chunk order: deterministic for any thread count.
void aggregate_mean(const void* const* clients, const double* weights, int64_t num_clients, int64_t numel,
                    void* out, DType dtype);

void aggregate_mean_of_blocks(const void* const* clients, const double* weights, int64_t num_clients,
                              const int64_t* blocks, int64_t num_blocks, void* out, DType dtype);

}  // namespace pykernels::cpu
