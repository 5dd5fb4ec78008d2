"""GPU benchmark spec of hash_grid_encode for benchmarks/gpu/bench_ops.py (see its docstring).

Forward only, d=3, L=16, F=2, T=2^19 (Instant-NGP's default), 2^18 and 2^22 points, fp32 and fp16
tables. Rated in GB/s on the bytes the op must touch: per point it reads d coordinates and writes
L·F outputs, and per (point, level) it gathers 2^d table rows of F entries. The gathers are random
and mostly L2 hits for the coarse levels, so this "effective" bandwidth can exceed HBM: compare
backends with it, and read points/s = points / time. tiny-cuda-nn's published encoding timings (its
README's benchmark of the hash grid) are the external yardstick; its figure is not copied here
unchecked — add it beside the first run_all.sh result.
"""

from __future__ import annotations

import torch
from bench_ops import DEVICE, OpBench

LEVELS, LOG2_T, F, D = 16, 19, 2, 3
KW = dict(n_levels=LEVELS, base_resolution=16, per_level_scale=1.5)


def _make_inputs(shape: tuple[int, ...], dtype: torch.dtype) -> tuple:
    (n,) = shape
    x = torch.rand(n, D, device=DEVICE)
    table = ((torch.rand(LEVELS, 1 << LOG2_T, F, device=DEVICE) - 0.5) * 2e-4).to(dtype)
    return x, table


def _run(x: torch.Tensor, table: torch.Tensor) -> torch.Tensor:
    import kernels

    return kernels.hash_grid_encode(x, table, **KW, check_finite=False)


def _bytes(shape: tuple[int, ...], dtype: torch.dtype) -> float:
    (n,) = shape
    elt = torch.empty((), dtype=dtype).element_size()
    # x (fp32, d per point) + output (L·F per point) + gathered rows (L · 2^d · F per point)
    return n * (4.0 * D + LEVELS * F * elt + LEVELS * (1 << D) * F * elt)


def bench() -> OpBench:
    sizes = [(1 << 18,), (1 << 22,)]
    return OpBench(
        name="hash_grid_encode",
        cases=[(s, d) for d in (torch.float32, torch.float16) for s in sizes],
        make_inputs=_make_inputs,
        run=_run,
        bytes=_bytes,
        smoke_cases=[((1031,), torch.float32)],
    )
