"""``kernels.aggregate``: the weighted reduction a federated server runs every round over S clients.

Backends: reference (torch, one client at a time), cpu (kernels._C: per L2-sized block of elements,
four clients per pass; OpenMP over blocks), triton and cuda (a device table of client pointers; each
program/block handles a chunk of elements and loops over the clients). No backend stacks the clients
into an (S, N) copy. Default choice, from benchmarks/bench_aggregate.py:
- CPU tensors: the ``cpu`` backend. Measured (benchmarks/bench_aggregate.py, 2 cores shared with
  other jobs, so noisy; fp32, N = 11M; medians): S = 10 clients, cpu 21.3-21.9 ms, reference
  22.9-29.4 ms, anchor ``torch.stack(list).mean(0)`` 158 ms (7.3x). S = 100: cpu 107-134 ms,
  reference 124-135 ms, anchor 2352 ms (17.6x); a standalone script (median of 5, out allocated per
  call) gave cpu 25 / 135 ms vs reference 31 / 200 ms at S = 10 / 100. The kernel reads each client
  as long runs into an L2-resident block, four clients per pass (~48 GB/s, about this machine's
  memory bandwidth, once the output's page faults are excluded); before that change it took 38 ms
  (S = 10) and 213 ms (S = 100), slower than the reference. cpu is the default: at least as fast,
  one pass with no temporaries (the reference converts every 16-bit client to fp32 first), and
  deterministic across thread counts.
- CUDA tensors: ``cuda``, then ``triton`` (provisional: both read each client once and write once;
  to be re-ranked from benchmarks/gpu/run_all.sh once it has run on a GPU).
"""

from __future__ import annotations

import functools
import math
import numbers
from collections.abc import Mapping, Sequence
from typing import Any

import torch
from torch import Tensor

from kernels import backend, nvtx
from kernels._ext import _C, DTYPE_CODES, _cuda
from kernels._interop import as_tensor
from kernels._multi_tensor import chunk_table, pointer_table
from kernels.reference.aggregate import accumulation_dtype, aggregate_mean, aggregate_mean_of_blocks

OP = "aggregate"
REDUCTIONS = ("mean", "mean_of_blocks")

backend.define_op(OP, preference={"cpu": ("cpu",), "cuda": ("cuda", "triton")})
_triton_unavailable = backend.triton_module_unavailable("kernels.triton.aggregate")


def aggregate(
    tensors: Any,
    weights: Sequence[float] | Tensor | None = None,
    *,
    reduce: str = "mean",
    blocks: Sequence[int] | None = None,
) -> Any:
    """Weighted reduction over S clients' tensors (model deltas, moments), as a federated server does.

    With the weights normalized to sum to 1 (w_s = weights[s] / Σ weights; uniform 1/S when None)::

        reduce="mean":            out    = Σ_s w_s · x_s
        reduce="mean_of_blocks":  out[b] = Σ_s w_s · mean_{i in block b} x_s.flatten()[i]

    Args:
        tensors: the S clients, as a stacked (S, ...) tensor; or a list of S tensors of one shape,
            dtype and device (read in place through a pointer list: no (S, N) copy is made); or a dict
            name -> (either of those), which returns a dict with the same keys (e.g. "delta", "m", "v"),
            every entry reduced with the same weights (and blocks). numpy/cupy arrays are accepted
            through DLPack and the result comes back as the same kind of array.
            float32, float64, float16 or bfloat16.
        weights: None (uniform) or S finite, non-negative numbers with a positive sum (a sequence or a
            1-D tensor; a CUDA tensor is read back to the host, one sync). They are normalized to sum
            to 1: a weight vector that already sums to 1 is unchanged up to rounding.
        reduce: "mean" returns one client's shape in the input dtype; fp32 accumulation (fp64 for
            float64), 16-bit inputs rounded once at the end; one pass over each client.
            "mean_of_blocks" returns a (len(blocks),) tensor, float32 (float64 for float64 inputs):
            one scalar per block, how FedAdamW communicates a compressed second moment.
        blocks: with "mean_of_blocks" only: sizes (>= 1) of consecutive blocks of one client's
            flattened elements, summing to its numel (e.g. a model's parameter sizes in a flat buffer).
            cpu and reference accumulate block sums in fp64; triton and cuda sum each chunk of up to
            4096 elements (over all clients) in fp32 (fp64 for float64) and the chunks of a block in fp64.

    Backends: reference, cpu, triton, cuda — see ``kernels.available_backends("aggregate")``.
    All are deterministic (a fixed summation order, whatever the thread count). Not differentiable.
    """
    if not isinstance(reduce, str) or reduce not in REDUCTIONS:
        raise ValueError(f"reduce must be one of {REDUCTIONS}, got {reduce!r}")
    if reduce == "mean" and blocks is not None:
        raise ValueError('blocks is only used with reduce="mean_of_blocks"; got blocks with reduce="mean"')
    if reduce == "mean_of_blocks" and blocks is None:
        raise ValueError('reduce="mean_of_blocks" needs blocks (a sequence of block sizes)')
    if isinstance(tensors, Mapping):
        if len(tensors) == 0:
            raise ValueError("tensors is an empty dict: give at least one name -> clients entry")
        return {
            name: _aggregate_one(value, weights, reduce, blocks, f"tensors[{name!r}]")
            for name, value in tensors.items()
        }
    return _aggregate_one(tensors, weights, reduce, blocks, "tensors")


