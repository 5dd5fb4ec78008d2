"""``kernels.info()``: what was built here and which backend each op uses."""

from __future__ import annotations

import platform

import torch

from kernels import backend
from kernels._ext import _C, _cuda


def table() -> list[dict]:
    """One row per op: 'yes'/'no' per backend, the defaults, and under "why" the reason each
    unavailable backend gives."""
    rows = []
    for op in backend.ops():
        row = {"op": op, "why": {}}
        for name in backend.BACKENDS:
            reason = backend.why_unavailable(op, name)
            row[name] = "yes" if reason is None else "no"
            if reason is not None:
                row["why"][name] = reason
        row["default cpu"] = backend.default_backend(op, "cpu")
        row["default cuda"] = (
            backend.default_backend(op, "cuda") if torch.cuda.is_available() else "-"
        )
        rows.append(row)
    return rows


def info(file=None) -> dict:
    """Print (to ``file``, default stdout) and return the build and backend summary."""
    summary = {
        "python": platform.python_version(),
        "torch": torch.__version__,
        "cuda_available": torch.cuda.is_available(),
        "kernels._C": _C.info() if _C else f"missing: {_C.reason}",
        "kernels._cuda": _cuda.info() if _cuda else f"missing: {_cuda.reason}",
        "triton": _triton_version(),
        "ops": table(),
    }
    lines = [f"pykernels  python {summary['python']}  torch {summary['torch']}  triton {summary['triton']}"]
    lines.append(f"kernels._C:    {summary['kernels._C']}")
    lines.append(f"kernels._cuda: {summary['kernels._cuda']}")
    cols = ["op", *backend.BACKENDS, "default cpu", "default cuda"]
    widths = {c: max(len(c), *(len(r[c]) for r in summary["ops"])) for c in cols}
    lines.append("  ".join(c.ljust(widths[c]) for c in cols))
    for r in summary["ops"]:
        lines.append("  ".join(r[c].ljust(widths[c]) for c in cols))
    for r in summary["ops"]:
        for name, reason in r["why"].items():
            lines.append(f"  {r['op']}/{name}: {reason}")
    print("\n".join(lines), file=file)
    return summary


def _triton_version() -> str:
    try:
        import triton

        return triton.__version__
    except ImportError:
        return "not installed"
