// Newton–Schulz orthogonalization on CUDA (kernels._cuda). Same math as csrc/cpu/newton_schulz.h and
// kernels/reference/newton_schulz.py, per (m, n) matrix with m <= n:
//
//   X = G / (||G||_F + eps)                      norm in fp32 (fp64 for float64)
//   for (a, b, c) in coeffs:  A = X Xᵀ;  B = b·A + c·(A A);  X = a·X + B X
//
// Kernels, all launched on the caller's stream, batch over a grid dimension:
//   ns_norm_partial   grid (parts, batch): per-block sums of squares -> workspace partials
//   ns_scale          grid (parts, batch): every block reduces its matrix's partials in a fixed order
//                     (deterministic), then writes X = G / (norm + eps) into the first X buffer
//   per step:
//     syrk  A = X Xᵀ            (m x m, K = n)   upper-triangular 64x64 tiles only, tile + mirror
//     syrk  B = b·A + c·A Aᵀ    (m x m, K = m)   A is symmetric so A A = A Aᵀ: same kernel, epilogue
//                                                reads A; B written directly (fused)
//     gemm  X' = a·X + B X      (m x n, K = m)   full grid, fused epilogue
// float32/float64: shared-memory tiled FMA kernels (64x64 tile, K-step 16, 256 threads, 4x4 per
// thread), accumulation in T (no TF32). float16/bfloat16: nvcuda::wmma 16x16x16 tensor-core
// fragments (64x64 tile, K-step 32, 4 warps of 32x32), fp32 accumulation and epilogue, A/B/X stored
// in the input dtype between kernels; edge tiles are zero-padded in shared memory.
//
// Workspace (each region 256-byte aligned):
//   [X   : batch*m*n T] [A : batch*m*m T] [B : batch*m*m T] [partials : batch*parts Acc]
// The X iterate ping-pongs between the workspace X buffer and `out`, starting on the side that makes
// the last step land in `out` (odd steps: start in workspace; even: start in out).
#include "cuda/newton_schulz.h"

#include <cuda_bf16.h>
#include <cuda_fp16.h>
#include <cuda_runtime.h>
#include <mma.h>

#include <climits>
#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "common/cuda_check.cuh"
#include "common/cuda_num.cuh"

