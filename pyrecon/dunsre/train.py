"""``python -m pyrecon train --model dun-sre`` (or ``--model plain-unrolled``, the non-equivariant twin):
train DUN-SRE on the cine phantom family and validate on held-out phantoms.

Data: a training family of ``n_train`` phantoms (``pyrecon.data.phantoms.cine_phantom`` with random
parameters from seeds ``data_seed·10⁶ + i``) with smooth coil maps; every training step draws a fresh
k-t mask (``kt_mask`` at ``accel``, seed from the run's generator), so masks are random too. The
validation set is ``n_val`` phantoms from a disjoint seed range (held-out parameters) with fixed masks.
y = M·F·S x (+ complex Gaussian noise of std ``noise_std`` on the sampled entries).

Training: L = mean_{b,t,h,w} |x̂ − x|² (complex MSE), Adam at lr_e = lr · lr_decay^e in epoch e
(lr 1e-3, ×0.95 per epoch, batch 1: the paper's settings). A run writes ``runs/<name>/``: config.json,
metrics.jsonl (one line per epoch: train loss, validation PSNR/SSIM/NMSE and the zero-filled PSNR),
checkpoint.safetensors every ``checkpoint_every`` epochs (atomic; ``--resume`` continues on an
identical curve), curves.png and val_frame.png (reference / zero-filled / DUN-SRE / error of one
validation frame, and x–t profiles).

Real data (``data_dir``, e.g. ``--data-dir ~/ocmr``): the fully sampled scans among the ``*.h5`` /
``*.mat`` files of the directory (ISMRMRD via :func:`pyrecon.data.ocmr.load_ocmr`, slice 0, averages
averaged; otherwise (frames, coils, ky, kx) HDF5 via :func:`pyrecon.data.loaders.load_kspace_h5`;
prospectively undersampled scans are skipped) are split at file level by ``data_seed``: a random
permutation, the first ``n_val`` files validate, the next ``n_train`` (at most) train. Each scan is
brought to the config's shape — frames: ``frames`` evenly spaced cardiac phases (index ⌊i·T/frames⌋);
size: the centred ``size`` × ``size`` block of k-space (a low-resolution image of the whole field of
view; zero-padded where the scan is smaller); coils: compressed to ``coils`` virtual coils (SVD of the
coils × samples matrix) — coil maps S are estimated from the full data
(:func:`~pyrecon.data.loaders.estimate_coil_maps`, centre width min(24, size // 2)), the reference is
the coil-combined full data x = Σ_c conj(S_c) Fᴴ k_c, and k and x are divided by max |x| (per scan).
Training and validation undersample the measured k-space retrospectively, y = M·k (+ noise), with
the same k-t masks as for the phantom. The split is written to ``data_split.json``.
"""

from __future__ import annotations

import argparse
import dataclasses
import functools
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

import kernels.nvtx
from kernels.runs import (
    RunDir,
    atomic_write,
    capture_rng,
    load_optimizer_state,
    optimizer_state,
    plot_curves,
    restore_rng,
)
from pyrecon.dunsre.model import DUNSRE, DUNSREConfig
from pyrecon.figures import save_recon_figure

__all__ = [
    "PRESETS",
    "TrainConfig",
    "add_arguments",
    "build_model",
    "evaluate",
    "load_scan",
    "lr_at",
    "main",
    "make_family",
    "mse_loss",
    "prepare_scan",
    "real_data_split",
    "run",
    "sample_mask",
    "simulate",
    "train_step",
]

_MODEL_FIELDS = {f.name for f in dataclasses.fields(DUNSREConfig)}
HELD_OUT_SEED = 500_000  # validation phantoms' seeds start here, training seeds below


