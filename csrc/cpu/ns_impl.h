// Blocked matmul tasks of the CPU Newton–Schulz kernel, written once and compiled once per
// instruction set. Deliberately no include guard: csrc/cpu/newton_schulz.cpp includes this file
// several times, each time inside a `#pragma GCC target` (clang: `#pragma clang attribute`) region
// and with
//   NS_ISA       2 = AVX-512 (zmm), 1 = AVX2 + FMA (ymm), 0 = portable (GCC/clang 16-byte vectors)
//   NS_ISA_NAME  the namespace that receives this copy
// so every function below, templates included, is compiled for that instruction set. The standard
// headers and ns_common.h must already be included (outside the target region).

namespace pykernels::cpu::NS_ISA_NAME {

#ifndef NS_INLINE
#define NS_INLINE inline __attribute__((always_inline))
#endif

template <typename T>
struct Ops;

#if NS_ISA == 2
template <>
struct Ops<float> {
  using V = __m512;
  static constexpr int W = 16, MR = 8, NV = 2;  // 8 x 32 micro-tile, 16 zmm accumulators
  static NS_INLINE V load(const float* p) { return _mm512_loadu_ps(p); }
  static NS_INLINE void store(float* p, V v) { _mm512_storeu_ps(p, v); }
  static NS_INLINE V set1(float x) { return _mm512_set1_ps(x); }
  static NS_INLINE V zero() { return _mm512_setzero_ps(); }
  static NS_INLINE V fma(V a, V b, V c) { return _mm512_fmadd_ps(a, b, c); }
  static NS_INLINE V add(V a, V b) { return _mm512_add_ps(a, b); }
  static NS_INLINE V mul(V a, V b) { return _mm512_mul_ps(a, b); }
  // dst[q * ldd + r] = src[r * ld + q] for a 16 x 16 block.
  static NS_INLINE void transpose(const float* src, int64_t ld, float* dst, int64_t ldd) {
    __m512 r[16], t[16];
    for (int i = 0; i < 16; ++i) r[i] = _mm512_loadu_ps(src + i * ld);
    for (int i = 0; i < 16; i += 2) {
      t[i] = _mm512_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm512_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) {  // r[i + q]: columns q, q+4, q+8, q+12 of rows i..i+3
      const __m512d a = _mm512_castps_pd(t[i]), b = _mm512_castps_pd(t[i + 1]);
      const __m512d c = _mm512_castps_pd(t[i + 2]), d = _mm512_castps_pd(t[i + 3]);
      r[i] = _mm512_castpd_ps(_mm512_unpacklo_pd(a, c));
      r[i + 1] = _mm512_castpd_ps(_mm512_unpackhi_pd(a, c));
      r[i + 2] = _mm512_castpd_ps(_mm512_unpacklo_pd(b, d));
      r[i + 3] = _mm512_castpd_ps(_mm512_unpackhi_pd(b, d));
    }
    for (int i = 0; i < 16; i += 8) {  // t[i + q]: columns (q, q+8) and t[i + 4 + q]: (q+4, q+12)
      for (int q = 0; q < 4; ++q) {
        t[i + q] = _mm512_shuffle_f32x4(r[i + q], r[i + 4 + q], 0x88);
        t[i + 4 + q] = _mm512_shuffle_f32x4(r[i + q], r[i + 4 + q], 0xdd);
      }
    }
    for (int q = 0; q < 4; ++q) {
      _mm512_storeu_ps(dst + q * ldd, _mm512_shuffle_f32x4(t[q], t[8 + q], 0x88));
      _mm512_storeu_ps(dst + (q + 8) * ldd, _mm512_shuffle_f32x4(t[q], t[8 + q], 0xdd));
      _mm512_storeu_ps(dst + (q + 4) * ldd, _mm512_shuffle_f32x4(t[4 + q], t[12 + q], 0x88));
      _mm512_storeu_ps(dst + (q + 12) * ldd, _mm512_shuffle_f32x4(t[4 + q], t[12 + q], 0xdd));
    }
  }
};
template <>
struct Ops<double> {
  using V = __m512d;
  static constexpr int W = 8, MR = 8, NV = 2;  // 8 x 16 micro-tile
  static NS_INLINE V load(const double* p) { return _mm512_loadu_pd(p); }
  static NS_INLINE void store(double* p, V v) { _mm512_storeu_pd(p, v); }
  static NS_INLINE V set1(double x) { return _mm512_set1_pd(x); }
  static NS_INLINE V zero() { return _mm512_setzero_pd(); }
  static NS_INLINE V fma(V a, V b, V c) { return _mm512_fmadd_pd(a, b, c); }
  static NS_INLINE V add(V a, V b) { return _mm512_add_pd(a, b); }
  static NS_INLINE V mul(V a, V b) { return _mm512_mul_pd(a, b); }
  // dst[q * ldd + r] = src[r * ld + q] for an 8 x 8 block.
  static NS_INLINE void transpose(const double* src, int64_t ld, double* dst, int64_t ldd) {
    __m512d r[8], t[8];
    for (int i = 0; i < 8; ++i) r[i] = _mm512_loadu_pd(src + i * ld);
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm512_unpacklo_pd(r[i], r[i + 1]);
      t[i + 1] = _mm512_unpackhi_pd(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {  // r[i + q]: columns (q, q+4) of rows i..i+3, q < 4
      r[i] = _mm512_shuffle_f64x2(t[i], t[i + 2], 0x88);
      r[i + 1] = _mm512_shuffle_f64x2(t[i + 1], t[i + 3], 0x88);
      r[i + 2] = _mm512_shuffle_f64x2(t[i], t[i + 2], 0xdd);
      r[i + 3] = _mm512_shuffle_f64x2(t[i + 1], t[i + 3], 0xdd);
    }
    for (int q = 0; q < 4; ++q) {
      _mm512_storeu_pd(dst + q * ldd, _mm512_shuffle_f64x2(r[q], r[4 + q], 0x88));
      _mm512_storeu_pd(dst + (q + 4) * ldd, _mm512_shuffle_f64x2(r[q], r[4 + q], 0xdd));
    }
  }
};
#elif NS_ISA == 1
template <>
struct Ops<float> {
  using V = __m256;
  static constexpr int W = 8, MR = 4, NV = 3;  // 4 x 24 micro-tile, 12 ymm accumulators
  static NS_INLINE V load(const float* p) { return _mm256_loadu_ps(p); }
  static NS_INLINE void store(float* p, V v) { _mm256_storeu_ps(p, v); }
  static NS_INLINE V set1(float x) { return _mm256_set1_ps(x); }
  static NS_INLINE V zero() { return _mm256_setzero_ps(); }
  static NS_INLINE V fma(V a, V b, V c) { return _mm256_fmadd_ps(a, b, c); }
  static NS_INLINE V add(V a, V b) { return _mm256_add_ps(a, b); }
  static NS_INLINE V mul(V a, V b) { return _mm256_mul_ps(a, b); }
  // dst[q * ldd + r] = src[r * ld + q] for an 8 x 8 block.
  static NS_INLINE void transpose(const float* src, int64_t ld, float* dst, int64_t ldd) {
    __m256 r[8], t[8];
    for (int i = 0; i < 8; ++i) r[i] = _mm256_loadu_ps(src + i * ld);
    for (int i = 0; i < 8; i += 2) {
      t[i] = _mm256_unpacklo_ps(r[i], r[i + 1]);
      t[i + 1] = _mm256_unpackhi_ps(r[i], r[i + 1]);
    }
    for (int i = 0; i < 8; i += 4) {  // r[i + q]: columns (q, q+4) of rows i..i+3
      const __m256d a = _mm256_castps_pd(t[i]), b = _mm256_castps_pd(t[i + 1]);
      const __m256d c = _mm256_castps_pd(t[i + 2]), d = _mm256_castps_pd(t[i + 3]);
      r[i] = _mm256_castpd_ps(_mm256_unpacklo_pd(a, c));
      r[i + 1] = _mm256_castpd_ps(_mm256_unpackhi_pd(a, c));
      r[i + 2] = _mm256_castpd_ps(_mm256_unpacklo_pd(b, d));
      r[i + 3] = _mm256_castpd_ps(_mm256_unpackhi_pd(b, d));
    }
    for (int q = 0; q < 4; ++q) {
      _mm256_storeu_ps(dst + q * ldd, _mm256_permute2f128_ps(r[q], r[4 + q], 0x20));
      _mm256_storeu_ps(dst + (q + 4) * ldd, _mm256_permute2f128_ps(r[q], r[4 + q], 0x31));
    }
  }
};
template <>
struct Ops<double> {
  using V = __m256d;
  static constexpr int W = 4, MR = 4, NV = 3;  // 4 x 12 micro-tile
  static NS_INLINE V load(const double* p) { return _mm256_loadu_pd(p); }
  static NS_INLINE void store(double* p, V v) { _mm256_storeu_pd(p, v); }
  static NS_INLINE V set1(double x) { return _mm256_set1_pd(x); }
  static NS_INLINE V zero() { return _mm256_setzero_pd(); }
  static NS_INLINE V fma(V a, V b, V c) { return _mm256_fmadd_pd(a, b, c); }
  static NS_INLINE V add(V a, V b) { return _mm256_add_pd(a, b); }
  static NS_INLINE V mul(V a, V b) { return _mm256_mul_pd(a, b); }
  // dst[q * ldd + r] = src[r * ld + q] for a 4 x 4 block.
  static NS_INLINE void transpose(const double* src, int64_t ld, double* dst, int64_t ldd) {
    __m256d r[4], t[4];
    for (int i = 0; i < 4; ++i) r[i] = _mm256_loadu_pd(src + i * ld);
    t[0] = _mm256_unpacklo_pd(r[0], r[1]);
    t[1] = _mm256_unpackhi_pd(r[0], r[1]);
    t[2] = _mm256_unpacklo_pd(r[2], r[3]);
    t[3] = _mm256_unpackhi_pd(r[2], r[3]);
    _mm256_storeu_pd(dst, _mm256_permute2f128_pd(t[0], t[2], 0x20));
    _mm256_storeu_pd(dst + ldd, _mm256_permute2f128_pd(t[1], t[3], 0x20));
    _mm256_storeu_pd(dst + 2 * ldd, _mm256_permute2f128_pd(t[0], t[2], 0x31));
    _mm256_storeu_pd(dst + 3 * ldd, _mm256_permute2f128_pd(t[1], t[3], 0x31));
  }
};
#else
// Portable: GCC/clang vector extensions, 16 bytes (SSE2 on any x86-64, NEON on aarch64).
template <typename T>
struct OpsGeneric {
  typedef T V __attribute__((vector_size(16)));
  static constexpr int W = 16 / static_cast<int>(sizeof(T)), MR = 4, NV = 2;
  static NS_INLINE V load(const T* p) {
    V v;
    std::memcpy(&v, p, sizeof v);
    return v;
  }
  static NS_INLINE void store(T* p, V v) { std::memcpy(p, &v, sizeof v); }
  static NS_INLINE V set1(T x) {
    V v;
    for (int i = 0; i < W; ++i) v[i] = x;
    return v;
  }
  static NS_INLINE V zero() { return set1(T(0)); }
  static NS_INLINE V fma(V a, V b, V c) { return a * b + c; }
  static NS_INLINE V add(V a, V b) { return a + b; }
  static NS_INLINE V mul(V a, V b) { return a * b; }
  static NS_INLINE void transpose(const T* src, int64_t ld, T* dst, int64_t ldd) {
    for (int q = 0; q < W; ++q) {
      for (int r = 0; r < W; ++r) dst[q * ldd + r] = src[r * ld + q];
    }
  }
};
template <>
struct Ops<float> : OpsGeneric<float> {};
template <>
struct Ops<double> : OpsGeneric<double> {};
#endif

// One MR x NR tile: acc = sum_k a[r][k] * pb[k][c] over kc steps, where row r of the left operand is
// a + r * lda (rows >= mr alias row mr - 1 and are discarded) and pb is a packed panel (kc x NR).
// Epilogue on the valid mr x nr part of c:
//   partial sums:  c = (load_c ? c : 0) + acc                                     (fin == false)
//   final:         c = alpha * ((load_c ? c : 0) + acc) + beta * d  (d may be null) (fin == true)
template <typename T>
NS_INLINE void ukernel(int64_t kc, const T* a, int64_t lda, int mr, const T* __restrict pb, T* c,
                       int64_t ldc, int nr, bool load_c, bool fin, T alpha, T beta, const T* d,
                       int64_t ldd) {
  using O = Ops<T>;
  using V = typename O::V;
  constexpr int MR = O::MR, NV = O::NV, W = O::W, NR = NV * W;
  const T* ar[MR];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) ar[r] = a + static_cast<int64_t>(r < mr ? r : mr - 1) * lda;
  V acc[MR][NV];
#pragma GCC unroll 16
  for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) acc[r][v] = O::zero();
  }