namespace pykernels::cuda {
namespace {

namespace wmma = nvcuda::wmma;

constexpr int kTile = 64;          // output tile edge (all GEMM kernels)
constexpr int kMaxGridYZ = 65535;  // batch goes in grid y or z: launched in chunks of this many
constexpr int kNormThreads = 256;
constexpr int kMaxNormParts = 128;  // blocks per matrix for the norm / scale kernels

// FMA kernels (float, double)
constexpr int kFmaK = 16;
constexpr int kFmaThreads = 256;
constexpr int kFmaLd = kTile + 1;  // padded shared-memory row

// WMMA kernels (half, bfloat16)
constexpr int kWK = 32;          // K-step
constexpr int kWThreads = 128;   // 4 warps, 2x2, each 32x32 of the output tile
constexpr int kWLdA = kWK + 8;   // rows x K tiles (ld multiple of 8 elements, rows 16 B aligned)
constexpr int kWLdB = kTile + 8;  // K x cols tile
constexpr int kWLdC = kTile + 4;  // fp32 accumulator staging (ld multiple of 4)

// ---- number traits (Num<T>: common/cuda_num.cuh) ----------------------------------------------

__device__ inline float acc_sqrt(float v) { return sqrtf(v); }
__device__ inline double acc_sqrt(double v) { return sqrt(v); }

template <typename A>
__device__ inline A warp_sum(A v) {
#pragma unroll
  for (int o = 16; o > 0; o >>= 1) v += __shfl_down_sync(0xffffffffu, v, o);
  return v;
}

// Linear index t in [0, tiles*(tiles+1)/2) -> upper-triangular tile (bi, bj), bi <= bj, row-major
// over the upper triangle: row bi holds tiles - bi tiles.
__host__ __device__ inline void ns_upper_tile(int t, int tiles, int* bi, int* bj) {
  int i = 0;
  int len = tiles;
  while (t >= len) {
    t -= len;
    ++i;
    --len;
  }
  *bi = i;
  *bj = i + t;
}

// ---- norm and scaling ---------------------------------------------------------------------------

template <typename T>
__global__ void __launch_bounds__(kNormThreads)
    ns_norm_partial_kernel(const T* __restrict__ x, typename Num<T>::Acc* __restrict__ partial, size_t mn,
                           int parts) {
  using Acc = typename Num<T>::Acc;
  const size_t b = blockIdx.y;
  const T* xb = x + b * mn;
  Acc s = Acc(0);
  for (size_t e = static_cast<size_t>(blockIdx.x) * kNormThreads + threadIdx.x; e < mn;
       e += static_cast<size_t>(parts) * kNormThreads) {
    const Acc v = Num<T>::to(xb[e]);
    s += v * v;
  }
  s = warp_sum(s);
  __shared__ Acc warp_sums[kNormThreads / 32];
  const int lane = threadIdx.x & 31;
  const int warp = threadIdx.x >> 5;
  if (lane == 0) warp_sums[warp] = s;
  __syncthreads();
  if (warp == 0) {
    s = lane < kNormThreads / 32 ? warp_sums[lane] : Acc(0);
    s = warp_sum(s);
    if (lane == 0) partial[b * parts + blockIdx.x] = s;
  }
}

template <typename T>
__global__ void __launch_bounds__(kNormThreads)
    ns_scale_kernel(const T* __restrict__ x, T* __restrict__ y, const typename Num<T>::Acc* __restrict__ partial,
                    size_t mn, int parts, typename Num<T>::Acc eps) {
  using Acc = typename Num<T>::Acc;
  __shared__ Acc denom_s;
  const size_t b = blockIdx.y;
  if (threadIdx.x < 32) {
    Acc s = Acc(0);
    for (int p = threadIdx.x; p < parts; p += 32) s += partial[b * parts + p];
    s = warp_sum(s);
    if (threadIdx.x == 0) denom_s = acc_sqrt(s) + eps;
  }
  __syncthreads();
  const Acc denom = denom_s;
  const T* xb = x + b * mn;
  T* yb = y + b * mn;
  for (size_t e = static_cast<size_t>(blockIdx.x) * kNormThreads + threadIdx.x; e < mn;
       e += static_cast<size_t>(parts) * kNormThreads) {
    yb[e] = Num<T>::from(Num<T>::to(xb[e]) / denom);
  }
}

// ---- float32 / float64: shared-memory FMA kernels -----------------------------------------------

// C = alpha·P Pᵀ + beta·D (D optional, m x m, symmetric), P: (M x K) row-major, C: (M x M).
// One block per upper-triangular 64x64 tile; writes the tile and its mirror. Thread (tx, ty) owns
// rows ty + 16r, cols tx + 16c (r, c < 4) of the tile.
template <typename T>
__global__ void __launch_bounds__(kFmaThreads)
    ns_syrk_fma_kernel(const T* __restrict__ P, const T* __restrict__ D, T* __restrict__ C, int M, int K,
                       int tiles, T alpha, T beta) {
  constexpr size_t kOperandBytes = 2 * kFmaK * kFmaLd * sizeof(T);
  constexpr size_t kOutBytes = kTile * kFmaLd * sizeof(T);
  __shared__ __align__(16) unsigned char smem[kOperandBytes > kOutBytes ? kOperandBytes : kOutBytes];
  T(*As)[kFmaLd] = reinterpret_cast<T(*)[kFmaLd]>(smem);
  T(*Bs)[kFmaLd] = reinterpret_cast<T(*)[kFmaLd]>(smem + kFmaK * kFmaLd * sizeof(T));
  T(*Cs)[kFmaLd] = reinterpret_cast<T(*)[kFmaLd]>(smem);  // reused after the main loop

  int bi, bj;
  ns_upper_tile(static_cast<int>(blockIdx.x), tiles, &bi, &bj);
  const size_t b = blockIdx.y;
  P += b * static_cast<size_t>(M) * K;
  C += b * static_cast<size_t>(M) * M;
  if (D != nullptr) D += b * static_cast<size_t>(M) * M;
  const int i0 = bi * kTile;
  const int j0 = bj * kTile;
  const int tid = threadIdx.x;
  const int tx = tid & 15;
  const int ty = tid >> 4;

  T acc[4][4];
#pragma unroll
  for (int r = 0; r < 4; ++r)
#pragma unroll
    for (int c = 0; c < 4; ++c) acc[r][c] = T(0);

  for (int k0 = 0; k0 < K; k0 += kFmaK) {
#pragma unroll
    for (int l = 0; l < (kTile * kFmaK) / kFmaThreads; ++l) {
      const int e = tid + l * kFmaThreads;
      const int r = e >> 4;  // 0..63
      const int kk = e & 15;
      const int gk = k0 + kk;
      const int gi = i0 + r;
      const int gj = j0 + r;
      As[kk][r] = (gi < M && gk < K) ? P[static_cast<size_t>(gi) * K + gk] : T(0);
      Bs[kk][r] = (gj < M && gk < K) ? P[static_cast<size_t>(gj) * K + gk] : T(0);
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kFmaK; ++kk) {
      T av[4], bv[4];
#pragma unroll
      for (int r = 0; r < 4; ++r) av[r] = As[kk][ty + 16 * r];
#pragma unroll
      for (int c = 0; c < 4; ++c) bv[c] = Bs[kk][tx + 16 * c];
#pragma unroll
      for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[r][c] = fma(av[r], bv[c], acc[r][c]);
    }
    __syncthreads();  // also guards the reuse of smem as Cs below
  }

  const bool diag = bi == bj;
#pragma unroll
  for (int r = 0; r < 4; ++r) {
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const int lr = ty + 16 * r;
      const int lc = tx + 16 * c;
      const int i = i0 + lr;
      const int j = j0 + lc;
      const bool in = i < M && j < M;
      T v = alpha * acc[r][c];
      if (D != nullptr && in) v += beta * D[static_cast<size_t>(i) * M + j];
      Cs[lr][lc] = v;
      // Diagonal tile: the upper half (lr <= lc) directly, the strict lower half from the mirror
      // pass, so the result is exactly symmetric.
      if (in && (!diag || lr <= lc)) C[static_cast<size_t>(i) * M + j] = v;
    }
  }
  __syncthreads();
  // Mirror: C[j0 + rr][i0 + cc] = value at (i0 + cc, j0 + rr) = Cs[cc][rr].
#pragma unroll
  for (int r = 0; r < 4; ++r) {
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const int rr = ty + 16 * r;
      const int cc = tx + 16 * c;
      const int gr = j0 + rr;
      const int gc = i0 + cc;
      if (gr < M && gc < M && (!diag || cc < rr)) C[static_cast<size_t>(gr) * M + gc] = Cs[cc][rr];
    }
  }
}