@dataclass
class TrainConfig:
    """Defaults: a few minutes on a laptop CPU (32², 8 frames, 4 coils, a 3-stage net of 4 fields)."""

    name: str = "dun-sre"
    # model (see DUNSREConfig)
    stages: int = 3
    features: int = 4
    group: int = 4
    kernel_size: int = 3
    temporal_kernel_size: int = 3
    hidden_layers: int = 2
    dc_hidden_layers: int = 1
    basis: str = "bconv"
    dc: str = "learned"
    dc_features: int = 4
    dc_gradient_skip: bool = True
    cg_iters: int = 5
    equivariant: bool = True
    time_symmetric: bool = False
    # data
    frames: int = 8
    size: int = 32
    coils: int = 4
    accel: int = 8
    mask: str = "kt"  # "kt" (pyrecon.sampling.kt_mask) or "vista" (vista_mask, e.g. at R = 16, 20)
    center_lines: int = 4
    noise_std: float = 0.0
    n_train: int = 8
    n_val: int = 2
    data_seed: int = 0
    data_dir: str = ""  # "" = the phantom family; else a directory of real scans (module docstring)
    # optimisation
    epochs: int = 3
    batch_size: int = 1
    lr: float = 1e-3
    lr_decay: float = 0.95
    seed: int = 0
    checkpoint_every: int = 1
    device: str = "cpu"

    def __post_init__(self):
        for k in ("frames", "size", "coils", "n_train", "n_val", "epochs", "batch_size", "checkpoint_every"):
            v = getattr(self, k)
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise ValueError(f"{k} must be an int >= 1, got {v!r}")
        if self.accel < 1:
            raise ValueError(f"accel must be >= 1, got {self.accel}")
        if not (self.lr > 0 and 0 < self.lr_decay <= 1):
            raise ValueError(f"need lr > 0 and 0 < lr_decay <= 1, got {self.lr}, {self.lr_decay}")
        if self.mask not in ("kt", "vista"):
            raise ValueError(f"mask must be 'kt' or 'vista', got {self.mask!r}")
        if self.noise_std < 0:
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std}")
        if not isinstance(self.data_dir, str):
            raise TypeError(f"data_dir must be a str ('' = phantom), got {type(self.data_dir).__name__}")
        self.model_config()  # validates the model fields

    def model_config(self) -> DUNSREConfig:
        return DUNSREConfig(**{k: getattr(self, k) for k in _MODEL_FIELDS})


# Paper scale (OCMR-like sizes; far beyond a CPU): 10 stages of 32 fields × 4 rotations, DC nets of 12.
PRESETS: dict[str, dict] = {
    "paper": dict(stages=10, features=32, dc_features=12, frames=16, size=96, coils=8, n_train=200,
                  n_val=10, epochs=50, center_lines=8),
}


def lr_at(cfg: TrainConfig, epoch: int) -> float:
    """lr_e = lr · lr_decay^e for the 0-based epoch e (a function of e alone: resume needs no state)."""
    return cfg.lr * cfg.lr_decay**epoch


def mse_loss(rec: Tensor, ref: Tensor) -> Tensor:
    """L = mean |rec − ref|² over every entry (complex: the mean of (ΔRe)² + (ΔIm)²)."""
    if rec.shape != ref.shape:
        raise ValueError(
            f"rec and ref must have the same shape, got {tuple(rec.shape)} and {tuple(ref.shape)}"
        )
    d = rec - ref
    return (d.real.square() + d.imag.square()).mean() if d.is_complex() else d.square().mean()


def make_family(cfg: TrainConfig, split: str) -> list[tuple[Tensor, ...]]:
    """[(x (T, H, W), smaps (C, H, W)), ...]: ``n_train`` training or ``n_val`` held-out phantoms;
    with ``cfg.data_dir`` [(x, smaps, k (T, C, H, W)), ...] from the real scans of that split."""
    from pyrecon.data.phantoms import cine_phantom, coil_maps

    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    if cfg.data_dir:
        files = real_data_split(cfg)[split]
        return [prepare_scan(load_scan(p)[0], cfg) for p in files]
    n, base = (cfg.n_train, 0) if split == "train" else (cfg.n_val, HELD_OUT_SEED)
    out = []
    for i in range(n):
        seed = cfg.data_seed * 1_000_000 + base + i
        x, _ = cine_phantom(cfg.frames, cfg.size, cfg.size, seed=seed)
        out.append((x, coil_maps(cfg.coils, cfg.size, cfg.size, seed=seed)))
    return out