#pragma GCC unroll 2
  for (int64_t k = 0; k < kc; ++k) {
    V bv[NV];
#pragma GCC unroll 4
    for (int v = 0; v < NV; ++v) bv[v] = O::load(pb + v * W);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
      const V av = O::set1(ar[r][k]);
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) acc[r][v] = O::fma(av, bv[v], acc[r][v]);
    }
    pb += NR;
  }
  if (mr == MR && nr == NR) {
    const V va = O::set1(alpha), vb = O::set1(beta);
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) {
        T* cp = c + r * ldc + v * W;
        V x = acc[r][v];
        if (load_c) x = O::add(x, O::load(cp));
        if (fin) {
          x = O::mul(x, va);
          if (d) x = O::fma(vb, O::load(d + r * ldd + v * W), x);
        }
        O::store(cp, x);
      }
    }
  } else {
    alignas(64) T tmp[MR * NR];
#pragma GCC unroll 16
    for (int r = 0; r < MR; ++r) {
#pragma GCC unroll 4
      for (int v = 0; v < NV; ++v) O::store(tmp + r * NR + v * W, acc[r][v]);
    }
    for (int r = 0; r < mr; ++r) {
      for (int j = 0; j < nr; ++j) {
        T x = tmp[r * NR + j];
        if (load_c) x += c[r * ldc + j];
        if (fin) {
          x *= alpha;
          if (d) x += beta * d[r * ldd + j];
        }
        c[r * ldc + j] = x;
      }
    }
  }
}