// Y = S X + a·X, S: (M x M), X, Y: (M x N), all row-major. Grid (ceil(N/64), ceil(M/64), batch).
template <typename T>
__global__ void __launch_bounds__(kFmaThreads)
    ns_gemm_fma_kernel(const T* __restrict__ S, const T* __restrict__ X, T* __restrict__ Y, int M, int N, T a) {
  __shared__ T As[kFmaK][kFmaLd];  // As[k][i] = S[i0 + i][k0 + k]
  __shared__ T Bs[kFmaK][kTile];   // Bs[k][j] = X[k0 + k][j0 + j]

  const size_t b = blockIdx.z;
  S += b * static_cast<size_t>(M) * M;
  X += b * static_cast<size_t>(M) * N;
  Y += b * static_cast<size_t>(M) * N;
  const int j0 = blockIdx.x * kTile;
  const int i0 = blockIdx.y * kTile;
  const int tid = threadIdx.x;
  const int tx = tid & 15;
  const int ty = tid >> 4;

  T acc[4][4];
#pragma unroll
  for (int r = 0; r < 4; ++r)
#pragma unroll
    for (int c = 0; c < 4; ++c) acc[r][c] = T(0);

  for (int k0 = 0; k0 < M; k0 += kFmaK) {
#pragma unroll
    for (int l = 0; l < (kTile * kFmaK) / kFmaThreads; ++l) {
      const int e = tid + l * kFmaThreads;
      {
        const int r = e >> 4;  // 0..63
        const int kk = e & 15;
        const int gi = i0 + r;
        const int gk = k0 + kk;
        As[kk][r] = (gi < M && gk < M) ? S[static_cast<size_t>(gi) * M + gk] : T(0);
      }
      {
        const int kr = e >> 6;  // 0..15
        const int jc = e & 63;
        const int gk = k0 + kr;
        const int gj = j0 + jc;
        Bs[kr][jc] = (gk < M && gj < N) ? X[static_cast<size_t>(gk) * N + gj] : T(0);
      }
    }
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kFmaK; ++kk) {
      T av[4], bv[4];
#pragma unroll
      for (int r = 0; r < 4; ++r) av[r] = As[kk][ty + 16 * r];
#pragma unroll
      for (int c = 0; c < 4; ++c) bv[c] = Bs[kk][tx + 16 * c];
#pragma unroll
      for (int r = 0; r < 4; ++r)
#pragma unroll
        for (int c = 0; c < 4; ++c) acc[r][c] = fma(av[r], bv[c], acc[r][c]);
    }
    __syncthreads();
  }

#pragma unroll
  for (int r = 0; r < 4; ++r) {
#pragma unroll
    for (int c = 0; c < 4; ++c) {
      const int i = i0 + ty + 16 * r;
      const int j = j0 + tx + 16 * c;
      if (i < M && j < N) {
        const size_t idx = static_cast<size_t>(i) * N + j;
        Y[idx] = a * X[idx] + acc[r][c];
      }
    }
  }
}

