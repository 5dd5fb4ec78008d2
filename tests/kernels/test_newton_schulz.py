"""kernels.newton_schulz: every backend against the reference, the singular-value invariant, bad input."""

from __future__ import annotations

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import kernels
from kernels.reference import newton_schulz as reference

OP = "newton_schulz"
QUINTIC = (3.4445, -4.7750, 2.0315)
CPU_BACKENDS = [b for b in ("cpu", "triton") if b in kernels.available_backends(OP, "cpu")]

# Relative Frobenius error ‖ours − ref‖/‖ref‖ against the reference in the same dtype. float32: two
# summation orders differ by ~1e-6 after 5 quintic steps (measured vs float64), so 1e-5 has 10x room.
TOL = {torch.float64: 1e-10, torch.float32: 1e-5}

# Tall, wide, square, batched, odd and prime sizes; (1, 1) and vectors-as-matrices at the edges.
SHAPES = [(1, 1), (1, 7), (5, 3), (17, 33), (33, 17), (32, 32), (3, 20, 45), (2, 3, 13, 29), (64, 96)]


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return ((a.double() - b.double()).norm() / b.double().norm()).item()


CASES = [(b, shape) for b in CPU_BACKENDS for shape in SHAPES]


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=str)
@pytest.mark.parametrize("backend, shape", CASES, ids=[f"{b}-{s}" for b, s in CASES])
def test_matches_reference(backend, shape, dtype):
    G = torch.randn(*shape, dtype=dtype)
    expected = reference(G)
    with kernels.use_backend(backend):
        out = kernels.newton_schulz(G)
    assert out.shape == G.shape and out.dtype == dtype
    assert rel_err(out, expected) <= TOL[dtype]


# The Triton interpreter has no bfloat16: bf16 Triton runs in the cuda-marked tests below.
CASES_16 = [(b, d) for b in CPU_BACKENDS for d in (torch.bfloat16, torch.float16)]
CASES_16 = [(b, d) for b, d in CASES_16 if not (b == "triton" and d == torch.bfloat16)]


@pytest.mark.parametrize("backend, dtype", CASES_16, ids=[f"{b}-{d}" for b, d in CASES_16])
def test_16bit_against_float64(backend, dtype):
    # Judged as flash-attention does: against a float64 reference, relative to the error that the
    # torch reference itself makes in the same dtype (bf16 NS5 loses ~3e-2 to rounding).
    G = torch.randn(3, 48, 80, dtype=torch.float64)
    truth = reference(G)
    torch_err = rel_err(reference(G.to(dtype)), truth)
    with kernels.use_backend(backend):
        out = kernels.newton_schulz(G.to(dtype))
    assert out.dtype == dtype
    assert rel_err(out, truth) <= max(2e-2, 1.5 * torch_err)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_per_step_coefficients_and_eps(backend):
    coeffs = [(3.4445, -4.7750, 2.0315), (3.0, -3.2, 1.2), (1.875, -1.25, 0.375)]
    G = torch.randn(2, 9, 21, dtype=torch.float64)
    expected = reference(G, steps=3, coefficients=coeffs, eps=1e-3)
    with kernels.use_backend(backend):
        out = kernels.newton_schulz(G, steps=3, coefficients=coeffs, eps=1e-3)
    assert rel_err(out, expected) <= TOL[torch.float64]


@pytest.mark.parametrize("backend", CPU_BACKENDS)
def test_non_contiguous_input(backend):
    base = torch.randn(40, 3, 26, dtype=torch.float64)
    G = base.permute(1, 2, 0)[:, ::2]  # (3, 13, 40), strided in every dim
    assert not G.is_contiguous()
    with kernels.use_backend(backend):
        out = kernels.newton_schulz(G)
    assert out.is_contiguous()
    assert rel_err(out, reference(G.contiguous())) <= TOL[torch.float64]


@pytest.mark.parametrize("backend", ["reference", *CPU_BACKENDS])
def test_singular_values_follow_the_polynomial(backend):
    # NS acts on singular values only: σ_out = p(p(…p(σ/(‖G‖_F + eps)))), p(x) = ax + bx³ + cx⁵.
    G = torch.randn(24, 40, dtype=torch.float64)
    with kernels.use_backend(backend):
        out = kernels.newton_schulz(G)
    s = torch.linalg.svdvals(G) / (torch.linalg.matrix_norm(G) + 1e-7)
    a, b, c = QUINTIC
    for _ in range(5):
        s = a * s + b * s**3 + c * s**5
    torch.testing.assert_close(
        torch.linalg.svdvals(out), torch.sort(s, descending=True).values, rtol=1e-9, atol=1e-11
    )


