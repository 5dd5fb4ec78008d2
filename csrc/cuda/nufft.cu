// NUFFT spreading (atomicAdd, "GM" method) and interpolation (gather) on CUDA; see nufft.h.
#include "cuda/nufft.h"

#include <cuda_runtime.h>

#include <stdexcept>
#include <string>

#include "common/cuda_check.cuh"

namespace pykernels::cuda {

namespace {

constexpr int kMaxW = 16;
constexpr int kThreads = 128;

struct Fine {
  int64_t n[3];  // 2-d grids are stored as (1, nf0, nf1)
};

template <typename T>
__device__ __forceinline__ T es_weight(double x, double inv_half_w, T beta) {
  const double z64 = x * inv_half_w;
  if (z64 < -1.0 || z64 > 1.0) return T(0);
  const T z = static_cast<T>(z64);
  const T a = T(1) - z * z;
  return exp(beta * (sqrt(a > T(0) ? a : T(0)) - T(1)));
}

__device__ __forceinline__ int64_t wrap(int64_t node, int64_t nf) {
  return node < 0 ? node + nf : (node >= nf ? node - nf : node);
}

// Per-axis footprint of one sample: first node and the w weights (axes padded to 3).
template <typename T>
__device__ void footprint(const double* tj, int d, int w, double half_w, double inv_half_w, T beta,
                          int64_t start[3], T wt[3][kMaxW]) {
  for (int a = 0; a < 3; ++a) {
    const int src = a - (3 - d);  // 2-d: axis 0 is the dummy
    if (src < 0) {
      start[a] = 0;
      wt[a][0] = T(1);
      continue;
    }
    const double t = tj[src];
    const double s = ceil(t - half_w);
    start[a] = static_cast<int64_t>(s);
    for (int i = 0; i < w; ++i) wt[a][i] = es_weight<T>(s + i - t, inv_half_w, beta);
  }
}

template <typename T, bool Spread>
__global__ void grid_kernel(Fine f, int d, const double* __restrict__ t, int64_t ncoil, int64_t m, int w,
                            double half_w, double inv_half_w, T beta, const T* __restrict__ in,
                            T* __restrict__ out) {
  const int64_t j = static_cast<int64_t>(blockIdx.x) * blockDim.x + threadIdx.x;
  if (j >= m) return;
  const int64_t tr = blockIdx.y;
  int64_t start[3];
  T wt[3][kMaxW];
  footprint<T>(t + (tr * m + j) * d, d, w, half_w, inv_half_w, beta, start, wt);
  const int w0 = d == 3 ? w : 1;
  const int64_t grid_size = f.n[0] * f.n[1] * f.n[2];
  for (int64_t c = 0; c < ncoil; ++c) {
    const int64_t bc = tr * ncoil + c;
    const int64_t base = bc * grid_size;
    T x_re = T(0), x_im = T(0);
    if (Spread) {
      x_re = in[(bc * m + j) * 2];
      x_im = in[(bc * m + j) * 2 + 1];
    }
    T acc_re = T(0), acc_im = T(0);
    for (int i0 = 0; i0 < w0; ++i0) {
      const int64_t r0 = wrap(start[0] + i0, f.n[0]) * f.n[1];
      for (int i1 = 0; i1 < w; ++i1) {
        const T w01 = wt[0][i0] * wt[1][i1];
        const int64_t r1 = (r0 + wrap(start[1] + i1, f.n[1])) * f.n[2];
        for (int i2 = 0; i2 < w; ++i2) {
          const T wgt = w01 * wt[2][i2];
          const int64_t idx = base + r1 + wrap(start[2] + i2, f.n[2]);
          if (Spread) {
            atomicAdd(out + idx * 2, wgt * x_re);
            atomicAdd(out + idx * 2 + 1, wgt * x_im);
          } else {
            acc_re += wgt * in[idx * 2];
            acc_im += wgt * in[idx * 2 + 1];
          }
        }
      }
    }
    if (!Spread) {
      out[(bc * m + j) * 2] = acc_re;
      out[(bc * m + j) * 2 + 1] = acc_im;
    }
  }
}

void check_args(const char* name, int d, const int64_t* nf, int64_t ntraj, int64_t m, int w) {
  if (d != 2 && d != 3) throw std::invalid_argument(std::string(name) + ": d must be 2 or 3");
  if (w < 2 || w > kMaxW) throw std::invalid_argument(std::string(name) + ": w must be in [2, 16]");
  for (int a = 0; a < d; ++a) {
    if (nf[a] < 2 * w) throw std::invalid_argument(std::string(name) + ": every nf must be >= 2w");
  }
  if (ntraj > 65535) throw std::invalid_argument(std::string(name) + ": at most 65535 trajectories");
  if (m < 0) throw std::invalid_argument(std::string(name) + ": m must be >= 0");
}

template <bool Spread>
void launch(const char* name, int d, const int64_t* nf, const double* t, int64_t ntraj, int64_t ncoil,
            int64_t m, int w, double beta, const void* in, void* out, DType dtype, void* stream) {
  check_args(name, d, nf, ntraj, m, w);
  if (m == 0 || ntraj == 0 || ncoil == 0) return;
  Fine f{{1, 1, 1}};
  for (int a = 0; a < d; ++a) f.n[a + 3 - d] = nf[a];
  const dim3 grid(static_cast<unsigned>((m + kThreads - 1) / kThreads), static_cast<unsigned>(ntraj));
  const cudaStream_t st = static_cast<cudaStream_t>(stream);
  const double half_w = 0.5 * w, inv_half_w = 2.0 / w;
  if (dtype == DType::Float32) {
    grid_kernel<float, Spread><<<grid, kThreads, 0, st>>>(f, d, t, ncoil, m, w, half_w, inv_half_w,
                                                          static_cast<float>(beta),
                                                          static_cast<const float*>(in), static_cast<float*>(out));
  } else if (dtype == DType::Float64) {
    grid_kernel<double, Spread><<<grid, kThreads, 0, st>>>(f, d, t, ncoil, m, w, half_w, inv_half_w, beta,
                                                           static_cast<const double*>(in),
                                                           static_cast<double*>(out));
  } else {
    throw std::invalid_argument(std::string(name) + ": dtype must be float32 or float64 (complex64/128)");
  }
  check_launch(name, "its kernel");
}

}  // namespace

void nufft_spread(int d, const int64_t* nf, const double* t, int64_t ntraj, int64_t ncoil, int64_t m, int w,
                  double beta, const void* samples, void* grid, DType dtype, void* stream) {
  launch<true>("nufft_spread", d, nf, t, ntraj, ncoil, m, w, beta, samples, grid, dtype, stream);
}

void nufft_interp(int d, const int64_t* nf, const double* t, int64_t ntraj, int64_t ncoil, int64_t m, int w,
                  double beta, const void* grid, void* samples, DType dtype, void* stream) {
  launch<false>("nufft_interp", d, nf, t, ntraj, ncoil, m, w, beta, grid, samples, dtype, stream);
}

}  // namespace pykernels::cuda
