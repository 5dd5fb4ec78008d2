"""GPU benchmark spec of clip_and_noise for benchmarks/gpu/bench_ops.py (see its docstring)."""

from __future__ import annotations

import torch
from bench_ops import DEVICE, OpBench

MAX_NORM, NOISE_STD, SEED, OFFSET = 1.0, 0.5, 1234, 7


def _eager(inputs: tuple):
    # The anchor: vector_norm, a host-side min(1, C/norm), torch.randn, add.
    (u,) = inputs

    def run() -> torch.Tensor:
        norm = torch.linalg.vector_norm(u.float())
        return u.mul(torch.clamp(MAX_NORM / norm, max=1.0).to(u.dtype)).add_(
            torch.randn(u.shape, device=u.device, dtype=u.dtype), alpha=NOISE_STD
        )

    return run


def _run(u: torch.Tensor) -> torch.Tensor:
    import kernels

    return kernels.clip_and_noise(u, MAX_NORM, NOISE_STD, SEED, OFFSET)[0]


def bench() -> OpBench:
    sizes = [(11_000_000,), (100_000_000,)]
    return OpBench(
        name="clip_and_noise",
        cases=[(s, d) for d in (torch.float32, torch.bfloat16) for s in sizes],
        make_inputs=lambda shape, dtype: (torch.randn(shape, device=DEVICE, dtype=dtype),),
        run=_run,
        # One read of the update for the norm, one read and one write for the clip-and-noise pass:
        # 3 · N · element size bytes (the noise is generated in the kernel, never stored).
        bytes=lambda shape, dtype: 3.0 * shape[0] * torch.empty((), dtype=dtype).element_size(),
        anchors={"eager composition": _eager},
        smoke_cases=[((1031,), torch.float32)],
    )
