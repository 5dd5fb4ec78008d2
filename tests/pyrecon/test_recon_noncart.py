"""pyrecon.ops.noncart: NUFFT SENSE adjointness, Cartesian equivalence, the Toeplitz normal operator,
and CG on analytic Shepp–Logan k-space (no inverse crime) beating the density-compensated adjoint."""

import math

import numpy as np
import pytest
import torch
from phantominator import kspace_shepp_logan

from pyrecon.metrics import psnr, ssim
from pyrecon.ops.cg import conjugate_gradient
from pyrecon.ops.fft import fft2c, ifft2c
from pyrecon.ops.noncart import (
    nufft_density_weights,
    nufft_sense_adjoint,
    nufft_sense_forward,
    nufft_sense_kernel,
    nufft_sense_normal,
)
from pyrecon.sampling import radial_trajectory


def _inner(a, b):
    return (a.conj() * b).sum()


def _problem(B=2, T=3, C=3, H=12, W=10, M=70, per_frame=True, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(B, T, H, W, dtype=torch.complex128, generator=g)
    smaps = torch.randn(B, C, H, W, dtype=torch.complex128, generator=g)
    k = (torch.rand((T, M, 2) if per_frame else (M, 2), dtype=torch.float64, generator=g) * 2 - 1) * math.pi
    y = torch.randn(B, T, C, M, dtype=torch.complex128, generator=g)
    return x, smaps, k, y


@pytest.mark.parametrize("per_frame", [True, False])
def test_nufft_sense_adjointness(per_frame):
    x, smaps, k, y = _problem(per_frame=per_frame)
    lhs = _inner(nufft_sense_forward(x, smaps, k, tol=1e-10), y)
    rhs = _inner(x, nufft_sense_adjoint(y, smaps, k, tol=1e-10))
    assert abs(lhs) > 1
    torch.testing.assert_close(lhs, rhs, rtol=1e-8, atol=1e-8)
    # with density weights W: ⟨E x, W y⟩ = ⟨x, Eᴴ W y⟩
    w = torch.rand(k.shape[:-1], dtype=torch.float64)
    lhs = _inner(nufft_sense_forward(x, smaps, k, tol=1e-10), w[None, :, None] * y if per_frame else w * y)
    torch.testing.assert_close(lhs, _inner(x, nufft_sense_adjoint(y, smaps, k, weights=w, tol=1e-10)))


def test_nufft_sense_on_the_cartesian_grid_is_fft2c():
    H, W = 12, 10
    ky = 2 * math.pi * (torch.arange(H, dtype=torch.float64) - H // 2) / H
    kx = 2 * math.pi * (torch.arange(W, dtype=torch.float64) - W // 2) / W
    grid = torch.stack(torch.meshgrid(ky, kx, indexing="ij"), dim=-1).reshape(-1, 2)
    x, smaps, _, _ = _problem(H=H, W=W)
    y = nufft_sense_forward(x, smaps, grid, tol=1e-10)
    ref = fft2c(smaps.unsqueeze(1) * x.unsqueeze(2)).reshape(*y.shape)
    torch.testing.assert_close(y, ref, rtol=1e-6, atol=1e-6)


def test_toeplitz_normal_equals_adjoint_of_forward_and_is_hermitian():
    x, smaps, k, _ = _problem()
    w = torch.rand(k.shape[:-1], dtype=torch.float64) + 0.5
    kernel = nufft_sense_kernel(k, (12, 10), weights=w, tol=1e-10)
    assert kernel.shape == (3, 24, 20)
    direct = nufft_sense_adjoint(nufft_sense_forward(x, smaps, k, tol=1e-10), smaps, k, weights=w, tol=1e-10)
    torch.testing.assert_close(nufft_sense_normal(x, smaps, kernel), direct, rtol=1e-7, atol=1e-7)
    z = torch.randn_like(x)
    a = _inner(nufft_sense_normal(x, smaps, kernel), z)
    b = _inner(x, nufft_sense_normal(z, smaps, kernel))
    torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-8)
    # shared trajectory, no weights: a (1, 2H, 2W) kernel
    x2, s2, k2, _ = _problem(per_frame=False)
    kern2 = nufft_sense_kernel(k2, (12, 10), tol=1e-10)
    assert kern2.shape == (1, 24, 20)
    direct2 = nufft_sense_adjoint(nufft_sense_forward(x2, s2, k2, tol=1e-10), s2, k2, tol=1e-10)
    torch.testing.assert_close(nufft_sense_normal(x2, s2, kern2), direct2, rtol=1e-7, atol=1e-7)


def test_nufft_sense_gradients_flow():
    x, smaps, k, _ = _problem(B=1, T=2, C=2)
    x = x.requires_grad_()
    nufft_sense_forward(x, smaps, k).abs().pow(2).sum().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_nufft_sense_rejects_bad_input():
    x, smaps, k, y = _problem()
    with pytest.raises(ValueError, match="k has 3 trajectories"):
        nufft_sense_forward(x[:, :2], smaps, k)
    with pytest.raises(ValueError, match="k must be"):
        nufft_sense_forward(x, smaps, k[..., :1])
    with pytest.raises(ValueError, match="smaps must be"):
        nufft_sense_forward(x, smaps[..., :-1], k)
    with pytest.raises(ValueError, match="coils"):
        nufft_sense_adjoint(y, smaps[:, :2], k)
    with pytest.raises(ValueError, match="samples"):
        nufft_sense_adjoint(y[..., :-1], smaps, k)


def _analytic(n: int, kappa: np.ndarray) -> np.ndarray:
    """Samples of the N×N-pixel Shepp–Logan at κ (radians per pixel, (..., 2) as (ky, kx)) from the
    continuous phantom's Fourier transform F (phantominator; the phantom fills [-1, 1]², x along image
    axis -1): Σ_n f(nΔ) e^{−iκ·n} ≈ Δ^{-2} F(κ / (2πΔ)), Δ = 2/N, times our 1/N scale → (N/4) F(κN/(4π))."""
    cycles = kappa * n / (4 * math.pi)
    return (n / 4) * kspace_shepp_logan(cycles[..., 1].ravel(), cycles[..., 0].ravel())


def test_cg_toeplitz_on_analytic_shepp_logan_kspace_beats_the_adjoint():
    # data from the continuous phantom's Fourier transform (phantominator), not from our operator
    n, spokes = 64, 60  # ~ N·π/2 = 100 spokes would be fully sampled
    k = radial_trajectory(spokes, n, frames=1)  # (1, M, 2): (ky, kx) radians per pixel
    y = torch.from_numpy(_analytic(n, k.numpy()[0])).reshape(1, 1, 1, -1)
    smaps = torch.ones(1, 1, n, n, dtype=torch.complex128)
    # the reference: the band-limited N×N image whose centred DFT is F on the Cartesian grid (the best
    # an N×N reconstruction can be; a pixel-sampled phantom would add Gibbs error to every method)
    kap = 2 * math.pi * (np.arange(n) - n // 2) / n
    grid = np.stack(np.meshgrid(kap, kap, indexing="ij"), axis=-1)
    ref = ifft2c(torch.from_numpy(_analytic(n, grid)).reshape(1, n, n))

    w = nufft_density_weights(k, (n, n))
    adjoint = nufft_sense_adjoint(y, smaps, k, weights=w)[0]
    scale = (_inner(adjoint, ref) / _inner(adjoint, adjoint)).real  # the adjoint's best scale
    adjoint = scale * adjoint

    kernel = nufft_sense_kernel(k, (n, n))
    rhs = nufft_sense_adjoint(y, smaps, k)
    cg = conjugate_gradient(lambda v: nufft_sense_normal(v, smaps, kernel), rhs, iters=15, lam=1e-2)[0]
    p_adj, p_cg = psnr(ref, adjoint), psnr(ref, cg)
    assert p_cg > p_adj + 3.0, (p_adj, p_cg)  # measured: 22.0 vs 26.6 dB
    assert ssim(ref, cg) > ssim(ref, adjoint)
    assert 0.5 < float(scale) < 2.0  # density weights make the gridding adjoint nearly unbiased
