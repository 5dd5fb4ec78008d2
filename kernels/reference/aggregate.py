"""The server's weighted reduction over S clients in plain torch: the specification of ``kernels.aggregate``.

With normalized weights w (Σ_s w_s = 1) and S client tensors x_s of one shape::

    mean:            out    = Σ_s w_s · x_s                                (one client's shape, input dtype)
    mean_of_blocks:  out[b] = Σ_s w_s · mean_{i in block b} x_s.flatten()[i]   (len(blocks),)

``mean`` accumulates in fp32 (fp64 for float64 inputs); 16-bit inputs are rounded once at the end.
``mean_of_blocks`` accumulates in fp64 and returns float32 (float64 for float64 inputs).
The weights given here are used as they are: ``kernels.aggregate`` validates and normalizes them.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor


def accumulation_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def aggregate_mean(clients: Sequence[Tensor], weights: Sequence[float]) -> Tensor:
    """Σ_s w_s · x_s, one client at a time (no (S, N) stack), in the accumulation dtype."""
    acc_dtype = accumulation_dtype(clients[0].dtype)
    acc = clients[0].to(acc_dtype) * weights[0]
    for x, w in zip(clients[1:], weights[1:], strict=True):
        acc.add_(x.to(acc_dtype), alpha=w)
    return acc.to(clients[0].dtype)


def aggregate_mean_of_blocks(
    clients: Sequence[Tensor], weights: Sequence[float], blocks: Sequence[int]
) -> Tensor:
    """out[b] = Σ_s w_s · mean of client s's elements in block b (consecutive blocks of the flat buffer)."""
    x0 = clients[0]
    sizes = torch.tensor(list(blocks), dtype=torch.int64, device=x0.device)
    block_of = torch.repeat_interleave(torch.arange(len(blocks), device=x0.device), sizes)
    sums = torch.zeros(len(blocks), dtype=torch.float64, device=x0.device)
    for x, w in zip(clients, weights, strict=True):
        per_block = torch.zeros_like(sums).index_add_(0, block_of, x.reshape(-1).to(torch.float64))
        sums.add_(per_block, alpha=w)
    return (sums / sizes).to(torch.float64 if x0.dtype == torch.float64 else torch.float32)


def aggregate(
    clients: Sequence[Tensor],
    weights: Sequence[float] | None = None,
    reduce: str = "mean",
    blocks: Sequence[int] | None = None,
) -> Tensor:
    """Plain-torch ``kernels.aggregate`` on a list of clients (uniform weights by default, normalized)."""
    n = len(clients)
    w = [1.0 / n] * n if weights is None else [float(v) / sum(weights) for v in weights]
    if reduce == "mean":
        return aggregate_mean(clients, w)
    return aggregate_mean_of_blocks(clients, w, blocks)
