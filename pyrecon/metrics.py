"""Image-quality metrics for (dynamic) reconstructions: PSNR, SSIM, NMSE.

``ref`` and ``rec`` are tensors (..., H, W), real or complex, with the same shape; every leading index
is a frame. PSNR and NMSE are computed over the whole tensor (one number for a series); SSIM is
computed per frame on magnitudes and averaged over frames. The peak (PSNR) and the data range (SSIM)
are max |ref| over the whole series.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor


def _pair(ref: Tensor, rec: Tensor) -> tuple[Tensor, Tensor]:
    for name, t in (("ref", ref), ("rec", rec)):
        if not isinstance(t, Tensor):
            raise TypeError(f"{name} must be a torch.Tensor, got {type(t).__name__}")
        if not (t.is_complex() or t.is_floating_point()):
            raise TypeError(f"{name} must be a real or complex floating tensor, got {t.dtype}")
        if t.dim() < 2:
            raise ValueError(f"{name} must be (..., H, W), got shape {tuple(t.shape)}")
    if ref.shape != rec.shape:
        raise ValueError(
            f"ref and rec must have the same shape, got {tuple(ref.shape)} and {tuple(rec.shape)}"
        )
    ref, rec = ref.detach(), rec.detach()
    wide = torch.complex128 if (ref.is_complex() or rec.is_complex()) else torch.float64
    return ref.to(wide), rec.to(wide)


def psnr(ref: Tensor, rec: Tensor, *, mode: str = "magnitude") -> float:
    """Peak signal-to-noise ratio in dB: 10·log10(peak² / MSE), peak = max |ref|.

    mode="magnitude" (the standard one): MSE = mean((|rec| − |ref|)²).
    mode="complex" (the DUN-SRE authors' convention): the complex error is split into its real and
        imaginary parts and the mean runs over both, MSE = mean(|rec − ref|²) / 2 — about 3 dB above a
        PSNR on |rec − ref|² for the same error. (The authors' code takes the peak as the larger of
        max |ref| and max |rec|; here it is max |ref| in both modes, which differs only when rec
        overshoots the reference's maximum.)

    Returns: a float (inf when rec equals ref).
    """
    ref, rec = _pair(ref, rec)
    if mode == "magnitude":
        mse = ((rec.abs() - ref.abs()) ** 2).mean()
    elif mode == "complex":
        mse = ((rec - ref).abs() ** 2).mean() / 2
    else:
        raise ValueError(f"mode must be 'magnitude' or 'complex', got {mode!r}")
    peak = ref.abs().max()
    if peak == 0:
        raise ValueError("ref is all zeros: PSNR has no peak")
    if mse == 0:
        return math.inf
    return float(10 * torch.log10(peak**2 / mse))


def nmse(ref: Tensor, rec: Tensor) -> float:
    """Normalized mean squared error ‖rec − ref‖² / ‖ref‖² over the whole tensor (complex error)."""
    ref, rec = _pair(ref, rec)
    den = (ref.abs() ** 2).sum()
    if den == 0:
        raise ValueError("ref is all zeros: NMSE is undefined")
    return float(((rec - ref).abs() ** 2).sum() / den)


def ssim(ref: Tensor, rec: Tensor, *, win_size: int = 7, data_range: float | None = None) -> float:
    """Structural similarity of |rec| against |ref|, per frame, averaged over frames.

    For a frame, with local means μ, variances σ² and covariance σ_xy over a win×win uniform window
    (sample statistics, N/(N−1)), C1 = (0.01·R)², C2 = (0.03·R)²:
        SSIM = mean over windows of (2 μ_x μ_y + C1)(2 σ_xy + C2) / ((μ_x² + μ_y² + C1)(σ_x² + σ_y² + C2)),
    the windows being all win×win patches inside the frame — the same number as
    skimage.metrics.structural_similarity(ref, rec, data_range=R) with its defaults (tested).

    Args:
        ref, rec: (..., H, W) real or complex, H and W >= win_size.
        win_size: odd window size (default 7).
        data_range: R; default max |ref| over the whole series.
    """
    ref, rec = _pair(ref, rec)
    if not isinstance(win_size, int) or win_size < 3 or win_size % 2 == 0:
        raise ValueError(f"win_size must be an odd integer >= 3, got {win_size!r}")
    h, w = ref.shape[-2:]
    if h < win_size or w < win_size:
        raise ValueError(f"frames must be at least {win_size}x{win_size}, got {h}x{w}")
    x = ref.abs().reshape(-1, 1, h, w)
    y = rec.abs().reshape(-1, 1, h, w)
    r = float(x.max()) if data_range is None else float(data_range)
    if r <= 0:
        raise ValueError(f"data_range must be > 0, got {r}")

    def mean(v: Tensor) -> Tensor:
        return F.avg_pool2d(v, win_size, stride=1)

    n = win_size**2
    cov = n / (n - 1)
    ux, uy = mean(x), mean(y)
    vx = cov * (mean(x * x) - ux * ux)
    vy = cov * (mean(y * y) - uy * uy)
    vxy = cov * (mean(x * y) - ux * uy)
    c1, c2 = (0.01 * r) ** 2, (0.03 * r) ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux**2 + uy**2 + c1) * (vx + vy + c2))
    return float(s.mean(dim=(1, 2, 3)).mean())
