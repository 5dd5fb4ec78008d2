"""Newton–Schulz orthogonalization in plain torch: the specification of ``kernels.newton_schulz``.

For one matrix G of shape (m, n), with the work done on Gᵀ when m > n::

    X = G / (‖G‖_F + eps)
    repeat for (a, b, c) in coefficients:
        A = X Xᵀ
        B = b·A + c·A²
        X = a·X + B·X

Each step maps every singular value σ of X to p(σ) = aσ + bσ³ + cσ⁵ and keeps the singular vectors,
so the result is U p(…p(σ)…) Vᵀ: the iteration only ever acts on singular values.

float32/float64 compute in their own precision. float16/bfloat16 compute in the input dtype (torch's
matmul accumulates in fp32); the Frobenius norm is taken in fp32 (fp64 for float64).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

Coefficients = Sequence[tuple[float, float, float]]


def newton_schulz_core(X: Tensor, coeffs: Coefficients, eps: float) -> Tensor:
    """The iteration on a batch ``X`` of shape (B, m, n) with m <= n; returns a new tensor."""
    acc = torch.float64 if X.dtype == torch.float64 else torch.float32
    norm = X.to(acc).norm(dim=(-2, -1), keepdim=True)
    X = (X.to(acc) / (norm + eps)).to(X.dtype)
    for a, b, c in coeffs:
        A = X @ X.mT
        B = b * A + c * (A @ A)
        X = a * X + B @ X
    return X


def newton_schulz(
    G: Tensor,
    steps: int = 5,
    coefficients: tuple[float, float, float] | Coefficients = (3.4445, -4.7750, 2.0315),
    eps: float = 1e-7,
) -> Tensor:
    """Reference for ``kernels.newton_schulz`` on G of shape (..., m, n); no argument checks."""
    if isinstance(coefficients[0], (int, float)):
        coeffs = [tuple(float(v) for v in coefficients)] * steps
    else:
        coeffs = [tuple(float(v) for v in abc) for abc in coefficients]
    transpose = G.size(-2) > G.size(-1)
    X = G.mT if transpose else G
    lead = X.shape[:-2]
    X = newton_schulz_core(X.reshape(-1, X.size(-2), X.size(-1)), coeffs, eps)
    X = X.reshape(*lead, X.size(-2), X.size(-1))
    return X.mT if transpose else X
