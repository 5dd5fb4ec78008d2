"""Triton kernels of ``kernels.clip_and_noise``: a multi-tensor sum of squares and a clip-and-noise
pass that generates the Philox stream in the kernel.

Philox4x32-10 is written out with ``tl.umulhi`` (``tl.randn`` lays its stream out differently), and
Box–Muller uses ``tl.log``/``tl.cos``/``tl.sin`` in float32: the same z as the reference to
|Δz| <= 1e-5 (kernels/reference/clip_and_noise.py is the specification).

Launch layout: the op's tensors are cut into chunks of ``CHUNK`` elements that never straddle two
tensors (kernels._multi_tensor); program c handles chunk c. In the clip pass each program walks the
quads (4 consecutive global indices, one Philox call) that overlap its chunk, masks the elements
outside it and selects z_{i mod 4} per lane, so every element gets the z of its GLOBAL index.
"""

from __future__ import annotations

import math

import torch
import triton
import triton.language as tl
from torch import Tensor

from kernels._multi_tensor import chunk_table, pointer_table

CHUNK = 4096
BLOCK = 1024
BLOCK_Q = 256
TL_DTYPES = {
    torch.float32: tl.float32,
    torch.float64: tl.float64,
    torch.float16: tl.float16,
    torch.bfloat16: tl.bfloat16,
}

_M0: tl.constexpr = tl.constexpr(0xD2511F53)
_M1: tl.constexpr = tl.constexpr(0xCD9E8D57)
_W0: tl.constexpr = tl.constexpr(0x9E3779B9)
_W1: tl.constexpr = tl.constexpr(0xBB67AE85)
_TWO_PI_2M24: tl.constexpr = tl.constexpr(2.0 * math.pi / 16777216.0)


@triton.jit
def _philox4x32_10(c0, c1, c2, c3, k0, k1):
    for _ in tl.static_range(10):
        a0 = c0
        a2 = c2
        c0 = tl.umulhi(_M1, a2) ^ c1 ^ k0
        c2 = tl.umulhi(_M0, a0) ^ c3 ^ k1
        c1 = tl.mul(_M1, a2, sanitize_overflow=False)
        c3 = tl.mul(_M0, a0, sanitize_overflow=False)
        k0 = tl.add(k0, _W0, sanitize_overflow=False)
        k1 = tl.add(k1, _W1, sanitize_overflow=False)
    return c0, c1, c2, c3


@triton.jit
def _box_muller(xa, xb):
    u = ((xa >> 8) + 1).to(tl.float32) * (1.0 / 16777216.0)
    theta = (xb >> 8).to(tl.float32) * _TWO_PI_2M24
    r = tl.sqrt(-2.0 * tl.log(u))
    return r * tl.cos(theta), r * tl.sin(theta)


@triton.jit
def _normals(q, k0, k1, o0, o1):
    """The 4 normals of quads q (int64 block) for key (k0, k1) and offset words (o0, o1)."""
    c0 = (q & 0xFFFFFFFF).to(tl.uint32)
    c1 = (q >> 32).to(tl.uint32)
    c2 = tl.zeros_like(c0) + o0.to(tl.uint32)
    c3 = tl.zeros_like(c0) + o1.to(tl.uint32)
    x0, x1, x2, x3 = _philox4x32_10(c0, c1, c2, c3, k0.to(tl.uint32), k1.to(tl.uint32))
    z0, z1 = _box_muller(x0, x1)
    z2, z3 = _box_muller(x2, x3)
    return z0, z1, z2, z3


@triton.jit
def _quad_z(q, k0, k1, o0, o1):
    """(BLOCK_Q, 4) float32: z of global indices 4q + lane."""
    z0, z1, z2, z3 = _normals(q, k0, k1, o0, o1)
    lane = tl.arange(0, 4)[None, :]
    return tl.where(
        lane == 0,
        z0[:, None],
        tl.where(lane == 1, z1[:, None], tl.where(lane == 2, z2[:, None], z3[:, None])),
    )


