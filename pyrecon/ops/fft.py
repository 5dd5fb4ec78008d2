"""Centred orthonormal 2D FFT over the last two dimensions (image ↔ k-space).

k-space index 0 of a centred axis of length N holds frequency −N//2 and index N//2 holds DC, as in the
images: ``fft2c = fftshift ∘ fft2(norm="ortho") ∘ ifftshift``. Orthonormal, so ‖fft2c(x)‖ = ‖x‖ and
``ifft2c`` is both the inverse and the adjoint.
"""

from __future__ import annotations

import torch
from torch import Tensor

_DIMS = (-2, -1)


def _check(x: Tensor, name: str) -> None:
    if not isinstance(x, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() < 2:
        raise ValueError(f"{name} must have at least 2 dims (..., H, W), got shape {tuple(x.shape)}")
    if not (x.is_complex() or x.is_floating_point()):
        raise TypeError(f"{name} must be a complex or floating tensor, got {x.dtype}")


def fft2c(x: Tensor) -> Tensor:
    """Centred orthonormal 2D DFT over dims (-2, -1): X = fftshift(F_ortho(ifftshift(x))).

    Args:
        x: complex (or real, promoted to complex) tensor (..., H, W), any device.

    Returns: complex tensor (..., H, W). Differentiable (pure torch.fft).
    """
    _check(x, "x")
    return torch.fft.fftshift(torch.fft.fft2(torch.fft.ifftshift(x, dim=_DIMS), norm="ortho"), dim=_DIMS)


def ifft2c(k: Tensor) -> Tensor:
    """Centred orthonormal inverse 2D DFT over dims (-2, -1): x = fftshift(F_ortho⁻¹(ifftshift(k))).

    The inverse and the adjoint of :func:`fft2c`.

    Args:
        k: complex (or real) tensor (..., H, W), any device.

    Returns: complex tensor (..., H, W).
    """
    _check(k, "k")
    return torch.fft.fftshift(torch.fft.ifft2(torch.fft.ifftshift(k, dim=_DIMS), norm="ortho"), dim=_DIMS)
