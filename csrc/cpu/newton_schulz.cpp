// CPU Newton–Schulz orthogonalization (see newton_schulz.h for the contract).
//
// Per matrix and step: A = X X^T, B = b A + c A A, X = a X + B X. A and A A are symmetric, so the
// first two products compute only the upper block triangle and mirror it (A A = A A^T is the same
// "S S^T" operation as X X^T); the third is a plain blocked product written in place into the X
// state with the a X term fused into its epilogue. The whole batch runs in one OpenMP region: every
// product is a list of (matrix, block) tasks taken dynamically by the threads, with a barrier between
// products. The X state lives in `out` for float32/float64 (a float buffer for the 16-bit types,
// rounded once at the end); A and B are two (m, m) buffers per matrix allocated once per call.
//
// The micro-kernels (ns_impl.h) are compiled three times: AVX-512, AVX2+FMA, and portable. The
// instruction set is chosen once at run time (__builtin_cpu_supports), so the module needs no
// -march flag. PYKERNELS_NS_ISA=generic|avx2|avx512 caps the choice (for testing every path).
#include "cpu/newton_schulz.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <limits>
#include <memory>
#include <new>
#include <stdexcept>
#include <string>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif

#include "common/dtype.h"
#include "cpu/ns_common.h"

#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
#define NS_X86 1
#include <immintrin.h>
#else
#define NS_X86 0
#endif

// ---- ISA-specific copies of the task functions ----------------------------------------------------
// GCC 12's AVX-512 intrinsic headers trip -Wmaybe-uninitialized (their _mm512_undefined_* helpers).
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#endif
#if NS_X86
#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma"))), \
                             apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx512f,avx512vl,avx512dq,avx512bw,avx2,fma")
#endif
#define NS_ISA 2
#define NS_ISA_NAME ns_avx512
#include "cpu/ns_impl.h"
#undef NS_ISA
#undef NS_ISA_NAME
namespace pykernels::cpu::ns_avx512 {
ns::Kernels<float> kernels_f32() { return kernels<float>(); }
ns::Kernels<double> kernels_f64() { return kernels<double>(); }
}  // namespace pykernels::cpu::ns_avx512
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif

#if defined(__clang__)
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#else
#pragma GCC push_options
#pragma GCC target("avx2,fma")
#endif
#define NS_ISA 1
#define NS_ISA_NAME ns_avx2
#include "cpu/ns_impl.h"
#undef NS_ISA
#undef NS_ISA_NAME
namespace pykernels::cpu::ns_avx2 {
ns::Kernels<float> kernels_f32() { return kernels<float>(); }
ns::Kernels<double> kernels_f64() { return kernels<double>(); }
}  // namespace pykernels::cpu::ns_avx2
#if defined(__clang__)
#pragma clang attribute pop
#else
#pragma GCC pop_options
#endif
#endif  // NS_X86

#define NS_ISA 0
#define NS_ISA_NAME ns_generic
#include "cpu/ns_impl.h"
#undef NS_ISA
#undef NS_ISA_NAME
namespace pykernels::cpu::ns_generic {
ns::Kernels<float> kernels_f32() { return kernels<float>(); }
ns::Kernels<double> kernels_f64() { return kernels<double>(); }
}  // namespace pykernels::cpu::ns_generic
#if defined(__GNUC__) && !defined(__clang__)
#pragma GCC diagnostic pop
#endif

// ---- driver (baseline instruction set) ------------------------------------------------------------
namespace pykernels::cpu {
namespace {

enum class Isa { Generic = 0, Avx2 = 1, Avx512 = 2 };

Isa detect_isa() {
  Isa best = Isa::Generic;
#if NS_X86
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512vl") &&
      __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    best = Isa::Avx512;
  } else if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) {
    best = Isa::Avx2;
  }
#endif
  if (const char* env = std::getenv("PYKERNELS_NS_ISA")) {  // may only lower the choice
    const std::string s(env);
    Isa want = best;
    if (s == "generic") want = Isa::Generic;
    if (s == "avx2") want = Isa::Avx2;
    if (s == "avx512") want = Isa::Avx512;
    if (static_cast<int>(want) < static_cast<int>(best)) best = want;
  }
  return best;
}

Isa isa() {
  static const Isa chosen = detect_isa();
  return chosen;
}

