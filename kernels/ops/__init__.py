"""One module per op: checks, the ``pykernels::<op>`` custom op, its fake impl, its backends."""

from kernels.ops.adamw_step import adamw_step
from kernels.ops.aggregate import aggregate
from kernels.ops.clip_and_noise import clip_and_noise, clip_and_noise_sum
from kernels.ops.hash_grid_encode import hash_grid_encode
from kernels.ops.newton_schulz import newton_schulz
from kernels.ops.nufft import (
    density_compensation,
    nufft2d_type1,
    nufft2d_type2,
    nufft3d_type1,
    nufft3d_type2,
    nufft_normal,
    nufft_toeplitz_kernel,
)
from kernels.ops.rotate_filter_bank import rotate_filter_bank

__all__ = [
    "adamw_step",
    "aggregate",
    "clip_and_noise",
    "clip_and_noise_sum",
    "density_compensation",
    "hash_grid_encode",
    "newton_schulz",
    "nufft2d_type1",
    "nufft2d_type2",
    "nufft3d_type1",
    "nufft3d_type2",
    "nufft_normal",
    "nufft_toeplitz_kernel",
    "rotate_filter_bank",
]
