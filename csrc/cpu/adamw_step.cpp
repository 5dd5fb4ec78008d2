// CPU multi-tensor AdamW step (see adamw_step.h for the contract).
//
// The tensors are cut into chunks of kChunk elements (a chunk never straddles two tensors) and one
// OpenMP loop takes the chunks of the whole list, so a model's hundreds of small tensors and its few
// large ones load-balance in a single parallel region. Each chunk runs a branch-free loop that gcc
// vectorizes; the float32 / float64 / bfloat16 loops are compiled for AVX-512, AVX2 and baseline x86
// (target_clones) and picked at run time. 16-bit parameters are widened to float32, updated against
// float32 state, and rounded once (round to nearest even).
#include "cpu/adamw_step.h"

#include "common/cpu_num.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "common/dtype.h"

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define ADAMW_CLONES __attribute__((target_clones("avx512f", "avx2", "default")))
#else
#define ADAMW_CLONES
#endif

namespace pykernels::cpu {
namespace {

constexpr int64_t kChunk = 16384;

template <typename S>
struct Consts {
  S decay, w, one_minus_w, beta2, one_minus_beta2, neg_step_size, bc2_sqrt, eps, neg_lr_alpha, gsign;
  bool lerp_small;
  explicit Consts(const AdamWScalars& s)
      : decay(static_cast<S>(1.0 - s.lr * s.weight_decay)),
        w(static_cast<S>(1.0 - s.beta1)),
        one_minus_w(S(1) - w),  // torch's lerp forms 1 - weight in the compute type
        beta2(static_cast<S>(s.beta2)),
        one_minus_beta2(static_cast<S>(1.0 - s.beta2)),
        neg_step_size(static_cast<S>(-(s.lr / s.bc1))),
        bc2_sqrt(static_cast<S>(std::sqrt(s.bc2))),
        eps(static_cast<S>(s.eps)),
        neg_lr_alpha(static_cast<S>(-(s.lr * s.alpha))),
        gsign(s.maximize ? S(-1) : S(1)),
        lerp_small(std::fabs(1.0 - s.beta1) < 0.5) {}
};

// One chunk, all pointers already offset to its first element.
template <typename T, typename S, bool AMS, bool CORR>
__attribute__((always_inline)) inline void chunk_body(T* __restrict p, const T* __restrict g,
                                                      S* __restrict m, S* __restrict v,
                                                      S* __restrict vmax, const S* __restrict c,
                                                      int64_t n, const Consts<S>& k) {
  const S decay = k.decay, w = k.w, omw = k.one_minus_w, beta2 = k.beta2, omb2 = k.one_minus_beta2;
  const S neg_step = k.neg_step_size, bc2_sqrt = k.bc2_sqrt, eps = k.eps, nla = k.neg_lr_alpha;
  const S gsign = k.gsign;
  const bool small = k.lerp_small;
  for (int64_t i = 0; i < n; ++i) {
    const S gi = static_cast<S>(Num<T>::load(g[i])) * gsign;
    S pi = static_cast<S>(Num<T>::load(p[i])) * decay;
    const S mi0 = m[i];
    const S diff = gi - mi0;
    const S mi = small ? mi0 + w * diff : gi - diff * omw;
    S vi = v[i] * beta2;
    vi = vi + omb2 * gi * gi;
    m[i] = mi;
    v[i] = vi;
    S second = vi;
    if constexpr (AMS) {
      second = std::max(vmax[i], vi);
      vmax[i] = second;
    }
    const S denom = std::sqrt(second) / bc2_sqrt + eps;
    pi = pi + neg_step * mi / denom;
    if constexpr (CORR) pi = pi + nla * c[i];
    p[i] = Num<T>::store(pi);
  }
}

template <typename T, typename S>
__attribute__((always_inline)) inline void chunk_dispatch(T* p, const T* g, S* m,
                                                          S* v, S* vmax, const S* c, int64_t n,
                                                          const Consts<S>& k) {
  if (vmax) {
    if (c) chunk_body<T, S, true, true>(p, g, m, v, vmax, c, n, k);
    else chunk_body<T, S, true, false>(p, g, m, v, vmax, c, n, k);
  } else {
    if (c) chunk_body<T, S, false, true>(p, g, m, v, vmax, c, n, k);
    else chunk_body<T, S, false, false>(p, g, m, v, vmax, c, n, k);
  }
}

ADAMW_CLONES void chunk_f32(float* p, const float* g, float* m, float* v, float* vmax, const float* c,
                            int64_t n, const Consts<float>& k) {
  chunk_dispatch<float, float>(p, g, m, v, vmax, c, n, k);
}

ADAMW_CLONES void chunk_f64(double* p, const double* g, double* m, double* v, double* vmax, const double* c,
                            int64_t n, const Consts<double>& k) {
  chunk_dispatch<double, double>(p, g, m, v, vmax, c, n, k);
}

ADAMW_CLONES void chunk_bf16(BFloat16* p, const BFloat16* g, float* m, float* v, float* vmax, const float* c,
                             int64_t n, const Consts<float>& k) {
  chunk_dispatch<BFloat16, float>(p, g, m, v, vmax, c, n, k);
}

// fp16 conversions branch per element (subnormals), so this loop stays scalar: no clones.
void chunk_f16(Half* p, const Half* g, float* m, float* v, float* vmax, const float* c, int64_t n,
               const Consts<float>& k) {
  chunk_dispatch<Half, float>(p, g, m, v, vmax, c, n, k);
}

template <typename P, typename S, typename Fn>
void run(int64_t n_tensors, const std::uintptr_t* params, const std::uintptr_t* grads,
         const std::uintptr_t* exp_avgs, const std::uintptr_t* exp_avg_sqs,
         const std::uintptr_t* max_exp_avg_sqs, const std::uintptr_t* corrections, const int64_t* numels,
         const AdamWScalars& s, Fn chunk_fn) {
  const Consts<S> k(s);
  // (tensor, first element) of every chunk; the work of one call is small next to the step itself.
  std::vector<std::pair<int64_t, int64_t>> chunks;
  int64_t total = 0;
  for (int64_t t = 0; t < n_tensors; ++t) {
    for (int64_t start = 0; start < numels[t]; start += kChunk) chunks.emplace_back(t, start);
    total += numels[t];
  }
  const int64_t n_chunks = static_cast<int64_t>(chunks.size());
#pragma omp parallel for schedule(static) if (total > 4 * kChunk)
  for (int64_t ci = 0; ci < n_chunks; ++ci) {
    const int64_t t = chunks[ci].first, start = chunks[ci].second;
    const int64_t len = std::min(kChunk, numels[t] - start);
    P* p = reinterpret_cast<P*>(params[t]) + start;
    const P* g = reinterpret_cast<const P*>(grads[t]) + start;
    S* m = reinterpret_cast<S*>(exp_avgs[t]) + start;
    S* v = reinterpret_cast<S*>(exp_avg_sqs[t]) + start;
    S* vmax = max_exp_avg_sqs ? reinterpret_cast<S*>(max_exp_avg_sqs[t]) + start : nullptr;
    const S* c = corrections ? reinterpret_cast<const S*>(corrections[t]) + start : nullptr;
    chunk_fn(p, g, m, v, vmax, c, len, k);
  }
}

}  // namespace

void adamw_step(int64_t n, const std::uintptr_t* params, const std::uintptr_t* grads,
                const std::uintptr_t* exp_avgs, const std::uintptr_t* exp_avg_sqs,
                const std::uintptr_t* max_exp_avg_sqs, const std::uintptr_t* corrections,
                const int64_t* numels, DType param_dtype, const AdamWScalars& s) {
  if (n < 0) throw std::invalid_argument("adamw_step: n must be >= 0, got " + std::to_string(n));
  if (n == 0) return;
  if (!params || !grads || !exp_avgs || !exp_avg_sqs || !numels) {
    throw std::invalid_argument("adamw_step: params, grads, exp_avgs, exp_avg_sqs and numels are required");
  }
  switch (param_dtype) {
    case DType::Float32:
      return run<float, float>(n, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, corrections, numels,
                               s, chunk_f32);
    case DType::Float64:
      return run<double, double>(n, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, corrections,
                                 numels, s, chunk_f64);
    case DType::BFloat16:
      return run<BFloat16, float>(n, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, corrections,
                                  numels, s, chunk_bf16);
    case DType::Float16:
      return run<Half, float>(n, params, grads, exp_avgs, exp_avg_sqs, max_exp_avg_sqs, corrections,
                              numels, s, chunk_f16);
  }
  throw std::invalid_argument("adamw_step: unknown dtype");
}

const char* adamw_step_isa() {
#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return "avx512f";
  if (__builtin_cpu_supports("avx2")) return "avx2";
#endif
  return "default";
}

}  // namespace pykernels::cpu