def test_singular_value_band():
    # Documented band: singular values with σ/‖G‖_F >= 2e-3 end in [0.68, 1.21] after the quintic x5.
    # Build G = U diag(σ) Vᵀ with a controlled spectrum spanning that whole range.
    m, n = 32, 48
    U, _ = torch.linalg.qr(torch.randn(m, m, dtype=torch.float64))
    V, _ = torch.linalg.qr(torch.randn(n, m, dtype=torch.float64))
    sigma = torch.logspace(-2.4, 0, m, dtype=torch.float64)
    G = U @ torch.diag(sigma) @ V.mT
    assert 2e-3 <= sigma.min() / sigma.norm() <= 2.5e-3  # the spectrum reaches the band's lower edge
    s = torch.linalg.svdvals(kernels.newton_schulz(G))
    assert s.min() >= 0.68 and s.max() <= 1.21


def test_opcheck():
    for G in (torch.randn(3, 7, 12, dtype=torch.float64), torch.randn(10, 4)):
        torch.library.opcheck(torch.ops.pykernels.newton_schulz.default, (G, list(QUINTIC) * 5, 1e-7))


def test_torch_compile_fullgraph():
    G = torch.randn(4, 16, 24)

    @torch.compile(fullgraph=True, backend="inductor")
    def f(x):
        return kernels.newton_schulz(x * 2.0) + 1.0

    torch.testing.assert_close(f(G), reference(G * 2.0) + 1.0, rtol=1e-5, atol=1e-5)


def test_numpy_in_numpy_out():
    G = np.random.default_rng(0).standard_normal((2, 6, 9))
    out = kernels.newton_schulz(G)
    assert isinstance(out, np.ndarray) and out.shape == G.shape and out.dtype == np.float64
    np.testing.assert_allclose(out, reference(torch.from_numpy(G)).numpy(), rtol=1e-10, atol=1e-12)
    G.setflags(write=False)  # read-only arrays cannot be exported through DLPack: copied once
    np.testing.assert_allclose(kernels.newton_schulz(G), out, rtol=1e-12, atol=1e-14)


def test_empty_batch():
    out = kernels.newton_schulz(torch.randn(0, 5, 7))
    assert out.shape == (0, 5, 7)


@pytest.mark.parametrize(
    "kwargs, exc, match",
    [
        ({"G": torch.randn(5)}, ValueError, "G must have shape"),
        ({"G": torch.randint(0, 3, (4, 4))}, TypeError, "G must have dtype"),
        ({"G": torch.randn(4, 4, dtype=torch.complex64)}, TypeError, "G must have dtype"),
        ({"G": torch.randn(0, 4)}, ValueError, "m >= 1"),
        ({"G": [[1.0, 2.0]]}, TypeError, "G must be a torch.Tensor"),
        ({"steps": 0}, ValueError, "steps must be an integer >= 1"),
        ({"steps": 2.5}, ValueError, "steps"),
        ({"coefficients": (1.0, 2.0)}, ValueError, "coefficients"),
        ({"coefficients": [(1.0, 2.0, 3.0)] * 4}, ValueError, "4 triples but steps=5"),
        ({"coefficients": (1.0, float("nan"), 3.0)}, ValueError, "coefficients must be finite"),
        ({"eps": -1.0}, ValueError, "eps"),
        ({"G": torch.tensor([[1.0, float("inf")]]), "check_finite": True}, ValueError, "NaN or Inf"),
    ],
)
def test_bad_input(kwargs, exc, match):
    args = {"G": torch.randn(4, 6)} | kwargs
    with pytest.raises(exc, match=match):
        kernels.newton_schulz(**args)


def test_nan_passes_through_without_check():
    G = torch.randn(4, 6)
    G[1, 2] = float("nan")
    assert torch.isnan(kernels.newton_schulz(G)).any()


# ---- GPU: run by benchmarks/gpu/run_all.sh --------------------------------------------------------

GPU_SHAPES = [(1, 1), (17, 33), (33, 17), (4, 64, 64), (3, 100, 260), (2, 257, 513)]
GPU_TOL = {torch.float64: 1e-10, torch.float32: 1e-5}


