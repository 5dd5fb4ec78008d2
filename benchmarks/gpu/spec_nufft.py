"""GPU benchmark spec of nufft for benchmarks/gpu/bench_ops.py (see its docstring).

A case's shape is (type, N, coils, spokes, samples per spoke): ``kernels.nufft2d_type2`` (type 2) or
``nufft2d_type1`` (type 1) of an N² image with ``coils`` coils on a golden-angle radial trajectory,
tol 1e-6 (w = 7). The backends differ only in the gridding step (spread / interp); deapodization,
padding and the fine-grid FFT are the same torch code for all of them.
"""

from __future__ import annotations

import math

import torch
from bench_ops import DEVICE, OpBench

TOL = 1e-6


def _trajectory(spokes: int, samples: int) -> torch.Tensor:
    angle = torch.arange(spokes, dtype=torch.float64) * (math.pi * (math.sqrt(5) - 1) / 2)
    r = (torch.arange(samples, dtype=torch.float64) - samples / 2) * (2 * math.pi / samples)
    k = torch.stack([r * torch.cos(angle[:, None]), r * torch.sin(angle[:, None])], -1)
    return k.reshape(-1, 2).to(DEVICE)


def _make_inputs(shape: tuple[int, ...], dtype: torch.dtype) -> tuple:
    kind, n, coils, spokes, samples = shape
    generator = torch.Generator().manual_seed(0)
    k = _trajectory(spokes, samples)
    data_shape = (1, coils, n, n) if kind == 2 else (1, coils, k.shape[0])
    x = torch.randn(data_shape, dtype=dtype, generator=generator).to(DEVICE)
    return kind, x, k, n


def _run(kind: int, x: torch.Tensor, k: torch.Tensor, n: int) -> torch.Tensor:
    import kernels

    if kind == 2:
        return kernels.nufft2d_type2(x, k, tol=TOL)
    return kernels.nufft2d_type1(x, k, (n, n), tol=TOL)


def _bytes(shape: tuple[int, ...], dtype: torch.dtype) -> float:
    # The gridding step's compulsory traffic: the samples once (coils · M complex), the 2N × 2N fine
    # grid once (coils · 4N² complex; spread writes it, interp reads it) and the trajectory (M · 2
    # float64). The footprint re-reads (w² per sample) and the FFTs are not counted.
    kind, n, coils, spokes, samples = shape
    m = spokes * samples
    elem = torch.empty((), dtype=dtype).element_size()
    return coils * (m + 4 * n * n) * elem + m * 2 * 8.0


def bench() -> OpBench:
    sizes = [(256, 8, 200, 512), (512, 16, 400, 1024)]
    return OpBench(
        name="nufft",
        cases=[
            ((kind, *s), d) for d in (torch.complex64, torch.complex128) for kind in (2, 1) for s in sizes
        ],
        make_inputs=_make_inputs,
        run=_run,
        bytes=_bytes,
        smoke_cases=[((2, 12, 2, 3, 13), torch.complex64), ((1, 12, 2, 3, 13), torch.complex64)],
    )
