"""MRI operators: centred orthonormal FFTs, Cartesian SENSE, conjugate gradient, NUFFT SENSE."""

from pyrecon.ops.cg import conjugate_gradient
from pyrecon.ops.fft import fft2c, ifft2c
from pyrecon.ops.noncart import (
    nufft_density_weights,
    nufft_sense_adjoint,
    nufft_sense_forward,
    nufft_sense_kernel,
    nufft_sense_normal,
)
from pyrecon.ops.sense import coil_combine, rss, sense_adjoint, sense_forward, sense_normal

__all__ = [
    "coil_combine",
    "conjugate_gradient",
    "fft2c",
    "ifft2c",
    "nufft_density_weights",
    "nufft_sense_adjoint",
    "nufft_sense_forward",
    "nufft_sense_kernel",
    "nufft_sense_normal",
    "rss",
    "sense_adjoint",
    "sense_forward",
    "sense_normal",
]
