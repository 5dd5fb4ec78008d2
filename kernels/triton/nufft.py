"""NUFFT gridding in Triton: spreading (type 1) and interpolation (type 2) with the ES kernel.

Semantics are those of ``kernels.reference.nufft.spread`` / ``interp``: for a sample at fine-grid
coordinate t (d axes, t_a ∈ [0, nf_a)) the footprint is the w^d nodes l_a = ⌈t_a − w/2⌉ + i,
i = 0 … w−1, wrapped periodically (l mod nf), with weight ∏_a φ(2(l_a − t_a)/w),
φ(z) = exp(β(√(1 − z²) − 1)) on |z| ≤ 1.

* ``_spread_kernel`` (the "GM" method): one program per block of BLOCK_M samples of one trajectory,
  looping over that trajectory's coils; for every footprint row along the outer axes it adds
  weight·x into the fine grid with ``tl.atomic_add`` (complex as two real atomics, fp32 or fp64).
  The order of the atomic additions is not fixed, so on a GPU the spread (type 1) is not bitwise
  deterministic: results agree with the reference to float rounding, not bit for bit.
* ``_interp_kernel``: the same loops as a gather (no atomics): Σ weight·grid per sample and coil.

Samples are processed in their given order (no bin sort). Offsets from t are computed in fp64 (t is
float64), then the kernel weights in fp32 (fp64 for complex128), as the reference rounds them.
The innermost axis is vectorized as a (BLOCK_M, WP) tile, WP = next power of two ≥ w; the outer
axes (one in 2-d, two in 3-d) are runtime loops of w steps.
The real scalars (w/2, 2/w, β) travel in a small float64 tensor so that they reach the kernel unrounded
in every mode (the interpreter rounds Python floats through fp32).
"""

import torch
import triton
import triton.language as tl

from kernels.backend import triton_interpreting

_REAL = {torch.complex64: tl.float32, torch.complex128: tl.float64}


@triton.jit
def _phi(x, inv_half_w, beta, ACC: tl.constexpr):
    """φ(2x/w) for an fp64 offset x (inv_half_w fp64, beta already in ACC), evaluated in ACC; 0 outside
    |2x/w| ≤ 1."""
    z64 = x * inv_half_w
    inside = tl.abs(z64) <= 1.0
    z = z64.to(ACC)
    arg = tl.maximum(1.0 - z * z, 0.0)
    return tl.where(inside, tl.exp(beta * (tl.sqrt(arg) - 1.0)), 0.0)


@triton.jit
def _wrap(node, nf):
    """node mod nf for node ∈ [-nf, 2nf) (no signed modulo: C and numpy differ)."""
    return tl.where(node < 0, node + nf, tl.where(node >= nf, node - nf, node))


