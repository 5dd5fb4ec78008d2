"""NUFFT on CPU, the pyrecon data-consistency size: a 256² image, 8 coils, 200 golden-angle radial
spokes × 512 samples (102,400 samples), tol 1e-6.

One group per (type, dtype); providers side by side, all on torch.get_num_threads() threads:
- ``anchor``: finufft 2.5 (``finufft.Plan`` made once with nthreads = torch threads and the same tol;
  the timed call is ``setpts`` + ``execute``, since our call also sorts the samples every time).
- ``torchkbnufft``: ``KbNufft`` / ``KbNufftAdjoint`` (defaults: 6-point Kaiser–Bessel table, grid 2N —
  its accuracy is ~1e-3, not 1e-6: it is cheaper per sample than a 1e-6 kernel).
- ``cpu`` / ``reference``: ``kernels.nufft2d_type2`` / ``nufft2d_type1`` with that backend forced.

Each provider's warm-up result is checked against finufft's before timing (a wrong kernel fails the
benchmark). The terminal summary (benchmarks/conftest.py) prints anchor median / provider median.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import pytest
import torch

import kernels
from kernels.backend import why_unavailable

N, COILS, SPOKES, SAMPLES, TOL = 256, 8, 200, 512, 1e-6
PROVIDERS = ("anchor", "torchkbnufft", "cpu", "reference")
CASES = [
    pytest.param(2, torch.complex64, id="type2-c64"),
    pytest.param(1, torch.complex64, id="type1-c64"),
    pytest.param(2, torch.complex128, id="type2-c128"),
    pytest.param(1, torch.complex128, id="type1-c128"),
]
# Relative ℓ2 difference from finufft accepted as a sanity check (tests/kernels does accuracy):
# tol-level for our backends; torchkbnufft's default kernel is ~1e-3 accurate.
CHECK = {"cpu": 1e-4, "reference": 1e-4, "torchkbnufft": 2e-2}
ROUNDS = {"anchor": 10, "torchkbnufft": 5, "cpu": 10, "reference": 2}


@functools.cache
def _trajectory() -> torch.Tensor:
    angle = torch.arange(SPOKES, dtype=torch.float64) * (math.pi * (math.sqrt(5) - 1) / 2)
    r = (torch.arange(SAMPLES, dtype=torch.float64) - SAMPLES / 2) * (2 * math.pi / SAMPLES)
    k = torch.stack([r * torch.cos(angle[:, None]), r * torch.sin(angle[:, None])], -1)
    return k.reshape(-1, 2).contiguous()


@functools.cache
def _data(kind: int, dtype: torch.dtype) -> torch.Tensor:
    generator = torch.Generator().manual_seed(0)
    shape = (1, COILS, N, N) if kind == 2 else (1, COILS, SPOKES * SAMPLES)
    return torch.randn(shape, dtype=dtype, generator=generator)


def _finufft(kind: int, dtype: torch.dtype):
    finufft = pytest.importorskip("finufft")
    k = _trajectory().numpy().astype(np.float32 if dtype == torch.complex64 else np.float64)
    kx, ky = k[:, 0].copy(), k[:, 1].copy()
    plan = finufft.Plan(
        kind, (N, N), n_trans=COILS, eps=TOL, isign=-1 if kind == 2 else 1,
        nthreads=torch.get_num_threads(), dtype="complex64" if dtype == torch.complex64 else "complex128",
    )
    data = _data(kind, dtype)[0].numpy()

    def run():
        plan.setpts(kx, ky)
        return torch.from_numpy(plan.execute(data))[None]

    return run


def _torchkbnufft(kind: int, dtype: torch.dtype):
    tkbn = pytest.importorskip("torchkbnufft")
    omega = _trajectory().T.contiguous().to(torch.float32 if dtype == torch.complex64 else torch.float64)
    data = _data(kind, dtype)
    op = (tkbn.KbNufft if kind == 2 else tkbn.KbNufftAdjoint)(im_size=(N, N), dtype=dtype)
    return lambda: op(data, omega)


def _ours(kind: int, dtype: torch.dtype, backend: str):
    reason = why_unavailable("nufft", backend, "cpu")
    if reason is not None:
        pytest.skip(f"the {backend} backend of nufft is unavailable: {reason}")
    k, data = _trajectory(), _data(kind, dtype)

    def run():
        with kernels.use_backend(backend):
            if kind == 2:
                return kernels.nufft2d_type2(data, k, tol=TOL)
            return kernels.nufft2d_type1(data, k, (N, N), tol=TOL)

    return run


@functools.cache
def _truth(kind: int, dtype: torch.dtype) -> torch.Tensor:
    return _finufft(kind, dtype)()


@pytest.mark.parametrize("provider", PROVIDERS)
@pytest.mark.parametrize("kind, dtype", CASES)
def test_nufft(benchmark, kind: int, dtype: torch.dtype, provider: str) -> None:
    if provider == "anchor":
        fn = _finufft(kind, dtype)
    elif provider == "torchkbnufft":
        fn = _torchkbnufft(kind, dtype)
    else:
        fn = _ours(kind, dtype, provider)
    benchmark.group = f"nufft2d type{kind} {N}x{N} {COILS}coils {SPOKES}x{SAMPLES} {str(dtype)[6:]} cpu"
    benchmark.extra_info.update(provider=provider, threads=torch.get_num_threads(), tol=TOL)
    result = fn()
    if provider != "anchor":
        truth = _truth(kind, dtype)
        err = ((result - truth).abs().norm() / truth.abs().norm()).item()
        benchmark.extra_info["rel_l2_vs_finufft"] = err
        assert err <= CHECK[provider], f"{provider} differs from finufft by {err:.2e} (rel. l2)"
    del result
    benchmark.pedantic(fn, rounds=ROUNDS[provider], iterations=1, warmup_rounds=0)
