"""MRI operators: centred orthonormal FFTs, Cartesian SENSE, conjugate gradient, NUFFT SENSE."""

from pyrecon.ops.fft import fft2c, ifft2c

__all__ = ["fft2c", "ifft2c"]