// Packs rows [j0, j1) x columns [k0, k0 + kc) of S as the right operand of S S^T: panels of NR rows,
// panel p at dst + p * kc * NR holding element (k, c) = S[j0 + p*NR + c][k0 + k] at k * NR + c,
// zero-padded to whole panels. With sym_src (S = S^T) that is S[k0 + k][j0 + p*NR + c]: row copies.
template <typename T>
NS_INLINE void pack_right(const T* S, int64_t ldS, int64_t j0, int64_t j1, int64_t k0, int64_t kc,
                          bool sym_src, T* dst) {
  constexpr int NR = Ops<T>::NV * Ops<T>::W;
  for (int64_t j = j0; j < j1; j += NR, dst += kc * NR) {
    const int nr = static_cast<int>(std::min<int64_t>(NR, j1 - j));
    if (sym_src) {
      for (int64_t k = 0; k < kc; ++k) {
        const T* s = S + (k0 + k) * ldS + j;
        T* o = dst + k * NR;
        if (nr == NR) {
          std::memcpy(o, s, sizeof(T) * NR);
        } else {
          for (int c = 0; c < nr; ++c) o[c] = s[c];
          for (int c = nr; c < NR; ++c) o[c] = T(0);
        }
      }
    } else {
      // W x W register transposes (rows j + c .. of S become columns of the panel); ragged edges
      // (fewer than W rows left in the panel, or depth not a multiple of W) element by element.
      constexpr int W = Ops<T>::W;
      const int cfull = nr / W * W;
      const int64_t kfull = kc / W * W;
      for (int64_t k = 0; k < kfull; k += W) {
        for (int c = 0; c < cfull; c += W) {
          Ops<T>::transpose(S + (j + c) * ldS + k0 + k, ldS, dst + k * NR + c, NR);
        }
      }
      for (int c = cfull; c < nr; ++c) {
        const T* s = S + (j + c) * ldS + k0;
        for (int64_t k = 0; k < kfull; ++k) dst[k * NR + c] = s[k];
      }
      for (int64_t k = 0; k < kfull; ++k) {
        for (int c = nr; c < NR; ++c) dst[k * NR + c] = T(0);
      }
      for (int64_t k = kfull; k < kc; ++k) {
        T* o = dst + k * NR;
        for (int c = 0; c < nr; ++c) o[c] = S[(j + c) * ldS + k0 + k];
        for (int c = nr; c < NR; ++c) o[c] = T(0);
      }
    }
  }
}

