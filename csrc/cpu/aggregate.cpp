// kernels._C aggregate: the server's weighted reduction over S clients (see aggregate.h).
//
// mean: for each chunk of kChunk elements (its accumulator stays in cache), loop over
// the clients: acc = w_0 x_0; acc += w_s x_s. The loops are plain, so -O3 vectorizes them; every
// client buffer is streamed once. fp32 outputs accumulate in place in `out`.
//
// mean_of_blocks: chunks never straddle two blocks; per chunk, sum_s w_s * (fp64 sum of x_s over the
// chunk) goes to a partial; each block adds its chunks' partials in order and divides by its size.
#include "cpu/aggregate.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace pykernels::cpu {
namespace {

// Elements per chunk: the accumulator (32 KiB in fp32) stays in L1/L2 while the S client streams go
// by. Measured (S = 10, 11M fp32, 2 cores): 2048 -> 26 ms, 8192 -> 21 ms, 32768 -> 20.7 ms.
constexpr int64_t kChunk = 8192;

struct Half {
  uint16_t bits;
};
struct BFloat16 {
  uint16_t bits;
};

template <typename T>
struct Storage;

template <>
struct Storage<float> {
  using Acc = float;
  static float load(float v) { return v; }
  static float store(float v) { return v; }
};

template <>
struct Storage<double> {
  using Acc = double;
  static double load(double v) { return v; }
  static double store(double v) { return v; }
};

template <>
struct Storage<Half> {
  using Acc = float;
  static float load(Half v) { return fp16_to_float(v.bits); }
  static Half store(float v) { return Half{float_to_fp16(v)}; }
};

template <>
struct Storage<BFloat16> {
  using Acc = float;
  static float load(BFloat16 v) { return bf16_to_float(v.bits); }
  static BFloat16 store(float v) { return BFloat16{float_to_bf16(v)}; }
};

template <typename T>
void mean_impl(const void* const* clients, const double* weights, int64_t num_clients, int64_t numel,
               void* out_ptr) {
  using Acc = typename Storage<T>::Acc;
  T* out = static_cast<T*>(out_ptr);
  std::vector<Acc> w(static_cast<size_t>(num_clients));
  for (int64_t s = 0; s < num_clients; ++s) w[s] = static_cast<Acc>(weights[s]);
  const int64_t chunks = (numel + kChunk - 1) / kChunk;

#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    const int64_t start = c * kChunk;
    const int64_t n = std::min(kChunk, numel - start);
    Acc local[std::is_same_v<T, Acc> ? 1 : kChunk];
    Acc* acc;
    if constexpr (std::is_same_v<T, Acc>) {
      acc = out + start;
    } else {
      acc = local;
    }
    {
      const T* x = static_cast<const T*>(clients[0]) + start;
      const Acc w0 = w[0];
      for (int64_t i = 0; i < n; ++i) acc[i] = w0 * Storage<T>::load(x[i]);
    }
    for (int64_t s = 1; s < num_clients; ++s) {
      const T* x = static_cast<const T*>(clients[s]) + start;
      const Acc ws = w[s];
      for (int64_t i = 0; i < n; ++i) acc[i] += ws * Storage<T>::load(x[i]);
    }
    if constexpr (!std::is_same_v<T, Acc>) {
      for (int64_t i = 0; i < n; ++i) out[start + i] = Storage<T>::store(acc[i]);
    }
  }
}

template <typename T>
double chunk_sum(const T* x, int64_t n) {
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(Storage<T>::load(x[i]));
  return sum;
}