@pytest.mark.cuda
@pytest.mark.parametrize("backend", ["triton", "cuda"])
@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("shape", GPU_SHAPES)
def test_gpu_matches_reference(backend, dtype, shape):
    G = torch.randn(*shape, dtype=dtype, device="cuda")
    with kernels.use_backend(backend):
        out = kernels.newton_schulz(G)
    prev = torch.backends.cuda.matmul.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = False
    try:
        expected = reference(G)
    finally:
        torch.backends.cuda.matmul.allow_tf32 = prev
    assert rel_err(out, expected) <= GPU_TOL[dtype]


@pytest.mark.cuda
@pytest.mark.parametrize("backend", ["triton", "cuda"])
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
@pytest.mark.parametrize("shape", [(17, 33), (4, 128, 256), (2, 300, 700)])
def test_gpu_16bit_against_float64(backend, dtype, shape):
    G = torch.randn(*shape, dtype=torch.float64, device="cuda")
    truth = reference(G)
    torch_err = rel_err(reference(G.to(dtype)), truth)
    with kernels.use_backend(backend):
        out = kernels.newton_schulz(G.to(dtype))
    assert out.dtype == dtype
    assert rel_err(out, truth) <= max(2e-2, 1.5 * torch_err)


@pytest.mark.cuda
def test_gpu_default_backend_and_stream():
    G = torch.randn(8, 64, 96, device="cuda")
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        out = kernels.newton_schulz(G)
    stream.synchronize()
    assert rel_err(out, reference(G)) <= GPU_TOL[torch.float32]


_ISA_SCRIPT = """
import torch, kernels
from kernels._ext import _C
from kernels.reference import newton_schulz as reference
torch.manual_seed(1)
worst = {}
for dtype, tol in ((torch.float64, 1e-10), (torch.float32, 1e-5)):
    for shape in ((1, 1), (5, 3), (17, 33), (3, 65, 130), (2, 100, 100)):
        G = torch.randn(*shape, dtype=dtype)
        with kernels.use_backend("cpu"):
            out = kernels.newton_schulz(G)
        ref = reference(G)
        err = ((out.double() - ref.double()).norm() / ref.double().norm()).item()
        assert err <= tol, (dtype, shape, err)
print(_C.info()["newton_schulz_isa"])
"""


@pytest.mark.skipif("cpu" not in CPU_BACKENDS, reason="kernels._C not built")
@pytest.mark.parametrize("isa", ["generic", "avx2", "avx512"])
def test_every_cpu_instruction_set_path(isa):
    # The path is chosen once per process, so each runs in a fresh interpreter. A path this CPU lacks
    # is capped to the best it has (PYKERNELS_NS_ISA only lowers the choice).
    from kernels._ext import _C

    best = _C.info()["newton_schulz_isa"]
    order = ["generic", "avx2", "avx512"]
    expected = order[min(order.index(isa), order.index(best))]
    env = {**os.environ, "PYKERNELS_NS_ISA": isa}
    run = subprocess.run(
        [sys.executable, "-c", _ISA_SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert run.returncode == 0, run.stderr[-2000:]
    assert run.stdout.strip().splitlines()[-1] == expected


@pytest.mark.skipif("cpu" not in CPU_BACKENDS, reason="kernels._C not built")
@settings(max_examples=30, deadline=None)
@given(
    batch=st.integers(1, 3),
    m=st.integers(1, 40),
    n=st.integers(1, 40),
    steps=st.integers(1, 6),
    scale=st.floats(1e-3, 1e3),
)
def test_property_cpu_equals_reference_and_acts_on_singular_values(batch, m, n, steps, scale):
    G = scale * torch.randn(batch, m, n, dtype=torch.float64)
    with kernels.use_backend("cpu"):
        out = kernels.newton_schulz(G, steps=steps)
    assert rel_err(out, reference(G, steps=steps)) <= TOL[torch.float64]
    s = torch.linalg.svdvals(G) / (torch.linalg.matrix_norm(G)[:, None] + 1e-7)
    a, b, c = QUINTIC
    for _ in range(steps):
        s = a * s + b * s**3 + c * s**5
    expected = torch.sort(s, dim=-1, descending=True).values
    torch.testing.assert_close(torch.linalg.svdvals(out), expected, rtol=1e-8, atol=1e-10)
