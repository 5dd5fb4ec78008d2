"""Non-Cartesian multi-coil SENSE on the pykernels NUFFT, with a Toeplitz normal operator.

Images x (B, T, H, W) complex, coil maps S (B, C, H, W), a trajectory k (M, 2) shared by all frames or
(T, M, 2) one per frame, in radians per pixel in [-π, π] (k[..., 0] pairs with image axis -2 (ky),
k[..., 1] with axis -1 (kx), as :func:`pyrecon.sampling.radial_trajectory` returns). With pixel n
centred (index n + N//2) and the orthonormal scale 1/sqrt(HW), so that on the Cartesian grid
k = 2π(j − N//2)/N the operator equals :func:`pyrecon.ops.fft.fft2c` (tested):

    E x:    y[b, t, c, j] = (HW)^{-1/2} Σ_n S[b, c, n] x[b, t, n] exp(−i k[t, j]·n)      (type-2 NUFFT)
    Eᴴ W y: x[b, t, n]    = (HW)^{-1/2} Σ_c conj(S[b, c, n]) Σ_j w[t, j] y[b, t, c, j] exp(+i k[t, j]·n)

EᴴWE is applied without gridding through its Toeplitz embedding (:func:`kernels.nufft_toeplitz_kernel`,
:func:`kernels.nufft_normal`): build the kernel once per trajectory with :func:`nufft_sense_kernel`,
then :func:`nufft_sense_normal` costs one FFT pair on the 2H × 2W grid per call. All are differentiable
in x (and y) and run on any device the NUFFT backends support.
"""

from __future__ import annotations

import math

from torch import Tensor

import kernels


def _check_traj(k: Tensor, frames: int | None) -> Tensor:
    """k as (T|1, M, 2) float."""
    if not isinstance(k, Tensor) or not k.is_floating_point():
        raise TypeError(
            f"k must be a float tensor (M, 2) or (T, M, 2) in radians, got {getattr(k, 'dtype', k)}"
        )
    if k.dim() == 2:
        k = k.unsqueeze(0)
    if k.dim() != 3 or k.shape[-1] != 2:
        raise ValueError(f"k must be (M, 2) or (T, M, 2), got shape {tuple(k.shape)}")
    if frames is not None and k.shape[0] not in (1, frames):
        raise ValueError(f"k has {k.shape[0]} trajectories but the data has T = {frames} frames")
    return k


def _check_images(x: Tensor, smaps: Tensor) -> tuple[int, int, int, int, int]:
    if not isinstance(x, Tensor) or not x.is_complex() or x.dim() != 4:
        raise ValueError(
            f"x must be complex (B, T, H, W), got {getattr(x, 'dtype', type(x))} {getattr(x, 'shape', '')}"
        )
    return _check_maps(smaps, x.shape[0], tuple(x.shape[-2:])) + (x.shape[1],)


def _check_maps(smaps: Tensor, batch: int, hw: tuple[int, ...]) -> tuple[int, int, int, int]:
    if not isinstance(smaps, Tensor) or smaps.dim() != 4 or not smaps.is_complex():
        raise ValueError(f"smaps must be complex (B, C, H, W), got {getattr(smaps, 'shape', type(smaps))}")
    if smaps.shape[0] not in (1, batch) or tuple(smaps.shape[-2:]) != hw:
        raise ValueError(
            f"smaps must be (B|1, C, {hw[0]}, {hw[1]}) for batch {batch}, got {tuple(smaps.shape)}"
        )
    return batch, smaps.shape[1], hw[0], hw[1]


def _coil_images(x: Tensor, smaps: Tensor) -> Tensor:
    """S_c x as (T, B·C, H, W): frames are the NUFFT batch (their own trajectories), B·C its channels."""
    b, t, h, w = x.shape
    prod = smaps.to(x.dtype).unsqueeze(1) * x.unsqueeze(2)  # (B, T, C, H, W)
    return prod.transpose(0, 1).reshape(t, -1, h, w)


def _combine(images: Tensor, smaps: Tensor, batch: int) -> Tensor:
    """Σ_c conj(S_c) I_c from (T, B·C, H, W) back to (B, T, H, W)."""
    t, _, h, w = images.shape
    per = images.reshape(t, batch, -1, h, w).transpose(0, 1)  # (B, T, C, H, W)
    return (smaps.to(images.dtype).conj().unsqueeze(1) * per).sum(dim=2)


def nufft_sense_forward(x: Tensor, smaps: Tensor, k: Tensor, *, tol: float = 1e-6) -> Tensor:
    """E x: y[b, t, c, j] = (HW)^{-1/2} Σ_n S_c[n] x_t[n] exp(−i k[t, j]·n).

    Args: x complex (B, T, H, W); smaps (B|1, C, H, W); k (M, 2) or (T, M, 2) radians; tol NUFFT accuracy.
    Returns: (B, T, C, M), x's dtype.
    """
    b, c, h, w, t = _check_images(x, smaps)
    kt = _check_traj(k, t)
    y = kernels.nufft2d_type2(_coil_images(x, smaps), kt if kt.shape[0] == t else kt[0], tol=tol)
    return (y / math.sqrt(h * w)).reshape(t, b, c, -1).transpose(0, 1)


