"""Pure-torch multiresolution hash encoding (Instant-NGP): the specification of kernels.hash_grid_encode.

Per level l with resolution ``res`` (a grid of res + 1 vertices per axis) and per point x in [0, 1]^d:
    x ← clamp(x, 0, 1) (NaN → 0),   p = x · res,   c = min(floor(p), res − 1),   w = p − c
    out[l·F:(l+1)·F] = Σ_{k ∈ {0,1}^d} (Π_i (k_i ? w_i : 1 − w_i)) · table[l, index(c + k)]
with index(v) = Σ_i v_i · (res+1)^(d−1−i) (dense, row-major, axis 0 slowest) when (res+1)^d <= T,
else (XOR_i (v_i · prime_i mod 2^32)) mod T with primes (1, 2654435761, 805459861, 3674653429).
Corner k's bit i is the offset along axis i; corners are summed in the order k = 0 .. 2^d − 1.
Math in float32 (float64 for float64 tables); x arrives already in that dtype.
"""

from __future__ import annotations

import torch
from torch import Tensor

PRIMES = (1, 2654435761, 805459861, 3674653429)


def level_is_dense(res: int, d: int, T: int) -> bool:
    return (res + 1) ** d <= T


def _cell(x: Tensor, res: int) -> tuple[Tensor, Tensor]:
    xc = torch.nan_to_num(x, nan=0.0).clamp(0.0, 1.0)
    p = xc * res
    c = torch.floor(p).clamp(max=res - 1)
    return c.long(), p - c


def _corner_index(c: Tensor, k: int, res: int, T: int) -> Tensor:
    d = c.shape[1]
    v = c + torch.tensor([(k >> i) & 1 for i in range(d)], device=c.device)
    if level_is_dense(res, d, T):
        idx = torch.zeros_like(v[:, 0])
        for i in range(d):
            idx = idx * (res + 1) + v[:, i]
        return idx
    h = torch.zeros_like(v[:, 0])
    for i in range(d):
        h = h ^ ((v[:, i] * PRIMES[i]) & 0xFFFFFFFF)
    return h % T


def _corner_weights(w: Tensor, k: int) -> list[Tensor]:
    """Per axis, the factor of corner k's weight: w_i or 1 − w_i."""
    return [w[:, i] if (k >> i) & 1 else 1 - w[:, i] for i in range(w.shape[1])]


def hash_grid_encode_forward(x: Tensor, table: Tensor, resolutions: list[int]) -> Tensor:
    """x (N, d) in the math dtype, table (L, T, F) → (N, L·F) in table's dtype."""
    n, d = x.shape
    L, T, F = table.shape
    tab = table.to(x.dtype)
    outs = []
    for level, res in enumerate(resolutions):
        c, w = _cell(x, res)
        acc = x.new_zeros(n, F)
        for k in range(1 << d):
            factors = _corner_weights(w, k)
            wk = factors[0]
            for f in factors[1:]:
                wk = wk * f
            acc = acc + wk[:, None] * tab[level].index_select(0, _corner_index(c, k, res, T))
        outs.append(acc)
    return torch.cat(outs, dim=1).to(table.dtype) if outs else x.new_zeros(n, 0).to(table.dtype)


def hash_grid_encode_backward(
    grad_out: Tensor, x: Tensor, table: Tensor, resolutions: list[int], need_x_grad: bool
) -> tuple[Tensor, Tensor | None]:
    """Gradients of Σ grad_out · out: w.r.t. the table (L, T, F) in x's dtype, and w.r.t. x (N, d)
    (zero where x is outside [0, 1], as clamp's gradient) when ``need_x_grad``."""
    n, d = x.shape
    L, T, F = table.shape
    tab = table.to(x.dtype)
    g = grad_out.to(x.dtype).reshape(n, L, F)
    grad_table = x.new_zeros(L, T, F)
    grad_x = x.new_zeros(n, d) if need_x_grad else None
    for level, res in enumerate(resolutions):
        c, w = _cell(x, res)
        gl = g[:, level]
        for k in range(1 << d):
            idx = _corner_index(c, k, res, T)
            factors = _corner_weights(w, k)
            wk = factors[0]
            for f in factors[1:]:
                wk = wk * f
            grad_table[level].index_add_(0, idx, wk[:, None] * gl)
            if grad_x is not None:
                dot = (gl * tab[level].index_select(0, idx)).sum(1)
                for a in range(d):
                    dw = torch.full_like(dot, 1.0 if (k >> a) & 1 else -1.0)
                    for j in range(d):
                        if j != a:
                            dw = dw * factors[j]
                    grad_x[:, a] += dot * dw * res
    if grad_x is not None:
        grad_x = torch.where((x >= 0) & (x <= 1), grad_x, torch.zeros_like(grad_x))
    return grad_table, grad_x
