// The one counter-based Gaussian stream of pykernels (DP noise), shared by the CPU and CUDA kernels.
// The pure-torch specification is kernels/reference/clip_and_noise.py; the Triton kernel re-implements
// it in kernels/triton/clip_and_noise.py. All four agree to float rounding (|Δz| <= 1e-5).
//
// Stream. For a 64-bit seed and a 64-bit offset, element i (i = 0, 1, ... over the whole update) takes
//   key     = (seed & 0xffffffff, seed >> 32)
//   counter = (q & 0xffffffff, q >> 32, offset & 0xffffffff, offset >> 32),   q = i / 4
//   (x0, x1, x2, x3) = Philox4x32-10(counter, key)            (Salmon et al., SC'11; Random123)
// and Box–Muller on the pairs (x0, x1) and (x2, x3), in float32:
//   u = ((x_a >> 8) + 1) * 2^-24  in (0, 1],   θ = 2π (x_b >> 8) * 2^-24,   r = sqrt(-2 ln u)
//   z_a = r cos θ,  z_b = r sin θ;   element i takes z_{i mod 4}.
// Different offsets use disjoint counters, so they are independent streams. u >= 2^-24 bounds
// |z| <= sqrt(48 ln 2) ≈ 5.77. Not hardened against floating-point side channels (as most DP libraries
// without a secure mode).
//
// ln, sin and cos are plain float polynomials (no libm calls), so the CPU hot loop vectorizes and the
// CPU and CUDA kernels compute the same values: |ln error| <= ~1 ulp relative, sin/cos <= ~2e-7.
#pragma once

#include <cstdint>
#include <cstring>

#if defined(__CUDACC__)
#define PK_PHILOX_FN __host__ __device__ __forceinline__
#else
#define PK_PHILOX_FN inline __attribute__((always_inline))
#endif

