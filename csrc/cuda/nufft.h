#pragma once

#include <cstdint>

#include "common/dtype.h"

namespace pykernels::cuda {

// NUFFT gridding with the ES kernel φ(z) = exp(β(√(1 − z²) − 1)), z = 2(l − t)/w, footprint
// l_a = ⌈t_a − w/2⌉ + i (i < w) wrapped mod nf_a — the math of kernels/reference/nufft.py spread/interp.
// Device pointers: t (ntraj, m, d) float64 fine-grid coordinates in [0, nf); samples complex
// (ntraj·ncoil, m) and grid complex (ntraj·ncoil, nf...) interleaved re/im in `dtype` (Float32 or
// Float64); d = 2 or 3, 2 <= w <= 16. One thread per sample, looping over the ncoil coils of its
// trajectory. Launches on `stream`, never synchronizes, throws std::runtime_error if a launch fails.
//
// nufft_spread ADDS into grid with atomicAdd (the caller zeroes it): not bitwise deterministic.
void nufft_spread(int d, const int64_t* nf, const double* t, int64_t ntraj, int64_t ncoil, int64_t m, int w,
                  double beta, const void* samples, void* grid, DType dtype, void* stream);
// nufft_interp writes samples[c, j] = Σ_l φ(...) grid[c, l] (a gather, deterministic).
void nufft_interp(int d, const int64_t* nf, const double* t, int64_t ntraj, int64_t ncoil, int64_t m, int w,
                  double beta, const void* grid, void* samples, DType dtype, void* stream);

}  // namespace pykernels::cuda
