#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace pykernels::cuda {

// Device pointers throughout; launches on `stream` and returns without synchronizing; throws
// std::runtime_error if a launch fails. Same math as csrc/cpu/aggregate.h.
//
// client_table: num_clients int64 device pointers to contiguous client buffers of `numel` elements;
// weights: num_clients normalized weights on the device, float (double for float64).
//
// aggregate_mean: out[i] = sum_s w_s x_s[i]; fp32 accumulation (fp64 for float64), 16-bit rounded once.
void aggregate_mean(const int64_t* client_table, const void* weights, int64_t num_clients, int64_t numel,
                    void* out, DType dtype, void* stream);

// aggregate_mean_of_blocks: out[b] = sum_s w_s mean_{i in block b} x_s[i].
// chunk_table: int64 (2, num_chunks) from kernels/_multi_tensor.chunk_table(blocks, chunk): row 0 the
// block of each chunk, row 1 its first element inside the block. block_offset / block_size: int64
// (num_blocks,) first element and size of each block in the flat buffer; first_chunk: int64
// (num_blocks + 1,) index of each block's first chunk. partial: num_chunks doubles of scratch.
// Stage 1, one CUDA block per chunk: sum over the chunk's elements and the clients of w_s x_s in fp32
// (fp64 for float64), block-reduced in a fixed tree, stored as a double partial. Stage 2, one CUDA block
// per output block: fp64 sum of its partials in a fixed order, divided by the size. Deterministic.
// out: float (double for float64), num_blocks elements.
int64_t aggregate_blocks_chunk();
void aggregate_mean_of_blocks(const int64_t* client_table, const void* weights, int64_t num_clients,
                              const int64_t* chunk_table, int64_t num_chunks, const int64_t* block_offset,
                              const int64_t* block_size, const int64_t* first_chunk, int64_t num_blocks,
                              double* partial, void* out, DType dtype, void* stream);

}  // namespace pykernels::cuda
