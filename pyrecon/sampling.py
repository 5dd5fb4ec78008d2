"""Sampling patterns: variable-density Cartesian k-t masks and golden-angle radial trajectories.

Cartesian masks are real (T, H, W) float tensors: a sampled phase-encoding line ky (dim -2) is 1 along
the whole readout kx (dim -1). Index H//2 is the k-space centre (DC), as in :func:`pyrecon.ops.fft2c`.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from torch import Tensor

GOLDEN_ANGLE = math.pi * (math.sqrt(5) - 1) / 2  # π/φ ≈ 111.25°: the radial golden angle for full spokes


def _check_int(value, name: str, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def _check_accel(accel, H: int) -> float:
    if isinstance(accel, bool) or not isinstance(accel, numbers.Real) or not 1 <= accel <= H:
        raise ValueError(f"accel must be a number in [1, H={H}], got {accel!r}")
    return float(accel)


def _line_budget(T: int, H: int, accel: float) -> np.ndarray:
    """Lines per frame: round(T·H/accel) lines over the series, spread so frames differ by at most one."""
    total = max(T, int(round(T * H / accel)))
    n = np.full(T, total // T)
    n[: total - n.sum()] += 1
    return n


def kt_mask(T: int, H: int, W: int, accel: float, *, center_lines: int = 8, seed: int = 0) -> Tensor:
    """Variable-density Cartesian k-t mask (T, H, W), a different random set of ky lines per frame.

    Frame t samples n_t lines with Σ_t n_t = round(T·H/accel) (so the overall acceleration
    T·H / Σ n_t ≈ accel; frames differ by at most one line). The ``c`` lines around the centre
    (H//2 − c//2 ... ) are always sampled, c = min(center_lines, ⌊min_t n_t / 2⌋, H) with at least
    one: at high acceleration the centre band is shrunk so that at least half of every frame's budget
    stays random (at H = 96 and R = 8 that is 6 of 12 lines). The remaining lines are drawn without
    replacement with probability ∝ (1 − |ky − H/2| / (H/2))² + 0.02, a polynomial variable density.

    Args:
        T, H, W: frames, phase-encoding lines, readout length.
        accel: target acceleration R in [1, H] (4, 8, 12, 16, 20, 21 typical).
        center_lines: wanted size of the fully sampled centre band (>= 0).
        seed: the random draw (numpy Generator).

    Returns: float32 (T, H, W) of 0/1 on the CPU.
    """
    T, H, W = _check_int(T, "T", 1), _check_int(H, "H", 1), _check_int(W, "W", 1)
    accel = _check_accel(accel, H)
    center_lines = _check_int(center_lines, "center_lines", 0)
    rng = np.random.default_rng(seed)
    budget = _line_budget(T, H, accel)
    c = max(1, min(center_lines, int(budget.min()) // 2, H))
    lo = H // 2 - c // 2
    centre = np.arange(lo, lo + c)
    others = np.setdiff1d(np.arange(H), centre)
    dist = np.abs(others - H / 2) / (H / 2)
    prob = (1 - np.clip(dist, 0, 1)) ** 2 + 0.02
    prob = prob / prob.sum()
    lines = np.zeros((T, H), dtype=np.float32)
    lines[:, centre] = 1
    for t in range(T):
        extra = min(int(budget[t]) - c, others.size)
        if extra > 0:
            lines[t, rng.choice(others, size=extra, replace=False, p=prob)] = 1
    return torch.from_numpy(lines)[:, :, None].expand(T, H, W).contiguous()


def acceleration(mask: Tensor) -> float:
    """Acceleration of a mask: number of entries / number of sampled entries."""
    if not isinstance(mask, Tensor) or mask.is_complex():
        raise TypeError("mask must be a real tensor")
    sampled = float((mask != 0).sum())
    if sampled == 0:
        raise ValueError("mask samples nothing")
    return mask.numel() / sampled


def vista_mask(T: int, H: int, W: int, accel: float, *, seed: int = 0, power: float = 1.5) -> Tensor:
    """VISTA-like k-t mask (T, H, W): variable density, spread evenly in k-t, shifted frame to frame.

    An approximation of VISTA (Ahmad et al., MRM 74:1266, 2015), which places samples by minimizing a
    potential energy in k-t space; here the same properties are built directly. With the density
    p(ky) ∝ (1 − |ky − H/2| / (H/2) · 0.9)^power and its cumulative P, frame t samples the n_t lines
    P⁻¹((j + φ_t) / n_t), j = 0 … n_t − 1, with the offset φ_t = frac(t · 0.618… + u_seed) (golden-ratio
    steps, so consecutive frames interleave and the time average covers k-space evenly). Lines that
    round onto an already chosen line move to the nearest free one; DC (H//2) is always sampled,
    replacing the line nearest to it when missing. Σ_t n_t = round(T·H/accel) as in :func:`kt_mask`.

    Args:
        T, H, W: frames, phase-encoding lines, readout length.
        accel: target acceleration in [1, H] (16 and 20 as in the DUN-SRE paper).
        seed: shifts the offsets φ_t.
        power: how strongly the density peaks at the centre (0: uniform).

    Returns: float32 (T, H, W) of 0/1 on the CPU.
    """
    T, H, W = _check_int(T, "T", 1), _check_int(H, "H", 1), _check_int(W, "W", 1)
    accel = _check_accel(accel, H)
    if isinstance(power, bool) or not isinstance(power, numbers.Real) or power < 0:
        raise ValueError(f"power must be a number >= 0, got {power!r}")
    budget = _line_budget(T, H, accel)
    dens = (1 - 0.9 * np.abs(np.arange(H) + 0.5 - H / 2) / (H / 2)) ** power
    cdf = np.concatenate([[0.0], np.cumsum(dens) / dens.sum()])  # P at line edges 0 … H
    offset = np.random.default_rng(seed).uniform()
    golden = (math.sqrt(5) - 1) / 2
    lines = np.zeros((T, H), dtype=np.float32)
    for t in range(T):
        n = int(budget[t])
        phi = (t * golden + offset) % 1.0
        u = (np.arange(n) + phi) / n
        wanted = np.clip(np.searchsorted(cdf, u, side="right") - 1, 0, H - 1)
        taken: set[int] = set()
        for line in wanted:
            step = 0
            while True:  # the nearest free line (n <= H, so one exists)
                cands = [c for c in (line - step, line + step) if 0 <= c < H and c not in taken]
                if cands:
                    taken.add(cands[0])
                    break
                step += 1
        if H // 2 not in taken:
            taken.remove(min(taken, key=lambda c: abs(c - H // 2)))
            taken.add(H // 2)
        lines[t, sorted(taken)] = 1
    return torch.from_numpy(lines)[:, :, None].expand(T, H, W).contiguous()


def radial_trajectory(
    spokes: int, readout: int, frames: int = 1, *, golden: bool = True, source: str = "pyrecon"
) -> Tensor:
    """Radial k-space trajectory k (frames, spokes·readout, 2) in radians per pixel, in [-π, π].

    Spoke s of frame f (global index g = f·spokes + s) has angle θ_g = g·π/φ (golden angle 111.25°,
    continuing across frames) when ``golden``, else θ = π·s/spokes (the same uniform spokes every
    frame). Along a spoke κ_r = 2π (r − readout/2) / readout, r = 0 … readout−1, and
    k = κ_r (sin θ, cos θ): k[..., 0] pairs with image axis -2 (ky), k[..., 1] with axis -1 (kx), as
    :func:`kernels.nufft2d_type2` expects for an image (..., H, W).

    ``source="phantominator"`` takes the spokes from ``phantominator.radial`` instead (readout points
    linspace(−1, 1)·readout/2 in cycles per field of view, so κ spans [−π, π] inclusive; its golden
    angle is π(3 − √5) ≈ 137.5°, its uniform angles π·s/(frames·spokes) across all frames), converted
    to radians per pixel for an image of size ``readout`` and to the same (ky, kx) order.

    Returns: float64 (frames, spokes·readout, 2) on the CPU.
    """
    spokes, readout = _check_int(spokes, "spokes", 1), _check_int(readout, "readout", 2)
    frames = _check_int(frames, "frames", 1)
    if source == "phantominator":
        from phantominator import radial

        kx, ky = radial(readout, spokes * frames, golden=golden)
        k = np.stack([ky, kx], axis=-1) * (2 * math.pi / readout)
        return torch.from_numpy(k).reshape(frames, spokes * readout, 2)
    if source != "pyrecon":
        raise ValueError(f"source must be 'pyrecon' or 'phantominator', got {source!r}")
    g = torch.arange(frames * spokes, dtype=torch.float64).reshape(frames, spokes)
    theta = g * GOLDEN_ANGLE if golden else (g % spokes) * (math.pi / spokes)
    kr = 2 * math.pi * (torch.arange(readout, dtype=torch.float64) - readout / 2) / readout
    ky = kr * theta.sin()[..., None]
    kx = kr * theta.cos()[..., None]
    return torch.stack([ky, kx], dim=-1).reshape(frames, spokes * readout, 2)
