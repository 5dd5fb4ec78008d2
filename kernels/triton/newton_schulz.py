"""Newton–Schulz orthogonalization in Triton (batched, m <= n).

Semantics are those of ``kernels.reference.newton_schulz.newton_schulz_core``::

    X = G / (‖G‖_F + eps)                      (norm in fp32; fp64 for float64)
    for (a, b, c) in coeffs:
        A = X Xᵀ ;  B = b·A + c·(A A) ;  X = a·X + B X

Kernels (all batched over grid axis 1, one matrix per index):

* ``_sumsq_kernel`` / ``_scale_kernel``: Frobenius norm as deterministic per-chunk partial sums of
  squares, then every program reduces the (few) partials of its matrix and writes X / (‖X‖ + eps).
* ``_sym_kernel``: symmetric-output product ``Out = alpha·C + beta·(Y Yᵀ)`` for Y of shape (M, K).
  Only the upper-triangular output tiles are computed (program id -> (i, j), i <= j); each tile is
  stored at (i, j) and, transposed, at (j, i). It gives ``A = X Xᵀ`` (no C) and, because A is
  symmetric (A A = A Aᵀ), also ``B = b·A + c·(A A)`` with the A tile loaded in the epilogue.
* ``_update_kernel``: ``X' = a·X + B X`` with the a·X term fused into the epilogue.

Accumulation is fp32 (fp64 for float64); 16-bit intermediates (A, B, X) are stored in the input dtype.
fp32 products use ``input_precision="ieee"`` (no TF32). Two X buffers are allocated per call and used
as ping-pong buffers, so the input is never written and the result is a new tensor.

Note: no ``from __future__ import annotations`` here: the ``tl.float64`` parameter annotations must stay
objects, which makes Triton pass the coefficients as doubles (float64 needs them unrounded).
"""

import os

import torch
import triton
import triton.language as tl

_MAX_GRID_YZ = 65535  # CUDA limit for grid axes 1 and 2
_MAX_NORM_CHUNKS = 256  # partial sums per matrix for the norm (the scale kernel reduces them in one block)


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET") == "1"


# --------------------------------------------------------------------------------------------------------
# Frobenius norm and scaling
# --------------------------------------------------------------------------------------------------------


@triton.jit
def _sumsq_kernel(X, P, numel, chunk, n_chunks, stride_xb, BLOCK: tl.constexpr, ACC: tl.constexpr):
    """P[b, pid] = sum of squares of X[b].flatten()[pid*chunk : (pid+1)*chunk] (chunk % BLOCK == 0)."""
    pid = tl.program_id(0)
    bid = tl.program_id(1)
    base = X + bid.to(tl.int64) * stride_xb
    offs = tl.arange(0, BLOCK)
    start = pid * chunk
    acc = tl.zeros([BLOCK], dtype=ACC)
    for k in range(0, chunk, BLOCK):
        idx = start + k + offs
        x = tl.load(base + idx, mask=idx < numel, other=0.0).to(ACC)
        acc += x * x
    tl.store(P + bid.to(tl.int64) * n_chunks + pid, tl.sum(acc, axis=0))


@triton.jit
def _scale_kernel(
    X,
    Y,
    P,
    numel,
    n_chunks,
    eps,
    eps64: tl.float64,
    stride_xb,
    stride_yb,
    BLOCK: tl.constexpr,
    P_BLOCK: tl.constexpr,
    ACC: tl.constexpr,
    IS_F64: tl.constexpr,
):
    """Y[b] = X[b] / (sqrt(sum P[b, :]) + eps), computed in ACC, stored in Y's dtype."""
    pid = tl.program_id(0)
    bid = tl.program_id(1).to(tl.int64)
    poffs = tl.arange(0, P_BLOCK)
    parts = tl.load(P + bid * n_chunks + poffs, mask=poffs < n_chunks, other=0.0)
    idx = pid * BLOCK + tl.arange(0, BLOCK)
    mask = idx < numel
    x = tl.load(X + bid * stride_xb + idx, mask=mask, other=0.0).to(ACC)
    if IS_F64:  # fp64 sqrt and division are IEEE-rounded already
        y = x / (tl.sqrt(tl.sum(parts, axis=0)) + eps64)
    else:  # fp32: ask for the correctly rounded forms (plain sqrt / div may be approximate)
        denom = tl.sqrt_rn(tl.sum(parts, axis=0)) + eps
        y = tl.div_rn(x, denom + tl.zeros_like(x))
    tl.store(Y + bid * stride_yb + idx, y.to(Y.dtype.element_ty), mask=mask)


