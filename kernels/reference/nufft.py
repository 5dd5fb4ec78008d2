"""Pure-torch NUFFT (type 1 and type 2, d = 2 or 3): the specification every backend is tested against.

Conventions (those of finufft with ``isign=-1`` for type 2 and ``modeord=0``, and of torchkbnufft):
- image modes are centred: along an axis of length N the array index i holds mode n = i - N//2, i.e.
  n runs over -N//2 … N - N//2 - 1 (−N/2 … N/2−1 for even N);
- type 2 (image → samples): ``y_j = Σ_n x_n exp(-i k_j·n)``, k_j ∈ [-π, π]^d in radians per pixel,
  ``k[..., a]`` pairs with image axis a;
- type 1 (samples → image) is its exact adjoint: ``x_n = Σ_j y_j exp(+i k_j·n)`` — no 1/N scaling.

Method (Barnett, Magland & af Klinteberg, "A parallel nonuniform fast Fourier transform library based
on an 'exponential of semicircle' kernel", SIAM J. Sci. Comput. 41(5), 2019 — the finufft paper):
1. upsample by σ = 2: the fine grid has nf = max(2N, 2w) points per axis;
2. the ES kernel ψ(x) = exp(β(√(1 − (2x/w)²) − 1)) for |x| ≤ w/2 (x in fine-grid units), with the
   paper's choice for σ = 2: width w = ⌈log10(1/tol)⌉ + 1 (clipped to [2, 16]) and β = 2.30·w
   (2.20·w, 2.26·w, 2.38·w for w = 2, 3, 4), as in finufft's spreader setup;
3. type 2: divide x by the kernel's Fourier transform ψ̂ (deapodization; ψ̂ computed by Gauss–Legendre
   quadrature of the compactly supported ψ, as finufft does), zero-pad onto the fine grid, FFT, then
   interpolate: y_j = Σ_l u_l ψ(t_j − l) with t_j = k_j·nf/(2π) and l wrapping periodically;
4. type 1 is the adjoint of each step in reverse: spread, unnormalized inverse FFT, crop, deapodize.

Here spreading is ``index_add_`` over the w^d footprint of every sample, vectorized over samples and
coils; interpolation is the matching gather.
"""

from __future__ import annotations

import functools
import itertools
import math

import numpy as np
import torch
from torch import Tensor


def kernel_params(tol: float) -> tuple[int, float]:
    """(w, β) of the ES kernel for relative tolerance ``tol`` at σ = 2 (finufft paper, Sec. 3)."""
    w = min(16, max(2, math.ceil(math.log10(1.0 / tol)) + 1))
    beta_over_w = {2: 2.20, 3: 2.26, 4: 2.38}.get(w, 2.30)
    return w, beta_over_w * w


def fine_shape(shape: tuple[int, ...], w: int) -> tuple[int, ...]:
    return tuple(max(2 * n, 2 * w) for n in shape)


def es_kernel(x: Tensor, w: int, beta: float) -> Tensor:
    """ψ(x) = exp(β(√(1 − (2x/w)²) − 1)) on |x| ≤ w/2, else 0 (x in fine-grid units)."""
    z = (2.0 / w) * x
    inside = z.abs() <= 1
    return torch.where(inside, torch.exp(beta * (torch.sqrt((1 - z * z).clamp_min(0)) - 1)), 0.0)


@functools.cache
def _kernel_ft(n: int, nf: int, w: int, beta: float) -> np.ndarray:
    """ψ̂(2πm/nf) = ∫ ψ(x) cos(2πm x/nf) dx for the centred modes m of an axis of length n."""
    nodes, weights = np.polynomial.legendre.leggauss(4 * w + 20)
    x = 0.25 * w * (nodes + 1)  # [0, w/2]
    psi = np.exp(beta * (np.sqrt(np.clip(1 - (2 * x / w) ** 2, 0, None)) - 1))
    modes = np.arange(n) - n // 2
    # ψ is even: ∫_{-w/2}^{w/2} = 2 ∫_0^{w/2}; dx = (w/4) dnodes.
    return 2 * (0.25 * w) * (np.cos(2 * np.pi * np.outer(modes, x) / nf) @ (weights * psi))


