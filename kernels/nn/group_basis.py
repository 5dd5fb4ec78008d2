"""Rotated filter bases for ``kernels.rotate_filter_bank``: basis[r, b] = basis filter b rotated by r·2π/N.

Rotation convention (one for images, feature maps and filters): the positive quarter turn is
``torch.rot90(x, 1, dims=(-2, -1))``. In centered tap coordinates (u = row − c, v = col − c) a filter
φ rotated by θ is sampled at R_θ⁻¹(u, v) = (u cos θ + v sin θ, −u sin θ + v cos θ), which is exactly
rot90 at θ = π/2. Whenever 4 divides N, the copies r ≥ N/4 are the exact rot90 of copy r − N/4 (not
re-sampled), so every basis is exactly equivariant to quarter turns on the pixel grid; the copies at
other angles are sampled (approximate).

- ``"rot90"``: the pixel basis (B = k·k), N ∈ {1, 2, 4}: rotations are exact index permutations.
- ``"bconv"``: B-Conv (Xie et al.): a filter is the bicubic (Keys, a = −0.5) interpolant of its k·k
  tap values, and the rotated copy is that interpolant sampled on the rotated grid. B = k·k; for N = 4
  it equals ``"rot90"`` (the interpolant passes through the taps).
- ``"fourier"``: F-Conv-style: circular harmonics cos(mθ), sin(mθ) times Gaussian rings
  exp(−(ρ − j)²/(2σ²)), j = 0 .. (k−1)/2, σ = 0.6, with the frequency cutoff m ≤ j (B = 9 for
  k = 5), rotated analytically (a phase shift), masked to the disk
  ρ ≤ (k−1)/2 + 0.5 so that no tap leaves the grid under rotation. The cutoff limits aliasing on the
  small grid: measured 45° equivariance error of a random N=8, k=5 lifting layer (tests/kernels/
  test_group_conv.py): m ≤ j 2.3e-2, m ≤ ceil(1.5·j) 3.8e-2, m ≤ 2j 5.9e-2 (σ = 0.6).
Every basis filter is scaled to unit norm (the same scale for all its rotated copies).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

BASES = ("rot90", "bconv", "fourier")
RING_SIGMA = 0.6


def _grid(k: int) -> tuple[Tensor, Tensor]:
    c = (k - 1) / 2
    idx = torch.arange(k, dtype=torch.float64) - c
    return torch.meshgrid(idx, idx, indexing="ij")  # u (rows), v (cols)


def _rotated_coords(k: int, theta: float) -> tuple[Tensor, Tensor]:
    u, v = _grid(k)
    cos, sin = math.cos(theta), math.sin(theta)
    return u * cos + v * sin, -u * sin + v * cos


def _keys_cubic(x: Tensor, a: float = -0.5) -> Tensor:
    ax = x.abs()
    near = ((a + 2) * ax - (a + 3)) * ax * ax + 1
    far = ((a * ax - 5 * a) * ax + 8 * a) * ax - 4 * a
    return torch.where(ax <= 1, near, torch.where(ax < 2, far, torch.zeros_like(ax)))


def bconv_filters(k: int, theta: float) -> Tensor:
    """(k·k, k, k) float64: the bicubic interpolant of each pixel's delta, sampled after rotation by θ."""
    c = (k - 1) / 2
    pu, pv = _rotated_coords(k, theta)
    taps = torch.arange(k, dtype=torch.float64) - c
    wu = _keys_cubic(pu[None] - taps[:, None, None])  # (k taps, k, k)
    wv = _keys_cubic(pv[None] - taps[:, None, None])
    return (wu[:, None] * wv[None, :]).reshape(k * k, k, k)


def fourier_terms(k: int) -> list[tuple[int, int, int]]:
    """(ring j, frequency m, 0 = cos / 1 = sin) of every Fourier basis filter of size k."""
    terms = []
    for j in range(0, (k - 1) // 2 + 1):
        for m in range(0, j + 1):
            terms.append((j, m, 0))
            if m > 0:
                terms.append((j, m, 1))
    return terms


def fourier_filters(k: int, theta: float) -> Tensor:
    """(B, k, k) float64: Gaussian rings × circular harmonics sampled after rotation by θ (disk-masked)."""
    pu, pv = _rotated_coords(k, theta)
    rho = torch.sqrt(pu * pu + pv * pv)
    phi = torch.atan2(pv, pu)
    disk = (rho <= (k - 1) / 2 + 0.5).double()  # rotation-invariant: ρ is the same before and after
    out = []
    for j, m, odd in fourier_terms(k):
        ring = torch.exp(-((rho - j) ** 2) / (2 * RING_SIGMA**2))
        angular = torch.sin(m * phi) if odd else torch.cos(m * phi)
        out.append(ring * angular * disk)
    return torch.stack(out)


def make_basis(kind: str, k: int, N: int, dtype: torch.dtype = torch.float32, device=None) -> Tensor:
    """The (N, B, k, k) rotated basis of ``kind`` ("rot90", "bconv", "fourier") for kernel size ``k``."""
    if kind not in BASES:
        raise ValueError(f"basis must be one of {BASES}, got {kind!r}")
    if not isinstance(k, int) or k < 1 or k % 2 == 0:
        raise ValueError(f"kernel_size must be an odd int >= 1, got {k!r}")
    if not isinstance(N, int) or N < 1:
        raise ValueError(f"group (N) must be an int >= 1, got {N!r}")
    if kind == "rot90" and N not in (1, 2, 4):
        raise ValueError(
            f"basis='rot90' rotates by quarter turns only: N must be 1, 2 or 4, got N={N} "
            "(use basis='bconv' or 'fourier' for other N)"
        )
    if kind == "rot90":
        sample = lambda theta: bconv_filters(k, 0.0)  # noqa: E731 (rotations come from rot90 below)
    elif kind == "bconv":
        sample = lambda theta: bconv_filters(k, theta)  # noqa: E731
    else:
        sample = lambda theta: fourier_filters(k, theta)  # noqa: E731
    base = sample(0.0)
    scale = 1.0 / base.flatten(1).norm(dim=1).clamp_min(1e-30)
    copies: list[Tensor] = []
    for r in range(N):
        if 4 * r % N == 0 and r > 0:  # a quarter-turn multiple: exact rot90 of copy 0
            copies.append(torch.rot90(copies[0], 4 * r // N, dims=(-2, -1)))
        elif N % 4 == 0 and r >= N // 4:
            copies.append(torch.rot90(copies[r - N // 4], 1, dims=(-2, -1)))
        else:
            copies.append(sample(2 * math.pi * r / N))
    basis = torch.stack(copies) * scale[None, :, None, None]
    return basis.to(dtype=dtype, device=device).contiguous()


def basis_size(kind: str, k: int) -> int:
    return len(fourier_terms(k)) if kind == "fourier" else k * k
