"""GPU benchmark spec of ``kernels.aggregate`` (imported by benchmarks/gpu/bench_ops.py).

Shape (S, N): S clients of N elements each, given to the op as a list of per-client buffers (views of
one (S, N) allocation, as the CPU suite does). Memory-bound: the rate is GB/s of (S + 1)·N·element
size bytes — every client read once and the output written once.
Anchors: ``torch.stack(list).mean(0)`` (the eager way: copies the clients first) and, with the clients
already stacked, ``torch.mean(stacked, 0)`` (what torch moves when no copy is needed).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from bench_ops import DEVICE, OpBench

import kernels

N = 11_000_000  # ResNet-18's parameter count, roughly


def _make_inputs(shape: tuple[int, ...], dtype: torch.dtype) -> tuple:
    stacked = torch.randn(shape, device=DEVICE, dtype=dtype)
    return (list(stacked.unbind(0)),)


def _stack_mean(inputs: tuple) -> Callable[[], torch.Tensor]:
    (clients,) = inputs
    return lambda: torch.stack(clients).mean(0)


def _stacked_mean(inputs: tuple) -> Callable[[], torch.Tensor]:
    (clients,) = inputs
    stacked = torch.stack(clients)
    return lambda: stacked.mean(0)


def bench() -> OpBench:
    shapes = [(10, N), (100, N)]
    return OpBench(
        name="aggregate",
        cases=[(s, d) for d in (torch.float32, torch.bfloat16) for s in shapes],
        make_inputs=_make_inputs,
        run=lambda clients: kernels.aggregate(clients),
        # (S + 1)·N·element size: each of the S clients read once, the (N,) output written once.
        bytes=lambda shape, dtype: (shape[0] + 1) * shape[1] * torch.tensor([], dtype=dtype).element_size(),
        anchors={"torch.stack.mean": _stack_mean, "stacked.mean(0)": _stacked_mean},
        smoke_cases=[((3, 1031), torch.float32)],
    )