def deapodization(shape, nf, w: int, beta: float, dtype: torch.dtype, device) -> Tensor:
    """The real tensor ∏_a ψ̂(2π n_a / nf_a) of shape ``shape`` (centred modes); cached, do not modify."""
    return _deapodization(tuple(shape), tuple(nf), w, beta, dtype, torch.device(device))


@functools.lru_cache(maxsize=16)
def _deapodization(shape, nf, w: int, beta: float, dtype: torch.dtype, device) -> Tensor:
    out = None
    for axis, (n, m) in enumerate(zip(shape, nf, strict=True)):
        v = torch.as_tensor(_kernel_ft(n, m, w, beta), dtype=dtype, device=device)
        v = v.reshape([n if a == axis else 1 for a in range(len(shape))])
        out = v if out is None else out * v
    return out


def _blocks(shape, nf):
    """(image slices, fine slices) of the 2^d blocks that map centred modes n to fine index n mod nf:
    along each axis, modes n >= 0 (image [N//2, N)) go to [0, N - N//2) and modes n < 0 (image
    [0, N//2)) to [nf - N//2, nf)."""
    per_axis = []
    for n, m in zip(shape, nf, strict=True):
        pairs = [(slice(n // 2, n), slice(0, n - n // 2))]
        if n // 2:
            pairs.append((slice(0, n // 2), slice(m - n // 2, m)))
        per_axis.append(pairs)
    for combo in itertools.product(*per_axis):
        yield tuple(c[0] for c in combo), tuple(c[1] for c in combo)


def to_fine(image: Tensor, nf, deap: Tensor) -> Tensor:
    """(B, C, *N) image → deapodized, zero-padded (B, C, *nf) fine grid (mode n at index n mod nf)."""
    fine = image.new_zeros(*image.shape[:2], *nf)
    x = image / deap
    for src, dst in _blocks(image.shape[2:], nf):
        fine[(..., *dst)] = x[(..., *src)]
    return fine


def from_fine(fine: Tensor, shape, deap: Tensor) -> Tensor:
    """Adjoint of :func:`to_fine`: crop the centred modes and divide by the (real) deapodization."""
    out = fine.new_empty(*fine.shape[:2], *shape)
    for src, dst in _blocks(shape, fine.shape[2:]):
        out[(..., *src)] = fine[(..., *dst)]
    return out.div_(deap)


def positions(k: Tensor, nf) -> Tensor:
    """k (Bk, M, d) in radians → fine-grid coordinates t ∈ [0, nf) in float64, same shape."""
    scale = torch.tensor([m / (2 * math.pi) for m in nf], dtype=torch.float64, device=k.device)
    nf_t = torch.tensor(nf, dtype=torch.float64, device=k.device)
    t = torch.remainder(k.double() * scale, nf_t)
    return torch.where(t >= nf_t, t - nf_t, t)  # remainder(-tiny, nf) rounds to nf


def _footprint(t: Tensor, nf, w: int, beta: float, real_dtype: torch.dtype) -> tuple[Tensor, Tensor]:
    """Flat fine-grid indices and kernel weights of every sample's w^d footprint: (Bk, M, w^d) each.
    t (Bk, M, d) are the samples' fine-grid coordinates (:func:`positions`)."""
    start = torch.ceil(t - w / 2)
    offsets = torch.arange(w, device=t.device, dtype=torch.float64)
    node = start.unsqueeze(-1) + offsets  # (Bk, M, d, w)
    weight = es_kernel(node - t.unsqueeze(-1), w, beta)
    node = node.long()
    flat = torch.zeros(t.shape[:2] + (1,), dtype=torch.long, device=t.device)
    wt = torch.ones(t.shape[:2] + (1,), dtype=torch.float64, device=t.device)
    for a in range(len(nf)):
        ia = node[:, :, a] % nf[a]  # (Bk, M, w)
        flat = (flat.unsqueeze(-1) * nf[a] + ia.unsqueeze(-2)).flatten(-2)
        wt = (wt.unsqueeze(-1) * weight[:, :, a].unsqueeze(-2)).flatten(-2)
    return flat, wt.to(real_dtype)


def spread(samples: Tensor, t: Tensor, nf, w: int, beta: float) -> Tensor:
    """Fine grid (B, C, *nf): g_l = Σ_j y_j ψ(t_j − l) (periodic). samples (B, C, M), t (Bk, M, d)."""
    B, C, M = samples.shape
    k = t
    flat, wt = _footprint(t, nf, w, beta, samples.real.dtype)
    grid = samples.new_zeros(B, C, math.prod(nf))
    for b in range(B):
        kb = b if k.shape[0] > 1 else 0
        values = (samples[b].unsqueeze(-1) * wt[kb]).reshape(C, -1)
        grid[b].index_add_(1, flat[kb].reshape(-1), values)
    return grid.reshape(B, C, *nf)


def interp(grid: Tensor, t: Tensor, w: int, beta: float) -> Tensor:
    """Samples (B, C, M): y_j = Σ_l g_l ψ(t_j − l), the adjoint of :func:`spread`."""
    B, C = grid.shape[:2]
    nf = tuple(grid.shape[2:])
    k = t
    flat, wt = _footprint(t, nf, w, beta, grid.real.dtype)
    g = grid.reshape(B, C, -1)
    out = []
    for b in range(B):
        kb = b if k.shape[0] > 1 else 0
        gathered = g[b][:, flat[kb]]  # (C, M, w^d)
        out.append((gathered * wt[kb]).sum(-1))
    return torch.stack(out)


def fine_fft(fine: Tensor) -> Tensor:
    """u_l = Σ_m f_m exp(-2πi l·m/nf) over the grid axes."""
    return torch.fft.fftn(fine, dim=tuple(range(2, fine.dim())))


def fine_ifft(fine: Tensor) -> Tensor:
    """Adjoint of :func:`fine_fft`: Σ_l u_l exp(+2πi l·m/nf), unnormalized."""
    return torch.fft.ifftn(fine, dim=tuple(range(2, fine.dim())), norm="forward")


def _as_batched_k(k: Tensor) -> Tensor:
    return k.unsqueeze(0) if k.dim() == 2 else k


def nufft_type2(image: Tensor, k: Tensor, tol: float = 1e-6) -> Tensor:
    """image (B, C, *N) → samples (B, C, M): y_j = Σ_n x_n exp(-i k_j·n). k (M, d) or (B, M, d)."""
    k = _as_batched_k(k)
    shape = tuple(image.shape[2:])
    w, beta = kernel_params(tol)
    nf = fine_shape(shape, w)
    deap = deapodization(shape, nf, w, beta, image.real.dtype, image.device)
    return interp(fine_fft(to_fine(image, nf, deap)), positions(k, nf), w, beta)


def nufft_type1(samples: Tensor, k: Tensor, shape, tol: float = 1e-6) -> Tensor:
    """samples (B, C, M) → image (B, C, *shape): x_n = Σ_j y_j exp(+i k_j·n), the adjoint of type 2."""
    k = _as_batched_k(k)
    shape = tuple(shape)
    w, beta = kernel_params(tol)
    nf = fine_shape(shape, w)
    deap = deapodization(shape, nf, w, beta, samples.real.dtype, samples.device)
    return from_fine(fine_ifft(spread(samples, positions(k, nf), nf, w, beta)), shape, deap)


def nufft_direct_type2(image: Tensor, k: Tensor) -> Tensor:
    """The exact sum y_j = Σ_n x_n exp(-i k_j·n) in O(M·N^d) (tests, small sizes only)."""
    k = _as_batched_k(k).double()
    shape = image.shape[2:]
    grids = torch.meshgrid(*[torch.arange(n, dtype=torch.float64) - n // 2 for n in shape], indexing="ij")
    modes = torch.stack([g.reshape(-1) for g in grids], -1)  # (N^d, d)
    phase = torch.exp(-1j * (k @ modes.T))  # (Bk, M, N^d)
    x = image.reshape(*image.shape[:2], -1).to(torch.complex128)
    return torch.einsum("bcn,bmn->bcm", x, phase.expand(image.shape[0], -1, -1)).to(image.dtype)
