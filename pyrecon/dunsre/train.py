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
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

import kernels.nvtx
from kernels.runs import RunDir, atomic_write, capture_rng, plot_curves, restore_rng
from pyrecon.dunsre.model import DUNSRE, DUNSREConfig
from pyrecon.figures import save_recon_figure

__all__ = [
    "PRESETS",
    "TrainConfig",
    "add_arguments",
    "build_model",
    "evaluate",
    "lr_at",
    "main",
    "make_family",
    "mse_loss",
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


def make_family(cfg: TrainConfig, split: str) -> list[tuple[Tensor, Tensor]]:
    """[(x (T, H, W), smaps (C, H, W)), ...]: ``n_train`` training or ``n_val`` held-out phantoms."""
    from pyrecon.data.phantoms import cine_phantom, coil_maps

    if split not in ("train", "val"):
        raise ValueError(f"split must be 'train' or 'val', got {split!r}")
    n, base = (cfg.n_train, 0) if split == "train" else (cfg.n_val, HELD_OUT_SEED)
    out = []
    for i in range(n):
        seed = cfg.data_seed * 1_000_000 + base + i
        x, _ = cine_phantom(cfg.frames, cfg.size, cfg.size, seed=seed)
        out.append((x, coil_maps(cfg.coils, cfg.size, cfg.size, seed=seed)))
    return out


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
    return x, smaps, mask, simulate(x, smaps, mask, cfg.noise_std, gen)


@torch.no_grad()
def evaluate(model: DUNSRE, val: list[tuple[Tensor, Tensor]], cfg: TrainConfig,
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


def _opt_state(opt: torch.optim.Optimizer) -> dict:
    sd = opt.state_dict()
    return {"state": {str(k): v for k, v in sd["state"].items()}, "param_groups": sd["param_groups"]}


def _opt_unstate(sd: dict) -> dict:
    return {"state": {int(k): v for k, v in sd["state"].items()}, "param_groups": sd["param_groups"]}


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
        state = rd.load_checkpoint(cfg.device)
        if state["config"] != dataclasses.asdict(cfg):
            raise ValueError(f"--resume: the configuration differs from the checkpoint's in {out_dir}")
        model.load_state_dict(state["model"])
        opt.load_state_dict(_opt_unstate(state["optimizer"]))
        restore_rng(state["rng"], {"data": gen})
        start = state["epoch"]
        rd.truncate_metrics("epoch", start)
    else:
        rd.write_config(cfg)
    res: dict = {}
    end = cfg.epochs if stop_after is None else min(cfg.epochs, start + stop_after)
    steps = -(-cfg.n_train // cfg.batch_size)
    bar = tqdm(total=(end - start) * steps, desc=cfg.name, disable=not progress)
    for epoch in range(start, end):
        t0 = time.perf_counter()
        for g in opt.param_groups:
            g["lr"] = lr_at(cfg, epoch)
        losses = []
        with kernels.nvtx.range(f"dunsre.epoch{epoch}"):
            perm = torch.randperm(cfg.n_train, generator=gen).tolist()
            for s in range(0, cfg.n_train, cfg.batch_size):
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
                                "model": model.state_dict(), "optimizer": _opt_state(opt),
                                "rng": capture_rng({"data": gen})})
    bar.close()
    res = evaluate(model, val, cfg, return_images=True)
    ref, zf, rec = res.pop("_images")
    ms = rd.metrics()
    plot_curves(rd.path / "curves.png",
                {"validation PSNR (dB)": [(r["epoch"], r["val_psnr"]) for r in ms],
                 "zero-filled PSNR (dB)": [(r["epoch"], r["val_zf_psnr"]) for r in ms]},
                xlabel="epoch", ylabel="dB", title=f"{cfg.name}: R = {cfg.accel}")
    save_recon_figure(rd.path / "val_frame.png", ref, {"zero-filled": zf, cfg.name: rec},
                      frame=cfg.frames // 2, title=f"{cfg.name}, R = {cfg.accel}, validation phantom 0")
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
