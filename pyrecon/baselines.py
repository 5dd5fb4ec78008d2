"""Classical reconstructions from multi-coil Cartesian k-t data: zero-filled, CG-SENSE, L+S.

All take y (B, T, C, H, W) masked k-space, coil maps (B|1, C, H, W) and the real mask broadcastable to
(B, T, H, W), with the SENSE operator E of :mod:`pyrecon.ops.sense`, and return images (B, T, H, W).
"""

from __future__ import annotations

import numbers

import torch
from torch import Tensor

from kernels import nvtx
from pyrecon.ops.cg import conjugate_gradient
from pyrecon.ops.fft import ifft2c
from pyrecon.ops.sense import _mask_for, coil_combine, sense_adjoint, sense_forward, sense_normal


def zero_filled(y: Tensor, smaps: Tensor, mask: Tensor) -> Tensor:
    """Zero-filled SENSE combination: x = Σ_c conj(S_c) Fᴴ(M y_c) / Σ_c |S_c|² (= Eᴴ y for maps with
    Σ_c |S_c|² = 1)."""
    if not isinstance(y, Tensor) or not y.is_complex() or y.dim() != 5:
        raise ValueError(f"y must be complex (B, T, C, H, W), got {getattr(y, 'shape', type(y))}")
    b, t, _, h, w = y.shape
    m = _mask_for(mask, (b, t, h, w), y.real.dtype, y.device)
    return coil_combine(ifft2c(m * y), smaps)


def _check_iters(iters) -> int:
    if isinstance(iters, bool) or not isinstance(iters, numbers.Integral) or iters < 1:
        raise ValueError(f"iters must be an integer >= 1, got {iters!r}")
    return int(iters)


def _check_nonneg(value, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or value < 0:
        raise ValueError(f"{name} must be a number >= 0, got {value!r}")
    return float(value)


def cg_sense(y: Tensor, smaps: Tensor, mask: Tensor, *, iters: int = 20, lam: float = 1e-3) -> Tensor:
    """CG-SENSE with Tikhonov regularization: x = argmin ‖E x − y‖² + λ‖x‖², i.e. (EᴴE + λI) x = Eᴴ y,
    solved by :func:`pyrecon.ops.cg.conjugate_gradient` from x₀ = 0 (one CG per batch item; frames
    are independent given the per-frame masks but share the CG step sizes of their item).

    Args: y, smaps, mask as the module says; iters (>= 1) CG steps; lam = λ >= 0 (relative to ‖E‖ ≤ 1
    for normalized maps). Returns (B, T, H, W).
    """
    iters, lam = _check_iters(iters), _check_nonneg(lam, "lam")
    rhs = sense_adjoint(y, smaps, mask)
    with nvtx.range("pyrecon.cg_sense"):
        return conjugate_gradient(lambda v: sense_normal(v, smaps, mask), rhs, iters=iters, tol=1e-7, lam=lam)


def _soft(z: Tensor, thresh: Tensor | float) -> Tensor:
    """Complex soft threshold: z · max(|z| − τ, 0) / |z| (0 where z = 0)."""
    mag = z.abs()
    scale = torch.clamp(mag - thresh, min=0) / torch.where(mag > 0, mag, torch.ones_like(mag))
    return z * scale


def _tfft(x: Tensor) -> Tensor:
    """Centred orthonormal FFT along time (dim 1)."""
    return torch.fft.fftshift(torch.fft.fft(torch.fft.ifftshift(x, dim=1), dim=1, norm="ortho"), dim=1)


def _tifft(x: Tensor) -> Tensor:
    return torch.fft.fftshift(torch.fft.ifft(torch.fft.ifftshift(x, dim=1), dim=1, norm="ortho"), dim=1)


def lplus_s(
    y: Tensor,
    smaps: Tensor,
    mask: Tensor,
    *,
    iters: int = 50,
    lam_l: float = 0.1,
    lam_s: float = 0.005,
    tol: float = 1e-4,
) -> Tensor:
    """Low-rank plus sparse reconstruction (R. Otazu, E. Candès, D. Sodickson, MRM 73:1125, 2015).

    Solves min ½‖E(L + S) − y‖² + λ_L ‖L‖_* + λ_S ‖T S‖₁ (L, S reshaped per item as the T × HW
    Casorati matrix; T the orthonormal temporal FFT) by the authors' iteration, from M₀ = Eᴴ y,
    S₀ = 0, L₋₁ = M₀:
        L_k = SVT_{λ_L σ₁}(M_{k−1} − S_{k−1})          (singular values soft-thresholded by λ_L · σ₁)
        S_k = Tᴴ Λ_{τ_S}(T(M_{k−1} − L_{k−1}))       (complex soft threshold of the temporal spectrum)
        M_k = L_k + S_k − Eᴴ(E(L_k + S_k) − y)       (a gradient step of size 1: ‖E‖ ≤ 1 for normalized maps)
    with τ_S = λ_S · max |T M₀| (both thresholds relative, so the defaults do not depend on the data's
    scale). Stops after ``iters`` steps or when ‖M_k − M_{k−1}‖ ≤ tol · ‖M_{k−1}‖ for every item.

    Args: y, smaps, mask as the module says; iters >= 1; lam_l, lam_s >= 0 (relative, as above); tol >= 0.
    Returns: L + S, (B, T, H, W).
    """
    iters = _check_iters(iters)
    lam_l, lam_s, tol = (
        _check_nonneg(lam_l, "lam_l"),
        _check_nonneg(lam_s, "lam_s"),
        _check_nonneg(tol, "tol"),
    )
    m = sense_adjoint(y, smaps, mask)
    b, t, h, w = m.shape
    tau_s = lam_s * _tfft(m).abs().reshape(b, -1).amax(dim=1).reshape(b, 1, 1, 1)
    s = torch.zeros_like(m)
    l_prev = m
    with nvtx.range("pyrecon.lplus_s"):
        for _ in range(iters):
            u, sv, vh = torch.linalg.svd((m - s).reshape(b, t, h * w), full_matrices=False)
            sv = torch.clamp(sv - lam_l * sv[:, :1], min=0)
            low = ((u * sv.unsqueeze(1).to(u.dtype)) @ vh).reshape(b, t, h, w)
            s = _tifft(_soft(_tfft(m - l_prev), tau_s))
            ls = low + s
            m_new = ls - sense_adjoint(sense_forward(ls, smaps, mask) - y, smaps, mask)
            change = (m_new - m).reshape(b, -1).norm(dim=1) / m.reshape(b, -1).norm(dim=1).clamp_min(1e-30)
            m, l_prev = m_new, low
            if bool((change <= tol).all()):
                break
    return low + s