// ---- float16 / bfloat16: WMMA tensor-core kernels -----------------------------------------------

// S[r][k] = G[(row0 + r) * ld + k0 + k] for r < 64, k < 32; zero outside rows x cols. vec: 16-byte
// loads, valid when cols % 8 == 0 and G's rows are 16-byte aligned (then a chunk of 8 is either all
// inside or all outside).
template <typename T>
__device__ inline void ns_load_rows_k(T (*S)[kWLdA], const T* __restrict__ G, int row0, int rows, int k0,
                                      int cols, int ld, bool vec, int tid) {
  if (vec) {
#pragma unroll
    for (int l = 0; l < (kTile * kWK / 8) / kWThreads; ++l) {
      const int q = tid + l * kWThreads;
      const int r = q >> 2;  // 0..63
      const int kc = (q & 3) * 8;
      const int gr = row0 + r;
      const int gk = k0 + kc;
      uint4 v = make_uint4(0u, 0u, 0u, 0u);
      if (gr < rows && gk < cols) v = *reinterpret_cast<const uint4*>(G + static_cast<size_t>(gr) * ld + gk);
      *reinterpret_cast<uint4*>(&S[r][kc]) = v;
    }
  } else {
    const T zero = Num<T>::from(0.0f);
#pragma unroll 4
    for (int l = 0; l < (kTile * kWK) / kWThreads; ++l) {
      const int e = tid + l * kWThreads;
      const int r = e >> 5;  // 0..63
      const int kk = e & 31;
      const int gr = row0 + r;
      const int gk = k0 + kk;
      S[r][kk] = (gr < rows && gk < cols) ? G[static_cast<size_t>(gr) * ld + gk] : zero;
    }
  }
}

// S[k][c] = X[(k0 + k) * N + j0 + c] for k < 32, c < 64; zero outside M x N.
template <typename T>
__device__ inline void ns_load_k_cols(T (*S)[kWLdB], const T* __restrict__ X, int k0, int M, int j0, int N,
                                      bool vec, int tid) {
  if (vec) {
#pragma unroll
    for (int l = 0; l < (kWK * kTile / 8) / kWThreads; ++l) {
      const int q = tid + l * kWThreads;
      const int kr = q >> 3;  // 0..31
      const int jc = (q & 7) * 8;
      const int gk = k0 + kr;
      const int gj = j0 + jc;
      uint4 v = make_uint4(0u, 0u, 0u, 0u);
      if (gk < M && gj < N) v = *reinterpret_cast<const uint4*>(X + static_cast<size_t>(gk) * N + gj);
      *reinterpret_cast<uint4*>(&S[kr][jc]) = v;
    }
  } else {
    const T zero = Num<T>::from(0.0f);
#pragma unroll 4
    for (int l = 0; l < (kWK * kTile) / kWThreads; ++l) {
      const int e = tid + l * kWThreads;
      const int kr = e >> 6;  // 0..31
      const int jc = e & 63;
      const int gk = k0 + kr;
      const int gj = j0 + jc;
      S[kr][jc] = (gk < M && gj < N) ? X[static_cast<size_t>(gk) * N + gj] : zero;
    }
  }
}

// Same contract as ns_syrk_fma_kernel with fp32 accumulation and epilogue: C = alpha·P Pᵀ + beta·D.
template <typename T>
__global__ void __launch_bounds__(kWThreads)
    ns_syrk_wmma_kernel(const T* __restrict__ P, const T* __restrict__ D, T* __restrict__ C, int M, int K,
                        int tiles, float alpha, float beta, bool vec) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();  // bf16 WMMA needs sm_80; the module is built for sm_80 / sm_90
#else
  __shared__ __align__(128) unsigned char smem_a[kTile * kWLdA * sizeof(T)];
  __shared__ __align__(128) unsigned char smem_b[kTile * kWLdA * sizeof(T)];
  __shared__ __align__(128) float Cs[kTile][kWLdC];
  T(*As)[kWLdA] = reinterpret_cast<T(*)[kWLdA]>(smem_a);
  T(*Bs)[kWLdA] = reinterpret_cast<T(*)[kWLdA]>(smem_b);

  int bi, bj;
  ns_upper_tile(static_cast<int>(blockIdx.x), tiles, &bi, &bj);
  const bool diag = bi == bj;
  const size_t b = blockIdx.y;
  P += b * static_cast<size_t>(M) * K;
  C += b * static_cast<size_t>(M) * M;
  if (D != nullptr) D += b * static_cast<size_t>(M) * M;
  const int i0 = bi * kTile;
  const int j0 = bj * kTile;
  const int tid = threadIdx.x;
  const int warp = tid >> 5;
  const int wr = warp >> 1;  // warp's 32-row half of the tile
  const int wc = warp & 1;   // warp's 32-col half
  // On a diagonal tile both operands are the same rows of P: load once.
  T(*Bsrc)[kWLdA] = diag ? As : Bs;

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
  for (int x = 0; x < 2; ++x)
