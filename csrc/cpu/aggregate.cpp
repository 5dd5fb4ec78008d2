// kernels._C aggregate: the server's weighted reduction over S clients (see aggregate.h).
//
// mean: OpenMP (static) over blocks of kBlock elements, so each thread owns one contiguous range.
// Per block, the accumulator (256 KiB in fp32) stays in L2 while the clients go by four at a time:
// acc = (((acc + w0 x0) + w1 x1) + w2 x2) + w3 x3 — each client is read as one long contiguous run,
// the accumulator is read/written once per four clients, and every element still sums the clients
// in order s = 0, 1, ..., S-1 (bitwise the same result as one client at a time, for any thread
// count). __restrict pointers let -O3 vectorize the loops with no alias checks. fp32/fp64 outputs
// accumulate in place in `out`; 16-bit outputs use a per-thread fp32 block, rounded once at the end.
// Measured (11M fp32 elements, 2 cores, shared so noisy; medians, see kernels/ops/aggregate.py):
// the previous kernel (8192-element chunks, one client per pass, no __restrict) took 48 ms at S = 10
// and 380 ms at S = 100 in a standalone C++ timing; this one 9-11 ms and 91-95 ms (~48 GB/s read,
// about this machine's memory bandwidth). Block size (S = 100): 16384 -> 225 ms, 65536 -> 95 ms,
// 131072 -> 91 ms but slower at S = 10; clients per pass (S = 10, 65536): 1 -> 19.7, 2 -> 14.4,
// 4 -> 11.3 ms. Software prefetch (512 or 2048 elements ahead) gave nothing measurable.
//
// mean_of_blocks: chunks never straddle two blocks; per chunk, sum_s w_s * (fp64 sum of x_s over the
// chunk) goes to a partial; each block adds its chunks' partials in order and divides by its size.
#include "cpu/aggregate.h"

#include "common/cpu_num.h"

#include <omp.h>

#include <algorithm>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>
#include <vector>

namespace pykernels::cpu {
namespace {

// mean_of_blocks: elements per chunk (per-chunk fp64 partial sums).
constexpr int64_t kChunk = 8192;
// mean: elements per block; the accumulator (256 KiB fp32, 512 KiB fp64) stays in the 1 MiB L2 per
// core while each client is streamed over the block as one 256 KiB run. See the measurements above.
constexpr int64_t kBlock = 65536;

template <typename T, int K, bool First>
void pass(typename Num<T>::Acc* __restrict acc, const T* const* xs, const typename Num<T>::Acc* ws,
          int64_t start, int64_t n) {
  using Acc = typename Num<T>::Acc;
  const T* __restrict x0 = xs[0] + start;
  const T* __restrict x1 = xs[K > 1 ? 1 : 0] + start;
  const T* __restrict x2 = xs[K > 2 ? 2 : 0] + start;
  const T* __restrict x3 = xs[K > 3 ? 3 : 0] + start;
  const Acc w0 = ws[0], w1 = ws[K > 1 ? 1 : 0], w2 = ws[K > 2 ? 2 : 0], w3 = ws[K > 3 ? 3 : 0];
  for (int64_t i = 0; i < n; ++i) {
    Acc v = w0 * Num<T>::load(x0[i]);
    if constexpr (!First) v = acc[i] + v;
    if constexpr (K > 1) v += w1 * Num<T>::load(x1[i]);
    if constexpr (K > 2) v += w2 * Num<T>::load(x2[i]);
    if constexpr (K > 3) v += w3 * Num<T>::load(x3[i]);
    acc[i] = v;
  }
}

template <typename T, bool First>
void pass_k(int k, typename Num<T>::Acc* acc, const T* const* xs, const typename Num<T>::Acc* ws,
            int64_t start, int64_t n) {
  switch (k) {
    case 1: return pass<T, 1, First>(acc, xs, ws, start, n);
    case 2: return pass<T, 2, First>(acc, xs, ws, start, n);
    case 3: return pass<T, 3, First>(acc, xs, ws, start, n);
    default: return pass<T, 4, First>(acc, xs, ws, start, n);
  }
}

template <typename T>
void mean_impl(const void* const* clients, const double* weights, int64_t num_clients, int64_t numel,
               void* out_ptr) {
  using Acc = typename Num<T>::Acc;
  T* out = static_cast<T*>(out_ptr);
  std::vector<Acc> w(static_cast<size_t>(num_clients));
  for (int64_t s = 0; s < num_clients; ++s) w[s] = static_cast<Acc>(weights[s]);
  const T* const* xs = reinterpret_cast<const T* const*>(clients);
  const int64_t blocks = (numel + kBlock - 1) / kBlock;

#pragma omp parallel if (blocks > 1)
  {
    std::vector<Acc> local(std::is_same_v<T, Acc> ? 0 : static_cast<size_t>(std::min(kBlock, numel)));
#pragma omp for schedule(static)
    for (int64_t b = 0; b < blocks; ++b) {
      const int64_t start = b * kBlock;
      const int64_t n = std::min(kBlock, numel - start);
      Acc* acc;
      if constexpr (std::is_same_v<T, Acc>) {
        acc = out + start;
      } else {
        acc = local.data();
      }
      int k = static_cast<int>(std::min<int64_t>(4, num_clients));
      pass_k<T, true>(k, acc, xs, w.data(), start, n);
      for (int64_t s = k; s < num_clients; s += k) {
        k = static_cast<int>(std::min<int64_t>(4, num_clients - s));
        pass_k<T, false>(k, acc, xs + s, w.data() + s, start, n);
      }
      if constexpr (!std::is_same_v<T, Acc>) {
        for (int64_t i = 0; i < n; ++i) out[start + i] = Num<T>::store(acc[i]);
      }
    }
  }
}

template <typename T>
double chunk_sum(const T* x, int64_t n) {
  double sum = 0.0;
#pragma omp simd reduction(+ : sum)
  for (int64_t i = 0; i < n; ++i) sum += static_cast<double>(Num<T>::load(x[i]));
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