template <typename T>
ns::Kernels<T> select_kernels() {
  switch (isa()) {
#if NS_X86
    case Isa::Avx512: {
      if constexpr (sizeof(T) == 4) return ns_avx512::kernels_f32();
      else return ns_avx512::kernels_f64();
    }
    case Isa::Avx2: {
      if constexpr (sizeof(T) == 4) return ns_avx2::kernels_f32();
      else return ns_avx2::kernels_f64();
    }
#endif
    default: break;
  }
  if constexpr (sizeof(T) == 4) return ns_generic::kernels_f32();
  else return ns_generic::kernels_f64();
}

int max_threads() {
#ifdef _OPENMP
  return omp_get_max_threads();
#else
  return 1;
#endif
}

int thread_id() {
#ifdef _OPENMP
  return omp_get_thread_num();
#else
  return 0;
#endif
}

struct AlignedFree {
  void operator()(void* p) const { ::operator delete[](p, std::align_val_t(64)); }
};

template <typename T>
std::unique_ptr<T[], AlignedFree> alloc(int64_t count) {
  const int64_t bytes = std::max<int64_t>(count, 1) * static_cast<int64_t>(sizeof(T));
  return std::unique_ptr<T[], AlignedFree>(
      static_cast<T*>(::operator new[](static_cast<size_t>(bytes), std::align_val_t(64))));
}

int64_t round_up(int64_t v, int64_t q) { return (v + q - 1) / q * q; }
int64_t gcd64(int64_t a, int64_t b) { return b == 0 ? a : gcd64(b, a % b); }

// Block size for splitting `full` into nearly equal blocks: a multiple of `base`, at most `cap`
// (unless base > cap), as large as possible while the product still yields `want` tasks.
template <typename TasksFn>
int64_t pick_block(int64_t base, int64_t cap, int64_t full, int64_t want, TasksFn tasks) {
  int64_t nblk = std::max<int64_t>(1, (full + cap - 1) / cap);
  int64_t bs = round_up((full + nblk - 1) / nblk, base);
  while (bs > base && tasks(bs) < want) {
    nblk = std::max(nblk + 1, (full + bs - base - 1) / (bs - base));  // next bs <= bs - base
    const int64_t next = round_up((full + nblk - 1) / nblk, base);
    if (next < bs) bs = next;
  }
  return bs;
}

// Reads element i of the input as the compute type.
template <typename T>
inline T load_in(const void* x, DType dt, int64_t i) {
  switch (dt) {
    case DType::Float32: return static_cast<T>(static_cast<const float*>(x)[i]);
    case DType::Float64: return static_cast<T>(static_cast<const double*>(x)[i]);
    case DType::Float16: return static_cast<T>(fp16_to_float(static_cast<const uint16_t*>(x)[i]));
    case DType::BFloat16: return static_cast<T>(bf16_to_float(static_cast<const uint16_t*>(x)[i]));
  }
  return T(0);
}

// Sum of squares of x[begin, end) in double.
template <typename S, typename Conv>
double sumsq(const S* x, int64_t begin, int64_t end, Conv conv) {
  double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
  int64_t i = begin;
  for (; i + 4 <= end; i += 4) {
    const double v0 = conv(x[i]), v1 = conv(x[i + 1]), v2 = conv(x[i + 2]), v3 = conv(x[i + 3]);
    s0 += v0 * v0;
    s1 += v1 * v1;
    s2 += v2 * v2;
    s3 += v3 * v3;
  }
  for (; i < end; ++i) {
    const double v = conv(x[i]);
    s0 += v * v;
  }
  return (s0 + s1) + (s2 + s3);
}

double sumsq_any(const void* x, DType dt, int64_t begin, int64_t end) {
  switch (dt) {
    case DType::Float32:
      return sumsq(static_cast<const float*>(x), begin, end, [](float v) { return double(v); });
    case DType::Float64:
      return sumsq(static_cast<const double*>(x), begin, end, [](double v) { return v; });
    case DType::Float16:
      return sumsq(static_cast<const uint16_t*>(x), begin, end,
                   [](uint16_t v) { return double(fp16_to_float(v)); });
    case DType::BFloat16:
      return sumsq(static_cast<const uint16_t*>(x), begin, end,
                   [](uint16_t v) { return double(bf16_to_float(v)); });
  }
  return 0.0;
}