#pragma unroll
    for (int y = 0; y < 2; ++y) wmma::fill_fragment(acc[x][y], 0.0f);

  for (int k0 = 0; k0 < K; k0 += kWK) {
    ns_load_rows_k(As, P, i0, M, k0, K, K, vec, tid);
    if (!diag) ns_load_rows_k(Bs, P, j0, M, k0, K, K, vec, tid);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kWK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::col_major> fb[2];
      // b(k, n) = Bsrc[n][k] = P[j][k]: column-major K x 16 with ld kWLdA.
#pragma unroll
      for (int x = 0; x < 2; ++x) wmma::load_matrix_sync(fa[x], &As[wr * 32 + 16 * x][kk], kWLdA);
#pragma unroll
      for (int y = 0; y < 2; ++y) wmma::load_matrix_sync(fb[y], &Bsrc[wc * 32 + 16 * y][kk], kWLdA);
#pragma unroll
      for (int x = 0; x < 2; ++x)
#pragma unroll
        for (int y = 0; y < 2; ++y) wmma::mma_sync(acc[x][y], fa[x], fb[y], acc[x][y]);
    }
    __syncthreads();
  }

#pragma unroll
  for (int x = 0; x < 2; ++x)
#pragma unroll
    for (int y = 0; y < 2; ++y)
      wmma::store_matrix_sync(&Cs[wr * 32 + 16 * x][wc * 32 + 16 * y], acc[x][y], kWLdC, wmma::mem_row_major);
  __syncthreads();

  // Direct pass: coalesced along j. The final fp32 value goes back to Cs for the mirror pass so both
  // copies round identically.
#pragma unroll 4
  for (int l = 0; l < (kTile * kTile) / kWThreads; ++l) {
    const int e = tid + l * kWThreads;
    const int lr = e >> 6;
    const int lc = e & 63;
    const int i = i0 + lr;
    const int j = j0 + lc;
    if (i < M && j < M) {
      float v = alpha * Cs[lr][lc];
      if (D != nullptr) v += beta * Num<T>::to(D[static_cast<size_t>(i) * M + j]);
      Cs[lr][lc] = v;
      if (!diag || lr <= lc) C[static_cast<size_t>(i) * M + j] = Num<T>::from(v);
    }
  }
  __syncthreads();
  // Mirror pass: C[j0 + rr][i0 + cc] = value at (i0 + cc, j0 + rr) = Cs[cc][rr], coalesced along cc.
#pragma unroll 4
  for (int l = 0; l < (kTile * kTile) / kWThreads; ++l) {
    const int e = tid + l * kWThreads;
    const int rr = e >> 6;
    const int cc = e & 63;
    const int gr = j0 + rr;
    const int gc = i0 + cc;
    if (gr < M && gc < M && (!diag || cc < rr)) C[static_cast<size_t>(gr) * M + gc] = Num<T>::from(Cs[cc][rr]);
  }
#endif
}

