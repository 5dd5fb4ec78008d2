"""Numerical phantoms: a beating-heart cine series and smooth coil sensitivity maps.

The cine phantom paints soft-edged ellipses in a fixed order (painter's rule: a later ellipse
replaces what is under it, blended over a sub-pixel edge), so the magnitude stays in [0, 1]. The heart
(myocardium ring, left and right ventricular blood pools) contracts periodically and the whole heart
drifts a little with a second, slower periodic "breathing" motion; the torso, lungs, spine and
vessels are static. Every random choice lives in ``params`` (plain floats, JSON-friendly), drawn from
``seed`` unless given, so disjoint seed ranges give a training family and a held-out family.
"""

from __future__ import annotations

import math
import numbers

import numpy as np
import torch
from torch import Tensor

_COMPLEX = (torch.complex64, torch.complex128)


def _check_size(value, name: str, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return int(value)


def random_cine_params(seed: int = 0) -> dict:
    """Draw the parameters of one cine phantom: geometry jitter, contraction, breathing, intensities,
    background phase. Values are floats in normalized coordinates ([-1, 1] spans the field of view)."""
    rng = np.random.default_rng(seed)
    u = rng.uniform
    return {
        "torso_axes": [u(0.78, 0.9), u(0.62, 0.75)],
        "torso_value": u(0.2, 0.3),
        "lung_value": u(0.03, 0.08),
        "heart_center": [u(-0.12, 0.02), u(-0.05, 0.15)],  # (y, x)
        "heart_angle": u(-0.6, 0.6),  # radians
        "heart_size": u(0.85, 1.15),
        "myo_value": u(0.35, 0.5),
        "lv_value": u(0.85, 1.0),
        "rv_value": u(0.65, 0.85),
        "contraction": u(0.2, 0.35),  # fractional shrink of the blood pools at end systole
        "systole_fraction": u(0.35, 0.45),  # share of the cycle spent contracting
        "cycles": 1,  # heartbeats in the series
        "cardiac_phase0": u(0.0, 1.0),  # where in the cycle frame 0 sits
        "breath_amplitude": u(0.01, 0.03),  # heart drift (normalized units)
        "breath_phase0": u(0.0, 1.0),
        "vessel_value": u(0.6, 0.8),
        "phase_amplitude": u(0.0, math.pi / 2),  # smooth background phase, radians
        "phase_coeffs": rng.normal(size=4).tolist(),
    }


def _heart_wave(phase: np.ndarray, systole: float) -> np.ndarray:
    """Volume curve in [0, 1] over a cycle phase in [0, 1): 0 at end diastole, 1 at end systole, smooth
    and periodic (a raised cosine for contraction, a slower one for filling)."""
    ph = np.mod(phase, 1.0)
    contract = 0.5 - 0.5 * np.cos(np.pi * ph / systole)
    relax = 0.5 + 0.5 * np.cos(np.pi * (ph - systole) / (1.0 - systole))
    return np.where(ph < systole, contract, relax)


def _ellipse(yy: Tensor, xx: Tensor, cy, cx, ay, ax, angle, edge: Tensor) -> Tensor:
    """Soft indicator in [0, 1] of an ellipse (centre, semi-axes, rotation); ``edge`` is the blur width."""
    c, s = math.cos(angle), math.sin(angle)
    dy, dx = yy - cy, xx - cx
    v, w = c * dy + s * dx, -s * dy + c * dx
    rho = torch.sqrt((v / ay) ** 2 + (w / ax) ** 2)
    return torch.sigmoid((1.0 - rho) * min(ay, ax) / edge)


def cine_phantom(
    T: int = 16,
    H: int = 96,
    W: int = 96,
    *,
    seed: int = 0,
    params: dict | None = None,
    dtype: torch.dtype = torch.complex64,
) -> tuple[Tensor, dict]:
    """A beating-heart cine series x (T, H, W) with magnitude in [0, 1].

    Frame t sits at cardiac phase φ_t = cardiac_phase0 + cycles · t / T (mod 1), so the series is
    periodic: with ``cycles`` heartbeats, frame t equals frame t + T/cycles, and frame T would equal
    frame 0. The blood pools' semi-axes are a₀ · (1 − contraction · v(φ_t)) with the volume curve v
    (0 at end diastole, 1 at end systole); the myocardium keeps its area (its outer radius follows
    r_out² = r_in² + const). The heart drifts by breath_amplitude · sin(2π(t/T + breath_phase0)).
    The image is magnitude · exp(i·φ_bg) with a smooth static background phase φ_bg (a low-order
    polynomial scaled to ``phase_amplitude``).

    Args:
        T, H, W: frames and image size (>= 1, H and W >= 8).
        seed: draws ``params`` when they are not given (see :func:`random_cine_params`).
        params: a dict from :func:`random_cine_params` (possibly edited) to reproduce a phantom.
        dtype: complex64 or complex128.

    Returns: (x, params): x complex (T, H, W) of ``dtype`` on the CPU; the params used.
    """
    T = _check_size(T, "T")
    H, W = _check_size(H, "H", 8), _check_size(W, "W", 8)
    if dtype not in _COMPLEX:
        raise TypeError(f"dtype must be torch.complex64 or torch.complex128, got {dtype}")
    if params is None:
        params = random_cine_params(seed)
    elif not isinstance(params, dict):
        raise TypeError(f"params must be a dict from random_cine_params, got {type(params).__name__}")
    missing = set(random_cine_params(0)) - set(params)
    if missing:
        raise ValueError(f"params is missing keys {sorted(missing)}")
    p = params
    rdtype = torch.float64
    ys = torch.linspace(-1, 1, H, dtype=rdtype)
    xs = torch.linspace(-1, 1, W, dtype=rdtype)
    yy, xx = torch.meshgrid(ys, xs, indexing="ij")
    edge = torch.tensor(0.6 / min(H, W), dtype=rdtype)  # ~0.3 pixel: sharp, not aliased

    frames = np.arange(T)
    volume = _heart_wave(p["cardiac_phase0"] + p["cycles"] * frames / T, p["systole_fraction"])
    drift = p["breath_amplitude"] * np.sin(2 * np.pi * (frames / T + p["breath_phase0"]))

    static = torch.zeros(H, W, dtype=rdtype)

    def paint(img: Tensor, mask: Tensor, value: float) -> Tensor:
        return img * (1 - mask) + value * mask

    ta, tb = p["torso_axes"]
    static = paint(static, _ellipse(yy, xx, 0.0, 0.0, ta, tb, 0.0, edge), p["torso_value"])
    for side in (-1, 1):
        lung = _ellipse(yy, xx, -0.05, side * 0.45 * tb, 0.5 * ta, 0.3 * tb, side * 0.15, edge)
        static = paint(static, lung, p["lung_value"])
    static = paint(static, _ellipse(yy, xx, 0.6 * ta, 0.0, 0.09, 0.09, 0.0, edge), 0.55)  # spine
    static = paint(static, _ellipse(yy, xx, 0.35 * ta, -0.12, 0.07, 0.07, 0.0, edge), p["vessel_value"])

    size, angle = p["heart_size"], p["heart_angle"]
    cy0, cx0 = p["heart_center"]
    c, s = math.cos(angle), math.sin(angle)
    lv_a = (0.17 * size, 0.14 * size)  # diastolic semi-axes of the LV blood pool (along/across)
    rv_a = (0.17 * size, 0.09 * size)
    wall = 0.08 * size
    out = torch.empty(T, H, W, dtype=rdtype)
    for t in range(T):
        shrink = 1.0 - p["contraction"] * float(volume[t])
        cy, cx = cy0 + float(drift[t]), cx0 + 0.5 * float(drift[t])
        lv = (lv_a[0] * shrink, lv_a[1] * shrink)
        # constant myocardial area: outer² = inner² + (outer₀² − inner₀²) per semi-axis
        myo = tuple(math.sqrt(a**2 + (a0 + wall) ** 2 - a0**2) for a, a0 in zip(lv, lv_a, strict=True))
        rv = (rv_a[0] * (1 - 0.8 * p["contraction"] * float(volume[t])), rv_a[1] * shrink)
        # the RV sits beside the LV along the heart's short axis
        off = myo[1] + rv[1] * 0.7
        ry, rx = cy - s * off, cx + c * off
        img = static.clone()
        img = paint(img, _ellipse(yy, xx, ry, rx, rv[0] + 0.02, rv[1] + 0.02, angle, edge), p["myo_value"])
        img = paint(img, _ellipse(yy, xx, ry, rx, rv[0], rv[1], angle, edge), p["rv_value"])
        img = paint(img, _ellipse(yy, xx, cy, cx, myo[0], myo[1], angle, edge), p["myo_value"])
        img = paint(img, _ellipse(yy, xx, cy, cx, lv[0], lv[1], angle, edge), p["lv_value"])
        out[t] = img

    a = p["phase_coeffs"]
    poly = a[0] * yy + a[1] * xx + a[2] * yy * xx + a[3] * (yy**2 - xx**2)
    poly = poly / poly.abs().max().clamp_min(1e-12)
    phase = p["phase_amplitude"] * poly
    x = out.clamp(0, 1) * torch.exp(1j * phase)
    return x.to(dtype), params


def coil_maps(C: int, H: int, W: int, *, seed: int = 0, dtype: torch.dtype = torch.complex64) -> Tensor:
    """Smooth complex coil sensitivities (C, H, W) normalized so that Σ_c |S_c|² = 1 at every pixel.

    Coil c sits at angle θ_c = 2π c / C + jitter on a circle of radius ρ ∈ [1.3, 1.6] around the field
    of view ([-1, 1]²); its raw magnitude is exp(−d²/(2σ²)) with d the distance to the coil and
    σ ∈ [0.7, 1.0], its phase linear in space (a random direction, up to ±π/2 across the field) plus a
    constant. Then S_c = raw_c / sqrt(Σ_c' |raw_c'|²).

    Args:
        C, H, W: coils (>= 1) and image size (>= 1).
        seed: the random coil geometry.
        dtype: complex64 or complex128.

    Returns: complex (C, H, W) on the CPU.
    """
    C = _check_size(C, "C")
    H, W = _check_size(H, "H"), _check_size(W, "W")
    if dtype not in _COMPLEX:
        raise TypeError(f"dtype must be torch.complex64 or torch.complex128, got {dtype}")
    rng = np.random.default_rng(seed)
    yy, xx = torch.meshgrid(
        torch.linspace(-1, 1, H, dtype=torch.float64),
        torch.linspace(-1, 1, W, dtype=torch.float64),
        indexing="ij",
    )
    maps = []
    for c in range(C):
        theta = 2 * math.pi * c / C + rng.uniform(-0.3, 0.3) * (2 * math.pi / C)
        rho, sigma = rng.uniform(1.3, 1.6), rng.uniform(0.7, 1.0)
        d2 = (yy - rho * math.sin(theta)) ** 2 + (xx - rho * math.cos(theta)) ** 2
        direction = rng.uniform(0, 2 * math.pi)
        ramp = (math.pi / 4) * (math.sin(direction) * yy + math.cos(direction) * xx)
        maps.append(torch.exp(-d2 / (2 * sigma**2)) * torch.exp(1j * (ramp + rng.uniform(-math.pi, math.pi))))
    s = torch.stack(maps)
    s = s / (s.abs() ** 2).sum(dim=0, keepdim=True).sqrt()
    return s.to(dtype)


def add_kspace_noise(y: Tensor, mask: Tensor, *, snr_db: float, seed: int = 0) -> Tensor:
    """Add circular complex Gaussian noise to the sampled entries of k-space.

    σ² = P / 10^{snr_db/10}, P = mean |y|² over the sampled entries (mask ≠ 0, broadcast to y's frames
    and coils as in the SENSE operators); the noise n = σ (a + i b)/√2, a, b ~ N(0, 1), so E|n|² = σ².
    Entries outside the mask stay 0.

    Args:
        y: complex (B, T, C, H, W) masked k-space.
        mask: real, broadcastable to (B, T, H, W).
        snr_db: signal-to-noise ratio in dB (per sampled entry).
        seed: the noise draw (a torch.Generator on the CPU).

    Returns: noisy y, same shape and dtype.
    """
    if not isinstance(y, Tensor) or not y.is_complex() or y.dim() != 5:
        raise ValueError(f"y must be complex (B, T, C, H, W), got {getattr(y, 'shape', type(y))}")
    if not isinstance(snr_db, numbers.Real) or not math.isfinite(snr_db):
        raise ValueError(f"snr_db must be a finite number, got {snr_db!r}")
    if not isinstance(mask, Tensor) or mask.is_complex() or mask.dim() > 4:
        raise ValueError(
            f"mask must be real and broadcastable to (B, T, H, W), got {getattr(mask, 'shape', mask)}"
        )
    m = mask.reshape((1,) * (4 - mask.dim()) + tuple(mask.shape)).unsqueeze(2).to(y.device)
    sampled = (m != 0).expand_as(y)
    if not bool(sampled.any()):
        raise ValueError("mask samples nothing")
    power = (y.abs() ** 2)[sampled].mean()
    sigma = torch.sqrt(power / 10 ** (snr_db / 10))
    g = torch.Generator().manual_seed(seed)
    noise = torch.randn(y.shape, dtype=y.dtype, generator=g).to(y.device)  # complex randn: E|n|² = 1
    return y + sigma * noise * sampled
