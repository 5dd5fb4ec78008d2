"""pyrecon.ops: centred orthonormal FFT, Cartesian SENSE adjointness and coil combination, CG."""

import math

import numpy as np
import pytest
import torch

from pyrecon.ops.cg import conjugate_gradient
from pyrecon.ops.fft import fft2c, ifft2c
from pyrecon.ops.sense import coil_combine, rss, sense_adjoint, sense_forward, sense_normal


def _crandn(*shape, dtype=torch.complex128, gen=None):
    return torch.randn(*shape, dtype=dtype, generator=gen)


def _inner(a, b):
    return (a.conj() * b).sum()


# ---- fft2c ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("shape", [(5, 7), (2, 3, 8, 6), (1, 9, 10)])
def test_fft2c_orthonormal_and_inverse(shape):
    x = _crandn(*shape)
    k = fft2c(x)
    torch.testing.assert_close(k.norm(), x.norm(), rtol=1e-12, atol=0)
    torch.testing.assert_close(ifft2c(k), x, rtol=1e-12, atol=1e-12)
    y = _crandn(*shape)
    torch.testing.assert_close(_inner(fft2c(x), y), _inner(x, ifft2c(y)), rtol=1e-10, atol=1e-10)


def test_fft2c_is_centred_dft_by_hand():
    # a 1-pixel image at the centre (index N//2) has a flat spectrum 1/sqrt(HW); DC sits at index N//2
    H, W = 6, 5
    x = torch.zeros(H, W, dtype=torch.complex128)
    x[H // 2, W // 2] = 1
    torch.testing.assert_close(fft2c(x), torch.full((H, W), 1 / math.sqrt(H * W), dtype=torch.complex128))
    ones = torch.ones(H, W, dtype=torch.complex128)
    k = fft2c(ones)
    assert abs(k[H // 2, W // 2] - math.sqrt(H * W)) < 1e-12
    assert k.abs().sum() - k[H // 2, W // 2].abs() < 1e-10
    # against numpy's centred DFT
    z = np.random.default_rng(1).normal(size=(H, W)) + 1j * np.random.default_rng(2).normal(size=(H, W))
    ref = np.fft.fftshift(np.fft.fft2(np.fft.ifftshift(z), norm="ortho"))
    np.testing.assert_allclose(fft2c(torch.from_numpy(z)).numpy(), ref, rtol=1e-12, atol=1e-12)


def test_fft2c_rejects_bad_input():
    with pytest.raises(ValueError, match="x must have at least 2 dims"):
        fft2c(torch.zeros(4, dtype=torch.complex64))
    with pytest.raises(TypeError, match="x must be"):
        fft2c(np.zeros((4, 4)))


# ---- SENSE -----------------------------------------------------------------------------------------


def _sense_problem(B=2, T=3, C=4, H=9, W=7, mask_shape="THW", gen_seed=0):
    g = torch.Generator().manual_seed(gen_seed)
    x = _crandn(B, T, H, W, gen=g)
    smaps = _crandn(B, C, H, W, gen=g)
    shape = {"THW": (T, H, W), "BTHW": (B, T, H, W), "HW": (H, W), "TH1": (T, H, 1)}[mask_shape]
    mask = (torch.rand(*shape, generator=g) < 0.4).to(torch.float64)
    y = _crandn(B, T, C, H, W, gen=g)
    return x, smaps, mask, y


@pytest.mark.parametrize("mask_shape", ["THW", "BTHW", "HW", "TH1"])
def test_sense_adjointness(mask_shape):
    x, smaps, mask, y = _sense_problem(mask_shape=mask_shape)
    lhs = _inner(sense_forward(x, smaps, mask), y)
    rhs = _inner(x, sense_adjoint(y, smaps, mask))
    torch.testing.assert_close(lhs, rhs, rtol=1e-11, atol=1e-11)
    assert abs(lhs) > 1.0  # not a trivially zero pairing
    torch.testing.assert_close(
        sense_normal(x, smaps, mask), sense_adjoint(sense_forward(x, smaps, mask), smaps, mask)
    )


def test_sense_forward_by_hand_and_bool_mask_and_shared_maps():
    x, smaps, mask, _ = _sense_problem(B=1, C=2)
    y = sense_forward(x, smaps, mask.bool())
    t, c = 1, 1
    ref = mask[t] * fft2c(smaps[0, c] * x[0, t])
    torch.testing.assert_close(y[0, t, c], ref)
    # (1, C, H, W) maps are shared over a batch of 2
    x2 = torch.cat([x, 2 * x])
    y2 = sense_forward(x2, smaps, mask)
    torch.testing.assert_close(y2[1], 2 * y[0])


def test_sense_complex64_and_gradients():
    x, smaps, mask, y = _sense_problem()
    x = x.to(torch.complex64).requires_grad_()
    out = sense_adjoint(sense_forward(x, smaps.to(torch.complex64), mask.float()), smaps, mask)
    assert out.dtype == torch.complex64
    out.abs().pow(2).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad.abs()).all() and x.grad.abs().sum() > 0


def test_sense_gradcheck():
    x, smaps, mask, _ = _sense_problem(B=1, T=2, C=2, H=5, W=4)
    x.requires_grad_()
    assert torch.autograd.gradcheck(lambda v: sense_normal(v, smaps, mask), (x,))


def test_sense_rejects_bad_input():
    x, smaps, mask, y = _sense_problem()
    with pytest.raises(TypeError, match="x must be complex"):
        sense_forward(x.real, smaps, mask)
    with pytest.raises(ValueError, match="x must be"):
        sense_forward(x[0], smaps, mask)
    with pytest.raises(ValueError, match="smaps must be"):
        sense_forward(x, smaps[..., :-1], mask)
    with pytest.raises(ValueError, match="mask must be broadcastable"):
        sense_forward(x, smaps, mask[:, :-1])
    with pytest.raises(TypeError, match="mask must be real"):
        sense_forward(x, smaps, mask.to(torch.complex128))
    with pytest.raises(ValueError, match="coils"):
        sense_adjoint(y, smaps[:, :-1], mask)


def test_coil_combine_and_rss():
    B, T, C, H, W = 1, 2, 3, 5, 4
    smaps = _crandn(B, C, H, W)
    smaps = smaps / (smaps.abs() ** 2).sum(1, keepdim=True).sqrt()
    x = _crandn(B, T, H, W)
    images = smaps.unsqueeze(1) * x.unsqueeze(2)
    torch.testing.assert_close(coil_combine(images, smaps), x)  # exact for normalized maps
    # unnormalized maps: Σ conj(S) S x / Σ|S|² = x still
    torch.testing.assert_close(coil_combine(3 * images, 3 * smaps), x)
    # zero maps give zero, not NaN
    z = coil_combine(images, torch.zeros_like(smaps))
    assert torch.equal(z, torch.zeros_like(z))
    torch.testing.assert_close(rss(images), x.abs())  # Σ|S|² = 1
    v = torch.tensor([[3.0, 4.0]])
    assert rss(v, dim=1).item() == 5.0
    with pytest.raises(ValueError, match="dim"):
        rss(v, dim=3)


# ---- conjugate gradient --------------------------------------------------------------------------


def test_cg_solves_random_spd_batch():
    g = torch.Generator().manual_seed(3)
    n = 12
    a = torch.randn(3, n, n, dtype=torch.float64, generator=g)
    spd = a @ a.transpose(-1, -2) + 0.5 * torch.eye(n, dtype=torch.float64)
    b = torch.randn(3, n, dtype=torch.float64, generator=g)

    def op(v):
        return (spd @ v.unsqueeze(-1)).squeeze(-1)

    x = conjugate_gradient(op, b, iters=60, tol=1e-12)
    torch.testing.assert_close(x, torch.linalg.solve(spd, b), rtol=1e-8, atol=1e-8)
    # Tikhonov: (A + λI) x = b
    lam = 2.0
    x = conjugate_gradient(op, b, iters=60, tol=1e-12, lam=lam)
    torch.testing.assert_close(x, torch.linalg.solve(spd + lam * torch.eye(n, dtype=torch.float64), b))
    # a hand-checkable 2x2: A = diag(2, 4), b = (2, 4) → x = (1, 1) in 2 steps from 0
    d = torch.tensor([[2.0, 4.0]], dtype=torch.float64)
    x = conjugate_gradient(lambda v: d * v, torch.tensor([[2.0, 4.0]], dtype=torch.float64), iters=2, tol=0)
    torch.testing.assert_close(x, torch.ones(1, 2, dtype=torch.float64))


def test_cg_x0_and_early_stop_and_zero_rhs():
    d = torch.tensor([[2.0, 4.0], [1.0, 3.0]], dtype=torch.float64)
    b = torch.tensor([[2.0, 4.0], [0.0, 0.0]], dtype=torch.float64)
    x = conjugate_gradient(lambda v: d * v, b, iters=5)
    torch.testing.assert_close(x, torch.tensor([[1.0, 1.0], [0.0, 0.0]], dtype=torch.float64))
    x0 = torch.tensor([[1.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    calls = []

    def op(v):
        calls.append(1)
        return d * v

    torch.testing.assert_close(conjugate_gradient(op, b, x0=x0, iters=5), x0)
    assert len(calls) == 1  # the initial residual only: already converged


def test_cg_sense_normal_equation_residual_falls_by_orders():
    x, smaps, mask, _ = _sense_problem(B=2, T=2, C=4, H=12, W=10)
    mask[..., 5:7, :] = 1  # a sampled centre keeps the system well conditioned enough

    def normal(v):
        return sense_normal(v, smaps, mask)

    b = sense_adjoint(sense_forward(x, smaps, mask), smaps, mask)
    lam = 1e-3
    sol = conjugate_gradient(normal, b, iters=100, tol=1e-10, lam=lam)
    res = (normal(sol) + lam * sol - b).norm() / b.norm()
    assert res < 1e-6
    few = conjugate_gradient(normal, b, iters=3, lam=lam)
    assert (normal(few) + lam * few - b).norm() / b.norm() > res  # more iterations help


def test_cg_is_differentiable():
    d = torch.tensor([[2.0, 4.0]], dtype=torch.float64, requires_grad=True)
    b = torch.tensor([[2.0, 4.0]], dtype=torch.float64)
    x = conjugate_gradient(lambda v: d * v, b, iters=2, tol=0)
    x.sum().backward()
    # x_i = b_i / d_i → ∂Σx/∂d_i = −b_i / d_i² = (−0.5, −0.25)
    torch.testing.assert_close(d.grad, torch.tensor([[-0.5, -0.25]], dtype=torch.float64))


def test_cg_rejects_bad_input():
    b = torch.ones(2, 3)
    with pytest.raises(TypeError, match="normal_op"):
        conjugate_gradient(None, b)
    with pytest.raises(ValueError, match="iters"):
        conjugate_gradient(lambda v: v, b, iters=-1)
    with pytest.raises(ValueError, match="lam"):
        conjugate_gradient(lambda v: v, b, lam=-1.0)
    with pytest.raises(ValueError, match="x0"):
        conjugate_gradient(lambda v: v, b, x0=torch.ones(3))
