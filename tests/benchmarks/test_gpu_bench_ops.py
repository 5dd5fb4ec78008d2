"""benchmarks/gpu/bench_ops.py on CPU: every op's spec runs end to end on its small smoke cases.

The GPU script only runs on a lent GPU, for a few minutes; a broken spec (wrong argument, a shape the
op rejects, a byte count that raises) must fail here instead. do_bench is replaced by one call, the
device by "cpu", and the backends by those that run on CPU tensors.
"""

from __future__ import annotations

import importlib
import math
import sys
from pathlib import Path

import pytest
import torch

GPU_DIR = Path(__file__).resolve().parents[2] / "benchmarks" / "gpu"
sys.path.insert(0, str(GPU_DIR))
bench_ops = importlib.import_module("bench_ops")


@pytest.mark.parametrize("op", list(bench_ops.OPS))
def test_spec_runs_on_cpu(op, monkeypatch):
    spec = bench_ops.OPS[op]()
    assert spec.smoke_cases, f"{op}: give its OpBench smoke_cases for this test"
    assert (spec.flops is None) != (spec.bytes is None), f"{op}: set exactly one of flops and bytes"
    monkeypatch.setattr(bench_ops, "DEVICE", "cpu")
    spec_module = sys.modules.get(f"spec_{op}")
    if spec_module is not None:
        monkeypatch.setattr(spec_module, "DEVICE", "cpu")
    monkeypatch.setattr(bench_ops, "BACKENDS", ("cpu", "reference"))
    monkeypatch.setattr(bench_ops, "_do_bench", lambda fn, rep=100: (fn(), 1.0)[1])
    monkeypatch.setattr(torch.cuda, "synchronize", lambda *args, **kwargs: None)
    spec.cases = spec.smoke_cases
    ceilings = {torch.float32: 1.0, torch.float64: 1.0, torch.bfloat16: 1.0, torch.float16: 1.0,
                bench_ops.HBM: 1.0}
    rows = bench_ops.bench_op(spec, ceilings, math.inf, bench_ops.Report())

    ours = [r for r in rows if r.backend in ("cpu", "reference")]
    assert len(ours) == 2 * len(spec.smoke_cases)
    for r in rows:
        assert not r.note.startswith("error"), f"{op} {r.shape} {r.backend}: {r.note}"
    for r in ours:
        if "unavailable" in r.note:
            continue
        assert r.ms == 1.0 and r.rate and r.pct_ceiling is not None
        # Fresh inputs per candidate: the cpu backend's first call agrees with the reference's.
        assert r.rel_err is not None and r.rel_err < 1e-4, f"{op} {r.shape} {r.backend}: {r.rel_err}"
