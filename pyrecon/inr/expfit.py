"""Voxel-wise mono-exponential fit S(τ) = M0·exp(−τ/T1rho), vectorized in torch.

Two stages, both closed-form per voxel so that every voxel of a map is fitted at once:

1. ``loglinear_init``: weighted linear regression of log S on τ,
       log S_k = a − R·τ_k,   minimize Σ_k w_k (log S_k − a + R τ_k)²,  w_k = S_k²,
   (weights S² make the log-domain residuals approximate the signal-domain ones, since
   δ log S ≈ δS / S). M0 = exp(a), T1rho = 1/R. Exact on noiseless data.
2. ``nls_refine``: Levenberg–Marquardt on the signal-domain least squares
       C(M0, R) = ½ Σ_k (S_k − M0·exp(−R τ_k))²
   with the 2×2 normal equations (JᵀJ + λ·diag(JᵀJ)) δ = −Jᵀr solved in closed form per voxel and
   a per-voxel λ (×1/3 on an accepted step, ×4 on a rejected one).

``fit_monoexp`` chains both and returns (M0, T1rho). Rates R are kept in [1/t1_max, 1/t1_min];
voxels whose signal is not positive at every τ (background) get M0 = 0 and T1rho = 0.
"""

from __future__ import annotations

import torch
from torch import Tensor

__all__ = ["fit_monoexp", "loglinear_init", "monoexp", "nls_refine"]


def monoexp(m0: Tensor, t1rho: Tensor, tsl: Tensor) -> Tensor:
    """S[k, ...] = m0[...]·exp(−tsl[k] / t1rho[...]) → (K, ...)."""
    tsl = tsl.reshape((-1,) + (1,) * m0.dim()).to(m0.dtype)
    return m0 * torch.exp(-tsl / t1rho)


def _check(signal: Tensor, tsl: Tensor) -> tuple[Tensor, Tensor]:
    if not isinstance(signal, Tensor):
        raise TypeError(f"signal must be a torch.Tensor, got {type(signal).__name__}")
    if not isinstance(tsl, Tensor):
        tsl = torch.as_tensor(tsl)
    if signal.is_complex():
        signal = signal.abs()
    if not signal.is_floating_point():
        raise TypeError(f"signal must be real or complex floating point, got {signal.dtype}")
    if tsl.dim() != 1 or tsl.numel() < 2:
        raise ValueError(f"tsl must be a 1-D tensor of >= 2 spin-lock times, got shape {tuple(tsl.shape)}")
    if signal.dim() < 1 or signal.size(0) != tsl.numel():
        raise ValueError(
            f"signal must have shape (K, ...) with K = len(tsl) = {tsl.numel()}, got {tuple(signal.shape)}"
        )
    if not bool(torch.isfinite(tsl).all()) or bool((tsl < 0).any()):
        raise ValueError("tsl must be finite and >= 0")
    if torch.unique(tsl).numel() < 2:
        raise ValueError("tsl must hold at least two distinct spin-lock times")
    return signal, tsl.to(signal.device, signal.dtype)


def loglinear_init(signal: Tensor, tsl: Tensor, *, t1_min: float = 1e-3, t1_max: float = 1e4
                   ) -> tuple[Tensor, Tensor, Tensor]:
    """Weighted log-linear fit (weights S²). ``signal`` (K, ...) real ≥ 0 (complex: its magnitude),
    ``tsl`` (K,). Returns (m0, t1rho, valid) of shape (...); ``valid`` is False where any S_k <= 0
    (there m0 = 0, t1rho = 0)."""
    s, t = _check(signal, tsl)
    valid = (s > 0).all(dim=0)
    safe = torch.where(s > 0, s, torch.ones_like(s))
    logs = torch.log(safe)
    w = torch.where(s > 0, s * s, torch.zeros_like(s))
    tt = t.reshape((-1,) + (1,) * (s.dim() - 1))
    sw, swt, swtt = w.sum(0), (w * tt).sum(0), (w * tt * tt).sum(0)
    swy, swty = (w * logs).sum(0), (w * tt * logs).sum(0)
    det = sw * swtt - swt * swt
    det_safe = torch.where(det > 0, det, torch.ones_like(det))
    slope = (sw * swty - swt * swy) / det_safe  # = −R
    intercept = (swtt * swy - swt * swty) / det_safe
    rate = (-slope).clamp(1.0 / t1_max, 1.0 / t1_min)
    valid = valid & (det > 0)
    m0 = torch.where(valid, torch.exp(intercept), torch.zeros_like(intercept))
    t1 = torch.where(valid, 1.0 / rate, torch.zeros_like(rate))
    return m0, t1, valid


