"""DUN-SRE's data-consistency options against closed forms: with one coil of sensitivity 1 the
operator is E = M·F (F the orthonormal centred FFT), so the gradient step, the CG proximal step and the
k-space module's gradient skip have exact expressions; and every option lowers ‖E x − y‖."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from pyrecon.dunsre.model import DUNSRE, DUNSREConfig
from pyrecon.ops.fft import fft2c, ifft2c
from pyrecon.ops.sense import sense_adjoint, sense_forward

T, H, W = 3, 8, 10


def _problem(coils: int = 1, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    x_true = torch.randn(1, T, H, W, dtype=torch.complex128, generator=g)
    if coils == 1:
        smaps = torch.ones(1, 1, H, W, dtype=torch.complex128)
    else:
        smaps = torch.randn(1, coils, H, W, dtype=torch.complex128, generator=g)
        smaps = smaps / smaps.abs().square().sum(1, keepdim=True).sqrt()
    mask = (torch.rand(1, T, H, 1, generator=g) < 0.4).double().expand(1, T, H, W)
    y = sense_forward(x_true, smaps, mask)
    x = torch.randn(1, T, H, W, dtype=torch.complex128, generator=g)
    return x, y, smaps, mask


def _residual(x, y, smaps, mask) -> float:
    return (sense_forward(x, smaps, mask) - y).abs().norm().item()


def _net(dc: str, **kw) -> DUNSRE:
    torch.manual_seed(0)
    return DUNSRE(DUNSREConfig(stages=2, dc=dc, **kw)).double()


def test_gradient_step_closed_form_and_descent():
    x, y, smaps, mask = _problem()
    net = _net("gradient")
    with torch.no_grad():
        d = net.data_consistency(0, x, y, smaps, mask)
    # one coil, S = 1: Eᴴ(E x − y) = Fᴴ(M F x − y) (y is already masked)
    torch.testing.assert_close(d, ifft2c(mask * fft2c(x) - y[:, :, 0]))  # y: (B, T, C=1, H, W)
    assert _residual(x - d, y, smaps, mask) < 0.5 * _residual(x, y, smaps, mask)
    x, y, smaps, mask = _problem(coils=4, seed=1)
    with torch.no_grad():
        d = net.data_consistency(0, x, y, smaps, mask)
    assert _residual(x - d, y, smaps, mask) < _residual(x, y, smaps, mask)


def test_cg_step_matches_closed_form():
    """(EᴴE + λI)⁻¹(Eᴴy + λz) with E = M·F is Fᴴ[(M y + λ F z) / (M + λ)] entrywise in k-space; λ = 1
    at initialization. CG on a diagonal operator with two distinct eigenvalues converges in 2 steps."""
    z, y, smaps, mask = _problem()
    net = _net("cg", cg_iters=3)
    with torch.no_grad():
        got = net.cg_step(0, z, y, smaps, mask)
    lam = 1.0
    want = ifft2c((mask * y[:, :, 0] + lam * fft2c(z)) / (mask + lam))
    torch.testing.assert_close(got, want, rtol=1e-8, atol=1e-10)
    assert _residual(got, y, smaps, mask) < _residual(z, y, smaps, mask)


def test_learned_dc_starts_at_the_gradient_step():
    """With G's output layer zeroed, the k-space module is exactly the gradient step (skip on) or zero
    (the authors' form); with random G it differs from both, and it is differentiable end to end."""
    x, y, smaps, mask = _problem(coils=3, seed=2)
    net = _net("learned")
    dc = net.dc[0]
    with torch.no_grad():
        d_random = dc(x, y, smaps, mask)
        grad = sense_adjoint(sense_forward(x, smaps, mask) - y, smaps, mask)
        assert (d_random - grad).abs().norm() > 1e-3 * grad.abs().norm()
        dc.net.net[-1].weight.zero_()
        torch.testing.assert_close(dc(x, y, smaps, mask), grad)
    assert _residual(x - grad, y, smaps, mask) < _residual(x, y, smaps, mask)
    plain = DUNSRE(dataclasses.replace(net.config, dc_gradient_skip=False)).double()
    with torch.no_grad():
        plain.dc[0].net.net[-1].weight.zero_()
        assert plain.dc[0](x, y, smaps, mask).abs().max() == 0
    out = net(y, smaps, mask)
    out.abs().square().sum().backward()
    assert dc.step.grad is not None and dc.net.net[0].spatial.coeffs.grad is not None


@pytest.mark.parametrize("dc", ["learned", "gradient", "cg"])
@pytest.mark.parametrize("equivariant", [True, False])
def test_forward_shapes_every_mode(dc, equivariant):
    _, y, smaps, mask = _problem(coils=2)
    net = DUNSRE(DUNSREConfig(stages=2, dc=dc, equivariant=equivariant)).double()
    out = net(y, smaps, mask)
    assert out.shape == (1, T, H, W) and out.dtype == torch.complex128
    with pytest.raises(ValueError, match="y must be complex k-space"):
        net(y.real, smaps, mask)