@triton.jit
def _grid_kernel(
    X,  # spread: samples as real (B·C, M, 2); interp: fine grid as real (B·C, prod nf, 2)
    T,  # (ntraj, M, D) float64
    OUT,  # spread: fine grid (zeroed); interp: samples
    M,
    ncoil,
    nf0,
    nf1,
    nf2,
    W,
    PARAMS,  # float64 [w/2, 2/w, β]
    D: tl.constexpr,
    SPREAD: tl.constexpr,
    WP: tl.constexpr,
    BLOCK_M: tl.constexpr,
    ACC: tl.constexpr,
):
    pid = tl.program_id(0)
    tr = tl.program_id(1)
    half_w = tl.load(PARAMS)
    inv_half_w = tl.load(PARAMS + 1)
    beta = tl.load(PARAMS + 2).to(ACC)
    offs_m = pid * BLOCK_M + tl.arange(0, BLOCK_M)
    mask_m = offs_m < M
    tbase = T + (tr.to(tl.int64) * M + offs_m) * D
    # The innermost axis (D-1) as a (BLOCK_M, WP) tile; the others are loops.
    t_in = tl.load(tbase + (D - 1), mask=mask_m, other=0.0)
    if D == 3:
        t_mid = tl.load(tbase + 1, mask=mask_m, other=0.0)
        t_out = tl.load(tbase + 0, mask=mask_m, other=0.0)
        n_out = W
    else:
        t_mid = tl.load(tbase + 0, mask=mask_m, other=0.0)
        t_out = t_mid * 0.0
        n_out = 1
    nf_in = nf2  # 2-d grids come as (1, nf0, nf1)
    nf_mid = nf1
    start_in = tl.ceil(t_in - half_w)
    start_mid = tl.ceil(t_mid - half_w)
    start_out = tl.ceil(t_out - half_w)
    offs_w = tl.arange(0, WP)
    node_in = start_in[:, None] + offs_w[None, :].to(tl.float64)  # (BLOCK_M, WP) fp64
    w_in = _phi(node_in - t_in[:, None], inv_half_w, beta, ACC)
    idx_in = _wrap(node_in.to(tl.int64), nf_in)
    mask = mask_m[:, None] & (offs_w[None, :] < W)
    grid_size = nf0.to(tl.int64) * nf1 * nf2
    for c in range(0, ncoil):
        bc = tr.to(tl.int64) * ncoil + c
        if SPREAD:
            xp = X + (bc * M + offs_m) * 2
            x_re = tl.load(xp, mask=mask_m, other=0.0).to(ACC)
            x_im = tl.load(xp + 1, mask=mask_m, other=0.0).to(ACC)
        else:
            acc_re = tl.zeros([BLOCK_M, WP], dtype=ACC)
            acc_im = tl.zeros([BLOCK_M, WP], dtype=ACC)
        for i in range(0, n_out):
            node_out = start_out + i
            if D == 3:
                w_out = _phi(node_out - t_out, inv_half_w, beta, ACC)
                row_out = _wrap(node_out.to(tl.int64), nf0) * nf1
            else:
                w_out = tl.full([BLOCK_M], 1.0, ACC)
                row_out = tl.zeros([BLOCK_M], dtype=tl.int64)
            for j in range(0, W):
                node_mid = start_mid + j
                w_row = w_out * _phi(node_mid - t_mid, inv_half_w, beta, ACC)
                row = (row_out + _wrap(node_mid.to(tl.int64), nf_mid)) * nf_in
                flat = bc * grid_size + row[:, None] + idx_in  # (BLOCK_M, WP) int64
                wt = w_row[:, None] * w_in
                if SPREAD:
                    tl.atomic_add(OUT + flat * 2, wt * x_re[:, None], mask=mask)
                    tl.atomic_add(OUT + flat * 2 + 1, wt * x_im[:, None], mask=mask)
                else:
                    g_re = tl.load(X + flat * 2, mask=mask, other=0.0).to(ACC)
                    g_im = tl.load(X + flat * 2 + 1, mask=mask, other=0.0).to(ACC)
                    acc_re += wt * g_re
                    acc_im += wt * g_im
        if not SPREAD:
            op = OUT + (bc * M + offs_m) * 2
            tl.store(op, tl.sum(acc_re, axis=1), mask=mask_m)
            tl.store(op + 1, tl.sum(acc_im, axis=1), mask=mask_m)


def gridding(mode: str, x: torch.Tensor, t: torch.Tensor, nf, w: int, beta: float) -> torch.Tensor:
    """The nufft backend function: mode "spread" (x (B, C, M) → (B, C, *nf)) or "interp" (back).

    x complex64/complex128; t (ntraj, M, d) float64 fine-grid coordinates with ntraj ∈ {1, B}: the
    B·C rows of x are ntraj consecutive groups of ncoil = B·C/ntraj coils sharing one trajectory.
    """
    if x.dtype not in _REAL:
        raise TypeError(f"x must be complex64 or complex128, got {x.dtype}")
    d = len(nf)
    if d not in (2, 3) or t.dim() != 3 or t.shape[2] != d or t.dtype != torch.float64:
        raise ValueError(f"t must be float64 (ntraj, M, {d}), got {t.dtype} {tuple(t.shape)}")
    x = x.contiguous()
    t = t.contiguous()
    B, C = x.shape[:2]
    ntraj, m = t.shape[0], t.shape[1]
    ncoil = B * C // ntraj
    nf3 = (1, *nf) if d == 2 else tuple(nf)
    if mode == "spread":
        out = torch.zeros(B, C, *nf, dtype=x.dtype, device=x.device)
    elif mode == "interp":
        out = x.new_empty(B, C, m)
    else:
        raise ValueError(f"mode must be 'spread' or 'interp', got {mode!r}")
    wp = triton.next_power_of_2(w)
    block_m = 32 if triton_interpreting() else max(16, min(128, 2048 // wp))
    grid = (triton.cdiv(m, block_m), ntraj)
    _grid_kernel[grid](
        torch.view_as_real(x),
        t,
        torch.view_as_real(out),
        m,
        ncoil,
        nf3[0],
        nf3[1],
        nf3[2],
        w,
        torch.tensor([w / 2.0, 2.0 / w, float(beta)], dtype=torch.float64, device=x.device),
        D=d,
        SPREAD=mode == "spread",
        WP=wp,
        BLOCK_M=block_m,
        ACC=_REAL[x.dtype],
    )
    return out
