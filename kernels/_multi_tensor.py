"""Multi-tensor launches: one kernel over a whole list of tensors (a model's parameters).

GPU kernels (Triton and CUDA) that work on many tensors at once read two small int64 tables that the
op layer builds here and copies to the device once per call:

- a pointer table (F, n): row f holds the data pointers of the f-th list (params, grads, ...) for the
  n tensors; an absent list (``None``) is a row of zeros;
- a chunk table (2, C): chunk c covers elements [start[c], start[c] + chunk) of tensor[c], clipped to
  that tensor's size. Chunks never straddle two tensors, so a program/block handles exactly one
  chunk with plain, unmasked-in-the-middle loads.

The chunk layout depends only on the sizes, so it is cached; the pointers change with the tensors.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence

import torch
from torch import Tensor


@functools.lru_cache(maxsize=128)
def _chunk_layout(numels: tuple[int, ...], chunk: int) -> tuple[tuple[int, ...], tuple[int, ...]]:
    tensor_of, start_of = [], []
    for index, numel in enumerate(numels):
        for start in range(0, numel, chunk):
            tensor_of.append(index)
            start_of.append(start)
    return tuple(tensor_of), tuple(start_of)


def chunk_table(numels: Sequence[int], chunk: int, device: torch.device | str) -> Tensor:
    """int64 (2, C) on ``device``: row 0 the tensor index of each chunk, row 1 its first element."""
    if chunk < 1:
        raise ValueError(f"chunk must be >= 1, got {chunk}")
    tensor_of, start_of = _chunk_layout(tuple(int(n) for n in numels), int(chunk))
    table = torch.tensor([tensor_of, start_of], dtype=torch.int64).reshape(2, len(tensor_of))
    return table.to(device, non_blocking=True)


def pointer_table(lists: Sequence[Sequence[Tensor] | None], device: torch.device | str) -> Tensor:
    """int64 (F, n) on ``device``: the data pointers of each list (a row of zeros for ``None``)."""
    lengths = {len(tensors) for tensors in lists if tensors is not None}
    if len(lengths) > 1:
        raise ValueError(f"pointer_table: the lists must have one length, got lengths {sorted(lengths)}")
    n = lengths.pop() if lengths else 0
    rows = [[0] * n if tensors is None else [t.data_ptr() for t in tensors] for tensors in lists]
    table = torch.tensor(rows, dtype=torch.int64).reshape(len(lists), n)
    return table.to(device, non_blocking=True)


def numel_table(tensors: Sequence[Tensor], device: torch.device | str) -> Tensor:
    """int64 (n,) on ``device``: the number of elements of each tensor."""
    return torch.tensor([t.numel() for t in tensors], dtype=torch.int64).to(device, non_blocking=True)


def group_by(tensors: Sequence[Tensor], key) -> dict[object, list[int]]:
    """Indices of ``tensors`` grouped by ``key(tensor)`` (e.g. (device, dtype)), in first-seen order:
    one launch per group, as torch's fused optimizers do."""
    groups: dict[object, list[int]] = {}
    for index, t in enumerate(tensors):
        groups.setdefault(key(t), []).append(index)
    return groups