// Y = S X + a·X with fp32 accumulation and epilogue. vec_s: S rows 16-byte loadable (M % 8 == 0);
// vec_x: X rows 16-byte loadable (N % 8 == 0 and X 16-byte aligned).
template <typename T>
__global__ void __launch_bounds__(kWThreads)
    ns_gemm_wmma_kernel(const T* __restrict__ S, const T* __restrict__ X, T* __restrict__ Y, int M, int N, float a,
                        bool vec_s, bool vec_x) {
#if defined(__CUDA_ARCH__) && __CUDA_ARCH__ < 800
  __trap();
#else
  __shared__ __align__(128) unsigned char smem_a[kTile * kWLdA * sizeof(T)];
  __shared__ __align__(128) unsigned char smem_b[kWK * kWLdB * sizeof(T)];
  __shared__ __align__(128) float Cs[kTile][kWLdC];
  T(*As)[kWLdA] = reinterpret_cast<T(*)[kWLdA]>(smem_a);
  T(*Bs)[kWLdB] = reinterpret_cast<T(*)[kWLdB]>(smem_b);

  const size_t b = blockIdx.z;
  S += b * static_cast<size_t>(M) * M;
  X += b * static_cast<size_t>(M) * N;
  Y += b * static_cast<size_t>(M) * N;
  const int j0 = blockIdx.x * kTile;
  const int i0 = blockIdx.y * kTile;
  const int tid = threadIdx.x;
  const int warp = tid >> 5;
  const int wr = warp >> 1;
  const int wc = warp & 1;

  wmma::fragment<wmma::accumulator, 16, 16, 16, float> acc[2][2];
#pragma unroll
  for (int x = 0; x < 2; ++x)
#pragma unroll
    for (int y = 0; y < 2; ++y) wmma::fill_fragment(acc[x][y], 0.0f);

  for (int k0 = 0; k0 < M; k0 += kWK) {
    ns_load_rows_k(As, S, i0, M, k0, M, M, vec_s, tid);
    ns_load_k_cols(Bs, X, k0, M, j0, N, vec_x, tid);
    __syncthreads();
#pragma unroll
    for (int kk = 0; kk < kWK; kk += 16) {
      wmma::fragment<wmma::matrix_a, 16, 16, 16, T, wmma::row_major> fa[2];
      wmma::fragment<wmma::matrix_b, 16, 16, 16, T, wmma::row_major> fb[2];
#pragma unroll
      for (int x = 0; x < 2; ++x) wmma::load_matrix_sync(fa[x], &As[wr * 32 + 16 * x][kk], kWLdA);
#pragma unroll
      for (int y = 0; y < 2; ++y) wmma::load_matrix_sync(fb[y], &Bs[kk][wc * 32 + 16 * y], kWLdB);
#pragma unroll
      for (int x = 0; x < 2; ++x)
#pragma unroll
        for (int y = 0; y < 2; ++y) wmma::mma_sync(acc[x][y], fa[x], fb[y], acc[x][y]);
    }
    __syncthreads();
  }

#pragma unroll
  for (int x = 0; x < 2; ++x)
#pragma unroll
    for (int y = 0; y < 2; ++y)
      wmma::store_matrix_sync(&Cs[wr * 32 + 16 * x][wc * 32 + 16 * y], acc[x][y], kWLdC, wmma::mem_row_major);
  __syncthreads();

#pragma unroll 4
  for (int l = 0; l < (kTile * kTile) / kWThreads; ++l) {
    const int e = tid + l * kWThreads;
    const int lr = e >> 6;
    const int lc = e & 63;
    const int i = i0 + lr;
    const int j = j0 + lc;
    if (i < M && j < N) {
      const size_t idx = static_cast<size_t>(i) * N + j;
      Y[idx] = Num<T>::from(a * Num<T>::to(X[idx]) + Cs[lr][lc]);
    }
  }
#endif
}

// ---- host side ----------------------------------------------------------------------------------

size_t align256(size_t v) { return (v + 255) & ~static_cast<size_t>(255); }

size_t elem_bytes(DType d) {
  switch (d) {
    case DType::Float32: return 4;
    case DType::Float64: return 8;
    case DType::Float16:
    case DType::BFloat16: return 2;
  }
  throw std::invalid_argument("newton_schulz: unknown dtype");
}

size_t acc_bytes(DType d) { return d == DType::Float64 ? 8 : 4; }

int norm_parts(size_t mn) {
  const size_t per_block = static_cast<size_t>(kNormThreads) * 16;
  size_t p = (mn + per_block - 1) / per_block;
  if (p < 1) p = 1;
  if (p > static_cast<size_t>(kMaxNormParts)) p = kMaxNormParts;
  return static_cast<int>(p);
}

struct Layout {
  size_t x, a, b, partial, total;
};

Layout layout(int64_t batch, int64_t m, int64_t n, DType dtype) {
  const size_t bt = static_cast<size_t>(batch);
  const size_t es = elem_bytes(dtype);
  const size_t mn = static_cast<size_t>(m) * static_cast<size_t>(n);
  const size_t mm = static_cast<size_t>(m) * static_cast<size_t>(m);
  Layout L{};
  L.x = 0;
  L.a = L.x + align256(bt * mn * es);
  L.b = L.a + align256(bt * mm * es);
  L.partial = L.b + align256(bt * mm * es);
  L.total = L.partial + align256(bt * static_cast<size_t>(norm_parts(mn)) * acc_bytes(dtype));
  return L;
}

