"""Measured rotation equivariance of trained unrolled nets (the quantity the DUN-SRE ablation is about).

Two numbers:

- ``prox_equivariance_error``: for every stage's residual network R_k (P_k = id − R_k), the worst
  over quarter turns g of ‖R_k(g·z) − g·R_k(z)‖ / ‖R_k(z)‖ at an image series z, averaged over
  stages. g = ``torch.rot90`` of every frame; zero 'same' padding with odd kernels makes this exact for
  the group convolutions at any image size.
- ``net_equivariance_error``: the whole reconstruction, ‖f(g·y, g·S, g·M) − g·f(y, S, M)‖ / ‖f(y, S, M)‖,
  with the quarter turn about the centred FFT's origin (``rotate_about_fft_centre``), under which the
  whole problem rotates consistently: F(g·x) = g·F(x) exactly, so E_{gS, gM}(g·x) = g·E_{S, M}(x). For
  odd sizes g is rot90 itself; for even sizes the origin sits half a pixel off the image centre and g is
  rot90 followed by a one-pixel circular shift, which zero-padded convolutions only approximately
  commute with (at the borders).
"""

from __future__ import annotations

import torch
from torch import Tensor

from pyrecon.dunsre.model import DUNSRE

__all__ = ["net_equivariance_error", "prox_equivariance_error", "rotate_about_fft_centre"]


def rotate_about_fft_centre(x: Tensor, turns: int = 1) -> Tensor:
    """Quarter turns of (…, N, N) maps about index N//2 (the centred FFT's origin): rot90 about the
    pixel centre (N−1)/2, then for even N a one-row circular shift, so out(u, v) = in(v, −u) in
    coordinates centred on N//2 (indices mod N). Commutes exactly with ``fft2c``."""
    if x.shape[-1] != x.shape[-2]:
        raise ValueError(f"x must have square (…, N, N) maps, got {tuple(x.shape)}")
    for _ in range(turns % 4):
        x = torch.rot90(x, 1, dims=(-2, -1))
        if x.shape[-1] % 2 == 0:
            x = torch.roll(x, 1, dims=-2)
    return x


@torch.no_grad()
def prox_equivariance_error(model: DUNSRE, z: Tensor) -> float:
    """Mean over stages of max over g ∈ {90°, 180°, 270°} of ‖R_k(g z) − g R_k(z)‖ / ‖R_k(z)‖."""
    was = model.training
    model.eval()
    errs = []
    for prox in model.prox:
        residual = lambda t, p=prox: t - p(t)  # noqa: E731
        base = residual(z)
        worst = 0.0
        for turns in (1, 2, 3):
            got = residual(torch.rot90(z, turns, (-2, -1)))
            diff = got - torch.rot90(base, turns, (-2, -1))
            worst = max(worst, (diff.abs().norm() / base.abs().norm()).item())
        errs.append(worst)
    model.train(was)
    return sum(errs) / len(errs)


@torch.no_grad()
def net_equivariance_error(model: DUNSRE, y: Tensor, smaps: Tensor, mask: Tensor) -> float:
    """max over quarter turns g of ‖f(g y, g S, g M) − g f(y, S, M)‖ / ‖f(y, S, M)‖ (module docstring);
    y (B, T, C, N, N), smaps (B, C, N, N), mask broadcastable to (B, T, N, N)."""
    was = model.training
    model.eval()
    mask = mask.expand(*mask.shape[:-2], y.shape[-2], y.shape[-1])
    base = model(y, smaps, mask)
    worst = 0.0
    for turns in (1, 2, 3):
        rot = lambda t, n=turns: rotate_about_fft_centre(t, n)  # noqa: E731
        diff = model(rot(y), rot(smaps), rot(mask)) - rot(base)
        worst = max(worst, (diff.abs().norm() / base.abs().norm()).item())
    model.train(was)
    return worst