@triton.jit
def _sumsq_kernel(
    ptrs,
    chunks,
    numels,
    partials,
    n_chunks,
    CHUNK: tl.constexpr,
    BLOCK: tl.constexpr,
    DTYPE: tl.constexpr,
    ACC: tl.constexpr,
):
    c = tl.program_id(0)
    t = tl.load(chunks + c)
    start = tl.load(chunks + n_chunks + c)
    numel = tl.load(numels + t)
    x_ptr = tl.load(ptrs + t).to(tl.pointer_type(DTYPE))
    acc = tl.zeros([BLOCK], dtype=ACC)
    for i in range(0, CHUNK, BLOCK):
        idx = start + i + tl.arange(0, BLOCK)
        x = tl.load(x_ptr + idx, mask=idx < numel, other=0.0).to(ACC)
        acc += x * x
    tl.store(partials + c, tl.sum(acc, axis=0).to(tl.float64))


@triton.jit
def _apply_kernel(
    ptrs,
    n_tensors,
    chunks,
    numels,
    bases,
    scalars,
    k0,
    k1,
    o0,
    o1,
    n_chunks,
    CHUNK: tl.constexpr,
    BLOCK_Q: tl.constexpr,
    DTYPE: tl.constexpr,
    COMPUTE: tl.constexpr,
    HAS_NOISE: tl.constexpr,
):
    c = tl.program_id(0)
    t = tl.load(chunks + c)
    start = tl.load(chunks + n_chunks + c)
    numel = tl.load(numels + t)
    base = tl.load(bases + t)
    x_ptr = tl.load(ptrs + t).to(tl.pointer_type(DTYPE))
    y_ptr = tl.load(ptrs + n_tensors + t).to(tl.pointer_type(DTYPE))
    # scale = min(1, max_norm / norm), 1 when norm == 0; computed here from the norm in device memory.
    norm = tl.load(scalars)
    max_norm = tl.load(scalars + 1)
    sigma = tl.load(scalars + 2).to(COMPUTE)
    scale = tl.where((norm == 0.0) | (max_norm >= norm), 1.0, max_norm / tl.where(norm == 0.0, 1.0, norm)).to(
        COMPUTE
    )
    end = tl.minimum(start + CHUNK, numel)
    g_start = base + start
    g_end = base + end
    q_first = g_start // 4
    q_last = (g_end - 1) // 4
    lane = tl.arange(0, 4)[None, :]
    for q0 in range(q_first, q_last + 1, BLOCK_Q):
        q = q0 + tl.arange(0, BLOCK_Q).to(tl.int64)
        g = 4 * q[:, None] + lane
        mask = (g >= g_start) & (g < g_end)
        local = g - base
        x = tl.load(x_ptr + local, mask=mask, other=0.0).to(COMPUTE)
        y = x * scale
        if HAS_NOISE:
            y += sigma * _quad_z(q, k0, k1, o0, o1).to(COMPUTE)
        tl.store(y_ptr + local, y.to(DTYPE), mask=mask)


@triton.jit
def _sum_apply_kernel(
    x_ptr,
    y_ptr,
    norms,
    scalars,
    n_rows,
    n_cols,
    k0,
    k1,
    o0,
    o1,
    BLOCK_Q: tl.constexpr,
    DTYPE: tl.constexpr,
    COMPUTE: tl.constexpr,
    HAS_NOISE: tl.constexpr,
):
    pid = tl.program_id(0)
    q = pid.to(tl.int64) * BLOCK_Q + tl.arange(0, BLOCK_Q).to(tl.int64)
    g = 4 * q[:, None] + tl.arange(0, 4)[None, :]
    mask = g < n_cols
    max_norm = tl.load(scalars + 1)
    sigma = tl.load(scalars + 2).to(COMPUTE)
    acc = tl.zeros([BLOCK_Q, 4], dtype=COMPUTE)
    row_ptr = x_ptr
    for s in range(0, n_rows):
        norm = tl.load(norms + s).to(tl.float64)
        scale = tl.where(
            (norm == 0.0) | (max_norm >= norm), 1.0, max_norm / tl.where(norm == 0.0, 1.0, norm)
        ).to(COMPUTE)
        x = tl.load(row_ptr + g, mask=mask, other=0.0).to(COMPUTE)
        acc += x * scale
        row_ptr += n_cols
    if HAS_NOISE:
        acc += sigma * _quad_z(q, k0, k1, o0, o1).to(COMPUTE)
    tl.store(y_ptr + g, acc.to(DTYPE), mask=mask)


def _compute(dtype: torch.dtype):
    return tl.float64 if dtype == torch.float64 else tl.float32


