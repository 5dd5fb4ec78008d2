"""hash_grid_encode on CPU: d=3, L=16, F=2, T=2^19, fp32 table (Instant-NGP's default config).

Groups per size (2^18 and 2^20 points) and pass (forward; forward+backward w.r.t. the table):
- ``anchor``: ``kernels.hash_grid_encode`` with the pure-torch reference forced (the vectorized
  specification; the issue's anchor).
- ``cpu``: the cpu backend (OpenMP over points; backward one level per thread, deterministic).
The reference at 2^20 takes seconds per call, so those groups time fewer rounds.
"""

from __future__ import annotations

import functools

import pytest
import torch

import kernels
from kernels.backend import why_unavailable

OP = "hash_grid_encode"
SIZES = {"2^18": 1 << 18, "2^20": 1 << 20}
LEVELS, LOG2_T, F = 16, 19, 2
KW = dict(n_levels=LEVELS, base_resolution=16, per_level_scale=1.5)
ROUNDS = {("2^18", "anchor"): 3, ("2^20", "anchor"): 1}
CASES = [(s, p, pas) for s in SIZES for pas in ("fwd", "fwd+bwd") for p in ("anchor", "cpu")]


@functools.cache
def _inputs(size: str) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    x = torch.rand(SIZES[size], 3, generator=g)
    table = (torch.rand(LEVELS, 1 << LOG2_T, F, generator=g) - 0.5) * 2e-4
    return x, table


def _call(provider: str, x: torch.Tensor, table: torch.Tensor, backward: bool) -> torch.Tensor:
    with kernels.use_backend("reference" if provider == "anchor" else provider):
        if not backward:
            return kernels.hash_grid_encode(x, table, **KW)
        t = table.detach().requires_grad_(True)
        out = kernels.hash_grid_encode(x, t, **KW)
        (grad,) = torch.autograd.grad(out, t, torch.ones_like(out))
        return grad


@pytest.mark.parametrize("size, provider, pas", CASES, ids=[f"{s}-{p}-{a}" for s, p, a in CASES])
def test_hash_grid_encode(benchmark, size: str, provider: str, pas: str) -> None:
    if provider == "cpu" and "cpu" not in kernels.available_backends(OP, "cpu"):
        pytest.skip(f"the cpu backend is unavailable: {why_unavailable(OP, 'cpu', 'cpu')}")
    x, table = _inputs(size)
    benchmark.group = f"hash_grid_encode {size} d=3 L=16 F=2 T=2^19 fp32 {pas} cpu"
    benchmark.extra_info.update(provider=provider, points=x.shape[0], threads=torch.get_num_threads())
    backward = pas == "fwd+bwd"
    rounds = ROUNDS.get((size, provider), 5)
    benchmark.pedantic(
        _call, args=(provider, x, table, backward), rounds=rounds, iterations=1, warmup_rounds=0
    )