template <typename T>
void mean_of_blocks_impl(const void* const* clients, const double* weights, int64_t num_clients,
                         const int64_t* blocks, int64_t num_blocks, void* out_ptr) {
  // Chunk c covers [chunk_start[c], chunk_start[c] + chunk_len[c]) of the flat buffer, inside one block;
  // block b owns chunks [first_chunk[b], first_chunk[b + 1]).
  std::vector<int64_t> chunk_start, chunk_len, first_chunk(static_cast<size_t>(num_blocks) + 1);
  int64_t offset = 0;
  for (int64_t b = 0; b < num_blocks; ++b) {
    first_chunk[b] = static_cast<int64_t>(chunk_start.size());
    for (int64_t s = 0; s < blocks[b]; s += kChunk) {
      chunk_start.push_back(offset + s);
      chunk_len.push_back(std::min(kChunk, blocks[b] - s));
    }
    offset += blocks[b];
  }
  first_chunk[num_blocks] = static_cast<int64_t>(chunk_start.size());
  const int64_t chunks = first_chunk[num_blocks];
  std::vector<double> partial(static_cast<size_t>(chunks));

#pragma omp parallel for schedule(static) if (chunks > 1)
  for (int64_t c = 0; c < chunks; ++c) {
    double acc = 0.0;
    for (int64_t s = 0; s < num_clients; ++s) {
      acc += weights[s] * chunk_sum(static_cast<const T*>(clients[s]) + chunk_start[c], chunk_len[c]);
    }
    partial[c] = acc;
  }

  for (int64_t b = 0; b < num_blocks; ++b) {
    double sum = 0.0;
    for (int64_t c = first_chunk[b]; c < first_chunk[b + 1]; ++c) sum += partial[c];
    const double mean = sum / static_cast<double>(blocks[b]);
    if constexpr (std::is_same_v<T, double>) {
      static_cast<double*>(out_ptr)[b] = mean;
    } else {
      static_cast<float*>(out_ptr)[b] = static_cast<float>(mean);
    }
  }
}

void check_common(const void* const* clients, const double* weights, int64_t num_clients) {
  if (num_clients < 1) {
    throw std::invalid_argument("aggregate: num_clients must be >= 1, got " + std::to_string(num_clients));
  }
  if (clients == nullptr || weights == nullptr) throw std::invalid_argument("aggregate: null clients or weights");
  for (int64_t s = 0; s < num_clients; ++s) {
    if (clients[s] == nullptr) throw std::invalid_argument("aggregate: client " + std::to_string(s) + " is null");
  }
}

}  // namespace

void aggregate_mean(const void* const* clients, const double* weights, int64_t num_clients, int64_t numel,
                    void* out, DType dtype) {
  check_common(clients, weights, num_clients);
  if (numel < 0) throw std::invalid_argument("aggregate: numel must be >= 0, got " + std::to_string(numel));
  if (numel == 0) return;
  switch (dtype) {
    case DType::Float32: return mean_impl<float>(clients, weights, num_clients, numel, out);
    case DType::Float64: return mean_impl<double>(clients, weights, num_clients, numel, out);
    case DType::Float16: return mean_impl<Half>(clients, weights, num_clients, numel, out);
    case DType::BFloat16: return mean_impl<BFloat16>(clients, weights, num_clients, numel, out);
  }
  throw std::invalid_argument("aggregate: unknown dtype");
}

void aggregate_mean_of_blocks(const void* const* clients, const double* weights, int64_t num_clients,
                              const int64_t* blocks, int64_t num_blocks, void* out, DType dtype) {
  check_common(clients, weights, num_clients);
  if (num_blocks < 1) throw std::invalid_argument("aggregate: num_blocks must be >= 1");
  for (int64_t b = 0; b < num_blocks; ++b) {
    if (blocks[b] < 1) {
      throw std::invalid_argument("aggregate: block " + std::to_string(b) + " has size " +
                                  std::to_string(blocks[b]) + ", expected >= 1");
    }
  }
  switch (dtype) {
    case DType::Float32: return mean_of_blocks_impl<float>(clients, weights, num_clients, blocks, num_blocks, out);
    case DType::Float64: return mean_of_blocks_impl<double>(clients, weights, num_clients, blocks, num_blocks, out);
    case DType::Float16: return mean_of_blocks_impl<Half>(clients, weights, num_clients, blocks, num_blocks, out);
    case DType::BFloat16:
      return mean_of_blocks_impl<BFloat16>(clients, weights, num_clients, blocks, num_blocks, out);
  }
  throw std::invalid_argument("aggregate: unknown dtype");
}

}  // namespace pykernels::cpu
