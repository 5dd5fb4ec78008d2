"""Backend registry and selection, kernels.info(), NVTX ranges and the profiler capture."""

from __future__ import annotations

import io
import os
import shutil

import pytest
import torch

import kernels
from kernels import backend


@pytest.fixture
def toy_op():
    """A throwaway op with a reference and a backend that is never available."""
    name = "toy_identity"
    backend.define_op(name, preference={"cpu": ("cpu",), "cuda": ("cuda",)})
    backend.register(name, "reference", devices=("cpu", "cuda"))(lambda x: ("reference", x))
    backend.register(name, "cpu", devices=("cpu",), unavailable=lambda: "built without it on purpose")(
        lambda x: ("cpu", x)
    )
    yield name
    del backend._ops[name]


def test_automatic_choice_falls_back_to_reference(toy_op):
    assert backend.available_backends(toy_op) == ["reference"]
    name, fn = backend.select(toy_op, torch.device("cpu"))
    assert name == "reference" and fn(1) == ("reference", 1)


def test_forced_unavailable_backend_raises_with_reason(toy_op):
    with kernels.use_backend("cpu"), pytest.raises(kernels.BackendUnavailableError, match="on purpose"):
        backend.select(toy_op, torch.device("cpu"))
    with kernels.use_backend("triton"), pytest.raises(kernels.BackendUnavailableError, match="no 'triton'"):
        backend.select(toy_op, torch.device("cpu"))


def test_env_var_forces_backend(toy_op, monkeypatch):
    monkeypatch.setenv("PYKERNELS_BACKEND", "cpu")
    with pytest.raises(kernels.BackendUnavailableError, match="'cpu' was requested"):
        backend.select(toy_op, torch.device("cpu"))
    # the context manager wins over the environment, and default_backend ignores both
    with kernels.use_backend("reference"):
        assert backend.select(toy_op, torch.device("cpu"))[0] == "reference"
    assert kernels.default_backend(toy_op, "cpu") == "reference"


def test_use_backend_validates_and_restores():
    with pytest.raises(ValueError, match="use_backend: name must be one of"), kernels.use_backend("gpu"):
        pass
    with kernels.use_backend("reference"):
        assert backend.forced_backend() == "reference"
        with kernels.use_backend(None):
            assert backend.forced_backend() is None
    assert backend.forced_backend() is None


def test_backend_on_wrong_device_is_refused():
    if "cpu" not in kernels.available_backends("newton_schulz"):
        pytest.skip("kernels._C not built")
    reason = backend.why_unavailable("newton_schulz", "cpu", "cuda")
    assert reason is not None and "not on 'cuda'" in reason


def test_unknown_op():
    with pytest.raises(ValueError, match="unknown op"):
        kernels.available_backends("no_such_op")


def test_compiled_cpu_extension_is_used_by_default():
    # CI builds kernels._C: a silent fall back to the reference would hide a broken build.
    assert kernels.available_backends("newton_schulz", "cpu")[:2] == ["reference", "cpu"]
    assert kernels.default_backend("newton_schulz", "cpu") == "cpu"


def test_info_lists_every_op_and_backend():
    buf = io.StringIO()
    summary = kernels.info(file=buf)
    text = buf.getvalue()
    assert "newton_schulz" in text and "default cpu" in text
    row = next(r for r in summary["ops"] if r["op"] == "newton_schulz")
    assert row["reference"] == "yes"
    assert row["default cpu"] == kernels.default_backend("newton_schulz", "cpu")


def test_nvtx_range_context_and_decorator(monkeypatch):
    calls = []

    class FakeNvtx:
        @staticmethod
        def push_range(name, color=None, domain=None):
            calls.append(("push", name, domain))

        @staticmethod
        def pop_range(domain=None):
            calls.append(("pop", domain))

    monkeypatch.setattr(kernels.nvtx, "_nvtx_pkg", FakeNvtx)
    monkeypatch.setattr(kernels.nvtx, "_enabled", True)

    @kernels.nvtx.range("outer")
    def work():
        with kernels.nvtx.range("inner"):
            return 3

    assert work() == 3
    assert calls == [
        ("push", "outer", "pykernels"),
        ("push", "inner", "pykernels"),
        ("pop", "pykernels"),
        ("pop", "pykernels"),
    ]
    calls.clear()
    kernels.nvtx.set_enabled(False)
    with kernels.nvtx.range("off"):
        pass
    assert calls == [] and kernels.nvtx.backend() == "none"


def test_profiling_capture_runs_without_gpu():
    with kernels.profiling.capture("region"):
        y = kernels.newton_schulz(torch.randn(4, 5))
    assert y.shape == (4, 5)


@pytest.mark.skipif(
    shutil.which("nvcc") is None or os.environ.get("PYKERNELS_CUDA") == "OFF",
    reason="no nvcc here: kernels._cuda is not built",
)
def test_cuda_extension_is_built_where_nvcc_is():
    # nvcc is on this machine, so a missing kernels._cuda means the CMake CUDA path broke.
    from kernels._ext import _cuda

    assert _cuda, getattr(_cuda, "reason", "")
    info = _cuda.info()
    assert info["architectures"] and info["cuda_runtime_compiled"] > 0
    # fp32 (B=2, 3x5): X + A + B regions, each 256-byte aligned, plus the norm partial sums
    assert _cuda.newton_schulz_workspace_bytes(2, 3, 5, 0) >= 4 * (2 * 3 * 5 + 2 * 2 * 3 * 3)
    with pytest.raises(ValueError, match="m"):
        _cuda.newton_schulz_workspace_bytes(1, 6, 5, 0)