# --------------------------------------------------------------------------------------------------------
# Symmetric product: Out = alpha*C + beta*(Y Yᵀ), upper tiles only, mirrored stores
# --------------------------------------------------------------------------------------------------------


@triton.jit
def _sym_kernel(
    Yp,
    C,
    Out,
    M,
    K,
    stride_yb,
    stride_ym,
    stride_cb,
    stride_cm,
    stride_ob,
    stride_om,
    alpha,
    beta,
    alpha64: tl.float64,
    beta64: tl.float64,
    HAS_C: tl.constexpr,
    BLOCK: tl.constexpr,
    BLOCK_K: tl.constexpr,
    EVEN_K: tl.constexpr,
    ACC: tl.constexpr,
    IS_F64: tl.constexpr,
):
    pid = tl.program_id(0)
    bid = tl.program_id(1).to(tl.int64)
    # pid enumerates the lower triangle of the tile grid row by row: pid = r(r+1)/2 + q with q <= r.
    # Output tile (ti, tj) = (q, r), so ti <= tj. Float sqrt guess, then exact integer correction.
    r = ((tl.sqrt((8 * pid + 1).to(tl.float32)) - 1.0) * 0.5).to(tl.int32)
    r = tl.where(r * (r + 1) // 2 > pid, r - 1, r)
    r = tl.where((r + 1) * (r + 2) // 2 <= pid, r + 1, r)
    ti = pid - r * (r + 1) // 2
    tj = r

    rows_i = ti * BLOCK + tl.arange(0, BLOCK)
    rows_j = tj * BLOCK + tl.arange(0, BLOCK)
    offs_k = tl.arange(0, BLOCK_K)
    # Clamp the (strided) row index so operand loads need no row mask; those rows are never stored.
    ld_i = rows_i % M
    ld_j = rows_j % M
    ybase = Yp + bid * stride_yb
    p_i = ybase + ld_i[:, None] * stride_ym + offs_k[None, :]  # (BLOCK, BLOCK_K): rows of Y
    p_j = ybase + offs_k[:, None] + ld_j[None, :] * stride_ym  # (BLOCK_K, BLOCK): rows of Y, transposed

    acc = tl.zeros((BLOCK, BLOCK), dtype=ACC)
    for k in range(0, K, BLOCK_K):
        if EVEN_K:
            u = tl.load(p_i)
            v = tl.load(p_j)
        else:
            u = tl.load(p_i, mask=offs_k[None, :] < K - k, other=0.0)
            v = tl.load(p_j, mask=offs_k[:, None] < K - k, other=0.0)
        acc = tl.dot(u, v, acc, input_precision="ieee", out_dtype=ACC)
        p_i += BLOCK_K
        p_j += BLOCK_K

    # The coefficients come twice: as fp32 (plain float) and as fp64 (annotated) for the float64 path.
    mask = (rows_i[:, None] < M) & (rows_j[None, :] < M)
    out = (beta64 if IS_F64 else beta) * acc
    if HAS_C:
        c = tl.load(C + bid * stride_cb + rows_i[:, None] * stride_cm + rows_j[None, :], mask=mask, other=0.0)
        out += (alpha64 if IS_F64 else alpha) * c.to(ACC)
    out = out.to(Out.dtype.element_ty)
    obase = Out + bid * stride_ob
    tl.store(obase + rows_i[:, None] * stride_om + rows_j[None, :], out, mask=mask)
    # Mirror (the diagonal tiles are complete already).
    lim_t = tl.where(ti < tj, M, 0)
    mask_t = (rows_j[:, None] < M) & (rows_i[None, :] < lim_t)
    tl.store(obase + rows_j[:, None] * stride_om + rows_i[None, :], tl.trans(out), mask=mask_t)


# --------------------------------------------------------------------------------------------------------
# Update: Xn = a*X + Bm X   (Bm: M x M, X: M x N)
# --------------------------------------------------------------------------------------------------------


@triton.jit
def _update_kernel(
    Bm,
    X,
    Xn,
    M,
    N,
    stride_bb,
    stride_bm,
    stride_xb,
    stride_xm,
    stride_nb,
    stride_nm,
    a,
    a64: tl.float64,
    BLOCK_M: tl.constexpr,
    BLOCK_N: tl.constexpr,
    BLOCK_K: tl.constexpr,
    GROUP_M: tl.constexpr,
    EVEN_K: tl.constexpr,
    ACC: tl.constexpr,
    IS_F64: tl.constexpr,
):
    pid = tl.program_id(0)
    bid = tl.program_id(1).to(tl.int64)
    grid_m = tl.cdiv(M, BLOCK_M)
    grid_n = tl.cdiv(N, BLOCK_N)
    # Grouped ordering: GROUP_M row tiles sweep the column tiles together (L2 reuse of X's columns).
    width = GROUP_M * grid_n
    group = pid // width
    first_m = group * GROUP_M
    group_m = tl.minimum(grid_m - first_m, GROUP_M)
    pid_m = first_m + (pid % width) % group_m
    pid_n = (pid % width) // group_m

    rows = pid_m * BLOCK_M + tl.arange(0, BLOCK_M)
    cols = pid_n * BLOCK_N + tl.arange(0, BLOCK_N)
    offs_k = tl.arange(0, BLOCK_K)
    col_ok = cols < N
    xbase = X + bid * stride_xb
    p_b = Bm + bid * stride_bb + (rows % M)[:, None] * stride_bm + offs_k[None, :]
    p_x = xbase + offs_k[:, None] * stride_xm + cols[None, :]

    acc = tl.zeros((BLOCK_M, BLOCK_N), dtype=ACC)
    for k in range(0, M, BLOCK_K):
        if EVEN_K:
            u = tl.load(p_b)
            v = tl.load(p_x, mask=col_ok[None, :], other=0.0)
        else:
            u = tl.load(p_b, mask=offs_k[None, :] < M - k, other=0.0)
            v = tl.load(p_x, mask=(offs_k[:, None] < M - k) & col_ok[None, :], other=0.0)
        acc = tl.dot(u, v, acc, input_precision="ieee", out_dtype=ACC)
        p_b += BLOCK_K
        p_x += BLOCK_K * stride_xm

    mask = (rows[:, None] < M) & col_ok[None, :]
    x = tl.load(xbase + rows[:, None] * stride_xm + cols[None, :], mask=mask, other=0.0)
    out = acc + (a64 if IS_F64 else a) * x.to(ACC)
    pn = Xn + bid * stride_nb + rows[:, None] * stride_nm + cols[None, :]
    tl.store(pn, out.to(Xn.dtype.element_ty), mask=mask)


# --------------------------------------------------------------------------------------------------------
# Launchers
# --------------------------------------------------------------------------------------------------------


def _pick_config(m: int, n: int, dtype: torch.dtype) -> dict:
    """Fixed block sizes by dtype and size (sym tile = BLOCK x BLOCK; update tile = BM x BN)."""
    if dtype == torch.float64:
        if m >= 256:
            return dict(sym=64, sym_k=16, bm=64, bn=64, bk=16, warps=4, stages=2)
        return dict(sym=32, sym_k=16, bm=32, bn=32, bk=16, warps=4, stages=2)
    if dtype == torch.float32:  # ieee fp32 (FMA path): moderate tiles
        return dict(sym=64, sym_k=32, bm=64, bn=64, bk=32, warps=4, stages=2)
    # float16 / bfloat16: tensor cores
    if m >= 1024:
        return dict(sym=128, sym_k=64, bm=128, bn=128, bk=64, warps=8, stages=3)
    if m >= 64:
        return dict(sym=64, sym_k=64, bm=64, bn=128 if n >= 1024 else 64, bk=64, warps=4, stages=3)
    return dict(sym=32, sym_k=64, bm=32, bn=64, bk=32, warps=4, stages=3)


def _batch_slices(batch: int):
    for b0 in range(0, batch, _MAX_GRID_YZ):
        yield b0, min(batch, b0 + _MAX_GRID_YZ)


def _normalize(X: torch.Tensor, Y: torch.Tensor, eps: float, acc_tl) -> None:
    batch, m, n = X.shape
    numel = m * n
    block = 1024
    chunk = block * triton.cdiv(triton.cdiv(numel, block), _MAX_NORM_CHUNKS)
    n_chunks = triton.cdiv(numel, chunk)
    p_block = max(16, triton.next_power_of_2(n_chunks))
    acc_torch = torch.float64 if acc_tl == tl.float64 else torch.float32
    partial = torch.empty((batch, n_chunks), dtype=acc_torch, device=X.device)
    for b0, b1 in _batch_slices(batch):
        xs, ys, ps = X[b0:b1], Y[b0:b1], partial[b0:b1]
        _sumsq_kernel[(n_chunks, b1 - b0)](
            xs, ps, numel, chunk, n_chunks, xs.stride(0), BLOCK=block, ACC=acc_tl, num_warps=4
        )
        _scale_kernel[(triton.cdiv(numel, block), b1 - b0)](
            xs,
            ys,
            ps,
            numel,
            n_chunks,
            float(eps),
            float(eps),
            xs.stride(0),
            ys.stride(0),
            BLOCK=block,
            P_BLOCK=p_block,
            ACC=acc_tl,
            IS_F64=acc_tl == tl.float64,
            num_warps=4,
        )


def _sym(Y: torch.Tensor, C: torch.Tensor | None, Out: torch.Tensor, alpha: float, beta: float, cfg, acc_tl):
    batch, m, k = Y.shape
    blk, bk = cfg["sym"], cfg["sym_k"]
    t = triton.cdiv(m, blk)
    n_tiles = t * (t + 1) // 2
    for b0, b1 in _batch_slices(batch):
        ys, os_ = Y[b0:b1], Out[b0:b1]
        cs = C[b0:b1] if C is not None else os_  # dummy pointer when HAS_C is False
        _sym_kernel[(n_tiles, b1 - b0)](
            ys,
            cs,
            os_,
            m,
            k,
            ys.stride(0),
            ys.stride(1),
            cs.stride(0),
            cs.stride(1),
            os_.stride(0),
            os_.stride(1),
            float(alpha),
            float(beta),
            float(alpha),
            float(beta),
            HAS_C=C is not None,
            BLOCK=blk,
            BLOCK_K=bk,
            EVEN_K=k % bk == 0,
            ACC=acc_tl,
            IS_F64=acc_tl == tl.float64,
            num_warps=cfg["warps"],
            num_stages=cfg["stages"],
        )


def _update(Bm: torch.Tensor, X: torch.Tensor, Xn: torch.Tensor, a: float, cfg, acc_tl):
    batch, m, n = X.shape
    bm, bn, bk = cfg["bm"], cfg["bn"], cfg["bk"]
    grid0 = triton.cdiv(m, bm) * triton.cdiv(n, bn)
    for b0, b1 in _batch_slices(batch):
        bs, xs, ns = Bm[b0:b1], X[b0:b1], Xn[b0:b1]
        _update_kernel[(grid0, b1 - b0)](
            bs,
            xs,
            ns,
            m,
            n,
            bs.stride(0),
            bs.stride(1),
            xs.stride(0),
            xs.stride(1),
            ns.stride(0),
            ns.stride(1),
            float(a),
            float(a),
            BLOCK_M=bm,
            BLOCK_N=bn,
            BLOCK_K=bk,
            GROUP_M=8,
            EVEN_K=m % bk == 0,
            ACC=acc_tl,
            IS_F64=acc_tl == tl.float64,
            num_warps=cfg["warps"],
            num_stages=cfg["stages"],
        )


def _newton_schulz(X: torch.Tensor, coeffs, eps: float, cfg: dict) -> torch.Tensor:
    assert X.dim() == 3 and X.is_contiguous(), "expected a contiguous (B, m, n) tensor"
    batch, m, n = X.shape
    assert m <= n, "expected m <= n (transpose tall matrices first)"
    assert X.dtype in (torch.float32, torch.float64, torch.float16, torch.bfloat16)
    assert m * n < 2**31 and batch * m * max(m, n) < 2**62, "matrix too large for int32 offsets"
    acc_tl = tl.float64 if X.dtype == torch.float64 else tl.float32
    if X.numel() == 0:
        return X.clone()

    cur = torch.empty_like(X)
    _normalize(X, cur, eps, acc_tl)
    if not coeffs:
        return cur
    nxt = torch.empty_like(X)
    A = torch.empty((batch, m, m), dtype=X.dtype, device=X.device)
    Bm = torch.empty_like(A)
    for a, b, c in coeffs:
        _sym(cur, None, A, 0.0, 1.0, cfg, acc_tl)  # A = X Xᵀ
        _sym(A, A, Bm, b, c, cfg, acc_tl)  # B = b·A + c·(A Aᵀ), A symmetric
        _update(Bm, cur, nxt, a, cfg, acc_tl)  # X' = a·X + B X
        cur, nxt = nxt, cur
    return cur


def newton_schulz(X: torch.Tensor, coeffs: list[tuple[float, float, float]], eps: float) -> torch.Tensor:
    """Newton–Schulz iteration on a contiguous batch X of shape (B, m, n), m <= n; returns a new tensor."""
    cfg = _pick_config(X.shape[-2], X.shape[-1], X.dtype)
    return _newton_schulz(X, coeffs, eps, cfg)