void check_sizes(int64_t batch, int64_t m, int64_t n) {
  if (batch < 0) throw std::invalid_argument("newton_schulz: batch must be >= 0, got " + std::to_string(batch));
  if (m < 1) throw std::invalid_argument("newton_schulz: m must be >= 1, got " + std::to_string(m));
  if (m > n) {
    throw std::invalid_argument("newton_schulz: needs m <= n (transpose tall matrices), got m=" + std::to_string(m) +
                                ", n=" + std::to_string(n));
  }
  // Indices inside one matrix row/col are int; the tile grid must fit the launch limits.
  if (n > INT_MAX - kTile || (m + kTile - 1) / kTile > kMaxGridYZ || (m + kTile - 1) / kTile > 46340) {
    throw std::invalid_argument("newton_schulz: matrix too large for the CUDA kernels (m=" + std::to_string(m) +
                                ", n=" + std::to_string(n) + ")");
  }
}

bool aligned16(const void* p) { return (reinterpret_cast<std::uintptr_t>(p) & 15u) == 0; }

template <typename T>
constexpr bool kUseWmma = std::is_same_v<T, __half> || std::is_same_v<T, __nv_bfloat16>;

template <typename T>
const char* syrk_name() {
  return kUseWmma<T> ? "ns_syrk_wmma_kernel" : "ns_syrk_fma_kernel";
}

template <typename T>
const char* gemm_name() {
  return kUseWmma<T> ? "ns_gemm_wmma_kernel" : "ns_gemm_fma_kernel";
}

// C = alpha·P Pᵀ + beta·D for every matrix of the batch; P: (M x K), C, D: (M x M).
template <typename T>
void launch_syrk(const T* P, const T* D, T* C, int64_t batch, int M, int K, double alpha, double beta,
                 cudaStream_t stream) {
  const int tiles = (M + kTile - 1) / kTile;
  const unsigned int blocks = static_cast<unsigned int>(tiles) * static_cast<unsigned int>(tiles + 1) / 2u;
  const size_t pstride = static_cast<size_t>(M) * K;
  const size_t cstride = static_cast<size_t>(M) * M;
  for (int64_t b0 = 0; b0 < batch; b0 += kMaxGridYZ) {
    const int nb = static_cast<int>(batch - b0 < kMaxGridYZ ? batch - b0 : kMaxGridYZ);
    const T* Pb = P + static_cast<size_t>(b0) * pstride;
    const T* Db = D != nullptr ? D + static_cast<size_t>(b0) * cstride : nullptr;
    T* Cb = C + static_cast<size_t>(b0) * cstride;
    const dim3 grid(blocks, static_cast<unsigned int>(nb));
    if constexpr (kUseWmma<T>) {
      const bool vec = K % 8 == 0 && aligned16(P);
      ns_syrk_wmma_kernel<T><<<grid, kWThreads, 0, stream>>>(Pb, Db, Cb, M, K, tiles, static_cast<float>(alpha),
                                                              static_cast<float>(beta), vec);
    } else {
      ns_syrk_fma_kernel<T><<<grid, kFmaThreads, 0, stream>>>(Pb, Db, Cb, M, K, tiles, static_cast<T>(alpha),
                                                               static_cast<T>(beta));
    }
    check_launch("newton_schulz", syrk_name<T>());
  }
}

// Y = S X + a·X for every matrix of the batch; S: (M x M), X, Y: (M x N).
template <typename T>
void launch_gemm(const T* S, const T* X, T* Y, int64_t batch, int M, int N, double a, cudaStream_t stream) {
  const size_t sstride = static_cast<size_t>(M) * M;
  const size_t xstride = static_cast<size_t>(M) * N;
  const dim3 tiles((N + kTile - 1) / kTile, (M + kTile - 1) / kTile);
  for (int64_t b0 = 0; b0 < batch; b0 += kMaxGridYZ) {
    const int nb = static_cast<int>(batch - b0 < kMaxGridYZ ? batch - b0 : kMaxGridYZ);
    const T* Sb = S + static_cast<size_t>(b0) * sstride;
    const T* Xb = X + static_cast<size_t>(b0) * xstride;
    T* Yb = Y + static_cast<size_t>(b0) * xstride;
    const dim3 grid(tiles.x, tiles.y, static_cast<unsigned int>(nb));
    if constexpr (kUseWmma<T>) {
      const bool vec_s = M % 8 == 0 && aligned16(S);
      const bool vec_x = N % 8 == 0 && aligned16(X);
      ns_gemm_wmma_kernel<T><<<grid, kWThreads, 0, stream>>>(Sb, Xb, Yb, M, N, static_cast<float>(a), vec_s, vec_x);
    } else {
      ns_gemm_fma_kernel<T><<<grid, kFmaThreads, 0, stream>>>(Sb, Xb, Yb, M, N, static_cast<T>(a));
    }
    check_launch("newton_schulz", gemm_name<T>());
  }
}

