"""INR T1rho mapping (arXiv 2407.05617 v1): a subject-specific implicit neural representation of the
T1rho-weighted series, fitted to one scan's undersampled multi-coil k-space, then voxel-wise maps.

Model. x_θ(r, τ) = f_θ(y, x, τ/τ_max) ∈ ℂ (real and imaginary parts from a small MLP, ``HashMLP``),
evaluated on the pixel grid at each spin-lock time τ_k → images X (K, H, W); its multi-coil k-space is
Y = F(S_c X_k) (K, C, H, W). By default (y, x) is hash-grid encoded and τ enters the MLP as a raw
input, so the series is a smooth function of τ; ``tau_in_hash=True`` encodes (y, x, τ) with a 3-D
hash grid instead, whose finest levels give every TSL its own cells (measured on a 64² R = 4 case:
image nRMSE 0.134 with the 3-D grid vs 0.088 with τ in the MLP, 150 iterations).

Loss (one scan; y measured k-space, M the per-τ sampling mask, S the coil maps):

    L(θ) = ‖M ⊙ Y − y‖² / ‖y‖²                                        (data consistency)
         + λ_H · tail_r(H(Y_crop)) / trace(H(Y_crop)ᴴ H(Y_crop))        (Hankel low rank)
         + λ_S · Σ_k ‖(G − I) Y_k‖² / ‖y‖²                              (k-space self-consistency)

H(·) is the block-Hankel matrix of ``pyrecon.inr.hankel`` over the central ``hankel_crop``² k-space
window with the K·C (spin-lock time × coil) channels stacked, so the prior couples TSLs and coils;
tail_r = Σ_{i>r} σ_i² (the fixed-rank penalty, ‖H − P_r H‖_F², computed from the Gram eigenvalues
without forming H). G is the SPIRiT-like coil kernel calibrated on the measured ACS lines (all TSLs
pooled). After fitting, ``pyrecon.inr.expfit.fit_monoexp`` on |X| gives M0 and T1rho.

Data (``simulate_t1rho``): phantominator's 2-D MR Shepp–Logan (slice z = −0.25) gives M0 and T2; each
tissue (identified by its T2) gets the T1rho of ``T1RHO_MS_BY_T2`` (cartilage/muscle-like 30–70 ms for
the solid tissues, 100 ms for the fluid-like ellipses), a smooth background phase, coil maps,
per-τ k-t masks with the centre lines always sampled, complex Gaussian noise of std σ on every
sampled k-space value (image-domain std σ, the FFT being orthonormal).

Baselines: ``zero_filled_images`` (Σ_c S_c* Fᴴ y) and ``lowrank_images`` (Casorati low rank over τ:
iterative hard thresholding X ← P_r(X + Eᴴ(y − E X)), the "low-rank-only" reference).

Findings (benchmarks/results/recon/inr_t1rho.md, 64², 200 iterations, 3 evaluation seeds; the weights
λ_H = 0.3, rank 80, λ_S = 0.01 chosen by a grid on a separate selection seed at R = 6, see
inr_t1rho_select.md). The priors do NOT measurably help this INR: inside the M0 mask (M0 >= 0.25·max)
the T1rho nRMSE of INR + Hankel and INR + Hankel + SPIRiT differs from the DC-only INR by −0.002 to
+0.004 (paired over seeds), within the seed-to-seed spread (± 0.004–0.012), at R = 4, 6 and 8; the
selected weights sit at the weak end of the grid (stronger Hankel/SPIRiT weights raise the error).
The INR itself (with or without priors) beats the zero-filled fit (0.10–0.13) and the Casorati
low-rank baseline (0.14–0.16) at every R (0.068–0.096). The all-tissue nRMSE is not a method
measure here: it is set by a few outer-ring voxels (tissue 1, M0 = 0.12; 0–3 per INR fit, up to 16
for low-rank) whose fit hits the 1000 ms bound; no method has a bound hit inside the M0 mask. The
Hankel prior costs ≈ 2.6× the DC-only iteration (78 vs 30 ms at 64², 1 thread), most of it the
(K·C·k²)² = 500² Hermitian eigendecomposition.

Simplifications, stated: the coil maps are the simulation's (no ESPIRiT estimate); Adam with a
constant learning rate; the Hankel prior sees a central crop (its energy is there) to keep the Gram
matrix small.
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

import kernels.nvtx
from kernels.runs import RunDir, plot_curves
from pyrecon.data.phantoms import coil_maps
from pyrecon.inr._common import (
    HashMLP,
    add_config_arguments,
    config_from_args,
    fit_loop,
    open_run,
    pixel_grid,
    save_image_grid,
)
from pyrecon.inr.expfit import fit_monoexp
from pyrecon.inr.hankel import calibrate_spirit, hankel_lowrank_penalty, spirit_residual
from pyrecon.ops.fft import fft2c
from pyrecon.ops.sense import sense_adjoint, sense_forward
from pyrecon.sampling import kt_mask

__all__ = [
    "M0_FRAC",
    "PRESETS",
    "T1RHO_MS_BY_T2",
    "T1_MAX_MS",
    "T1_MIN_MS",
    "T1rhoConfig",
    "T1rhoData",
    "T1rhoINR",
    "add_arguments",
    "fit_t1rho_inr",
    "lowrank_images",
    "main",
    "map_errors",
    "maps_from_images",
    "simulate_t1rho",
    "zero_filled_images",
]

# Shepp–Logan tissue (keyed by its T2 in s) → T1rho in ms. Solid tissues get cartilage/muscle-like
# values (30–70 ms, spread so that the maps show contrast); the two fluid-like ellipses (T2 ≈ 2 s) 100 ms.
T1RHO_MS_BY_T2 = {0.05: 30.0, 0.07: 45.0, 0.08: 55.0, 0.10: 70.0, 1.97: 100.0, 1.99: 100.0}
# The map fit keeps T1rho in [T1_MIN_MS, T1_MAX_MS]. The M0 mask of ``map_errors`` keeps tissue with
# M0 >= M0_FRAC · max M0: on the phantom it leaves out only the outer ring (tissue 1, M0 = 0.12 of 0.98).
T1_MIN_MS, T1_MAX_MS = 1.0, 1000.0
M0_FRAC = 0.25


@dataclass
class T1rhoConfig:
    name: str = "t1rho-inr"
    size: int = 64
    coils: int = 4
    tsl: tuple[float, ...] = (5.0, 10.0, 20.0, 40.0, 60.0)
    accel: int = 4
    center_lines: int = 8
    noise: float = 0.005
    seed: int = 0
    # INR
    n_levels: int = 8
    n_features: int = 2
    log2_hashmap_size: int = 15
    base_resolution: int = 4
    finest_resolution: int = 64
    hidden: int = 64
    depth: int = 3
    tau_in_hash: bool = False  # True: 3-D hash grid of (y, x, τ); False: τ goes to the MLP (smooth in τ)
    # fit
    iters: int = 300
    lr: float = 1e-2
    # λ_H, rank and λ_S: chosen by the grid in benchmarks/results/recon/inr_t1rho_select.md (seed 100,
    # R = 6); they do not beat λ_H = λ_S = 0 on the evaluation seeds (see the module docstring)
    lam_hankel: float = 0.3
    hankel_kernel: int = 5
    hankel_rank: int = 80  # rank 40 already keeps 99.93% of the noiseless truth's Hankel energy
    hankel_crop: int = 24
    lam_spirit: float = 0.01
    spirit_kernel: tuple[int, ...] = (3, 5)  # (ky, kx): k-t masks at R = 8 keep only ~4 centre lines
    lowrank_rank: int = 2
    lowrank_iters: int = 50
    fit_iters: int = 30
    log_every: int = 10
    checkpoint_every: int = 100


PRESETS = {
    "tiny": {"size": 32, "coils": 2, "center_lines": 6, "iters": 120, "hankel_crop": 16,
             "finest_resolution": 32, "log2_hashmap_size": 12, "hidden": 32, "checkpoint_every": 10},
    # the paper's scale: 8 coils, 16 levels, longer fit
    "paper": {"size": 128, "coils": 8, "n_levels": 16, "log2_hashmap_size": 19, "finest_resolution": 256,
              "hidden": 128, "iters": 3000, "hankel_crop": 48},
}


@dataclass
class T1rhoData:
    images: Tensor  # (K, H, W) complex ground truth
    m0: Tensor  # (H, W)
    t1rho: Tensor  # (H, W) ms, 0 in the background
    labels: Tensor  # (H, W) int: 0 background, 1.. tissues in the order of T1RHO_MS_BY_T2
    smaps: Tensor  # (C, H, W)
    mask: Tensor  # (K, H, W)
    kspace: Tensor  # (K, C, H, W) measured (zero where not sampled)
    tsl: Tensor  # (K,) ms


def simulate_t1rho(size: int = 64, coils: int = 4, tsl=(5.0, 10.0, 20.0, 40.0, 60.0), accel: int = 4, *,
                   center_lines: int = 8, noise: float = 0.005, seed: int = 0,
                   dtype: torch.dtype = torch.complex64) -> T1rhoData:
    """Simulated T1rho series on the MR Shepp–Logan phantom (see the module docstring)."""
    from phantominator import mr_shepp_logan

    if size < 8:
        raise ValueError(f"size must be >= 8, got {size}")
    if coils < 1:
        raise ValueError(f"coils must be >= 1, got {coils}")
    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    tsl_t = torch.as_tensor(tsl, dtype=torch.float64)
    if tsl_t.dim() != 1 or tsl_t.numel() < 2 or bool((tsl_t < 0).any()):
        raise ValueError(f"tsl must hold >= 2 non-negative spin-lock times, got {tsl}")
    m0, _, t2 = mr_shepp_logan((size, size, 1), zlims=(-0.25, -0.25))
    m0 = torch.from_numpy(np.ascontiguousarray(m0[..., 0])).double()
    t2 = torch.from_numpy(np.ascontiguousarray(t2[..., 0])).double()
    t1 = torch.zeros_like(m0)
    labels = torch.zeros(size, size, dtype=torch.int64)
    for i, (t2_val, t1_val) in enumerate(T1RHO_MS_BY_T2.items(), start=1):
        sel = (m0 > 0) & ((t2 - t2_val).abs() < 5e-3)
        t1[sel], labels[sel] = t1_val, i
    m0 = torch.where(labels > 0, m0, torch.zeros_like(m0))
    yy, xx = torch.meshgrid(torch.linspace(-1, 1, size, dtype=torch.float64),
                            torch.linspace(-1, 1, size, dtype=torch.float64), indexing="ij")
    phase = torch.exp(1j * (0.4 * xx - 0.3 * yy + 0.2 * xx * yy))
    safe_t1 = torch.where(t1 > 0, t1, torch.ones_like(t1))
    images = (m0 * torch.exp(-tsl_t[:, None, None] / safe_t1)) * phase  # (K, H, W)
    smaps = coil_maps(coils, size, size, seed=seed, dtype=dtype)
    mask = kt_mask(len(tsl_t), size, size, accel, center_lines=center_lines, seed=seed).to(torch.float32)
    images = images.to(dtype)
    y = sense_forward(images[None], smaps[None], mask)[0]  # (K, C, H, W)
    g = torch.Generator().manual_seed(seed + 1)
    real_dtype = torch.float32 if dtype == torch.complex64 else torch.float64
    n = torch.complex(torch.randn(y.shape, generator=g, dtype=real_dtype),
                      torch.randn(y.shape, generator=g, dtype=real_dtype)) * (noise / math.sqrt(2))
    y = y + mask[:, None] * n.to(dtype)
    return T1rhoData(images, m0.float(), t1.float(), labels, smaps, mask, y, tsl_t.float())


def zero_filled_images(y: Tensor, smaps: Tensor, mask: Tensor) -> Tensor:
    """Σ_c S_c* Fᴴ(M y_c) → (K, H, W) (coil maps normalized to Σ|S|² = 1)."""
    return sense_adjoint(y[None], smaps[None], mask)[0]


def lowrank_images(y: Tensor, smaps: Tensor, mask: Tensor, *, rank: int = 2, iters: int = 50) -> Tensor:
    """Casorati low rank over τ by iterative hard thresholding: X ← P_r(X + Eᴴ(y − E X)), X₀ = 0.
    Step 1 is safe: ‖E‖ ≤ 1 (orthonormal FFT, binary mask, Σ|S|² = 1)."""
    if rank < 1:
        raise ValueError(f"rank must be >= 1, got {rank}")
    k, h, w = mask.shape[-3], smaps.shape[-2], smaps.shape[-1]
    x = torch.zeros(k, h, w, dtype=y.dtype, device=y.device)
    for _ in range(iters):
        r = y - sense_forward(x[None], smaps[None], mask)[0]
        x = x + sense_adjoint(r[None], smaps[None], mask)[0]
        u, s, vh = torch.linalg.svd(x.reshape(k, -1), full_matrices=False)
        x = ((u[:, :rank] * s[:rank]) @ vh[:rank]).reshape(k, h, w)
    return x


def map_errors(t1_est: Tensor, t1_true: Tensor, labels: Tensor, m0: Tensor | None = None, *,
               m0_frac: float = M0_FRAC, t1_bounds: tuple[float, float] = (T1_MIN_MS, T1_MAX_MS)) -> dict:
    """T1rho map error of ``t1_est`` against ``t1_true`` (H, W), tissue = ``labels > 0``:

        nrmse       = ‖T̂ − T‖ / ‖T‖ over all tissue;
        m0_nrmse    = the same over the M0 mask {tissue, m0 >= m0_frac · max m0} (``m0`` given): a voxel
                      with little signal has a noisy decay and its fit may run into a bound whatever
                      the reconstruction, so this is the error attributable to the method;
        bound_hits  = number of tissue voxels whose T̂ is at a fit bound (T̂ <= t1_min·(1 + 1e-6) or
                      T̂ >= t1_max·(1 − 1e-6)); ``m0_bound_hits`` the same inside the M0 mask;
        tissue{i}   = per tissue: the true value, mean ± std (unbiased) of T̂, the voxel count.
    """
    if not 0.0 <= m0_frac < 1.0:
        raise ValueError(f"m0_frac must be in [0, 1), got {m0_frac}")
    if t1_est.shape != t1_true.shape or labels.shape != t1_true.shape:
        raise ValueError(f"t1_est, t1_true and labels must have one shape, got {tuple(t1_est.shape)}, "
                         f"{tuple(t1_true.shape)}, {tuple(labels.shape)}")
    inside = labels > 0
    lo, hi = t1_bounds
    at_bound = (t1_est <= lo * (1 + 1e-6)) | (t1_est >= hi * (1 - 1e-6))
    err = {"nrmse": float((t1_est[inside] - t1_true[inside]).norm() / t1_true[inside].norm()),
           "bound_hits": int((at_bound & inside).sum())}
    if m0 is not None:
        if m0.shape != labels.shape:
            raise ValueError(f"m0 must have shape {tuple(labels.shape)}, got {tuple(m0.shape)}")
        strong = inside & (m0 >= m0_frac * m0[inside].max())
        err["m0_nrmse"] = float((t1_est[strong] - t1_true[strong]).norm() / t1_true[strong].norm())
        err["m0_bound_hits"] = int((at_bound & strong).sum())
        err["m0_voxels"] = int(strong.sum())
    for i, t1_val in enumerate(T1RHO_MS_BY_T2.values(), start=1):
        sel = labels == i
        if bool(sel.any()):
            v = t1_est[sel]
            err[f"tissue{i}"] = {"true": t1_val, "mean": float(v.mean()),
                                 "std": float(v.std()) if v.numel() > 1 else 0.0, "n": int(sel.sum())}
    return err


class T1rhoINR(torch.nn.Module):
    """x_θ(y, x, τ) ∈ ℂ: ``HashMLP`` of (y, x, τ/τ_max) → (Re, Im)."""

    def __init__(self, cfg: T1rhoConfig) -> None:
        super().__init__()
        self.field = HashMLP(3 if cfg.tau_in_hash else 2, 2, extra_dims=0 if cfg.tau_in_hash else 1,
                             n_levels=cfg.n_levels, n_features=cfg.n_features,
                             log2_hashmap_size=cfg.log2_hashmap_size, base_resolution=cfg.base_resolution,
                             finest_resolution=cfg.finest_resolution, hidden=cfg.hidden, depth=cfg.depth)

    def forward(self, tsl_norm: Tensor, h: int, w: int) -> Tensor:
        """Images at the normalized spin-lock times ``tsl_norm`` (K,) in [0, 1] → (K, H, W) complex."""
        grid = pixel_grid(h, w, tsl_norm.device)
        k = tsl_norm.numel()
        pts = torch.cat([grid.repeat(k, 1), tsl_norm.float().repeat_interleave(h * w)[:, None]], dim=1)
        out = self.field(pts)
        return torch.complex(out[:, 0], out[:, 1]).reshape(k, h, w)


def _losses(model: T1rhoINR, data: T1rhoData, cfg: T1rhoConfig, g: Tensor, y_norm: Tensor
            ) -> tuple[Tensor, dict]:
    k, c, h, w = data.kspace.shape
    x = model(data.tsl / data.tsl.max(), h, w).to(data.kspace.dtype)
    full = fft2c(data.smaps[None] * x[:, None])  # (K, C, H, W)
    dc = (data.mask[:, None] * full - data.kspace).abs().pow(2).sum() / y_norm
    terms = {"dc": dc}
    loss = dc
    if cfg.lam_hankel > 0:
        crop = min(cfg.hankel_crop, h, w)
        i0, j0 = (h - crop) // 2, (w - crop) // 2
        block = full[:, :, i0:i0 + crop, j0:j0 + crop].reshape(k * c, crop, crop)
        tail = hankel_lowrank_penalty(block, cfg.hankel_kernel, rank=cfg.hankel_rank)
        hk = tail / (block.abs().pow(2).sum() * cfg.hankel_kernel ** 2)  # trace(G) = kh·kw·‖block‖²
        terms["hankel"] = hk
        loss = loss + cfg.lam_hankel * hk
    if cfg.lam_spirit > 0:
        sc = spirit_residual(full, g).abs().pow(2).sum() / y_norm
        terms["spirit"] = sc
        loss = loss + cfg.lam_spirit * sc
    terms["loss"] = loss
    return loss, terms


def calibrate_from_data(data: T1rhoData, cfg: T1rhoConfig) -> Tensor:
    """SPIRiT kernel from the ACS lines every τ shares (rows sampled in all masks, contiguous at the
    centre), pooled over τ."""
    h = data.kspace.shape[-2]
    always = data.mask.amin(dim=(0, 2)) > 0  # (H,) rows sampled at every τ
    c0 = h // 2
    lo, hi = c0, c0
    while lo - 1 >= 0 and always[lo - 1]:
        lo -= 1
    while hi < h and always[hi]:
        hi += 1
    if len(cfg.spirit_kernel) != 2:
        raise ValueError(f"spirit_kernel must be (ky, kx), got {cfg.spirit_kernel}")
    if hi - lo < cfg.spirit_kernel[0]:
        raise ValueError(f"only {hi - lo} contiguous centre lines are sampled at every TSL; the SPIRiT "
                         f"kernel needs >= spirit_kernel[0]={cfg.spirit_kernel[0]}")
    return calibrate_spirit(data.kspace[:, :, lo:hi, :], tuple(cfg.spirit_kernel))


def fit_t1rho_inr(data: T1rhoData, cfg: T1rhoConfig, *, run: RunDir | None = None, resume: bool = False,
                  stop_after: int | None = None, progress: bool = True) -> tuple[Tensor, list[dict]]:
    """Fit the INR to ``data.kspace``; returns (images (K, H, W), the logged records). With ``run``,
    records go to metrics.jsonl and a checkpoint every ``cfg.checkpoint_every`` iterations;
    ``resume`` continues from it (same curve as an uninterrupted fit); ``stop_after`` ends the loop
    early after that iteration (to simulate an interruption)."""
    torch.manual_seed(cfg.seed)
    model = T1rhoINR(cfg)
    with kernels.nvtx.range("t1rho.calibrate"):
        g = calibrate_from_data(data, cfg) if cfg.lam_spirit > 0 else None
    y_norm = data.kspace.abs().pow(2).sum()
    records = fit_loop(model, lambda: _losses(model, data, cfg, g, y_norm), iters=cfg.iters, lr=cfg.lr,
                       seed=cfg.seed, log_every=cfg.log_every, checkpoint_every=cfg.checkpoint_every,
                       tag="t1rho", run=run, resume=resume, stop_after=stop_after, progress=progress)
    with torch.no_grad():
        k, _, h, w = data.kspace.shape
        images = model(data.tsl / data.tsl.max(), h, w).to(data.kspace.dtype)
    return images, records


def maps_from_images(images: Tensor, tsl: Tensor, cfg: T1rhoConfig) -> tuple[Tensor, Tensor]:
    with kernels.nvtx.range("t1rho.mapfit"):
        return fit_monoexp(images.abs().double(), tsl.double(), iters=cfg.fit_iters, t1_min=T1_MIN_MS,
                           t1_max=T1_MAX_MS)


def run(cfg: T1rhoConfig, out_dir: Path, *, resume: bool = False, overwrite: bool = False,
        progress: bool = True) -> dict:
    """Simulate, fit the INR and the two baselines, fit maps, write runs/<name>/; returns the summary."""
    rd = open_run(cfg, out_dir, resume=resume, overwrite=overwrite)
    with kernels.nvtx.range("t1rho.simulate"):
        data = simulate_t1rho(cfg.size, cfg.coils, cfg.tsl, cfg.accel, center_lines=cfg.center_lines,
                              noise=cfg.noise, seed=cfg.seed)
    t0 = time.perf_counter()
    images, records = fit_t1rho_inr(data, cfg, run=rd, resume=resume, progress=progress)
    t_inr = time.perf_counter() - t0
    with kernels.nvtx.range("t1rho.baselines"):
        zf = zero_filled_images(data.kspace, data.smaps, data.mask)
        lr = lowrank_images(data.kspace, data.smaps, data.mask, rank=cfg.lowrank_rank,
                            iters=cfg.lowrank_iters)
    summary = {"inr_time_s": t_inr}
    maps = {}
    for name, imgs in (("zero-filled", zf), ("low-rank", lr), ("inr", images)):
        _, t1 = maps_from_images(imgs, data.tsl, cfg)
        maps[name] = t1.float()
        summary[name] = map_errors(t1.float(), data.t1rho, data.labels, data.m0)
        summary[name]["image_nrmse"] = float((imgs - data.images).norm() / data.images.norm())
    inside = data.labels > 0
    panels = [("true T1rho (ms)", data.t1rho)]
    per = {"true T1rho (ms)": ("viridis", 0.0, 120.0)}
    for name, t1 in maps.items():
        panels.append((f"{name} T1rho", torch.where(inside, t1, 0)))
        per[f"{name} T1rho"] = ("viridis", 0.0, 120.0)
    panels.append(("|TSL0| truth", data.images[0].abs()))
    for name, t1 in maps.items():
        panels.append((f"{name} |err|", torch.where(inside, (t1 - data.t1rho).abs(), 0)))
        per[f"{name} |err|"] = ("magma", 0.0, 40.0)
    save_image_grid(rd.path / "maps.png", panels, ncols=4, per_panel=per)
    plot_curves(rd.path / "loss.png", {k: [(r["iter"], r[k]) for r in records if k in r]
                                       for k in ("loss", "dc", "hankel", "spirit")},
                xlabel="iteration", ylabel="loss term", title=cfg.name, logy=True)
    import json

    (rd.path / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, T1rhoConfig, PRESETS)


def main(args: argparse.Namespace) -> int:
    cfg = config_from_args(args, T1rhoConfig, PRESETS)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    summary = run(cfg, Path(args.out) / cfg.name, resume=args.resume, overwrite=args.overwrite)
    for name in ("zero-filled", "low-rank", "inr"):
        s = summary[name]
        print(f"{name:12s} T1rho nRMSE {s['nrmse']:.4f} (M0 >= {M0_FRAC:g}·max: {s['m0_nrmse']:.4f}, "
              f"bound hits {s['bound_hits']})  "
              f"image nRMSE {s['image_nrmse']:.4f}")
    return 0
