r"""The pieces of the client-level Gaussian mechanism the ``dp_*`` algorithms share.

A client's contribution is ONE flat vector: every ``"d.<name>"`` tensor of its message, in the order
of ``names``, concatenated. Clipping is to one global ℓ2 bound C fixed before training (never a
quantity computed from client data), so replacing one client moves the released sum by at most 2C and
adding/removing one moves it by at most C::

    clip_C(u) = u · min(1, C/‖u‖₂)                      (kernels.clip_and_noise, noise_std = 0)
    central:      Σ_i clip_C(u_i) + σC·z,  z ~ N(0, I)   (kernels.clip_and_noise_sum; z from (seed, round))
    distributed:  Σ_i [clip_C(u_i) + (σC/√S)·z_i]        (each client's z_i from its own secret seed)

Server post-processing of the noised mean (no privacy cost):

    Laplacian smoothing (Wang et al., 2019, DP-LSSGD):  d ← (I + σ_ls·L)⁻¹ d per tensor (flattened),
        L the periodic 1-D Laplacian (2 on the diagonal, −1 on the two cyclic neighbours), solved by FFT:
        d̂_k ← d̂_k / (1 + σ_ls·(2 − 2cos(2πk/n)))
    public random mask (FedSMP-randk, Hu et al., 2023): a fraction ``keep`` of the coordinates, drawn
        from (seed, round) — public — is kept by every client; the noise is kept on the same coordinates.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import torch
from torch import Tensor

import kernels

__all__ = [
    "clip_vector",
    "flatten",
    "laplacian_smooth",
    "noised_sum",
    "public_mask",
    "stream_seed",
    "unflatten",
]


def stream_seed(*parts: int) -> int:
    """A 63-bit seed from integers (numpy SeedSequence): independent Philox streams per purpose."""
    return int(np.random.SeedSequence([int(p) for p in parts]).generate_state(1, dtype=np.uint64)[0] >> 1)


def flatten(tensors: Mapping[str, Tensor], names: Sequence[str]) -> Tensor:
    """The tensors ``tensors[n]`` for n in ``names``, concatenated into one flat float32 vector."""
    return torch.cat([tensors[n].reshape(-1).float() for n in names])


def unflatten(vec: Tensor, like: Mapping[str, Tensor], names: Sequence[str]) -> dict[str, Tensor]:
    """Inverse of ``flatten``: views of ``vec`` shaped like ``like[n]`` (and of its dtype)."""
    out, start = {}, 0
    for n in names:
        t = like[n]
        out[n] = vec[start : start + t.numel()].reshape(t.shape).to(t.dtype)
        start += t.numel()
    if start != vec.numel():
        raise ValueError(f"vec has {vec.numel()} elements but the tensors named hold {start}")
    return out


def clip_vector(vec: Tensor, max_norm: float, noise_std: float = 0.0, seed: int = 0, offset: int = 0):
    """(clip_C(vec) + noise_std·z, pre-clip ‖vec‖₂) through ``kernels.clip_and_noise``."""
    out, norm = kernels.clip_and_noise(vec, max_norm, noise_std, seed, offset)
    return out, float(norm)


def noised_sum(rows: Sequence[Tensor], max_norm: float, noise_std: float, seed: int, offset: int):
    """(Σ_i clip_C(rows[i]) + noise_std·z, pre-clip row norms) through ``kernels.clip_and_noise_sum``.
    The rows are clipped again here, so the sum's sensitivity holds whatever a client sent."""
    return kernels.clip_and_noise_sum(list(rows), max_norm, noise_std, seed, offset)


def laplacian_smooth(vec: Tensor, sigma: float) -> Tensor:
    """(I + σ·L)⁻¹ vec for a 1-D vector, L the periodic graph Laplacian (see the module docstring)."""
    if sigma < 0:
        raise ValueError(f"sigma must be >= 0, got {sigma}")
    n = vec.numel()
    if sigma == 0 or n < 3:
        return vec.clone()
    k = torch.arange(n, dtype=torch.float64, device=vec.device)
    denom = 1.0 + sigma * (2.0 - 2.0 * torch.cos(2 * torch.pi * k / n))
    out = torch.fft.ifft(torch.fft.fft(vec.reshape(-1).to(torch.float64)) / denom).real
    return out.to(vec.dtype).reshape(vec.shape)


def public_mask(numel: int, keep: float, seed: int) -> Tensor:
    """A float {0, 1} vector with round(keep·numel) ones at positions drawn from ``seed`` alone."""
    if not 0 < keep <= 1:
        raise ValueError(f"keep must be in (0, 1], got {keep}")
    mask = torch.zeros(numel)
    g = torch.Generator().manual_seed(seed)
    mask[torch.randperm(numel, generator=g)[: max(1, round(keep * numel))]] = 1.0
    return mask
