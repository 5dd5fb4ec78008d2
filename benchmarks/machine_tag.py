"""Print a filesystem-safe tag naming this machine: ``gpu-NVIDIA_H200`` or ``cpu-AMD_EPYC-2c``.

``make bench`` saves runs under ``benchmarks/results/<tag>/`` and ``make bench-check`` compares only
against runs of the same tag: timings from different machines are never compared. Also imported by
benchmarks/conftest.py and benchmarks/gpu/bench_ops.py for the machine identity they record.
"""

from __future__ import annotations

import os
import platform
import re
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def safe(text: str) -> str:
    """``text`` with every run of characters outside [A-Za-z0-9.-] replaced by one underscore."""
    return re.sub(r"[^A-Za-z0-9.-]+", "_", text).strip("_") or "unknown"


def cpu_name() -> str:
    """The CPU model from /proc/cpuinfo (Linux), else platform.processor(), else the architecture."""
    try:
        with open("/proc/cpuinfo", encoding="utf-8", errors="replace") as fh:
            for line in fh:
                key, _, value = line.partition(":")
                # x86 says "model name"; some ARM kernels only give "Hardware" or "Processor".
                if key.strip() in ("model name", "Hardware", "Processor") and value.strip():
                    return value.strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown"


def cpu_count() -> int:
    """Cores this process may run on (its affinity mask, which containers narrow), else os.cpu_count()."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def gpu_names() -> list[str]:
    """Names of the CUDA devices torch sees (empty without torch or without a GPU)."""
    try:
        import torch
    except ImportError:
        return []
    if not torch.cuda.is_available():
        return []
    return [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]


def machine_tag() -> str:
    gpus = gpu_names()
    if gpus:
        count = f"-x{len(gpus)}" if len(gpus) > 1 else ""
        return f"gpu-{safe(gpus[0])}{count}"
    return f"cpu-{safe(cpu_name())}-{cpu_count()}c"


def git_commit() -> str:
    """Short hash of HEAD, with ``-dirty`` when the work tree has changes; "unknown" outside git."""
    def git(*args: str) -> str:
        return subprocess.run(
            ["git", *args], cwd=REPO_ROOT, capture_output=True, text=True, timeout=10, check=True
        ).stdout.strip()

    try:
        commit = git("rev-parse", "--short=12", "HEAD")
    except (OSError, subprocess.SubprocessError):
        return "unknown"
    try:
        dirty = bool(git("status", "--porcelain", "--untracked-files=no"))
    except (OSError, subprocess.SubprocessError):
        dirty = False
    return commit + ("-dirty" if dirty else "")


def machine_identity() -> dict[str, object]:
    """What a timing depends on: hardware, core count, library versions (not the commit)."""
    identity: dict[str, object] = {
        "machine_tag": machine_tag(),
        "cpu_name": cpu_name(),
        "cpu_count": cpu_count(),
        "gpu_name": ", ".join(gpu_names()) or None,
    }
    try:
        import torch

        identity["torch"] = torch.__version__
        identity["torch_threads"] = torch.get_num_threads()
        identity["cuda_runtime"] = torch.version.cuda
    except ImportError:
        identity["torch"] = None
    try:
        import triton

        identity["triton"] = triton.__version__
    except Exception:  # an installed triton that fails to import is as good as none for timing
        identity["triton"] = None
    return identity


if __name__ == "__main__":
    sys.stdout.write(machine_tag() + "\n")
