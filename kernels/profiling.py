"""Bracket a region for Nsight Systems.

``with kernels.profiling.capture("train"):`` synchronizes the GPU, calls cudaProfilerStart, opens an
NVTX range, and on exit synchronizes and calls cudaProfilerStop — so that

    nsys profile --capture-range=cudaProfilerApi --capture-range-end=stop -t cuda,nvtx,osrt \\
        -o report python -m pyfed train --profile ...

records exactly that region. Without a GPU it only opens the NVTX range (a no-op without nvtx).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

import torch

from kernels import nvtx


@contextlib.contextmanager
def capture(name: str = "pykernels.capture", enabled: bool = True) -> Iterator[None]:
    """Profile the enclosed block with the CUDA profiler API and an NVTX range named ``name``."""
    if not enabled:
        yield
        return
    on_gpu = torch.cuda.is_available()
    if on_gpu:
        torch.cuda.synchronize()
        torch.cuda.profiler.start()
    try:
        with nvtx.range(name):
            yield
    finally:
        if on_gpu:
            torch.cuda.synchronize()
            torch.cuda.profiler.stop()