def _aggregate_one(value: Any, weights: Any, reduce: str, blocks: Any, name: str) -> Any:
    clients, convert_back = _clients(value, name)
    w = normalized_weights(weights, len(clients))
    if reduce == "mean":
        return convert_back(torch.ops.pykernels.aggregate(clients, w))
    sizes = check_blocks(blocks, clients[0].numel(), name)
    return convert_back(torch.ops.pykernels.aggregate_mean_of_blocks(clients, w, sizes))


def _clients(value: Any, name: str) -> tuple[list[Tensor], Any]:
    """The S client tensors (views, no copy) and the function converting a result back to value's kind."""
    if isinstance(value, (list, tuple)):
        if len(value) == 0:
            raise ValueError(f"{name} is an empty list of clients: need at least one client tensor")
        pairs = [as_tensor(x, f"{name}[{s}]") for s, x in enumerate(value)]
        clients, convert_back = [t for t, _ in pairs], pairs[0][1]
    else:
        stacked, convert_back = as_tensor(value, name)
        if stacked.dim() == 0:
            raise ValueError(f"{name} must be a stacked (S, ...) tensor or a list of S tensors, got 0-d")
        if stacked.size(0) == 0:
            raise ValueError(f"{name} has S = 0 clients (shape {tuple(stacked.shape)}): need at least one")
        clients = list(stacked.unbind(0))
    first = clients[0]
    if first.dtype not in DTYPE_CODES:
        raise TypeError(f"{name} must have dtype float32, float64, float16 or bfloat16, got {first.dtype}")
    for s, x in enumerate(clients[1:], start=1):
        if x.shape != first.shape:
            raise ValueError(
                f"{name}: client {s} has shape {tuple(x.shape)} but client 0 has {tuple(first.shape)}; "
                "all clients must have one shape"
            )
        if x.dtype != first.dtype:
            raise TypeError(f"{name}: client {s} has dtype {x.dtype} but client 0 has {first.dtype}")
        if x.device != first.device:
            raise ValueError(f"{name}: client {s} is on {x.device} but client 0 is on {first.device}")
    return clients, convert_back


