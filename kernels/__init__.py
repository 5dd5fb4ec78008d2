"""pykernels: compiled kernels for PyTorch as drop-in ops.

Every op is a registered ``torch.library`` custom op (``torch.ops.pykernels.<op>``) with a pure-torch
reference and CPU C++, Triton and CUDA backends; ``kernels.info()`` prints which ones this machine
has and which each op uses by default.
"""

from kernels import nn, nvtx, profiling
from kernels.backend import (
    BackendUnavailableError,
    available_backends,
    default_backend,
    use_backend,
)
from kernels.info import info
from kernels.ops import (
    adamw_step,
    aggregate,
    clip_and_noise,
    clip_and_noise_sum,
    density_compensation,
    hash_grid_encode,
    newton_schulz,
    nufft2d_type1,
    nufft2d_type2,
    nufft3d_type1,
    nufft3d_type2,
    nufft_normal,
    nufft_toeplitz_kernel,
    rotate_filter_bank,
)

__all__ = [
    "BackendUnavailableError",
    "adamw_step",
    "aggregate",
    "available_backends",
    "clip_and_noise",
    "clip_and_noise_sum",
    "default_backend",
    "density_compensation",
    "hash_grid_encode",
    "info",
    "nn",
    "newton_schulz",
    "nufft2d_type1",
    "nufft2d_type2",
    "nufft3d_type1",
    "nufft3d_type2",
    "nufft_normal",
    "nufft_toeplitz_kernel",
    "nvtx",
    "profiling",
    "rotate_filter_bank",
    "use_backend",
]

__version__ = "0.1.0"
