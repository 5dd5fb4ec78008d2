"""Conjugate gradient for (A + λI) x = b with any Hermitian positive semi-definite operator A."""

from __future__ import annotations

import numbers
from collections.abc import Callable

import torch
from torch import Tensor


def _batch_dot(a: Tensor, b: Tensor) -> Tensor:
    """Re⟨a, b⟩ = Re Σ conj(a)·b per leading item, shaped (N, 1, ..., 1) to broadcast against a."""
    prod = (a.conj() * b).real if a.is_complex() else a * b
    return prod.reshape(prod.shape[0], -1).sum(dim=1).reshape((-1,) + (1,) * (a.dim() - 1))


def conjugate_gradient(
    normal_op: Callable[[Tensor], Tensor],
    rhs: Tensor,
    x0: Tensor | None = None,
    *,
    iters: int = 10,
    tol: float = 1e-6,
    lam: float = 0.0,
) -> Tensor:
    """Solve (A + λI) x = b by conjugate gradient, one independent CG per leading item of ``rhs``.

    With r₀ = b − (A + λI) x₀, p₀ = r₀, per item:
        α = ‖r‖² / Re⟨p, (A + λI) p⟩,   x ← x + α p,   r ← r − α (A + λI) p,
        β = ‖r_new‖² / ‖r‖²,           p ← r + β p.
    Each item of the leading dimension has its own α and β (a batch of independent systems, so one
    badly conditioned item does not slow the others); the loop stops after ``iters`` steps or once
    every item has ‖r‖ ≤ tol · ‖b‖. Items whose residual is exactly zero are frozen (α = β = 0).
    Written out of place, so gradients flow through the iterations (unrolled networks).

    Args:
        normal_op: callable x ↦ A x, A Hermitian PSD, shape-preserving (e.g. SENSE EᴴE).
        rhs: real or complex tensor b (N, ...), N the independent systems (a 0-d or 1-d rhs is one system).
        x0: initial guess, like rhs (default zeros).
        iters: maximum number of iterations (>= 0).
        tol: relative residual at which to stop (>= 0; 0 runs all iterations).
        lam: Tikhonov weight λ >= 0.

    Returns: x, like rhs.
    """
    if not callable(normal_op):
        raise TypeError(f"normal_op must be callable, got {type(normal_op).__name__}")
    if not isinstance(rhs, Tensor) or not (rhs.is_complex() or rhs.is_floating_point()):
        raise TypeError(f"rhs must be a real or complex tensor, got {getattr(rhs, 'dtype', type(rhs))}")
    if isinstance(iters, bool) or not isinstance(iters, numbers.Integral) or iters < 0:
        raise ValueError(f"iters must be an integer >= 0, got {iters!r}")
    if not isinstance(tol, numbers.Real) or tol < 0:
        raise ValueError(f"tol must be a number >= 0, got {tol!r}")
    if not isinstance(lam, numbers.Real) or lam < 0:
        raise ValueError(f"lam must be a number >= 0, got {lam!r}")
    if x0 is not None and (not isinstance(x0, Tensor) or x0.shape != rhs.shape or x0.dtype != rhs.dtype):
        raise ValueError(f"x0 must be a tensor shaped {tuple(rhs.shape)} of {rhs.dtype}, got {x0!r:.80}")
    shape = rhs.shape
    b = rhs.reshape(1, -1) if rhs.dim() < 2 else rhs

    def op(v: Tensor) -> Tensor:
        out = normal_op(v.reshape(shape)).reshape(v.shape)
        return out + lam * v if lam else out

    if x0 is None:
        x = torch.zeros_like(b)
        r = b
    else:
        x = x0.reshape(b.shape)
        r = b - op(x)
    p = r
    rs = _batch_dot(r, r)
    stop = (float(tol) ** 2) * _batch_dot(b, b)
    for _ in range(int(iters)):
        if tol and bool((rs <= stop).all()):
            break
        ap = op(p)
        pap = _batch_dot(p, ap)
        live = pap > 0
        alpha = torch.where(live, rs / torch.where(live, pap, torch.ones_like(pap)), torch.zeros_like(pap))
        x = x + alpha * p
        r = r - alpha * ap
        rs_new = _batch_dot(r, r)
        live = rs > 0
        beta = torch.where(live, rs_new / torch.where(live, rs, torch.ones_like(rs)), torch.zeros_like(rs))
        p = r + beta * p
        rs = rs_new
    return x.reshape(shape)