template <typename T>
void sym_task(const ns::SymArgs<T>& p, int64_t t, T* buf) {
  constexpr int MR = Ops<T>::MR, NR = Ops<T>::NV * Ops<T>::W;
  const int64_t pair = t / p.batch, b = t % p.batch;
  const int64_t bi = p.pairs[2 * pair], bj = p.pairs[2 * pair + 1];
  const int64_t i0 = bi * p.bs, i1 = std::min(p.m, i0 + p.bs);
  const int64_t j0 = bj * p.bs, j1 = std::min(p.m, j0 + p.bs);
  const T* S = p.S + b * p.sS;
  T* C = p.C + b * p.sC;
  const T* D = p.D ? p.D + b * p.sD : nullptr;
  const int64_t K = p.K;
  const int64_t nchunks = (K + p.kc - 1) / p.kc;
  const int64_t kstep = (K + nchunks - 1) / nchunks;  // balanced chunks
  for (int64_t k0 = 0; k0 < K; k0 += kstep) {
    const int64_t kc = std::min(kstep, K - k0);
    const bool first = k0 == 0, last = k0 + kc >= K;
    pack_right(S, p.ldS, j0, j1, k0, kc, p.sym_src, buf);
    for (int64_t i = i0; i < i1; i += MR) {
      const int mr = static_cast<int>(std::min<int64_t>(MR, i1 - i));
      const T* a = S + i * p.ldS + k0;
      int64_t jp = 0;
      for (int64_t j = j0; j < j1; j += NR, ++jp) {
        const int nr = static_cast<int>(std::min<int64_t>(NR, j1 - j));
        if (bi == bj && j + nr <= i) continue;  // tile strictly below the diagonal: mirrored below
        ukernel<T>(kc, a, p.ldS, mr, buf + jp * kc * NR, C + i * p.ldC + j, p.ldC, nr, !first, last,
                   p.alpha, p.beta, D ? D + i * p.ldD + j : nullptr, p.ldD);
      }
    }
  }
  // Mirror the strict upper part of this block into the lower triangle. Blocks (bj, bi) with bj > bi
  // belong to no task; on diagonal blocks the computed lower entries are overwritten with their
  // (equal up to rounding) transposes, which makes C exactly symmetric. Whole W x W sub-blocks above
  // the diagonal go through register transposes, the rest element by element.
  constexpr int W = Ops<T>::W;
  for (int64_t ii = i0; ii < i1; ii += W) {
    const int64_t ie = std::min(i1, ii + W);
    for (int64_t jj = std::max(j0, ii); jj < j1; jj += W) {
      const int64_t je = std::min(j1, jj + W);
      if (ie - ii == W && je - jj == W && jj >= ie) {
        Ops<T>::transpose(C + ii * p.ldC + jj, p.ldC, C + jj * p.ldC + ii, p.ldC);
      } else {
        for (int64_t i = ii; i < ie; ++i) {
          for (int64_t j = std::max(jj, i + 1); j < je; ++j) C[j * p.ldC + i] = C[i * p.ldC + j];
        }
      }
    }
  }
}