def _fully_sampled(sampled: Tensor) -> bool:
    """Every frame samples the same ky rows and they form one block (full or partial Fourier)."""
    rows = sampled.any(0)
    filled = torch.nonzero(rows).flatten()
    contiguous = filled.numel() > 0 and int(filled[-1] - filled[0]) + 1 == filled.numel()
    return bool(contiguous and (sampled == rows[None]).all())


def load_scan(path: str | Path) -> tuple[Tensor, bool]:
    """(k-space (frames, coils, ky, kx), fully sampled?) of one ISMRMRD (OCMR) or plain HDF5 file."""
    import h5py

    from pyrecon.data.loaders import load_kspace_h5
    from pyrecon.data.ocmr import load_ocmr

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"scan not found: {str(path)!r}")
    with h5py.File(path, "r") as f:
        ismrmrd = isinstance(f.get("dataset"), h5py.Group) and "data" in f["dataset"]
    if ismrmrd:
        k, info = load_ocmr(path)
        return k, info["fully_sampled"]
    k = load_kspace_h5(path)
    return k, _fully_sampled((k != 0).any(dim=(1, 3)))


@functools.lru_cache(maxsize=4096)
def _scan_is_fully_sampled(path: str, mtime_ns: int, size: int) -> bool:
    """load_scan(path)[1], remembered per file version (a run asks for the split three times)."""
    return load_scan(path)[1]


def real_data_split(cfg: TrainConfig) -> dict[str, list[Path]]:
    """The file-level split of ``cfg.data_dir`` (module docstring): {"train", "val", "skipped"}."""
    root = Path(cfg.data_dir).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"data_dir not found: {str(root)!r}")
    files = sorted(p for p in root.iterdir() if p.suffix in (".h5", ".mat") and p.is_file())
    full, skipped = [], []
    for p in files:
        st = p.stat()
        (full if _scan_is_fully_sampled(str(p), st.st_mtime_ns, st.st_size) else skipped).append(p)
    if len(full) < cfg.n_val + 1:
        raise ValueError(
            f"data_dir {str(root)!r} has {len(full)} fully sampled scans; need n_val + 1 = {cfg.n_val + 1}"
        )
    perm = torch.randperm(len(full), generator=torch.Generator().manual_seed(cfg.data_seed)).tolist()
    val = [full[i] for i in perm[: cfg.n_val]]
    train = [full[i] for i in perm[cfg.n_val :][: cfg.n_train]]
    return {"train": train, "val": val, "skipped": skipped}