def normalized_weights(weights: Any, num_clients: int) -> list[float]:
    """``weights`` checked (S finite, non-negative numbers, positive sum) and divided by their sum."""
    if weights is None:
        return [1.0 / num_clients] * num_clients
    if isinstance(weights, Tensor):
        if weights.dim() != 1 or weights.dtype.is_complex or weights.dtype == torch.bool:
            raise ValueError(
                f"weights must be a 1-D real tensor of {num_clients} values, got shape "
                f"{tuple(weights.shape)} and dtype {weights.dtype}"
            )
        values = weights.detach().double().cpu().tolist()
    else:
        try:
            values = list(weights)
        except TypeError:
            raise TypeError(
                f"weights must be None, a sequence or a 1-D tensor, got {type(weights).__name__}"
            ) from None
        if not all(isinstance(v, numbers.Real) and not isinstance(v, bool) for v in values):
            raise TypeError(f"weights must hold real numbers, got {values!r}")
        values = [float(v) for v in values]
    if len(values) != num_clients:
        raise ValueError(f"weights has {len(values)} values but there are {num_clients} clients")
    if not all(math.isfinite(v) for v in values):
        raise ValueError(f"weights must be finite (no NaN or Inf), got {values}")
    if any(v < 0 for v in values):
        raise ValueError(f"weights must be non-negative, got {values}")
    total = math.fsum(values)
    if total <= 0:
        raise ValueError(f"weights must have a positive sum, got sum {total} for {values}")
    return [v / total for v in values]


def check_blocks(blocks: Any, numel: int, name: str = "tensors") -> list[int]:
    """``blocks`` as a list of ints >= 1 that sums to one client's ``numel``."""
    if isinstance(blocks, Tensor):
        blocks = blocks.tolist()
    try:
        sizes = list(blocks)
    except TypeError:
        raise TypeError(f"blocks must be a sequence of block sizes, got {type(blocks).__name__}") from None
    if not sizes:
        raise ValueError("blocks must hold at least one block size")
    if not all(isinstance(b, numbers.Integral) and not isinstance(b, bool) for b in sizes):
        raise TypeError(f"blocks must hold integers, got {sizes!r}")
    sizes = [int(b) for b in sizes]
    if any(b <= 0 for b in sizes):
        raise ValueError(f"blocks must all be >= 1, got {[b for b in sizes if b <= 0][:5]} among them")
    if sum(sizes) != numel:
        raise ValueError(f"blocks sum to {sum(sizes)} but one client of {name} has {numel} elements")
    return sizes


# ---- the registered ops: clients is a list of S same-shape tensors, w normalized weights ------------


def _contiguous(clients: list[Tensor]) -> list[Tensor]:
    # Kernels read each client as a flat buffer: a strided client is copied once, here.
    return [x if x.is_contiguous() else x.contiguous() for x in clients]


@torch.library.custom_op("pykernels::aggregate", mutates_args=())
def _aggregate_op(clients: list[Tensor], weights: list[float]) -> Tensor:
    if clients[0].numel() == 0:  # no data pointers to hand to a kernel
        return clients[0].new_empty(clients[0].shape)
    clients = _contiguous(clients)
    name, impl = backend.select(OP, clients[0].device)
    with nvtx.range(f"pykernels.aggregate[{name}]"):
        return impl(clients, weights, None)


@_aggregate_op.register_fake
def _(clients: list[Tensor], weights: list[float]) -> Tensor:
    return clients[0].new_empty(clients[0].shape)


@torch.library.custom_op("pykernels::aggregate_mean_of_blocks", mutates_args=())
def _aggregate_blocks_op(clients: list[Tensor], weights: list[float], blocks: list[int]) -> Tensor:
    clients = _contiguous(clients)
    name, impl = backend.select(OP, clients[0].device)
    with nvtx.range(f"pykernels.aggregate_mean_of_blocks[{name}]"):
        return impl(clients, weights, blocks)


@_aggregate_blocks_op.register_fake
def _(clients: list[Tensor], weights: list[float], blocks: list[int]) -> Tensor:
    return clients[0].new_empty((len(blocks),), dtype=accumulation_dtype(clients[0].dtype))


# ---- backends: contiguous clients; blocks None means reduce="mean"; each returns a new tensor ------


