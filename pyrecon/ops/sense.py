"""Cartesian multi-coil SENSE operators for dynamic series, coil combination and root-sum-of-squares.

Shapes: images x (B, T, H, W) complex; coil maps S (B, C, H, W) (B may be 1 and is then shared);
k-space y (B, T, C, H, W); a real (float or bool) sampling mask M broadcastable to (B, T, H, W).
With F the centred orthonormal 2D FFT (:func:`pyrecon.ops.fft.fft2c`):

    E x:   y[b, t, c] = M[b, t] · F(S[b, c] · x[b, t])
    Eᴴ y:  x[b, t]    = Σ_c conj(S[b, c]) · Fᴴ(M[b, t] · y[b, t, c])

Pure torch: differentiable in x, y and S, any device.
"""

from __future__ import annotations

import torch
from torch import Tensor

from pyrecon.ops.fft import fft2c, ifft2c


def _check_complex(t: Tensor, name: str, dims: int, what: str) -> None:
    if not isinstance(t, Tensor):
        raise TypeError(f"{name} must be a torch.Tensor {what}, got {type(t).__name__}")
    if not t.is_complex():
        raise TypeError(f"{name} must be complex64/complex128 {what}, got {t.dtype}")
    if t.dim() != dims:
        raise ValueError(f"{name} must be {what}, got shape {tuple(t.shape)}")


def _smaps_for(smaps: Tensor, batch: int, hw: tuple[int, int], dtype: torch.dtype) -> Tensor:
    if not isinstance(smaps, Tensor) or not (smaps.is_complex() or smaps.is_floating_point()):
        raise TypeError(f"smaps must be a complex tensor (B, C, H, W), got {getattr(smaps, 'dtype', smaps)}")
    if smaps.dim() != 4:
        raise ValueError(f"smaps must be (B, C, H, W), got shape {tuple(smaps.shape)}")
    if smaps.shape[0] not in (1, batch) or tuple(smaps.shape[-2:]) != hw:
        raise ValueError(
            f"smaps must be (B, C, H, W) with B in (1, {batch}) and (H, W) = {hw}, got {tuple(smaps.shape)}"
        )
    return smaps.to(dtype)


def _mask_for(mask: Tensor, shape: tuple[int, ...], real_dtype: torch.dtype, device) -> Tensor:
    """The mask as a real (B|1, T|1, 1, H|1, W|1) tensor to multiply (B, T, C, H, W) k-space."""
    if not isinstance(mask, Tensor):
        raise TypeError(f"mask must be a real torch.Tensor broadcastable to (B, T, H, W), got {type(mask)}")
    if mask.is_complex():
        raise TypeError(f"mask must be real (float or bool), got {mask.dtype}")
    if mask.dim() > 4:
        raise ValueError(f"mask must be broadcastable to (B, T, H, W) = {shape}, got {tuple(mask.shape)}")
    m = mask.reshape((1,) * (4 - mask.dim()) + tuple(mask.shape))
    try:
        torch.broadcast_shapes(m.shape, shape)
    except RuntimeError:
        raise ValueError(
            f"mask must be broadcastable to (B, T, H, W) = {shape}, got {tuple(mask.shape)}"
        ) from None
    if m.device != device:
        raise ValueError(f"mask is on {m.device} but the data is on {device}")
    return m.to(real_dtype).unsqueeze(2)


def sense_forward(x: Tensor, smaps: Tensor, mask: Tensor) -> Tensor:
    """E x: y[b, t, c] = M[b, t] · F(S[b, c] · x[b, t]).

    Args:
        x: complex (B, T, H, W).
        smaps: (B, C, H, W) or (1, C, H, W) coil maps (cast to x's dtype).
        mask: real, broadcastable to (B, T, H, W).

    Returns: (B, T, C, H, W) masked multi-coil k-space, x's dtype.
    """
    _check_complex(x, "x", 4, "(B, T, H, W)")
    s = _smaps_for(smaps, x.shape[0], tuple(x.shape[-2:]), x.dtype)
    m = _mask_for(mask, tuple(x.shape), x.real.dtype, x.device)
    return m * fft2c(s.unsqueeze(1) * x.unsqueeze(2))


def sense_adjoint(y: Tensor, smaps: Tensor, mask: Tensor) -> Tensor:
    """Eᴴ y: x[b, t] = Σ_c conj(S[b, c]) · Fᴴ(M[b, t] · y[b, t, c]).

    Args:
        y: complex (B, T, C, H, W).
        smaps: (B, C, H, W) or (1, C, H, W); C must match y.
        mask: real, broadcastable to (B, T, H, W).

    Returns: (B, T, H, W), y's dtype.
    """
    _check_complex(y, "y", 5, "(B, T, C, H, W)")
    s = _smaps_for(smaps, y.shape[0], tuple(y.shape[-2:]), y.dtype)
    if s.shape[1] != y.shape[2]:
        raise ValueError(f"smaps has {s.shape[1]} coils but y has {y.shape[2]}")
    b, t, _, h, w = y.shape
    m = _mask_for(mask, (b, t, h, w), y.real.dtype, y.device)
    return (s.conj().unsqueeze(1) * ifft2c(m * y)).sum(dim=2)


def sense_normal(x: Tensor, smaps: Tensor, mask: Tensor) -> Tensor:
    """Eᴴ E x = Σ_c conj(S_c) · Fᴴ(M · F(S_c · x)) (M² = M for a binary mask; M² in general).

    Args: as :func:`sense_forward`. Returns: (B, T, H, W), x's dtype.
    """
    return sense_adjoint(sense_forward(x, smaps, mask), smaps, mask)


def coil_combine(images: Tensor, smaps: Tensor, *, eps: float = 1e-12) -> Tensor:
    """SENSE coil combination: x = Σ_c conj(S_c) I_c / Σ_c |S_c|² (0 where Σ_c |S_c|² ≤ eps).

    Args:
        images: complex (B, T, C, H, W) coil images.
        smaps: (B, C, H, W) or (1, C, H, W).

    Returns: (B, T, H, W), images' dtype.
    """
    _check_complex(images, "images", 5, "(B, T, C, H, W)")
    s = _smaps_for(smaps, images.shape[0], tuple(images.shape[-2:]), images.dtype)
    if s.shape[1] != images.shape[2]:
        raise ValueError(f"smaps has {s.shape[1]} coils but images has {images.shape[2]}")
    num = (s.conj().unsqueeze(1) * images).sum(dim=2)
    den = (s.abs() ** 2).sum(dim=1, keepdim=True)
    safe = torch.where(den > eps, den, torch.ones_like(den))
    return torch.where(den > eps, num / safe, torch.zeros_like(num))


def rss(images: Tensor, dim: int = 2) -> Tensor:
    """Root sum of squares over the coil dimension: sqrt(Σ_c |I_c|²).

    Args:
        images: real or complex tensor, coils along ``dim`` (default 2, as in (B, T, C, H, W)).

    Returns: real tensor with ``dim`` removed.
    """
    if not isinstance(images, Tensor):
        raise TypeError(f"images must be a torch.Tensor, got {type(images).__name__}")
    if not -images.dim() <= dim < images.dim():
        raise ValueError(f"dim must index a dimension of images {tuple(images.shape)}, got {dim}")
    return (images.abs() ** 2).sum(dim=dim).sqrt()
