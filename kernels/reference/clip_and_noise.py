"""Pure-torch specification of ``kernels.clip_and_noise``: global-norm clipping plus Gaussian noise.

The noise stream (also written in csrc/common/philox.h, shared by the CPU and CUDA kernels):

- Philox4x32-10 (Salmon et al., SC'11, "Parallel random numbers: as easy as 1, 2, 3"; Random123).
  For a 64-bit ``seed`` and a 64-bit ``offset``, element i of the update — the list's tensors
  concatenated in order, each in row-major order — uses
  key = (seed & 0xffffffff, seed >> 32) and
  counter = (q & 0xffffffff, q >> 32, offset & 0xffffffff, offset >> 32) with q = i // 4.
- The 4 output words (x0, x1, x2, x3) give 4 normals by Box–Muller on the pairs (x0, x1), (x2, x3):
  u = ((x_a >> 8) + 1)·2^-24 in (0, 1], θ = 2π·(x_b >> 8)·2^-24, r = sqrt(−2 ln u),
  z_a = r cos θ, z_b = r sin θ; element i takes z_{i mod 4}.
- Different offsets use disjoint counters, so they are independent streams (use e.g.
  offset = round · n_clients + client).
- The 24-bit uniforms bound |z| <= sqrt(48 ln 2) ≈ 5.77: the tails beyond that are cut (probability
  mass ~8e-9 per draw). Like most DP libraries without a secure mode, this floating-point sampler is
  not hardened against floating-point attacks (Mironov 2012).

Here Philox runs in torch int64 arithmetic (each 32×32→64 product split into 16-bit halves so nothing
overflows) and Box–Muller in float64, rounded once to float32: z is the float32 rounding of the exact
value. The backends compute Box–Muller in float32 (CPU and CUDA with the polynomials of philox.h) and
agree with this to |Δz| <= 1e-5.

This module materializes the noise; the backends generate it inside the kernel.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor

MASK32 = 0xFFFFFFFF
M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
Z_BOUND = math.sqrt(48.0 * math.log(2.0))  # the largest |z| the 24-bit uniforms can produce


def _mulhilo(a: int, b: Tensor) -> tuple[Tensor, Tensor]:
    """(hi, lo) 32-bit words of a·b for a 32-bit constant a and int64 b holding 32-bit values."""
    b_lo = b & 0xFFFF
    b_hi = b >> 16
    p_lo = a * b_lo  # < 2^48
    p_hi = a * b_hi  # < 2^48; a·b = p_hi·2^16 + p_lo
    mid = p_lo + ((p_hi & 0xFFFF) << 16)  # < 2^49
    lo = mid & MASK32
    hi = (p_hi >> 16) + (mid >> 32)
    return hi, lo


def philox4x32_10(counter: tuple[Tensor, Tensor, Tensor, Tensor], key: tuple[int, int]) -> list[Tensor]:
    """Philox4x32-10 on int64 tensors holding 32-bit words; returns the 4 output words (int64)."""
    c0, c1, c2, c3 = (c.to(torch.int64) & MASK32 for c in counter)
    k0, k1 = key[0] & MASK32, key[1] & MASK32
    for _ in range(10):
        hi0, lo0 = _mulhilo(M0, c0)
        hi1, lo1 = _mulhilo(M1, c2)
        c0, c1, c2, c3 = hi1 ^ c1 ^ k0, lo1, hi0 ^ c3 ^ k1, lo0
        k0, k1 = (k0 + W0) & MASK32, (k1 + W1) & MASK32
    return [c0, c1, c2, c3]


def _box_muller(xa: Tensor, xb: Tensor) -> tuple[Tensor, Tensor]:
    u = ((xa >> 8) + 1).to(torch.float64) * 2.0**-24
    theta = (2.0 * math.pi * 2.0**-24) * (xb >> 8).to(torch.float64)
    r = torch.sqrt(-2.0 * torch.log(u))
    return r * torch.cos(theta), r * torch.sin(theta)


def normals(n: int, seed: int, offset: int = 0, *, start: int = 0, device=None) -> Tensor:
    """float32 (n,): z_i for i = start .. start + n − 1 of stream (seed, offset)."""
    if n == 0:
        return torch.empty(0, dtype=torch.float32, device=device)
    seed &= (1 << 64) - 1
    offset &= (1 << 64) - 1
    q0, q1 = start // 4, (start + n - 1) // 4
    q = torch.arange(q0, q1 + 1, dtype=torch.int64, device=device)
    counter = (q & MASK32, q >> 32, torch.full_like(q, offset & MASK32), torch.full_like(q, offset >> 32))
    x0, x1, x2, x3 = philox4x32_10(counter, (seed & MASK32, seed >> 32))
    z0, z1 = _box_muller(x0, x1)
    z2, z3 = _box_muller(x2, x3)
    z = torch.stack([z0, z1, z2, z3], dim=1).reshape(-1).to(torch.float32)
    return z[start - 4 * q0 : start - 4 * q0 + n]


def _compute_dtype(dtype: torch.dtype) -> torch.dtype:
    return torch.float64 if dtype == torch.float64 else torch.float32


def _norm_and_scale(flat: Tensor, max_norm: float) -> tuple[Tensor, float]:
    """Pre-clip L2 norm (fp64 accumulation) and scale = min(1, max_norm / norm) (1 when norm is 0)."""
    norm64 = torch.linalg.vector_norm(flat.to(torch.float64))
    norm = float(norm64)
    scale = 1.0 if norm == 0.0 or max_norm >= norm else max_norm / norm
    return norm64, scale


def clip_and_noise(
    update: Tensor | list[Tensor], max_norm: float, noise_std: float, seed: int, offset: int = 0
) -> tuple[Tensor | list[Tensor], Tensor]:
    """out = u·min(1, max_norm/‖u‖) + noise_std·z; returns (out with update's structure, pre-clip ‖u‖).

    ``update`` is a tensor or a list of tensors treated as one vector (concatenated in order, each
    row-major). 16-bit inputs compute in float32 and round once; the norm is float32 (float64 for
    float64 inputs). z is the stream described in the module docstring.
    """
    tensors = [update] if isinstance(update, Tensor) else list(update)
    dtype = tensors[0].dtype
    compute = _compute_dtype(dtype)
    flat = torch.cat([t.reshape(-1) for t in tensors]) if tensors else torch.empty(0)
    norm64, scale = _norm_and_scale(flat, max_norm)
    z = normals(flat.numel(), seed, offset, device=flat.device)
    # scale is rounded to the compute dtype once, as the kernels do.
    scale_c = torch.tensor(scale, dtype=compute, device=flat.device)
    noised = flat.to(compute) * scale_c
    if noise_std != 0.0:
        noised = noised + torch.tensor(noise_std, dtype=compute) * z.to(compute)
    pieces = noised.to(dtype).split([t.numel() for t in tensors])
    out = [p.reshape(t.shape) for p, t in zip(pieces, tensors, strict=True)]
    norm = norm64.to(compute)
    return (out[0] if isinstance(update, Tensor) else out), norm


def clip_and_noise_sum(
    updates: Tensor, max_norm: float, noise_std: float, seed: int, offset: int = 0
) -> tuple[Tensor, Tensor]:
    """Σ_s u_s·min(1, max_norm/‖u_s‖) + noise_std·z over the rows of ``updates`` (S, N).

    One noise draw per element of the sum: the same z as ``clip_and_noise`` of an N-element update
    with the same (seed, offset). Returns (noised sum (N,), pre-clip row norms (S,)).
    """
    dtype = updates.dtype
    compute = _compute_dtype(dtype)
    rows = updates.reshape(updates.shape[0], -1)
    norms64 = torch.linalg.vector_norm(rows.to(torch.float64), dim=1)
    scales = torch.where(
        (norms64 == 0) | (norms64 <= max_norm), torch.ones_like(norms64), max_norm / norms64
    ).to(compute)
    total = (rows.to(compute) * scales[:, None]).sum(0, dtype=torch.float64).to(compute)
    if noise_std != 0.0:
        z = normals(rows.shape[1], seed, offset, device=rows.device)
        total = total + torch.tensor(noise_std, dtype=compute) * z.to(compute)
    return total.to(dtype), norms64.to(compute)
