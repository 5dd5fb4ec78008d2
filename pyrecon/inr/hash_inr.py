"""Plain hash-grid INR of (x, y, t) for dynamic MRI — the AMRI-Lab/INR_for_DynamicMRI baseline
(Feng et al.), on Cartesian k-t or golden-angle radial sampling (``spokes`` > 0: that many spokes per
frame, readout 2·size, through the NUFFT SENSE operator of pyrecon.ops.noncart).

Model. x_θ(y, x, t) ∈ ℂ = MLP(HashGridEncoding(y, x, t/(T−1))) → (Re, Im), evaluated on the pixel
grid of every frame → X (T, H, W). The AMRI setting (preset "amri"): 16 levels × 2 features, table
2^24, base resolution 16, per-level scale 2, MLP 128 wide × 5 layers, lr 1e-3, TV 0.02, low rank 2e-4.

Loss (the data are scaled once so that the zero-filled image has peak magnitude 1; the output is
scaled back):

    L(θ) = ‖E X − y‖² / ‖y‖²   (data consistency; E = M ⊙ F S Cartesian, or the radial NUFFT SENSE)
         + λ_TV · mean_{t,h,w} |X_{t+1} − X_t|             (temporal total variation)
         + λ_LR · ‖C(X)‖_* / sqrt(T·H·W)     (nuclear norm of the Casorati matrix C(X), T × HW)

The zero-filled reference (and the scale) is Eᴴ y, density-compensated (Pipe–Menon) for radial data.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

import kernels.nvtx
from kernels.runs import RunDir, plot_curves
from pyrecon.inr._common import HashMLP, add_config_arguments, config_from_args, fit_loop, pixel_grid
from pyrecon.ops.noncart import nufft_density_weights, nufft_sense_adjoint, nufft_sense_forward
from pyrecon.ops.sense import sense_adjoint, sense_forward

__all__ = ["PRESETS", "DynamicData", "DynamicScanConfig", "HashINR", "HashINRConfig", "add_arguments",
           "fit_hash_inr", "hash_inr_losses", "main", "simulate_dynamic"]


@dataclass
class DynamicScanConfig:
    """The simulated dynamic scan both dynamic INR methods fit (``simulate_dynamic``)."""

    frames: int = 16
    size: int = 64
    coils: int = 4
    accel: int = 8
    center_lines: int = 4
    spokes: int = 0  # > 0: golden-angle radial with this many spokes per frame (then accel is unused)
    noise: float = 0.0
    seed: int = 0


@dataclass
class HashINRConfig(DynamicScanConfig):
    name: str = "hash-inr"
    n_levels: int = 8
    n_features: int = 2
    log2_hashmap_size: int = 16
    base_resolution: int = 4
    finest_resolution: int = 64
    hidden: int = 64
    depth: int = 3
    iters: int = 300
    lr: float = 1e-2
    tv_weight: float = 0.02
    lowrank_weight: float = 2e-4
    log_every: int = 10
    checkpoint_every: int = 100


PRESETS = {
    "tiny": {"frames": 8, "size": 32, "coils": 2, "accel": 4, "iters": 150, "log2_hashmap_size": 12,
             "finest_resolution": 32, "hidden": 32, "checkpoint_every": 50},
    "amri": {"n_levels": 16, "n_features": 2, "log2_hashmap_size": 24, "base_resolution": 16,
             "finest_resolution": 16 * 2**15, "hidden": 128, "depth": 5, "lr": 1e-3, "iters": 1600},
}


@dataclass
class DynamicData:
    images: Tensor  # (T, H, W) complex truth
    smaps: Tensor  # (C, H, W)
    mask: Tensor | None  # (T, H, W) Cartesian, None for radial
    kspace: Tensor  # (T, C, H, W) Cartesian, (T, C, M) radial
    traj: Tensor | None = None  # (T, M, 2) radians, radial only

    def forward(self, x: Tensor) -> Tensor:
        """E x for images x (T, H, W) → k-space shaped like ``kspace``."""
        if self.traj is None:
            return sense_forward(x[None], self.smaps[None], self.mask)[0]
        return nufft_sense_forward(x[None], self.smaps[None], self.traj, tol=1e-4)[0]

    def zero_filled(self) -> Tensor:
        """Eᴴ y (radial: density-compensated) → (T, H, W)."""
        if self.traj is None:
            return sense_adjoint(self.kspace[None], self.smaps[None], self.mask)[0]
        w = nufft_density_weights(self.traj, tuple(self.smaps.shape[-2:]))
        return nufft_sense_adjoint(self.kspace[None], self.smaps[None], self.traj, weights=w, tol=1e-4)[0]


def simulate_dynamic(frames: int, size: int, coils: int, accel: int, *, center_lines: int = 4,
                     noise: float = 0.0, seed: int = 0, spokes: int = 0,
                     dtype: torch.dtype = torch.complex64) -> DynamicData:
    """Cine phantom (pyrecon.data.phantoms), coil maps, then either a Cartesian k-t mask at ``accel``
    (``spokes`` = 0) or golden-angle radial spokes (readout 2·size); complex noise of std ``noise``
    on every measured sample."""
    from pyrecon.data.phantoms import cine_phantom, coil_maps
    from pyrecon.sampling import kt_mask, radial_trajectory

    if noise < 0:
        raise ValueError(f"noise must be >= 0, got {noise}")
    if spokes < 0:
        raise ValueError(f"spokes must be >= 0 (0: Cartesian), got {spokes}")
    x, _ = cine_phantom(frames, size, size, seed=seed, dtype=dtype)
    smaps = coil_maps(coils, size, size, seed=seed, dtype=dtype)
    if spokes:
        mask, traj = None, radial_trajectory(spokes, 2 * size, frames).to(torch.float32)
    else:
        mask = kt_mask(frames, size, size, accel, center_lines=center_lines, seed=seed).to(torch.float32)
        traj = None
    data = DynamicData(x, smaps, mask, x.new_zeros(0), traj)
    y = data.forward(x)
    if noise > 0:
        g = torch.Generator().manual_seed(seed + 1)
        n = torch.complex(torch.randn(y.shape, generator=g), torch.randn(y.shape, generator=g))
        n = (noise / 2**0.5) * n.to(dtype)
        y = y + (n if mask is None else mask[:, None] * n)
    data.kspace = y
    return data


class HashINR(torch.nn.Module):
    """x_θ(y, x, t) ∈ ℂ on the (T, H, W) grid: ``HashMLP`` of (y, x, t/(T−1)) → (Re, Im)."""

    def __init__(self, cfg: HashINRConfig) -> None:
        super().__init__()
        self.field = HashMLP(3, 2, n_levels=cfg.n_levels, n_features=cfg.n_features,
                             log2_hashmap_size=cfg.log2_hashmap_size, base_resolution=cfg.base_resolution,
                             finest_resolution=cfg.finest_resolution, hidden=cfg.hidden, depth=cfg.depth)

    def forward(self, frames: int, h: int, w: int) -> Tensor:
        grid = pixel_grid(h, w, self.field.encoding.table.device)
        t = torch.arange(frames, device=grid.device, dtype=torch.float32) / max(frames - 1, 1)
        pts = torch.cat([grid.repeat(frames, 1), t.repeat_interleave(h * w)[:, None]], dim=1)
        out = self.field(pts)
        return torch.complex(out[:, 0], out[:, 1]).reshape(frames, h, w)


def hash_inr_losses(x: Tensor, y: Tensor, forward, *, tv_weight: float, lowrank_weight: float
                    ) -> tuple[Tensor, dict]:
    """The loss of the module docstring for images x (T, H, W), measured k-space y and the
    measurement operator ``forward`` (x ↦ E x, shaped like y)."""
    dc = (forward(x) - y).abs().pow(2).sum() / y.abs().pow(2).sum()
    terms = {"dc": dc}
    loss = dc
    if tv_weight > 0:
        tv = (x[1:] - x[:-1]).abs().mean()
        terms["tv"] = tv
        loss = loss + tv_weight * tv
    if lowrank_weight > 0:
        lr = torch.linalg.svdvals(x.reshape(x.size(0), -1)).sum() / x.numel() ** 0.5
        terms["lowrank"] = lr
        loss = loss + lowrank_weight * lr
    terms["loss"] = loss
    return loss, terms


def fit_hash_inr(data: DynamicData, cfg: HashINRConfig, *, run: RunDir | None = None, resume: bool = False,
                 stop_after: int | None = None, progress: bool = True) -> tuple[Tensor, list[dict]]:
    """Fit the INR to ``data.kspace``; returns (images (T, H, W) at the data's scale, records)."""
    t, (h, w) = data.images.shape[0], data.smaps.shape[-2:]
    zf = data.zero_filled()
    scale = zf.abs().max().clamp_min(1e-12)
    y = data.kspace / scale
    torch.manual_seed(cfg.seed)
    model = HashINR(cfg)

    def loss_fn():
        x = model(t, h, w).to(y.dtype)
        return hash_inr_losses(x, y, data.forward, tv_weight=cfg.tv_weight,
                               lowrank_weight=cfg.lowrank_weight)

    records = fit_loop(model, loss_fn, iters=cfg.iters, lr=cfg.lr, seed=cfg.seed, log_every=cfg.log_every,
                       checkpoint_every=cfg.checkpoint_every, tag="hash_inr", run=run, resume=resume,
                       stop_after=stop_after, progress=progress)
    with torch.no_grad():
        images = model(t, h, w).to(y.dtype) * scale
    return images, records


def run(cfg: HashINRConfig, out_dir: Path, *, resume: bool = False, overwrite: bool = False,
        progress: bool = True) -> dict:
    return run_dynamic(cfg, out_dir, fit_hash_inr, label="hash INR",
                       loss_keys=("loss", "dc", "tv", "lowrank"), resume=resume, overwrite=overwrite,
                       progress=progress)


def run_dynamic(cfg, out_dir: Path, fit, *, label: str, loss_keys: tuple[str, ...], resume: bool = False,
                overwrite: bool = False, progress: bool = True) -> dict:
    """One dynamic-MRI INR fit as a run (hash INR, TenF-INR): simulate from ``cfg``, ``fit(data, cfg, run=,
    resume=, progress=) -> (images, records)``, then recon.png (truth / zero-filled / recon / error of the
    middle frame), loss.png and summary.json (time, image nRMSE, zero-filled nRMSE) in ``out_dir``."""
    from pyrecon.inr._common import open_run, save_image_grid

    rd = open_run(cfg, out_dir, resume=resume, overwrite=overwrite)
    with kernels.nvtx.range(f"{label}.simulate"):
        data = simulate_dynamic(cfg.frames, cfg.size, cfg.coils, cfg.accel, center_lines=cfg.center_lines,
                                noise=cfg.noise, seed=cfg.seed, spokes=cfg.spokes)
    t0 = time.perf_counter()
    images, records = fit(data, cfg, run=rd, resume=resume, progress=progress)
    elapsed = time.perf_counter() - t0
    zf = data.zero_filled()
    summary = {"time_s": elapsed,
               "nrmse": float((images - data.images).norm() / data.images.norm()),
               "zero_filled_nrmse": float((zf - data.images).norm() / data.images.norm())}
    mid = cfg.frames // 2
    save_image_grid(rd.path / "recon.png", [("truth", data.images[mid].abs()), ("zero-filled", zf[mid].abs()),
                                            (label, images[mid].abs()),
                                            ("|error| x5", 5 * (images[mid] - data.images[mid]).abs())],
                    ncols=4, vmin=0.0, vmax=1.0)
    plot_curves(rd.path / "loss.png", {k: [(r["iter"], r[k]) for r in records if k in r] for k in loss_keys},
                xlabel="iteration", ylabel="loss term", title=cfg.name, logy=True)
    (rd.path / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    return summary


def main_dynamic(args: argparse.Namespace, config_cls, presets, run_fn, tag: str) -> int:
    """The CLI body shared by the dynamic INR methods."""
    cfg = config_from_args(args, config_cls, presets)
    if getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    s = run_fn(cfg, Path(args.out) / cfg.name, resume=args.resume, overwrite=args.overwrite)
    print(f"{tag} nRMSE {s['nrmse']:.4f} (zero-filled {s['zero_filled_nrmse']:.4f}) in {s['time_s']:.1f}s")
    return 0


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, HashINRConfig, PRESETS)


def main(args: argparse.Namespace) -> int:
    return main_dynamic(args, HashINRConfig, PRESETS, run, "hash-inr")