namespace pykernels::philox {

constexpr uint32_t kM0 = 0xD2511F53u;
constexpr uint32_t kM1 = 0xCD9E8D57u;
constexpr uint32_t kW0 = 0x9E3779B9u;  // golden ratio
constexpr uint32_t kW1 = 0xBB67AE85u;  // sqrt(3) - 1

PK_PHILOX_FN void mulhilo(uint32_t a, uint32_t b, uint32_t& hi, uint32_t& lo) {
  const uint64_t p = static_cast<uint64_t>(a) * static_cast<uint64_t>(b);
  hi = static_cast<uint32_t>(p >> 32);
  lo = static_cast<uint32_t>(p);
}

// Philox4x32 with 10 rounds: c (the counter) becomes the 4 random words, in place.
PK_PHILOX_FN void philox4x32_10(uint32_t& c0, uint32_t& c1, uint32_t& c2, uint32_t& c3, uint32_t k0,
                                uint32_t k1) {
#if defined(__CUDACC__)
#pragma unroll
#elif defined(__GNUC__)
#pragma GCC unroll 10  // a fully unrolled body lets the caller's loop over quads vectorize
#endif
  for (int round = 0; round < 10; ++round) {
    uint32_t hi0, lo0, hi1, lo1;
    mulhilo(kM0, c0, hi0, lo0);
    mulhilo(kM1, c2, hi1, lo1);
    const uint32_t n0 = hi1 ^ c1 ^ k0;
    const uint32_t n2 = hi0 ^ c3 ^ k1;
    c0 = n0;
    c1 = lo1;
    c2 = n2;
    c3 = lo0;
    k0 += kW0;
    k1 += kW1;
  }
}

PK_PHILOX_FN float bits_to_float(uint32_t b) {
#if defined(__CUDA_ARCH__)
  return __uint_as_float(b);
#else
  float f;
  std::memcpy(&f, &b, sizeof f);
  return f;
#endif
}

PK_PHILOX_FN uint32_t float_to_bits(float f) {
#if defined(__CUDA_ARCH__)
  return __float_as_uint(f);
#else
  uint32_t b;
  std::memcpy(&b, &f, sizeof b);
  return b;
#endif
}

// ln(u) for a normal positive float u: u = m 2^e with m in [sqrt(1/2), sqrt(2)), ln m = 2 atanh(s),
// s = (m - 1) / (m + 1), |s| <= 0.1716; the odd series to s^11 leaves < 1e-10. m - 1 is exact, so the
// error stays relative even for u next to 1 (where r = sqrt(-2 ln u) is small).
PK_PHILOX_FN float log_poly(float u) {
  const uint32_t bits = float_to_bits(u);
  // Shift the mantissa range from [1, 2) to [sqrt(1/2), sqrt(2)): add 0x3f800000 - 0x3f3504f3.
  const uint32_t shifted = bits + (0x3f800000u - 0x3f3504f3u);
  const int e = static_cast<int>(shifted >> 23) - 127;
  const float m = bits_to_float((shifted & 0x007fffffu) + 0x3f3504f3u);
  const float f = m - 1.0f;
  const float s = f / (m + 1.0f);
  const float s2 = s * s;
  const float p =
      2.0f + s2 * (0.6666666667f + s2 * (0.4f + s2 * (0.2857142857f + s2 * (0.2222222222f + s2 * 0.1818181818f))));
  return static_cast<float>(e) * 0.693147180559945f + s * p;
}

// cos(2π t) and sin(2π t) for t = k 2^-24, k in [0, 2^24): exact quadrant reduction in integers,
// then Taylor polynomials on |a| <= π/4 (truncation < 2e-9).
PK_PHILOX_FN void sincos_2pi(uint32_t k, float& c, float& s) {
  const uint32_t n = (k + (1u << 21)) >> 22;  // nearest quarter turn, 0..4
  const int32_t rem = static_cast<int32_t>(k) - static_cast<int32_t>(n << 22);  // [-2^21, 2^21)
  const float a = static_cast<float>(rem) * (6.283185307179586f / 16777216.0f);
  const float a2 = a * a;
  const float sa =
      a * (1.0f + a2 * (-1.6666666667e-1f + a2 * (8.3333333333e-3f + a2 * (-1.9841269841e-4f +
                                                                           a2 * 2.7557319224e-6f))));
  const float ca =
      1.0f + a2 * (-0.5f + a2 * (4.1666666667e-2f + a2 * (-1.3888888889e-3f +
                                                         a2 * (2.4801587302e-5f + a2 * -2.7557319224e-7f))));
  // quadrant 0: (ca, sa); 1: (-sa, ca); 2: (-ca, -sa); 3: (sa, -ca). Bit selects, not branches, so
  // the CPU loop stays vectorizable.
  const uint32_t quadrant = n & 3u;
  const uint32_t swap = 0u - (quadrant & 1u);
  const uint32_t cb = float_to_bits(ca), sb = float_to_bits(sa);
  const uint32_t cc = (cb & ~swap) | (sb & swap);
  const uint32_t ss = (sb & ~swap) | (cb & swap);
  c = bits_to_float(cc ^ (((quadrant + 1u) & 2u) << 30));
  s = bits_to_float(ss ^ ((quadrant & 2u) << 30));
}

PK_PHILOX_FN float sqrt_f(float x) {
#if defined(__CUDA_ARCH__)
  return sqrtf(x);
#else
  return __builtin_sqrtf(x);  // one instruction with -fno-math-errno
#endif
}

// Box–Muller on one pair of Philox words: (z_a, z_b).
PK_PHILOX_FN void box_muller(uint32_t xa, uint32_t xb, float& za, float& zb) {
  const float u = static_cast<float>(static_cast<int32_t>((xa >> 8) + 1u)) * (1.0f / 16777216.0f);  // (0, 1]
  const float r = sqrt_f(-2.0f * log_poly(u));
  float c, s;
  sincos_2pi(xb >> 8, c, s);
  za = r * c;
  zb = r * s;
}

// The 4 normals of quad q (elements 4q .. 4q+3) of stream (seed, offset).
PK_PHILOX_FN void normals4(uint64_t q, uint64_t seed, uint64_t offset, float z[4]) {
  uint32_t c0 = static_cast<uint32_t>(q), c1 = static_cast<uint32_t>(q >> 32);
  uint32_t c2 = static_cast<uint32_t>(offset), c3 = static_cast<uint32_t>(offset >> 32);
  philox4x32_10(c0, c1, c2, c3, static_cast<uint32_t>(seed), static_cast<uint32_t>(seed >> 32));
  box_muller(c0, c1, z[0], z[1]);
  box_muller(c2, c3, z[2], z[3]);
}

}  // namespace pykernels::philox

#undef PK_PHILOX_FN
