"""kernels.rotate_filter_bank: every backend against the reference, gradients, opcheck, bad inputs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import kernels
from kernels.nn.group_basis import make_basis

OP = "rotate_filter_bank"
CPU_BACKENDS = [b for b in ("cpu", "triton") if b in kernels.available_backends(OP, "cpu")]
ALL_CPU = ["reference", *CPU_BACKENDS]
# Forward and backward are short sums (B or N·k·k terms) in a different order per backend.
TOL = {torch.float32: 1e-5, torch.float64: 1e-12}

# (C_out, C_in, N_in, N, B, k1, k2): lifting and group layers, 1-sized dims, odd and non-square sizes,
# a non-power-of-two N and B, and one bank with C_out·N·C_in·N_in·k·k > 1000 odd taps.
SHAPES = [
    (1, 1, 1, 1, 1, 1, 1),
    (2, 3, 1, 4, 9, 3, 3),
    (3, 2, 4, 4, 9, 3, 3),
    (1, 2, 7, 7, 5, 3, 5),
    (5, 3, 8, 8, 13, 5, 5),
    (2, 1, 1, 16, 25, 5, 5),
]


def _max_rel(a: torch.Tensor, b: torch.Tensor) -> float:
    a, b = a.double(), b.double()
    return ((a - b).abs().max() / b.abs().max().clamp_min(1e-30)).item()


def _inputs(shape, dtype, seed=0):
    C_out, C_in, N_in, N, B, k1, k2 = shape
    g = torch.Generator().manual_seed(seed)
    coeffs = torch.randn(C_out, C_in, N_in, B, generator=g, dtype=torch.float64).to(dtype)
    basis = torch.randn(N, B, k1, k2, generator=g, dtype=torch.float64).to(dtype)
    return coeffs, basis


def _run(backend, coeffs, basis, seed=1):
    c = coeffs.detach().clone().requires_grad_(True)
    with kernels.use_backend(backend):
        W = kernels.rotate_filter_bank(c, basis, basis.shape[0])
        g = torch.randn(W.shape, generator=torch.Generator().manual_seed(seed), dtype=torch.float64).to(
            W.dtype
        )
        (grad,) = torch.autograd.grad(W, c, g)
    return W, grad


def test_formula_by_hand():
    # W[o·N + r, i·N_in + s] = Σ_b coeffs[o, i, (s − r) mod N_in, b] · basis[r, b], entry by entry.
    coeffs, basis = _inputs((2, 3, 4, 4, 5, 3, 3), torch.float64)
    with kernels.use_backend("reference"):
        W = kernels.rotate_filter_bank(coeffs, basis, 4)
    assert W.shape == (8, 12, 3, 3)
    for o in range(2):
        for r in range(4):
            for i in range(3):
                for s in range(4):
                    want = sum(coeffs[o, i, (s - r) % 4, b] * basis[r, b] for b in range(5))
                    torch.testing.assert_close(W[o * 4 + r, i * 4 + s], want, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("backend", CPU_BACKENDS)
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_matches_reference(backend, shape, dtype):
    if backend == "triton" and (dtype == torch.float64 or shape[3] == 16):
        pytest.skip("interpreter: float32 and the small shapes keep the run short")
    coeffs, basis = _inputs(shape, dtype)
    got = _run(backend, coeffs, basis)
    want = _run("reference", coeffs, basis)
    for name, a, b in zip(("W", "grad"), got, want, strict=True):
        assert a.dtype == b.dtype == dtype and a.shape == b.shape, name
        assert _max_rel(a, b) <= TOL[dtype], (name, _max_rel(a, b))


@pytest.mark.parametrize("backend", ALL_CPU)
def test_real_basis_and_noncontiguous(backend):
    basis = make_basis("fourier", 5, 8)
    coeffs = torch.randn(8, 3, 8, basis.shape[1]).transpose(0, 1).contiguous().transpose(0, 1)  # strided
    assert not coeffs.is_contiguous()
    got = _run(backend, coeffs, basis)
    want = _run("reference", coeffs.contiguous(), basis)
    for a, b in zip(got, want, strict=True):
        assert _max_rel(a, b) <= TOL[torch.float32]


@pytest.mark.parametrize("backend", [b for b in ALL_CPU if b != "triton"])
def test_gradcheck_float64(backend):
    # Small banks: the analytic Jacobian takes one backward call per output entry.
    for n_in in (1, 4):
        coeffs, basis = _inputs((1, 2, n_in, 4, 2, 1, 2), torch.float64)
        c = coeffs.requires_grad_(True)
        fn = lambda x, basis=basis: kernels.rotate_filter_bank(x, basis, 4)  # noqa: E731
        with kernels.use_backend(backend):
            assert torch.autograd.gradcheck(fn, (c,))
            assert torch.autograd.gradgradcheck(fn, (c,), fast_mode=True)


@pytest.mark.parametrize("backend", ALL_CPU)
def test_quarter_turn_structure(backend):
    # With a rot90 basis, output orientation r + 1 is the quarter turn of orientation r with the input
    # orientations rolled by one: W_{r+1}[s + 1] = rot90(W_r[s]). Holds exactly (no arithmetic differs).
    basis = make_basis("rot90", 3, 4)
    coeffs = torch.randn(2, 3, 4, 9)
    with kernels.use_backend(backend):
        W = kernels.rotate_filter_bank(coeffs, basis, 4).reshape(2, 4, 3, 4, 3, 3)
    for r in range(4):
        want = torch.roll(torch.rot90(W[:, r], 1, (-2, -1)), 1, dims=2)
        assert torch.equal(W[:, (r + 1) % 4], want)


def test_cpu_backward_deterministic():
    if "cpu" not in CPU_BACKENDS:
        pytest.skip("cpu backend not built")
    coeffs, basis = _inputs((7, 5, 8, 8, 25, 5, 5), torch.float32)
    a, b = _run("cpu", coeffs, basis), _run("cpu", coeffs, basis)
    assert torch.equal(a[0], b[0]) and torch.equal(a[1], b[1])


def test_numpy_in_numpy_out():
    coeffs, basis = _inputs((2, 3, 4, 4, 9, 3, 3), torch.float32)
    out = kernels.rotate_filter_bank(coeffs.numpy(), basis, 4)
    assert isinstance(out, np.ndarray)
    np.testing.assert_allclose(out, kernels.rotate_filter_bank(coeffs, basis, 4).numpy())


def test_empty():
    coeffs, basis = _inputs((0, 3, 4, 4, 9, 3, 3), torch.float32)
    assert kernels.rotate_filter_bank(coeffs, basis, 4).shape == (0, 12, 3, 3)


@pytest.mark.parametrize(
    "c_shape, b_shape, N, err, match",
    [
        ((2, 3, 4, 9), (4, 9, 3, 3), 8, ValueError, "basis must have shape"),
        ((2, 3, 4, 8), (4, 9, 3, 3), 4, ValueError, "B = basis.shape"),
        ((2, 3, 3, 9), (4, 9, 3, 3), 4, ValueError, "N_in"),
        ((2, 3, 9), (4, 9, 3, 3), 4, ValueError, "coeffs must be 4-D"),
        ((2, 3, 4, 9), (4, 9, 9), 4, ValueError, "basis must be 4-D"),
        ((2, 3, 4, 9), (4, 9, 3, 3), 0, ValueError, "N must be an int"),
        ((2, 3, 4, 9), (4, 9, 3, 3), 4.0, ValueError, "N must be an int"),
    ],
)
def test_bad_inputs_raise(c_shape, b_shape, N, err, match):
    with pytest.raises(err, match=match):
        kernels.rotate_filter_bank(torch.randn(c_shape), torch.randn(b_shape), N)


def test_bad_dtypes_and_grad_basis_raise():
    coeffs, basis = _inputs((2, 3, 4, 4, 9, 3, 3), torch.float32)
    with pytest.raises(TypeError, match="coeffs must have dtype"):
        kernels.rotate_filter_bank(coeffs.half(), basis, 4)
    with pytest.raises(TypeError, match="same dtype"):
        kernels.rotate_filter_bank(coeffs, basis.double(), 4)
    with pytest.raises(ValueError, match="basis must not require grad"):
        kernels.rotate_filter_bank(coeffs, basis.requires_grad_(True), 4)
    bad = coeffs.clone()
    bad[0, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match="NaN or Inf"):
        kernels.rotate_filter_bank(bad, basis.detach(), 4, check_finite=True)


def test_opcheck():
    coeffs, basis = _inputs((2, 3, 4, 4, 9, 3, 3), torch.float32)
    torch.library.opcheck(
        torch.ops.pykernels.rotate_filter_bank.default, (coeffs.requires_grad_(True), basis)
    )
    gW = torch.randn(8, 12, 3, 3)
    torch.library.opcheck(torch.ops.pykernels.rotate_filter_bank_backward.default, (gW, basis, 2, 3, 4))


def test_torch_compile_fullgraph():
    coeffs, basis = _inputs((2, 3, 4, 4, 9, 3, 3), torch.float32)
    x = torch.randn(1, 12, 7, 7)

    def f(c):
        return (
            torch.nn.functional.conv2d(x, kernels.rotate_filter_bank(c, basis, 4), padding=1).square().sum()
        )

    compiled = torch.compile(f, fullgraph=True, backend="aot_eager")
    torch.testing.assert_close(compiled(coeffs), f(coeffs))


@pytest.mark.cuda
@pytest.mark.parametrize("backend", ["cuda", "triton"])
@pytest.mark.parametrize("shape", SHAPES, ids=lambda s: "x".join(map(str, s)))
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_gpu_matches_reference(backend, shape, dtype):
    coeffs, basis = _inputs(shape, dtype)
    got = _run(backend, coeffs.cuda(), basis.cuda())
    want = _run("reference", coeffs, basis)
    for a, b in zip(got, want, strict=True):
        assert _max_rel(a.cpu(), b) <= TOL[dtype]