def _words(seed: int, offset: int) -> tuple[int, int, int, int]:
    return seed & 0xFFFFFFFF, seed >> 32, offset & 0xFFFFFFFF, offset >> 32


def _scalars(norm: Tensor, max_norm: float, noise_std: float) -> Tensor:
    """(norm, max_norm, noise_std) in float64 on the device: the kernel reads the norm from memory."""
    extra = torch.tensor([max_norm, noise_std], dtype=torch.float64).to(norm.device, non_blocking=True)
    return torch.cat([norm.reshape(1).to(torch.float64), extra])


def sumsq(tensors: list[Tensor]) -> Tensor:
    """0-dim float64 tensor on the device: Σ x² over every tensor (fp32 partials per chunk, fp64 sum)."""
    device = tensors[0].device
    chunks = chunk_table([t.numel() for t in tensors], CHUNK, device)
    n_chunks = chunks.shape[1]
    ptrs = pointer_table([tensors], device)
    numels = torch.tensor([t.numel() for t in tensors], dtype=torch.int64).to(device)
    partials = torch.empty(n_chunks, dtype=torch.float64, device=device)
    dtype = tensors[0].dtype
    _sumsq_kernel[(n_chunks,)](
        ptrs,
        chunks,
        numels,
        partials,
        n_chunks,
        CHUNK=CHUNK,
        BLOCK=BLOCK,
        DTYPE=TL_DTYPES[dtype],
        ACC=_compute(dtype),
    )
    return partials.sum()


def apply(tensors, outs, norm, max_norm, noise_std, seed, offset) -> None:
    device = tensors[0].device
    numel_list = [t.numel() for t in tensors]
    chunks = chunk_table(numel_list, CHUNK, device)
    n_chunks = chunks.shape[1]
    ptrs = pointer_table([tensors, outs], device)
    numels = torch.tensor(numel_list, dtype=torch.int64).to(device)
    bases = torch.tensor([0, *numel_list[:-1]], dtype=torch.int64).cumsum(0).to(device)
    dtype = tensors[0].dtype
    _apply_kernel[(n_chunks,)](
        ptrs,
        len(tensors),
        chunks,
        numels,
        bases,
        _scalars(norm, max_norm, noise_std),
        *_words(seed, offset),
        n_chunks,
        CHUNK=CHUNK,
        BLOCK_Q=BLOCK_Q,
        DTYPE=TL_DTYPES[dtype],
        COMPUTE=_compute(dtype),
        HAS_NOISE=noise_std != 0.0,
    )


def rows_sumsq(X: Tensor) -> Tensor:
    """(S,) float64: Σ x² per row of the contiguous (S, N) ``X``."""
    rows, cols = X.shape
    if cols == 0:
        return torch.zeros(rows, dtype=torch.float64, device=X.device)
    # Every row has the same number of chunks, in row order: the partials reshape to (S, chunks per row).
    device = X.device
    chunks = chunk_table([cols] * rows, CHUNK, device)
    n_chunks = chunks.shape[1]
    ptrs = pointer_table([list(X.unbind(0))], device)
    numels = torch.full((rows,), cols, dtype=torch.int64, device=device)
    partials = torch.empty(n_chunks, dtype=torch.float64, device=device)
    _sumsq_kernel[(n_chunks,)](
        ptrs,
        chunks,
        numels,
        partials,
        n_chunks,
        CHUNK=CHUNK,
        BLOCK=BLOCK,
        DTYPE=TL_DTYPES[X.dtype],
        ACC=_compute(X.dtype),
    )
    return partials.reshape(rows, -1).sum(1)


def sum_apply(X, out, norms, max_norm, noise_std, seed, offset) -> None:
    rows, cols = X.shape
    scalars = _scalars(norms[:1], max_norm, noise_std)
    grid = (triton.cdiv(triton.cdiv(cols, 4), BLOCK_Q),)
    _sum_apply_kernel[grid](
        X,
        out,
        norms.to(torch.float64).contiguous(),
        scalars,
        rows,
        cols,
        *_words(seed, offset),
        BLOCK_Q=BLOCK_Q,
        DTYPE=TL_DTYPES[X.dtype],
        COMPUTE=_compute(X.dtype),
        HAS_NOISE=noise_std != 0.0,
    )
