// CPU spreading and interpolation of the NUFFT (kernels.nufft2d_* / nufft3d_*), the two steps around
// the fine-grid FFT, which the Python op layer does with torch.fft.
//
// Arrays are interleaved complex (re, im) of float (dtype Float32, complex64) or double (Float64,
// complex128):
//   t        (ntraj, M, d) float64 sample coordinates on the fine grid, already wrapped into [0, nf_a)
//   samples  (ntraj * ncoil, M) complex: the coils of trajectory r are rows r*ncoil .. r*ncoil+ncoil-1
//   grid     (ntraj * ncoil, nf_0, ..., nf_{d-1}) complex, row-major
// The kernel is the ES kernel psi(x) = exp(beta (sqrt(1 - (2x/w)^2) - 1)) on |x| <= w/2, and sample j
// touches the w^d fine points l = ceil(t_j - w/2) + {0..w-1} per axis, wrapped periodically.
#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace pykernels::cpu {

// grid = sum_j samples_j psi(t_j - l) (grid is overwritten). Deterministic: samples are sorted into
// tiles of the fine grid; each tile is spread into a private padded buffer and added back in a fixed
// colour order (tiles of one colour never overlap), so there are no atomics.
void nufft_spread(int d, const int64_t* nf, const double* t, int64_t ntraj, int64_t ncoil, int64_t m,
                  int w, double beta, const void* samples, void* grid, DType dtype);

// samples_j = sum_l grid_l psi(t_j - l): the adjoint of nufft_spread, a gather parallel over tiles.
void nufft_interp(int d, const int64_t* nf, const double* t, int64_t ntraj, int64_t ncoil, int64_t m,
                  int w, double beta, const void* grid, void* samples, DType dtype);

}  // namespace pykernels::cpu