// T: compute type (float for float32/float16/bfloat16, double for float64).
template <typename T>
void run(const void* x, void* out, int64_t batch, int64_t m, int64_t n, DType dt, const double* coeffs,
         int64_t steps, double eps) {
  const ns::Kernels<T> kern = select_kernels<T>();
  const int nthreads = std::max(1, max_threads());
  const int64_t want = 3 * static_cast<int64_t>(nthreads);
  const int64_t MR = kern.mr, NR = kern.nr;
  const int64_t mn = m * n, mm = m * m;
  const bool wide = dt == DType::Float32 || dt == DType::Float64;

  // X state: `out` itself for float32/float64, else a float buffer rounded into `out` at the end.
  std::unique_ptr<T[], AlignedFree> xbuf;
  T* X = nullptr;
  if (wide) {
    X = static_cast<T*>(out);
  } else {
    xbuf = alloc<T>(batch * mn);
    X = xbuf.get();
  }
  std::unique_ptr<T[], AlignedFree> abuf, bbuf;
  if (steps > 0) {
    abuf = alloc<T>(batch * mm);
    bbuf = alloc<T>(batch * mm);
  }

  // Blocking. Symmetric products: square blocks of bs (a multiple of lcm(MR, NR)), depth chunks of
  // kc; the right operand of one block-chunk (bs x kc) stays in L2, one left row panel (MR x kc) in L1.
  const int64_t base = MR / gcd64(MR, NR) * NR;
  const int64_t kc = sizeof(T) == 4 ? 256 : 128;
  const int64_t bs = pick_block(base, std::max<int64_t>(128, base), m, want, [&](int64_t b) {
    const int64_t nb = (m + b - 1) / b;
    return batch * nb * (nb + 1) / 2;
  });
  const int64_t nb = (m + bs - 1) / bs;
  std::vector<int32_t> pairs;
  pairs.reserve(static_cast<size_t>(nb * (nb + 1)));
  for (int64_t d = nb - 1; d >= 0; --d) {  // off-diagonal blocks (full work) first, diagonal last
    for (int64_t bi = 0; bi + d < nb; ++bi) {
      if (d == 0) continue;
      pairs.push_back(static_cast<int32_t>(bi));
      pairs.push_back(static_cast<int32_t>(bi + d));
    }
  }
  for (int64_t bi = 0; bi < nb; ++bi) {
    pairs.push_back(static_cast<int32_t>(bi));
    pairs.push_back(static_cast<int32_t>(bi));
  }
  const int64_t npairs = nb * (nb + 1) / 2;
  // B X: a task owns nc columns of one matrix over all m rows.
  const int64_t nc = pick_block(NR, sizeof(T) == 4 ? 128 : 64, n, want,
                                [&](int64_t c) { return batch * ((n + c - 1) / c); });
  const int64_t ncb = (n + nc - 1) / nc;
  const int64_t per_thread =
      round_up(std::max(round_up(bs, NR) * kc, round_up(nc, NR) * m), 64 / static_cast<int64_t>(sizeof(T)));
  std::unique_ptr<T[], AlignedFree> ws;
  if (steps > 0) ws = alloc<T>(per_thread * nthreads);

  // Normalization: per (matrix, row chunk) partial sums of squares in double.
  const int64_t rows_per_chunk = std::max<int64_t>(1, (int64_t(1) << 16) / n);
  const int64_t nch = (m + rows_per_chunk - 1) / rows_per_chunk;
  std::vector<double> ss(static_cast<size_t>(batch * nch), 0.0);

#ifdef _OPENMP
#pragma omp parallel num_threads(nthreads)
#endif
  {
    T* buf = ws ? ws.get() + static_cast<int64_t>(thread_id()) * per_thread : nullptr;

#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
    for (int64_t t = 0; t < batch * nch; ++t) {
      const int64_t b = t / nch, c = t % nch;
      const int64_t r0 = c * rows_per_chunk, r1 = std::min(m, r0 + rows_per_chunk);
      ss[static_cast<size_t>(t)] = sumsq_any(x, dt, b * mn + r0 * n, b * mn + r1 * n);
    }

#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
    for (int64_t t = 0; t < batch * nch; ++t) {
      const int64_t b = t / nch, c = t % nch;
      double tot = 0;
      for (int64_t q = 0; q < nch; ++q) tot += ss[static_cast<size_t>(b * nch + q)];
      // float64: norm and division in double. Otherwise as torch's float32 path: the norm rounded to
      // float, eps added in float, the division in float.
      const T den = sizeof(T) == 8 ? static_cast<T>(std::sqrt(tot) + eps)
                                   : static_cast<T>(static_cast<T>(std::sqrt(tot)) + static_cast<T>(eps));
      const int64_t r0 = c * rows_per_chunk, r1 = std::min(m, r0 + rows_per_chunk);
      T* dst = X + b * mn;
      for (int64_t i = r0 * n; i < r1 * n; ++i) dst[i] = load_in<T>(x, dt, b * mn + i) / den;
    }

    for (int64_t s = 0; s < steps; ++s) {
      const T ca = static_cast<T>(coeffs[3 * s]), cb = static_cast<T>(coeffs[3 * s + 1]),
              cc = static_cast<T>(coeffs[3 * s + 2]);
      // A = X X^T
      const ns::SymArgs<T> p1{X,        n,     mn,  abuf.get(), m,         mm, nullptr, 0,
                              0,        T(1),  T(0), batch,     m,         n,  bs,      kc,
                              false,    pairs.data(), npairs};
      // B = c (A A^T) + b A   (A symmetric, so A A = A A^T)
      const ns::SymArgs<T> p2{abuf.get(), m,  mm, bbuf.get(), m,     mm, abuf.get(), m,
                              mm,         cc, cb, batch,      m,     m,  bs,         kc,
                              true,       pairs.data(), npairs};
      // X = B X + a X, in place
      const ns::NNArgs<T> p3{bbuf.get(), m, mm, X, n, mn, ca, batch, m, n, nc, kc};

#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
      for (int64_t t = 0; t < batch * npairs; ++t) kern.sym_task(p1, t, buf);
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
      for (int64_t t = 0; t < batch * npairs; ++t) kern.sym_task(p2, t, buf);
#ifdef _OPENMP
#pragma omp for schedule(dynamic, 1)
#endif
      for (int64_t t = 0; t < batch * ncb; ++t) kern.nn_task(p3, t, buf);
    }

    if (!wide) {
      const int64_t total = batch * mn;
      uint16_t* o = static_cast<uint16_t*>(out);
      const bool bf = dt == DType::BFloat16;
#ifdef _OPENMP
#pragma omp for schedule(static)
#endif
      for (int64_t i = 0; i < total; ++i) {
        o[i] = bf ? float_to_bf16(static_cast<float>(X[i])) : float_to_fp16(static_cast<float>(X[i]));
      }
    }
  }
}

}  // namespace

