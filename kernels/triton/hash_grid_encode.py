"""Triton kernels of kernels.hash_grid_encode: one program per block of points per level.

Coordinates are a (BLOCK, DP) tile (DP = d rounded up to a power of two; padded columns hold 0, so
their corner bit is 0, their weight factor 1, their hash term 0 and their dense stride 0). The 2^d
corners are a static loop; features are a (BLOCK, F) tile. Backward: tl.atomic_add into a float32
(float64) table gradient and into grad_x (one program per level adds its share), so it is not
deterministic on a GPU.
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

from kernels.reference.hash_grid_encode import PRIMES, level_is_dense

BLOCK = 128


@triton.jit
def _mul(a, b):
    return a * b


@triton.jit
def _cell(x_ptr, offs, mask, col, res_ptr, level, n, D: tl.constexpr, DP: tl.constexpr):
    xv = tl.load(x_ptr + offs[:, None] * D + col[None, :], mask=mask[:, None] & (col[None, :] < D), other=0.0)
    xc = tl.where(xv >= 0, tl.minimum(xv, 1.0), 0.0)
    res = tl.load(res_ptr + level)
    p = xc * res.to(xv.dtype)
    c = tl.minimum(tl.floor(p), (res - 1).to(xv.dtype))
    return xv, c.to(tl.int64), p - c, res


@triton.jit
def _corner(c, w, col, k: tl.constexpr, res, dense, stride_row, T, D: tl.constexpr):
    bit = (k >> col) & 1  # (DP,)
    v = c + bit[None, :]
    factors = tl.where(bit[None, :] == 1, w, 1.0 - w)
    wk = tl.reduce(factors, 1, _mul)
    dense_idx = tl.sum(v * stride_row[None, :], axis=1)
    prime = tl.where(col == 0, 1, tl.where(col == 1, 2654435761, tl.where(col == 2, 805459861, 3674653429)))
    hashed = tl.xor_sum(v.to(tl.uint32) * prime.to(tl.uint32)[None, :], axis=1)
    idx = tl.where(dense != 0, dense_idx, hashed.to(tl.int64) % T)
    return idx, factors, wk, bit


@triton.jit
def _forward_kernel(x_ptr, table_ptr, out_ptr, res_ptr, dense_ptr, stride_ptr, n, L, T,
                    D: tl.constexpr, DP: tl.constexpr, F: tl.constexpr, BLOCK: tl.constexpr):  # fmt: skip
    pid = tl.program_id(0)
    level = tl.program_id(1)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    col = tl.arange(0, DP)
    fcol = tl.arange(0, F)
    xv, c, w, res = _cell(x_ptr, offs, mask, col, res_ptr, level, n, D, DP)
    dense = tl.load(dense_ptr + level)
    stride_row = tl.load(stride_ptr + level * DP + col)
    acc = tl.zeros((BLOCK, F), dtype=xv.dtype)
    for k in tl.static_range(1 << D):
        idx, factors, wk, bit = _corner(c, w, col, k, res, dense, stride_row, T, D)
        vals = tl.load(
            table_ptr + (level * T + idx)[:, None] * F + fcol[None, :], mask=mask[:, None], other=0.0
        )
        acc += wk[:, None] * vals.to(xv.dtype)
    out_offs = offs[:, None] * (L * F) + level * F + fcol[None, :]
    tl.store(out_ptr + out_offs, acc.to(out_ptr.dtype.element_ty), mask=mask[:, None])


@triton.jit
def _backward_kernel(g_ptr, x_ptr, table_ptr, gt_ptr, gx_ptr, res_ptr, dense_ptr, stride_ptr, n, L, T,
                     NEED_X: tl.constexpr, D: tl.constexpr, DP: tl.constexpr, F: tl.constexpr,
                     BLOCK: tl.constexpr):  # fmt: skip
    pid = tl.program_id(0)
    level = tl.program_id(1)
    offs = pid * BLOCK + tl.arange(0, BLOCK)
    mask = offs < n
    col = tl.arange(0, DP)
    fcol = tl.arange(0, F)
    xv, c, w, res = _cell(x_ptr, offs, mask, col, res_ptr, level, n, D, DP)
    dense = tl.load(dense_ptr + level)
    stride_row = tl.load(stride_ptr + level * DP + col)
    g = tl.load(g_ptr + offs[:, None] * (L * F) + level * F + fcol[None, :], mask=mask[:, None], other=0.0)
    g = g.to(xv.dtype)
    gx = tl.zeros((BLOCK, DP), dtype=xv.dtype)
    for k in tl.static_range(1 << D):
        idx, factors, wk, bit = _corner(c, w, col, k, res, dense, stride_row, T, D)
        rows = (level * T + idx)[:, None] * F + fcol[None, :]
        tl.atomic_add(gt_ptr + rows, wk[:, None] * g, mask=mask[:, None])
        if NEED_X:
            vals = tl.load(table_ptr + rows, mask=mask[:, None], other=0.0).to(xv.dtype)
            dot = tl.sum(g * vals, axis=1)
            for a in tl.static_range(D):
                sign = tl.where(bit == 1, 1.0, -1.0)
                dw = tl.reduce(tl.where(col[None, :] == a, sign[None, :], factors), 1, _mul)
                gx += tl.where(col[None, :] == a, (dot * dw)[:, None] * res.to(xv.dtype), 0.0)
    if NEED_X:
        inside = (xv >= 0) & (xv <= 1)
        tl.atomic_add(gx_ptr + offs[:, None] * D + col[None, :], tl.where(inside, gx, 0.0),
                      mask=mask[:, None] & (col[None, :] < D))  # fmt: skip


def _level_meta(x: torch.Tensor, T: int, resolutions: list[int]):
    d = x.size(1)
    dp = triton.next_power_of_2(d)
    strides = [[(r + 1) ** (d - 1 - i) if i < d else 0 for i in range(dp)] for r in resolutions]
    dense = [int(level_is_dense(r, d, T)) for r in resolutions]
    dev = x.device
    return (
        torch.tensor(resolutions, dtype=torch.int64, device=dev),
        torch.tensor(dense, dtype=torch.int32, device=dev),
        torch.tensor(strides, dtype=torch.int64, device=dev),
        dp,
    )


assert PRIMES == (1, 2654435761, 805459861, 3674653429)  # spelled out in _corner


def forward(x: torch.Tensor, table: torch.Tensor, resolutions: list[int]) -> torch.Tensor:
    (n, d), (L, T, F) = x.shape, table.shape
    out = table.new_empty(n, L * F)
    res_t, dense_t, stride_t, dp = _level_meta(x, T, resolutions)
    grid = (triton.cdiv(n, BLOCK), L)
    _forward_kernel[grid](x, table, out, res_t, dense_t, stride_t, n, L, T, D=d, DP=dp, F=F, BLOCK=BLOCK)
    return out


def backward(grad_out, x, table, resolutions, need_x_grad):
    (n, d), (L, T, F) = x.shape, table.shape
    grad_table = x.new_zeros(L, T, F)
    grad_x = x.new_zeros(n, d) if need_x_grad else x.new_zeros(1, d)
    res_t, dense_t, stride_t, dp = _level_meta(x, T, resolutions)
    grid = (triton.cdiv(n, BLOCK), L)
    _backward_kernel[grid](
        grad_out, x, table, grad_table, grad_x, res_t, dense_t, stride_t, n, L, T,
        NEED_X=need_x_grad, D=d, DP=dp, F=F, BLOCK=BLOCK,
    )  # fmt: skip
    return grad_table, (grad_x if need_x_grad else None)