@backend.register(OP, "reference", devices=("cpu", "cuda"))
def _reference(clients: list[Tensor], weights: list[float], blocks: list[int] | None) -> Tensor:
    if blocks is None:
        return aggregate_mean(clients, weights)
    return aggregate_mean_of_blocks(clients, weights, blocks)


@backend.register(OP, "cpu", devices=("cpu",), unavailable=backend.cpu_ext_unavailable)
def _cpu(clients: list[Tensor], weights: list[float], blocks: list[int] | None) -> Tensor:
    x0 = clients[0]
    pointers = [x.data_ptr() for x in clients]
    code = DTYPE_CODES[x0.dtype]
    if blocks is None:
        out = x0.new_empty(x0.shape)
        _C.aggregate_mean(pointers, weights, x0.numel(), out.data_ptr(), code)
    else:
        out = x0.new_empty((len(blocks),), dtype=accumulation_dtype(x0.dtype))
        _C.aggregate_mean_of_blocks(pointers, weights, blocks, out.data_ptr(), code)
    return out


@backend.register(OP, "triton", devices=backend.triton_devices, unavailable=_triton_unavailable)
def _triton(clients: list[Tensor], weights: list[float], blocks: list[int] | None) -> Tensor:
    from kernels.triton import aggregate as triton_aggregate

    if blocks is None:
        return triton_aggregate.aggregate_mean(clients, weights)
    return triton_aggregate.aggregate_mean_of_blocks(clients, weights, blocks)


@functools.lru_cache(maxsize=64)
def _block_layout(blocks: tuple[int, ...], chunk: int) -> tuple[list[int], list[int]]:
    """(first element of each block, first chunk of each block + the total chunk count)."""
    offsets, first_chunk = [0], [0]
    for size in blocks:
        offsets.append(offsets[-1] + size)
        first_chunk.append(first_chunk[-1] + -(-size // chunk))
    return offsets[:-1], first_chunk


def block_tables(blocks: Sequence[int], chunk: int, device: torch.device) -> dict[str, Tensor]:
    """int64 device tables of a mean_of_blocks launch: chunks (2, C) (block of each chunk, its first
    element inside the block), offset (B,), size (B,), first_chunk (B + 1,)."""
    offsets, first_chunk = _block_layout(tuple(blocks), chunk)
    host = torch.tensor([*offsets, *blocks, *first_chunk], dtype=torch.int64).to(device, non_blocking=True)
    n = len(blocks)
    return {
        "chunks": chunk_table(blocks, chunk, device),
        "offset": host[:n],
        "size": host[n : 2 * n],
        "first_chunk": host[2 * n :],
    }


@backend.register(OP, "cuda", devices=("cuda",), unavailable=backend.cuda_ext_unavailable)
def _cuda_impl(clients: list[Tensor], weights: list[float], blocks: list[int] | None) -> Tensor:
    x0 = clients[0]
    device = x0.device
    code = DTYPE_CODES[x0.dtype]
    acc = accumulation_dtype(x0.dtype)
    table = pointer_table([clients], device)
    w = torch.tensor(weights, dtype=acc).to(device, non_blocking=True)
    with torch.cuda.device(device):
        stream = torch.cuda.current_stream(device).cuda_stream
        if blocks is None:
            out = x0.new_empty(x0.shape)
            _cuda.aggregate_mean(
                table.data_ptr(), w.data_ptr(), len(clients), x0.numel(), out.data_ptr(), code, stream
            )
            return out
        tables = block_tables(blocks, _cuda.aggregate_blocks_chunk(), device)
        num_chunks = tables["chunks"].size(1)
        partial = torch.empty(num_chunks, dtype=torch.float64, device=device)
        out = x0.new_empty((len(blocks),), dtype=acc)
        _cuda.aggregate_mean_of_blocks(
            table.data_ptr(), w.data_ptr(), len(clients), tables["chunks"].data_ptr(), num_chunks,
            tables["offset"].data_ptr(), tables["size"].data_ptr(), tables["first_chunk"].data_ptr(),
            len(blocks), partial.data_ptr(), out.data_ptr(), code, stream,
        )
        return out