template <typename T>
void nn_task(const ns::NNArgs<T>& p, int64_t t, T* buf) {
  constexpr int MR = Ops<T>::MR, NR = Ops<T>::NV * Ops<T>::W;
  const int64_t jb = t / p.batch, b = t % p.batch;
  const int64_t j0 = jb * p.nc, j1 = std::min(p.n, j0 + p.nc);
  const int64_t m = p.m;
  const T* B = p.B + b * p.sB;
  T* X = p.X + b * p.sX;
  // Pack X[:, j0:j1] (all m rows) into panels of NR columns: panel q at buf + q * m * NR, (k, c) at
  // k * NR + c. This copy is both the right operand and the source of the beta * X term.
  {
    int64_t q = 0;
    for (int64_t j = j0; j < j1; j += NR, ++q) {
      const int nr = static_cast<int>(std::min<int64_t>(NR, j1 - j));
      T* dst = buf + q * m * NR;
      for (int64_t k = 0; k < m; ++k) {
        const T* s = X + k * p.ldX + j;
        T* o = dst + k * NR;
        if (nr == NR) {
          std::memcpy(o, s, sizeof(T) * NR);
        } else {
          for (int c = 0; c < nr; ++c) o[c] = s[c];
          for (int c = nr; c < NR; ++c) o[c] = T(0);
        }
      }
    }
  }
  const int64_t nchunks = (m + p.kc - 1) / p.kc;
  const int64_t kstep = (m + nchunks - 1) / nchunks;
  for (int64_t k0 = 0; k0 < m; k0 += kstep) {
    const int64_t kc = std::min(kstep, m - k0);
    const bool first = k0 == 0, last = k0 + kc >= m;
    for (int64_t i = 0; i < m; i += MR) {
      const int mr = static_cast<int>(std::min<int64_t>(MR, m - i));
      const T* a = B + i * p.ldB + k0;
      int64_t q = 0;
      for (int64_t j = j0; j < j1; j += NR, ++q) {
        const int nr = static_cast<int>(std::min<int64_t>(NR, j1 - j));
        const T* panel = buf + q * m * NR;
        ukernel<T>(kc, a, p.ldB, mr, panel + k0 * NR, X + i * p.ldX + j, p.ldX, nr, !first, last, T(1),
                   p.beta, panel + i * NR, NR);
      }
    }
  }
}

template <typename T>
inline ns::Kernels<T> kernels() {
  return ns::Kernels<T>{&sym_task<T>, &nn_task<T>, Ops<T>::MR, Ops<T>::NV * Ops<T>::W,
#if NS_ISA == 2
                        "avx512"
#elif NS_ISA == 1
                        "avx2"
#else
                        "generic"
#endif
  };
}

}  // namespace pykernels::cpu::NS_ISA_NAME
