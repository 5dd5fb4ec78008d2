// aggregate on CUDA (kernels._cuda): the server's weighted reduction over S clients read through a
// device table of client pointers (no stacked copy). Same math as csrc/cpu/aggregate.h and
// kernels/reference/aggregate.py.
//
// agg_mean_kernel: grid-stride over groups of kThreads * kItems elements; each thread keeps kItems
// accumulators (independent loads in flight) and loops over the clients in order, reading the
// pointer and weight of client s once per group (broadcast loads, L1/L2-resident).
// agg_chunk_kernel / agg_block_kernel: the two stages of mean_of_blocks (see aggregate.h).
#include "cuda/aggregate.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>

#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "common/cuda_check.cuh"
#include "common/cuda_num.cuh"

namespace pykernels::cuda {
namespace {

constexpr int kThreads = 256;
constexpr int kItems = 4;
constexpr int kChunk = 4096;  // elements per chunk of mean_of_blocks (the Python chunk table uses it)
constexpr int kMaxBlocks = 65535 * 16;

template <typename T>
__global__ void agg_mean_kernel(const int64_t* __restrict__ table, const typename Num<T>::Acc* __restrict__ w,
                                int64_t num_clients, int64_t numel, T* __restrict__ out) {
  using Acc = typename Num<T>::Acc;
  const int64_t group = static_cast<int64_t>(kThreads) * kItems;
  for (int64_t base = static_cast<int64_t>(blockIdx.x) * group; base < numel;
       base += static_cast<int64_t>(gridDim.x) * group) {
    Acc acc[kItems];
#pragma unroll
    for (int k = 0; k < kItems; ++k) acc[k] = Acc(0);
    for (int64_t s = 0; s < num_clients; ++s) {
      const T* x = reinterpret_cast<const T*>(table[s]);
      const Acc ws = w[s];
#pragma unroll
      for (int k = 0; k < kItems; ++k) {
        const int64_t i = base + k * kThreads + threadIdx.x;
        if (i < numel) acc[k] += ws * Num<T>::to(x[i]);
      }
    }
#pragma unroll
    for (int k = 0; k < kItems; ++k) {
      const int64_t i = base + k * kThreads + threadIdx.x;
      if (i < numel) out[i] = Num<T>::from(acc[k]);
    }
  }
}

// Fixed-order tree reduction over the block's threads (kThreads, a power of two).
template <typename Acc>
__device__ Acc block_sum(Acc v, Acc* shared) {
  shared[threadIdx.x] = v;
  __syncthreads();
  for (int stride = kThreads / 2; stride > 0; stride >>= 1) {
    if (threadIdx.x < stride) shared[threadIdx.x] += shared[threadIdx.x + stride];
    __syncthreads();
  }
  return shared[0];
}

template <typename T>
__global__ void agg_chunk_kernel(const int64_t* __restrict__ table, const typename Num<T>::Acc* __restrict__ w,
                                 int64_t num_clients, const int64_t* __restrict__ chunks, int64_t num_chunks,
                                 const int64_t* __restrict__ block_offset, const int64_t* __restrict__ block_size,
                                 double* __restrict__ partial) {
  using Acc = typename Num<T>::Acc;
  __shared__ Acc shared[kThreads];
  const int64_t c = blockIdx.x;
  const int64_t b = chunks[c];
  const int64_t start = chunks[num_chunks + c];
  const int64_t first = block_offset[b] + start;
  const int64_t remaining = block_size[b] - start;
  const int64_t n = remaining < kChunk ? remaining : kChunk;
  Acc acc = Acc(0);
  for (int64_t s = 0; s < num_clients; ++s) {
    const T* x = reinterpret_cast<const T*>(table[s]) + first;
    const Acc ws = w[s];
    Acc sum = Acc(0);
    for (int64_t i = threadIdx.x; i < n; i += kThreads) sum += Num<T>::to(x[i]);
    acc += ws * sum;
  }
  const Acc total = block_sum(acc, shared);
  if (threadIdx.x == 0) partial[c] = static_cast<double>(total);
}

template <typename Out>
__global__ void agg_block_kernel(const double* __restrict__ partial, const int64_t* __restrict__ first_chunk,
                                 const int64_t* __restrict__ block_size, Out* __restrict__ out) {
  __shared__ double shared[kThreads];
  const int64_t b = blockIdx.x;
  double sum = 0.0;
  for (int64_t c = first_chunk[b] + threadIdx.x; c < first_chunk[b + 1]; c += kThreads) sum += partial[c];
  const double total = block_sum(sum, shared);
  if (threadIdx.x == 0) out[b] = static_cast<Out>(total / static_cast<double>(block_size[b]));
}

template <typename T>
void launch_mean(const int64_t* table, const void* w, int64_t num_clients, int64_t numel, void* out,
                 cudaStream_t stream) {
  using Acc = typename Num<T>::Acc;
  const int64_t group = static_cast<int64_t>(kThreads) * kItems;
  const int64_t groups = (numel + group - 1) / group;
  const unsigned int grid = static_cast<unsigned int>(groups < kMaxBlocks ? groups : kMaxBlocks);
  agg_mean_kernel<T><<<grid, kThreads, 0, stream>>>(table, static_cast<const Acc*>(w), num_clients, numel,
                                                    static_cast<T*>(out));
  check_launch("aggregate", "agg_mean_kernel");
}

template <typename T>
void launch_blocks(const int64_t* table, const void* w, int64_t num_clients, const int64_t* chunks,
                   int64_t num_chunks, const int64_t* block_offset, const int64_t* block_size,
                   const int64_t* first_chunk, int64_t num_blocks, double* partial, void* out, cudaStream_t stream) {
  using Acc = typename Num<T>::Acc;
  if (num_chunks > 2147483647LL || num_blocks > 2147483647LL) {
    throw std::invalid_argument("aggregate: too many chunks or blocks for one launch");
  }
  agg_chunk_kernel<T><<<static_cast<unsigned int>(num_chunks), kThreads, 0, stream>>>(
      table, static_cast<const Acc*>(w), num_clients, chunks, num_chunks, block_offset, block_size, partial);
  check_launch("aggregate", "agg_chunk_kernel");
  using Out = typename std::conditional<std::is_same<T, double>::value, double, float>::type;
  agg_block_kernel<Out><<<static_cast<unsigned int>(num_blocks), kThreads, 0, stream>>>(
      partial, first_chunk, block_size, static_cast<Out*>(out));
  check_launch("aggregate", "agg_block_kernel");
}

}  // namespace

int64_t aggregate_blocks_chunk() { return kChunk; }

void aggregate_mean(const int64_t* client_table, const void* weights, int64_t num_clients, int64_t numel,
                    void* out, DType dtype, void* stream) {
  if (num_clients < 1) throw std::invalid_argument("aggregate: num_clients must be >= 1");
  if (numel < 0) throw std::invalid_argument("aggregate: numel must be >= 0");
  if (numel == 0) return;
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  switch (dtype) {
    case DType::Float32: return launch_mean<float>(client_table, weights, num_clients, numel, out, s);
    case DType::Float64: return launch_mean<double>(client_table, weights, num_clients, numel, out, s);
    case DType::Float16: return launch_mean<__half>(client_table, weights, num_clients, numel, out, s);
    case DType::BFloat16: return launch_mean<__nv_bfloat16>(client_table, weights, num_clients, numel, out, s);
  }
  throw std::invalid_argument("aggregate: unknown dtype");
}

void aggregate_mean_of_blocks(const int64_t* client_table, const void* weights, int64_t num_clients,
                              const int64_t* chunk_table, int64_t num_chunks, const int64_t* block_offset,
                              const int64_t* block_size, const int64_t* first_chunk, int64_t num_blocks,
                              double* partial, void* out, DType dtype, void* stream) {
  if (num_clients < 1) throw std::invalid_argument("aggregate: num_clients must be >= 1");
  if (num_blocks < 1 || num_chunks < num_blocks) {
    throw std::invalid_argument("aggregate: need num_blocks >= 1 and num_chunks >= num_blocks");
  }
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
#define PYKERNELS_AGG_BLOCKS(T)                                                                             \
  launch_blocks<T>(client_table, weights, num_clients, chunk_table, num_chunks, block_offset, block_size, \
                   first_chunk, num_blocks, partial, out, s)
  switch (dtype) {
    case DType::Float32: PYKERNELS_AGG_BLOCKS(float); return;
    case DType::Float64: PYKERNELS_AGG_BLOCKS(double); return;
    case DType::Float16: PYKERNELS_AGG_BLOCKS(__half); return;
    case DType::BFloat16: PYKERNELS_AGG_BLOCKS(__nv_bfloat16); return;
  }
#undef PYKERNELS_AGG_BLOCKS
  throw std::invalid_argument("aggregate: unknown dtype");
}

}  // namespace pykernels::cuda
