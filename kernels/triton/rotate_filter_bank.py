"""Triton kernels of kernels.rotate_filter_bank (math: kernels/reference/rotate_filter_bank.py).

Forward: one program per (output row o·N + r, input field i) holds the (N_in, k·k) tile of W for all
input orientations s (rows padded to a power of two) and accumulates the outer products
coeffs[o, i, (s − r) mod N_in, b] ⊗ basis[r, b] over the basis. Backward: one program per (o, i)
holds the (N_in, B) tile of the coefficient gradient and accumulates, per rotation r and chunk of
taps, Σ_xy grad_W[o·N + r, i·N_in + (t + r) mod N_in, xy] · basis[r, b, xy] as a broadcast product
summed over the chunk. No atomics: deterministic. float32 and float64 (accumulated in the input dtype).
"""

from __future__ import annotations

import torch
import triton
import triton.language as tl

TAP_CHUNK = 16


@triton.jit
def _forward_kernel(
    c_ptr, basis_ptr, w_ptr, C_in, N_in, N, B, KK, S_BLOCK: tl.constexpr, KK_BLOCK: tl.constexpr
):
    row = tl.program_id(0)
    i = tl.program_id(1)
    o = row // N
    r = row % N
    s = tl.arange(0, S_BLOCK)
    xy = tl.arange(0, KK_BLOCK)
    s_ok = s < N_in
    xy_ok = xy < KK
    t = (s + N_in - r % N_in) % N_in
    c_row = c_ptr + ((o * C_in + i) * N_in + t) * B
    basis_row = basis_ptr + r * B * KK + xy
    acc = tl.zeros([S_BLOCK, KK_BLOCK], dtype=w_ptr.dtype.element_ty)
    for b in range(0, B):
        cb = tl.load(c_row + b, mask=s_ok, other=0.0)
        phi = tl.load(basis_row + b * KK, mask=xy_ok, other=0.0)
        acc += cb[:, None] * phi[None, :]
    out = w_ptr + (row * C_in * N_in + i * N_in + s[:, None]) * KK + xy[None, :]
    tl.store(out, acc, mask=s_ok[:, None] & xy_ok[None, :])


@triton.jit
def _backward_kernel(
    gw_ptr,
    basis_ptr,
    g_ptr,
    C_in,
    N_in,
    N,
    B,
    KK,
    T_BLOCK: tl.constexpr,
    B_BLOCK: tl.constexpr,
    CHUNK: tl.constexpr,
):
    o = tl.program_id(0)
    i = tl.program_id(1)
    t = tl.arange(0, T_BLOCK)
    b = tl.arange(0, B_BLOCK)
    c = tl.arange(0, CHUNK)
    t_ok = t < N_in
    b_ok = b < B
    acc = tl.zeros([T_BLOCK, B_BLOCK], dtype=g_ptr.dtype.element_ty)
    for r in range(0, N):
        s = (t + r) % N_in
        gw_rows = gw_ptr + ((o * N + r) * C_in * N_in + i * N_in + s) * KK
        basis_rows = basis_ptr + (r * B + b) * KK
        for start in range(0, KK, CHUNK):
            xy = start + c
            xy_ok = xy < KK
            g = tl.load(gw_rows[:, None] + xy[None, :], mask=t_ok[:, None] & xy_ok[None, :], other=0.0)
            phi = tl.load(basis_rows[:, None] + xy[None, :], mask=b_ok[:, None] & xy_ok[None, :], other=0.0)
            acc += tl.sum(g[:, None, :] * phi[None, :, :], axis=2)
    out = g_ptr + ((o * C_in + i) * N_in + t[:, None]) * B + b[None, :]
    tl.store(out, acc, mask=t_ok[:, None] & b_ok[None, :])


def rotate_filter_bank_forward(coeffs: torch.Tensor, basis: torch.Tensor) -> torch.Tensor:
    C_out, C_in, N_in, B = coeffs.shape
    N, _, k1, k2 = basis.shape
    W = coeffs.new_empty(C_out * N, C_in * N_in, k1, k2)
    grid = (C_out * N, C_in)
    _forward_kernel[grid](
        coeffs,
        basis,
        W,
        C_in,
        N_in,
        N,
        B,
        k1 * k2,
        S_BLOCK=triton.next_power_of_2(N_in),
        KK_BLOCK=triton.next_power_of_2(k1 * k2),
    )
    return W


def rotate_filter_bank_backward(
    grad_W: torch.Tensor, basis: torch.Tensor, C_out: int, C_in: int, N_in: int
) -> torch.Tensor:
    N, B, k1, k2 = basis.shape
    grad = grad_W.new_empty(C_out, C_in, N_in, B)
    _backward_kernel[(C_out, C_in)](
        grad_W,
        basis,
        grad,
        C_in,
        N_in,
        N,
        B,
        k1 * k2,
        T_BLOCK=triton.next_power_of_2(N_in),
        B_BLOCK=triton.next_power_of_2(B),
        CHUNK=TAP_CHUNK,
    )
    return grad
