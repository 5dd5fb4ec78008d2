"""aggregate in Triton: the server's weighted reduction over S clients read through a pointer table.

Semantics are those of ``kernels.reference.aggregate``::

    mean:            out    = Σ_s w_s · x_s                 (fp32 accumulation; fp64 for float64)
    mean_of_blocks:  out[b] = Σ_s w_s · mean_{i in b} x_s[i]

Kernels:

* ``_mean_kernel``: one program per BLOCK elements; it loops over the S clients in order, loading
  client s's pointer from the int64 table (``kernels._multi_tensor.pointer_table``) and its weight.
* ``_chunk_kernel``: one program per chunk of a block (``kernels._multi_tensor.chunk_table`` with the
  blocks as the "tensors"); per sub-block of BLOCK elements it adds w_s · x_s over the clients in
  fp32 (fp64 for float64), then reduces to one partial, stored as fp64.
* ``_block_kernel``: one program per block sums its chunks' partials in fp64 (a fixed order) and
  divides by the block size. Both stages are deterministic.

Note: no ``from __future__ import annotations``: Triton reads the parameter annotations as objects.
"""

import torch
import triton
import triton.language as tl

from kernels._multi_tensor import pointer_table

BLOCK = 1024  # elements per program of _mean_kernel, and per step of a chunk
CHUNK = 4096  # elements per chunk of mean_of_blocks (a multiple of BLOCK)


def _tl_dtype(dtype: torch.dtype):
    return {torch.float32: tl.float32, torch.float64: tl.float64, torch.float16: tl.float16,
            torch.bfloat16: tl.bfloat16}[dtype]


@triton.jit
def _mean_kernel(TABLE, W, OUT, num_clients, numel, DTYPE: tl.constexpr, ACC: tl.constexpr,
                 BLOCK: tl.constexpr):
    pid = tl.program_id(0)
    offs = pid.to(tl.int64) * BLOCK + tl.arange(0, BLOCK)
    mask = offs < numel
    acc = tl.zeros([BLOCK], dtype=ACC)
    for s in range(num_clients):
        x_ptr = tl.load(TABLE + s).to(tl.pointer_type(DTYPE))
        w = tl.load(W + s)
        acc += w * tl.load(x_ptr + offs, mask=mask, other=0.0).to(ACC)
    tl.store(OUT + offs, acc.to(OUT.dtype.element_ty), mask=mask)


@triton.jit
def _chunk_kernel(TABLE, W, CHUNKS, OFFSET, SIZE, PARTIAL, num_clients, num_chunks, DTYPE: tl.constexpr,
                  ACC: tl.constexpr, BLOCK: tl.constexpr, CHUNK: tl.constexpr):
    c = tl.program_id(0)
    b = tl.load(CHUNKS + c)
    start = tl.load(CHUNKS + num_chunks + c)
    first = tl.load(OFFSET + b) + start
    end = tl.load(SIZE + b) - start  # elements of this chunk: min(CHUNK, end)
    acc = tl.zeros([BLOCK], dtype=ACC)
    for k in range(0, CHUNK, BLOCK):
        idx = k + tl.arange(0, BLOCK)
        mask = (idx < end) & (idx < CHUNK)
        for s in range(num_clients):
            x_ptr = tl.load(TABLE + s).to(tl.pointer_type(DTYPE))
            w = tl.load(W + s)
            acc += w * tl.load(x_ptr + first + idx, mask=mask, other=0.0).to(ACC)
    tl.store(PARTIAL + c, tl.sum(acc, axis=0).to(tl.float64))


@triton.jit
def _block_kernel(PARTIAL, FIRST_CHUNK, SIZE, OUT, BLOCK: tl.constexpr):
    b = tl.program_id(0)
    lo = tl.load(FIRST_CHUNK + b)
    hi = tl.load(FIRST_CHUNK + b + 1)
    acc = tl.zeros([BLOCK], dtype=tl.float64)
    for k in range(lo, hi, BLOCK):
        idx = k + tl.arange(0, BLOCK)
        acc += tl.load(PARTIAL + idx, mask=idx < hi, other=0.0)
    total = tl.sum(acc, axis=0) / tl.load(SIZE + b).to(tl.float64)
    tl.store(OUT + b, total.to(OUT.dtype.element_ty))


def _acc(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def aggregate_mean(clients: list[torch.Tensor], weights: list[float]) -> torch.Tensor:
    """Σ_s w_s · x_s over contiguous same-shape clients; a new tensor of the clients' shape and dtype."""
    x0 = clients[0]
    out = x0.new_empty(x0.shape)
    numel = x0.numel()
    if numel == 0:
        return out
    acc = _acc(x0.dtype)
    table = pointer_table([clients], x0.device)
    w = torch.tensor(weights, dtype=acc).to(x0.device)
    grid = (triton.cdiv(numel, BLOCK),)
    _mean_kernel[grid](table, w, out, len(clients), numel, DTYPE=_tl_dtype(x0.dtype), ACC=_tl_dtype(acc),
                       BLOCK=BLOCK)
    return out


def aggregate_mean_of_blocks(
    clients: list[torch.Tensor], weights: list[float], blocks: list[int]
) -> torch.Tensor:
    """out[b] = Σ_s w_s · mean of block b of x_s; (len(blocks),) float32 (float64 for float64)."""
    from kernels.ops.aggregate import block_tables

    x0 = clients[0]
    acc = _acc(x0.dtype)
    tables = block_tables(blocks, CHUNK, x0.device)
    num_chunks = tables["chunks"].size(1)
    table = pointer_table([clients], x0.device)
    w = torch.tensor(weights, dtype=acc).to(x0.device)
    partial = torch.empty(num_chunks, dtype=torch.float64, device=x0.device)
    out = x0.new_empty((len(blocks),), dtype=acc)
    _chunk_kernel[(num_chunks,)](table, w, tables["chunks"], tables["offset"], tables["size"], partial,
                                 len(clients), num_chunks, DTYPE=_tl_dtype(x0.dtype), ACC=_tl_dtype(acc),
                                 BLOCK=BLOCK, CHUNK=CHUNK)
    _block_kernel[(len(blocks),)](partial, tables["first_chunk"], tables["size"], out, BLOCK=256)
    return out