def _center_block(k: Tensor, n: int, dim: int) -> Tensor:
    """The centred n entries of k along dim (the centre index m // 2 maps to n // 2), zero-padded."""
    m = k.shape[dim]
    if m >= n:
        return k.narrow(dim, m // 2 - n // 2, n)
    shape = list(k.shape)
    shape[dim] = n
    out = k.new_zeros(shape)
    out.narrow(dim, n // 2 - m // 2, m).copy_(k)
    return out


def prepare_scan(k: Tensor, cfg: TrainConfig) -> tuple[Tensor, Tensor, Tensor]:
    """(x (T, H, W), smaps (C, H, W), k (T, C, H, W)) of one fully sampled scan (frames, coils, ky, kx)
    at the config's frames / size / coils, normalised so that max |x| = 1 (module docstring)."""
    from pyrecon.data.loaders import estimate_coil_maps
    from pyrecon.ops.sense import sense_adjoint

    if not (isinstance(k, Tensor) and k.is_complex() and k.dim() == 4):
        raise ValueError(f"k must be complex (frames, coils, ky, kx), got {getattr(k, 'shape', type(k))}")
    t, c = k.shape[:2]
    if t < cfg.frames or c < cfg.coils:
        raise ValueError(
            f"a scan of {t} frames and {c} coils cannot give frames={cfg.frames}, coils={cfg.coils}"
        )
    k = k[torch.arange(cfg.frames) * t // cfg.frames].to(torch.complex64)
    k = _center_block(_center_block(k, cfg.size, -2), cfg.size, -1)
    if c > cfg.coils:  # SVD coil compression: the leading left singular vectors of (coils, samples)
        a = k.transpose(0, 1).reshape(c, -1)
        u = torch.linalg.svd(a @ a.conj().T)[0][:, : cfg.coils]
        k = torch.einsum("cv,tchw->tvhw", u.conj(), k)
    smaps = estimate_coil_maps(k[None], center_lines=max(2, min(24, cfg.size // 2)))[0]
    x = sense_adjoint(k[None], smaps[None], torch.ones(1))[0]
    scale = x.abs().max().clamp_min(torch.finfo(torch.float32).tiny)
    return x / scale, smaps, k / scale


def simulate(x: Tensor, smaps: Tensor, mask: Tensor, noise_std: float = 0.0,
             generator: torch.Generator | None = None) -> Tensor:
    """y = M·F·S x (+ M·n, n complex Gaussian with E|n|² = noise_std²) for batched x (B, T, H, W)."""
    from pyrecon.ops.sense import sense_forward

    y = sense_forward(x, smaps, mask)
    if noise_std > 0:
        n = torch.randn(y.shape, dtype=y.dtype, generator=generator).to(y.device)
        y = y + noise_std * _apply_mask(n, mask)
    return y


def _apply_mask(k: Tensor, mask: Tensor) -> Tensor:
    m = mask.to(k.real.dtype)
    while m.dim() < 4:
        m = m[None]
    return k * m[:, :, None]


def sample_mask(cfg: TrainConfig, seed: int) -> Tensor:
    """The (T, H, W) k-t mask of the run's size, acceleration and centre lines, drawn from ``seed``."""
    from pyrecon import sampling

    if cfg.mask == "vista":
        return sampling.vista_mask(cfg.frames, cfg.size, cfg.size, cfg.accel, seed=seed)
    t, n = cfg.frames, cfg.size
    return sampling.kt_mask(t, n, n, cfg.accel, center_lines=cfg.center_lines, seed=seed)


def build_model(cfg: TrainConfig) -> DUNSRE:
    return DUNSRE(cfg.model_config()).to(cfg.device)


def train_step(model: DUNSRE, opt: torch.optim.Optimizer, x: Tensor, smaps: Tensor, mask: Tensor,
               y: Tensor) -> float:
    """One Adam step on mse_loss(model(y, smaps, mask), x); returns the loss before the step."""
    model.train()
    with kernels.nvtx.range("dunsre.step"):
        loss = mse_loss(model(y, smaps, mask), x)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
    return float(loss.detach())


def _batch(items, cfg: TrainConfig, masks: list[Tensor], gen: torch.Generator | None):
    dev = cfg.device
    x = torch.stack([it[0] for it in items]).to(dev)
    smaps = torch.stack([it[1] for it in items]).to(dev)
    mask = torch.stack(masks).to(dev)
    if len(items[0]) == 3:  # real data: retrospective undersampling of the measured k-space
        y = _apply_mask(torch.stack([it[2] for it in items]).to(dev), mask)
        if cfg.noise_std > 0:
            n = torch.randn(y.shape, dtype=y.dtype, generator=gen).to(dev)
            y = y + cfg.noise_std * _apply_mask(n, mask)
        return x, smaps, mask, y
    return x, smaps, mask, simulate(x, smaps, mask, cfg.noise_std, gen)


@torch.no_grad()
def evaluate(model: DUNSRE, val: list[tuple[Tensor, ...]], cfg: TrainConfig,
             return_images: bool = False) -> dict:
    """Mean over the validation phantoms of PSNR (magnitude; and ``psnr_complex``, the authors'
    convention), SSIM, NMSE of the net and the PSNR of
    zero-filled Eᴴy; with ``return_images`` also ``_images`` (ref, zero-filled, recon) of the first."""
    from pyrecon.metrics import nmse, psnr, ssim
    from pyrecon.ops.sense import sense_adjoint

    model.eval()
    sums: dict[str, float] = {}
    images = None
    gen = torch.Generator().manual_seed(cfg.data_seed + 1)  # fixed validation noise
    for j, item in enumerate(val):
        x, smaps, mask, y = _batch([item], cfg, [sample_mask(cfg, HELD_OUT_SEED + j)], gen)
        rec = model(y, smaps, mask)
        zf = sense_adjoint(y, smaps, mask)
        vals = {
            "psnr": psnr(x[0], rec[0]),
            "psnr_complex": psnr(x[0], rec[0], mode="complex"),  # the authors' convention
            "ssim": ssim(x[0], rec[0]),
            "nmse": nmse(x[0], rec[0]),
            "zf_psnr": psnr(x[0], zf[0]),
        }
        for k, v in vals.items():
            sums[k] = sums.get(k, 0.0) + float(v)
        if images is None:
            images = (x[0].cpu(), zf[0].cpu(), rec[0].cpu())
    out = {k: v / len(val) for k, v in sums.items()}
    if return_images:
        out["_images"] = images
    return out


def run(cfg: TrainConfig, out_dir: str | Path, *, resume: bool = False, overwrite: bool = False,
        progress: bool = True, stop_after: int | None = None) -> tuple[DUNSRE, dict]:
    """Train with a run directory (module docstring); returns the model and the last validation
    metrics. ``stop_after`` ends the run after that many epochs of this call (as an interrupt would:
    the checkpoint of the last completed multiple of ``checkpoint_every`` is what a resume sees)."""
    from tqdm.auto import tqdm

    rd = RunDir(out_dir, resume=resume, overwrite=overwrite)
    train, val = make_family(cfg, "train"), make_family(cfg, "val")
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=cfg.lr)
    start = 0
    if resume and rd.has_checkpoint():
        state = rd.load_checkpoint(cfg.device, config=cfg)
        model.load_state_dict(state["model"])
        load_optimizer_state(opt, state["optimizer"])
        restore_rng(state["rng"], {"data": gen})
        start = state["epoch"]
        rd.truncate_metrics("epoch", start)
    else:
        rd.write_config(cfg)
    if cfg.data_dir:
        split = {k: [p.name for p in v] for k, v in real_data_split(cfg).items()}
        atomic_write(rd.path / "data_split.json", (json.dumps(split, indent=2) + "\n").encode())
    n_train = len(train)
    res: dict = {}
    end = cfg.epochs if stop_after is None else min(cfg.epochs, start + stop_after)
    steps = -(-n_train // cfg.batch_size)
    bar = tqdm(total=(end - start) * steps, desc=cfg.name, disable=not progress)
    for epoch in range(start, end):
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = lr_at(cfg, epoch)
        losses = []
        with kernels.nvtx.range(f"dunsre.epoch{epoch}"):
            perm = torch.randperm(n_train, generator=gen).tolist()
            for s in range(0, n_train, cfg.batch_size):
                idx = perm[s : s + cfg.batch_size]
                seeds = torch.randint(0, 2**31 - 1, (len(idx),), generator=gen).tolist()
                masks = [sample_mask(cfg, sd) for sd in seeds]
                x, smaps, mask, y = _batch([train[i] for i in idx], cfg, masks, gen)
                losses.append(train_step(model, opt, x, smaps, mask, y))
                bar.update(1)
                bar.set_postfix(loss=f"{losses[-1]:.2e}")
        with kernels.nvtx.range("dunsre.validate"):
            res = evaluate(model, val, cfg)
        rd.log({"epoch": epoch + 1, "lr": lr_at(cfg, epoch), "train_loss": sum(losses) / len(losses),
                **{f"val_{k}": v for k, v in res.items()}, "seconds": time.perf_counter() - t0})
        if (epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == cfg.epochs:
            rd.save_checkpoint({"config": dataclasses.asdict(cfg), "epoch": epoch + 1,
                                "model": model.state_dict(), "optimizer": optimizer_state(opt),
                                "rng": capture_rng({"data": gen})})
    bar.close()
    res = evaluate(model, val, cfg, return_images=True)
    ref, zf, rec = res.pop("_images")
    ms = rd.metrics()
    plot_curves(rd.path / "curves.png",
                {"validation PSNR (dB)": [(r["epoch"], r["val_psnr"]) for r in ms],
                 "zero-filled PSNR (dB)": [(r["epoch"], r["val_zf_psnr"]) for r in ms]},
                xlabel="epoch", ylabel="dB", title=f"{cfg.name}: R = {cfg.accel}")
    what = "scan" if cfg.data_dir else "phantom"
    save_recon_figure(rd.path / "val_frame.png", ref, {"zero-filled": zf, cfg.name: rec},
                      frame=cfg.frames // 2, title=f"{cfg.name}, R = {cfg.accel}, validation {what} 0")
    atomic_write(rd.path / "results.json", (json.dumps(res, indent=2) + "\n").encode())
    return model, res


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One flag per TrainConfig field (``--no-<field>`` for True booleans), ``--preset``, ``--resume``,
    ``--overwrite``, ``--runs-dir``."""
    parser.add_argument("--preset", choices=sorted(PRESETS), default=None,
                        help="starting configuration; the options below override it")
    defaults = TrainConfig()
    for f in dataclasses.fields(TrainConfig):
        default = getattr(defaults, f.name)
        flag, dest = "--" + f.name.replace("_", "-"), f"cfg_{f.name}"
        if isinstance(default, bool):
            if default:
                parser.add_argument("--no-" + flag[2:], dest=dest, action="store_false", default=None)
            else:
                parser.add_argument(flag, dest=dest, action="store_true", default=None)
        elif f.name == "accel" and any(a.dest == "accel" for a in parser._actions):
            continue
        else:
            parser.add_argument(flag, dest=dest, type=type(default), default=None,
                                metavar=f.name.upper(), help=f"default: {default}")
    parser.add_argument("--resume", action="store_true", help="continue runs/<name>/ from its checkpoint")
    parser.add_argument("--overwrite", action="store_true", help="start runs/<name>/ over")
    parser.add_argument("--runs-dir", "--out", dest="out", default="runs", help="parent of runs/<name>/")


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    """The preset (or defaults) with every given flag on top; ``--model plain-unrolled`` (or
    ``--no-equivariant``) selects the twin and names its run after it unless --name is given."""
    base = dict(PRESETS[args.preset]) if getattr(args, "preset", None) else {}
    for f in dataclasses.fields(TrainConfig):
        v = getattr(args, f"cfg_{f.name}", None)
        if v is not None:
            base[f.name] = v
    if getattr(args, "accel", None) is not None and "accel" not in base:
        base["accel"] = args.accel
    if getattr(args, "model", None) == "plain-unrolled":
        base["equivariant"] = False
        base.setdefault("name", "plain-unrolled")
    return TrainConfig(**base)


def main(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    _, res = run(cfg, Path(args.out) / cfg.name, resume=args.resume, overwrite=args.overwrite)
    print(json.dumps(res, indent=2))
    return 0
