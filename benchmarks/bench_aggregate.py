"""kernels.aggregate: the server's reduction over S clients of 11M fp32 elements (a ResNet-18), on CPU.

Groups, one per S (ids ``S10`` / ``S100``: ``-k S10`` runs only the small one; S = 100 holds 4.4 GB of
clients plus the anchor's 4.4 GB stack, so run it alone, last: ``-k S100``):
- ``mean``: the clients as a list of per-client buffers (views of one preallocated (S, N) tensor, to
  save memory; each is contiguous, as a client upload is). ``anchor``: ``torch.stack(list).mean(0)``,
  the eager torch way (it copies every client into a new (S, N) tensor first); ``reference`` /
  ``cpu``: ``kernels.aggregate(list)`` with that backend forced (no stack).
- ``weighted stacked`` (S = 10 only: torch's product makes another (S, N) temporary): the clients
  already stacked. ``anchor``: ``(stacked * w[:, None]).sum(0)``; ``cpu``: ``kernels.aggregate(stacked, w)``.

The terminal summary (benchmarks/conftest.py) prints anchor median / provider median per group.
"""

from __future__ import annotations

import functools

import pytest
import torch

import kernels
from kernels.backend import why_unavailable

N = 11_000_000  # ResNet-18's parameter count, roughly
ROUNDS = {10: 7, 100: 3}
S_PARAMS = [pytest.param(10, id="S10"), pytest.param(100, id="S100")]


@functools.cache
def _stacked(S: int) -> torch.Tensor:
    # One allocation; the S=10 data is dropped before S=100 is built (see _drop).
    return torch.randn(S, N, generator=torch.Generator().manual_seed(S))


def _drop_other(S: int) -> None:
    if _stacked.cache_info().currsize and S == 100:
        _stacked.cache_clear()


def _weights(S: int) -> torch.Tensor:
    return torch.rand(S, generator=torch.Generator().manual_seed(1)) + 0.5


def _skip_unavailable(provider: str) -> None:
    if provider in ("reference", "cpu") and provider not in kernels.available_backends("aggregate", "cpu"):
        reason = why_unavailable("aggregate", provider, "cpu")
        pytest.skip(f"the {provider} backend of aggregate is unavailable: {reason}")


def _forced(backend: str, *args, **kwargs):
    def call():
        with kernels.use_backend(backend):
            return kernels.aggregate(*args, **kwargs)

    return call


def _check(result: torch.Tensor, expected: torch.Tensor, benchmark) -> None:
    # A sanity check of the timed result (tests/kernels does the real correctness checks).
    worst = ((result - expected).abs().max() / expected.abs().max()).item()
    benchmark.extra_info["max_rel_diff_vs_anchor"] = worst
    assert worst <= 1e-5, f"differs from the anchor by {worst:.2e} (max rel.)"


@pytest.mark.parametrize("provider", ["anchor", "cpu"])
def test_aggregate_weighted_stacked(benchmark, provider: str) -> None:
    _skip_unavailable(provider)
    S = 10
    stacked, w = _stacked(S), _weights(S)
    benchmark.group = f"aggregate weighted S={S} N=11M fp32 cpu (already stacked)"
    benchmark.extra_info.update(provider=provider, clients=S, numel=N, threads=torch.get_num_threads(),
                                gbytes=(S + 1) * N * 4 / 1e9)
    wn = w / w.sum()
    anchor = lambda: (stacked * wn[:, None]).sum(0)  # noqa: E731
    fn = anchor if provider == "anchor" else _forced(provider, stacked, w)
    if provider != "anchor":
        _check(fn(), anchor(), benchmark)
    benchmark.pedantic(fn, rounds=ROUNDS[S], iterations=1, warmup_rounds=1)


@pytest.mark.parametrize("provider", ["anchor", "reference", "cpu"])
@pytest.mark.parametrize("S", S_PARAMS)
def test_aggregate_mean(benchmark, S: int, provider: str) -> None:
    _skip_unavailable(provider)
    _drop_other(S)
    clients = list(_stacked(S).unbind(0))
    benchmark.group = f"aggregate mean S={S} N=11M fp32 cpu (list of clients)"
    benchmark.extra_info.update(provider=provider, clients=S, numel=N, threads=torch.get_num_threads(),
                                gbytes=(S + 1) * N * 4 / 1e9)
    anchor = lambda: torch.stack(clients).mean(0)  # noqa: E731
    fn = anchor if provider == "anchor" else _forced(provider, clients)
    if provider != "anchor":
        _check(fn(), anchor(), benchmark)
    benchmark.pedantic(fn, rounds=ROUNDS[S], iterations=1, warmup_rounds=1)
