"""Gradient reversal (Ganin & Lempitsky, 2015), shared by EMERT's modality-adversarial decoupling and
FER-GCD's adversarial debiasing head, and DANN's schedule for its coefficient."""

from __future__ import annotations

import math
from typing import Any

import torch

__all__ = ["GradientReversal", "grad_reverse", "grl_coefficient"]


class GradientReversal(torch.autograd.Function):
    """Identity forward; backward multiplies the incoming gradient by −λ:  y = x,  ∂L/∂x = −λ·∂L/∂y."""

    @staticmethod
    def forward(ctx: Any, x: torch.Tensor, coeff: float) -> torch.Tensor:
        ctx.coeff = float(coeff)
        return x.view_as(x)

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None]:
        return -ctx.coeff * grad, None


def grad_reverse(x: torch.Tensor, coeff: float = 1.0) -> torch.Tensor:
    """``GradientReversal.apply(x, coeff)``, checking that x is a tensor and λ a finite number >= 0."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"x must be a tensor, got {type(x).__name__}")
    if not isinstance(coeff, int | float) or not math.isfinite(coeff) or coeff < 0:
        raise ValueError(f"coeff (the reversal coefficient λ) must be a finite number >= 0, got {coeff!r}")
    return GradientReversal.apply(x, coeff)


def grl_coefficient(progress: float, max_coeff: float = 1.0, gamma: float = 10.0) -> float:
    """DANN's schedule for the reversal coefficient:

        λ(p) = λ_max · (2 / (1 + exp(−γ·p)) − 1),   p = step / total_steps ∈ [0, 1]

    λ(0) = 0 (no adversarial signal while the heads are random), rising smoothly to ≈ λ_max
    (0.9999·λ_max at p = 1 with γ = 10)."""
    if not 0.0 <= progress <= 1.0:
        raise ValueError(f"progress must be in [0, 1], got {progress}")
    if max_coeff < 0 or gamma <= 0:
        raise ValueError(f"need max_coeff >= 0 and gamma > 0, got {max_coeff}, {gamma}")
    return float(max_coeff * (2.0 / (1.0 + math.exp(-gamma * progress)) - 1.0))