void newton_schulz(const void* x, void* out, int64_t batch, int64_t m, int64_t n, DType dtype,
                   const double* coeffs, int64_t steps, double eps) {
  const std::string where = "newton_schulz (cpu): ";
  if (batch < 0) throw std::invalid_argument(where + "batch must be >= 0, got " + std::to_string(batch));
  if (m < 1 || n < 1) {
    throw std::invalid_argument(where + "matrix sizes must be >= 1, got m=" + std::to_string(m) +
                                ", n=" + std::to_string(n));
  }
  if (m > n) {
    throw std::invalid_argument(where + "expects m <= n (transpose tall matrices first), got m=" +
                                std::to_string(m) + ", n=" + std::to_string(n));
  }
  if (steps < 0) throw std::invalid_argument(where + "steps must be >= 0, got " + std::to_string(steps));
  if (steps > 0 && coeffs == nullptr) throw std::invalid_argument(where + "coeffs is null");
  if (m > std::numeric_limits<int32_t>::max() || n > std::numeric_limits<int64_t>::max() / m) {
    throw std::invalid_argument(where + "matrix too large: m=" + std::to_string(m) +
                                ", n=" + std::to_string(n));
  }
  if (batch > 0 && m * n > std::numeric_limits<int64_t>::max() / 16 / batch) {
    throw std::invalid_argument(where + "batch too large: " + std::to_string(batch));
  }
  if (batch == 0) return;
  if (x == nullptr || out == nullptr) throw std::invalid_argument(where + "null data pointer");
  if (x == out) throw std::invalid_argument(where + "out must not alias x");
  for (int64_t i = 0; i < 3 * steps; ++i) {
    if (!std::isfinite(coeffs[i])) {
      throw std::invalid_argument(where + "coefficient " + std::to_string(i) + " is not finite");
    }
  }

  switch (dtype) {
    case DType::Float64:
      run<double>(x, out, batch, m, n, dtype, coeffs, steps, eps);
      return;
    case DType::Float32:
    case DType::Float16:
    case DType::BFloat16:
      run<float>(x, out, batch, m, n, dtype, coeffs, steps, eps);
      return;
  }
  throw std::invalid_argument(where + "unsupported dtype code " + std::to_string(static_cast<int>(dtype)));
}

const char* newton_schulz_isa() {
  switch (isa()) {
    case Isa::Avx512: return "avx512";
    case Isa::Avx2: return "avx2";
    default: return "generic";
  }
}

}  // namespace pykernels::cpu