def nufft_sense_adjoint(
    y: Tensor, smaps: Tensor, k: Tensor, *, weights: Tensor | None = None, tol: float = 1e-6
) -> Tensor:
    """Eᴴ W y: x[b, t, n] = (HW)^{-1/2} Σ_c conj(S_c[n]) Σ_j w[t, j] y[b, t, c, j] exp(+i k[t, j]·n).

    Args: y complex (B, T, C, M); smaps (B|1, C, H, W) (sets H, W); k (M, 2) or (T, M, 2);
    weights optional real (M,) or (T, M) density weights W (default none, the plain adjoint).
    Returns: (B, T, H, W), y's dtype.
    """
    if not isinstance(y, Tensor) or not y.is_complex() or y.dim() != 4:
        raise ValueError(f"y must be complex (B, T, C, M), got {getattr(y, 'shape', type(y))}")
    b, t, c, m = y.shape
    if not isinstance(smaps, Tensor) or smaps.dim() != 4:
        raise ValueError(f"smaps must be complex (B, C, H, W), got {getattr(smaps, 'shape', type(smaps))}")
    _, cs, h, w = _check_maps(smaps, b, tuple(smaps.shape[-2:]))
    if cs != c:
        raise ValueError(f"smaps has {cs} coils but y has {c}")
    kt = _check_traj(k, t)
    if kt.shape[1] != m:
        raise ValueError(f"y has M = {m} samples but k has {kt.shape[1]}")
    if weights is not None:
        if (
            not isinstance(weights, Tensor)
            or weights.is_complex()
            or weights.shape not in ((m,), (kt.shape[0], m), (t, m))
        ):
            raise ValueError(
                f"weights must be a real (M,) or (T, M) tensor, got {getattr(weights, 'shape', weights)}"
            )
        wt = weights.reshape(-1, m)  # (1|T, M)
        y = y * wt.to(y.real.dtype)[None, :, None, :]
    samples = y.transpose(0, 1).reshape(t, b * c, m)
    images = kernels.nufft2d_type1(samples, kt if kt.shape[0] == t else kt[0], (h, w), tol=tol)
    return _combine(images / math.sqrt(h * w), smaps, b)


def nufft_sense_kernel(
    k: Tensor, shape: tuple[int, int], *, weights: Tensor | None = None, tol: float = 1e-6
) -> Tensor:
    """The Toeplitz kernel of EᴴWE for one coil-free image: FFT of the PSF on the 2H × 2W grid divided
    by HW (the operator's scale), shape (T|1, 2H, 2W) — pass it to :func:`nufft_sense_normal`.

    Args: k (M, 2) or (T, M, 2); shape (H, W); weights optional real (M,) or (T, M); tol NUFFT accuracy.
    """
    kt = _check_traj(k, None)
    if len(shape) != 2:
        raise ValueError(f"shape must be (H, W), got {shape!r}")
    if weights is not None and weights.dim() == 2 and weights.shape[0] != kt.shape[0]:
        kt = kt.expand(weights.shape[0], -1, -1)
    kernel = kernels.nufft_toeplitz_kernel(kt, tuple(shape), weights=weights, tol=tol)
    return kernel / (shape[0] * shape[1])


def nufft_sense_normal(x: Tensor, smaps: Tensor, kernel: Tensor) -> Tensor:
    """EᴴWE x = Σ_c conj(S_c) · T(S_c x), T the Toeplitz operator of ``kernel`` (no gridding).

    Args: x complex (B, T, H, W); smaps (B|1, C, H, W); kernel (T|1, 2H, 2W) from :func:`nufft_sense_kernel`.
    Returns: (B, T, H, W), x's dtype.
    """
    b, c, h, w, t = _check_images(x, smaps)
    if not isinstance(kernel, Tensor) or kernel.dim() != 3 or kernel.shape[0] not in (1, t):
        raise ValueError(
            f"kernel must be (T|1, 2H, 2W) from nufft_sense_kernel, got {getattr(kernel, 'shape', kernel)}"
        )
    return _combine(kernels.nufft_normal(_coil_images(x, smaps), kernel), smaps, b)


def nufft_density_weights(k: Tensor, shape: tuple[int, int], *, iters: int = 10) -> Tensor:
    """Pipe–Menon density compensation (:func:`kernels.density_compensation`) scaled by H·W for this
    module's orthonormal scale, so that EᴴWE ≈ I for dense sampling (a full Cartesian grid gets ≈ 0.86,
    the kernel's documented lattice factor). Returns (M,) for (M, 2) k, else (T, M)."""
    if not isinstance(k, Tensor) or k.dim() not in (2, 3):
        raise ValueError(f"k must be (M, 2) or (T, M, 2), got {getattr(k, 'shape', k)}")
    return kernels.density_compensation(k, tuple(shape), iters) * (shape[0] * shape[1])