template <typename T>
void run(const void* x_raw, void* out_raw, void* workspace, int64_t batch, int M, int N, DType dtype,
         const double* coeffs, int64_t steps, double eps, cudaStream_t stream) {
  using Acc = typename Num<T>::Acc;
  const Layout L = layout(batch, M, N, dtype);
  unsigned char* ws = static_cast<unsigned char*>(workspace);
  const T* x = static_cast<const T*>(x_raw);
  T* out = static_cast<T*>(out_raw);
  T* xbuf = reinterpret_cast<T*>(ws + L.x);
  T* A = reinterpret_cast<T*>(ws + L.a);
  T* B = reinterpret_cast<T*>(ws + L.b);
  Acc* partial = reinterpret_cast<Acc*>(ws + L.partial);

  const size_t mn = static_cast<size_t>(M) * N;
  const int parts = norm_parts(mn);
  // Ping-pong between xbuf and out so that the last step writes out.
  T* cur = (steps % 2 == 1) ? xbuf : out;

  for (int64_t b0 = 0; b0 < batch; b0 += kMaxGridYZ) {
    const int nb = static_cast<int>(batch - b0 < kMaxGridYZ ? batch - b0 : kMaxGridYZ);
    const dim3 grid(static_cast<unsigned int>(parts), static_cast<unsigned int>(nb));
    ns_norm_partial_kernel<T><<<grid, kNormThreads, 0, stream>>>(x + static_cast<size_t>(b0) * mn,
                                                                 partial + static_cast<size_t>(b0) * parts, mn, parts);
    check_launch("newton_schulz", "ns_norm_partial_kernel");
  }
  for (int64_t b0 = 0; b0 < batch; b0 += kMaxGridYZ) {
    const int nb = static_cast<int>(batch - b0 < kMaxGridYZ ? batch - b0 : kMaxGridYZ);
    const dim3 grid(static_cast<unsigned int>(parts), static_cast<unsigned int>(nb));
    ns_scale_kernel<T><<<grid, kNormThreads, 0, stream>>>(x + static_cast<size_t>(b0) * mn,
                                                          cur + static_cast<size_t>(b0) * mn,
                                                          partial + static_cast<size_t>(b0) * parts, mn, parts,
                                                          static_cast<Acc>(eps));
    check_launch("newton_schulz", "ns_scale_kernel");
  }

  for (int64_t s = 0; s < steps; ++s) {
    const double a = coeffs[3 * s];
    const double b = coeffs[3 * s + 1];
    const double c = coeffs[3 * s + 2];
    T* next = (cur == out) ? xbuf : out;
    launch_syrk<T>(cur, nullptr, A, batch, M, N, 1.0, 0.0, stream);  // A = X Xᵀ
    launch_syrk<T>(A, A, B, batch, M, M, c, b, stream);              // B = b·A + c·A Aᵀ
    launch_gemm<T>(B, cur, next, batch, M, N, a, stream);            // X' = a·X + B X
    cur = next;
  }
}

}  // namespace

size_t newton_schulz_workspace_bytes(int64_t batch, int64_t m, int64_t n, DType dtype) {
  check_sizes(batch, m, n);
  if (batch == 0) return 0;
  return layout(batch, m, n, dtype).total;
}

void newton_schulz(const void* x, void* out, void* workspace, int64_t batch, int64_t m, int64_t n, DType dtype,
                   const double* coeffs, int64_t steps, double eps, void* stream) {
  check_sizes(batch, m, n);
  if (steps < 0) throw std::invalid_argument("newton_schulz: steps must be >= 0, got " + std::to_string(steps));
  if (batch == 0) return;
  if (steps > 0 && coeffs == nullptr) throw std::invalid_argument("newton_schulz: coeffs is null");
  const cudaStream_t s = static_cast<cudaStream_t>(stream);
  const int M = static_cast<int>(m);
  const int N = static_cast<int>(n);
  switch (dtype) {
    case DType::Float32: run<float>(x, out, workspace, batch, M, N, dtype, coeffs, steps, eps, s); return;
    case DType::Float64: run<double>(x, out, workspace, batch, M, N, dtype, coeffs, steps, eps, s); return;
    case DType::Float16: run<__half>(x, out, workspace, batch, M, N, dtype, coeffs, steps, eps, s); return;
    case DType::BFloat16: run<__nv_bfloat16>(x, out, workspace, batch, M, N, dtype, coeffs, steps, eps, s); return;
  }
  throw std::invalid_argument("newton_schulz: unknown dtype");
}

}  // namespace pykernels::cuda