def nls_refine(signal: Tensor, tsl: Tensor, m0: Tensor, t1rho: Tensor, *, iters: int = 30,
               t1_min: float = 1e-3, t1_max: float = 1e4, valid: Tensor | None = None
               ) -> tuple[Tensor, Tensor]:
    """Levenberg–Marquardt refinement of (m0, t1rho) (shape (...)) on ½ Σ_k (S_k − m0·e^{−τ_k/t1rho})².
    Voxels where ``valid`` is False (default: t1rho > 0) are returned unchanged."""
    s, t = _check(signal, tsl)
    if m0.shape != s.shape[1:] or t1rho.shape != s.shape[1:]:
        raise ValueError(f"m0 and t1rho must have shape {tuple(s.shape[1:])}, got "
                         f"{tuple(m0.shape)} and {tuple(t1rho.shape)}")
    if iters < 0:
        raise ValueError(f"iters must be >= 0, got {iters}")
    if valid is None:
        valid = t1rho > 0
    tt = t.reshape((-1,) + (1,) * (s.dim() - 1))
    a = m0.to(s.dtype).clone()
    r = torch.where(valid, 1.0 / torch.where(valid, t1rho, torch.ones_like(t1rho)), torch.ones_like(t1rho))
    r = r.to(s.dtype)
    lam = torch.full_like(a, 1e-3)

    def cost(a_, r_):
        return 0.5 * ((s - a_ * torch.exp(-r_ * tt)) ** 2).sum(0)

    c = cost(a, r)
    for _ in range(iters):
        e = torch.exp(-r * tt)
        res = a * e - s  # model − data
        ja, jr = e, -a * tt * e  # ∂model/∂a, ∂model/∂r
        haa, har, hrr = (ja * ja).sum(0), (ja * jr).sum(0), (jr * jr).sum(0)
        ga, gr = (ja * res).sum(0), (jr * res).sum(0)
        daa, drr = haa * (1 + lam), hrr * (1 + lam)
        det = daa * drr - har * har
        det = torch.where(det.abs() > 0, det, torch.ones_like(det))
        da = -(drr * ga - har * gr) / det
        dr = -(daa * gr - har * ga) / det
        a_new = a + da
        r_new = (r + dr).clamp(1.0 / t1_max, 1.0 / t1_min)
        c_new = cost(a_new, r_new)
        accept = valid & torch.isfinite(c_new) & (c_new <= c)
        a = torch.where(accept, a_new, a)
        r = torch.where(accept, r_new, r)
        c = torch.where(accept, c_new, c)
        lam = torch.where(accept, lam / 3, lam * 4).clamp(1e-12, 1e12)
    t1 = torch.where(valid, 1.0 / r, torch.zeros_like(r))
    return torch.where(valid, a, torch.zeros_like(a)), t1


def fit_monoexp(signal: Tensor, tsl: Tensor, *, iters: int = 30, t1_min: float = 1e-3,
                t1_max: float = 1e4, mask: Tensor | None = None) -> tuple[Tensor, Tensor]:
    """Fit S(τ) = M0·exp(−τ/T1rho) at every voxel: log-linear init then ``iters`` LM steps.

    Args:
        signal: (K, ...) magnitudes (a complex series is fitted on its magnitude), K = len(tsl).
        tsl: (K,) spin-lock times (any unit; T1rho comes back in the same unit).
        mask: optional bool (...) — voxels outside get M0 = T1rho = 0.
    Returns:
        (m0, t1rho), each of shape (...).
    """
    s, t = _check(signal, tsl)
    m0, t1, valid = loglinear_init(s, t, t1_min=t1_min, t1_max=t1_max)
    if mask is not None:
        if mask.shape != s.shape[1:]:
            raise ValueError(f"mask must have shape {tuple(s.shape[1:])}, got {tuple(mask.shape)}")
        valid = valid & mask.to(torch.bool)
    m0, t1 = nls_refine(s, t, m0, t1, iters=iters, t1_min=t1_min, t1_max=t1_max, valid=valid)
    return m0, t1
