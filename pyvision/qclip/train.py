"""``python -m pyvision train --task qclip``: train Q-CLIP's adapter, prompt context and score head.

As released: loss L_plcc + 0.3·L_rank, AdamW (lr 1e-3, weight decay 1e-4), batch 12, 8 epochs with one
linear warm-up epoch then cosine decay (per step), 8 frames per video at the backbone's resolution.
Defaults run the tiny random CLIP on the synthetic set on a CPU in about a minute; ``--pretrained-tiny
runs/tiny_clip.safetensors`` pretrains (or loads) the tiny CLIP contrastively first (pyvision.qclip.pretrain:
the CPU stand-in for CLIP's web pretraining, about a minute more); ``--preset paper
--checkpoint PE-Core-L14-336.pt --dataset konvid --data-root ...`` is the full-size run.

Writes runs/<name>/: config.json, metrics.jsonl (per epoch: train loss, val/test SRCC, PLCC, KRCC),
checkpoint.safetensors (trained tensors, optimizer, scheduler, RNG; every ``--ckpt-every`` epochs),
curves.png and scatter.png (predicted vs true MOS on the test split).
"""

from __future__ import annotations

import argparse
import math
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from tqdm import tqdm

import kernels.nvtx
from kernels.runs import (
    RunDir,
    capture_rng,
    cosine_lr,
    load_optimizer_state,
    optimizer_state,
    plot_curves,
    restore_rng,
    save_figure,
)
from pyvision.cli import add_config_arguments, config_from_args
from pyvision.data.vqa import (
    SyntheticVQAConfig,
    make_synthetic_vqa,
    normalize_frames,
    photo_names,
    read_video,
    read_vqa_records,
    split_by_source,
)
from pyvision.qclip.losses import qclip_loss
from pyvision.qclip.metrics import vqa_metrics
from pyvision.qclip.model import QCLIP, qclip_config
from pyvision.qclip.pretrain import PretrainConfig, checkpoint_photos, pretrain_clip, save_clip_checkpoint
from pyvision.qclip.sampling import SAMPLERS, sample_indices

__all__ = [
    "Clips",
    "TrainConfig",
    "add_arguments",
    "evaluate",
    "main",
    "resolve_backbone",
    "synthetic_test_photos",
    "train",
]


@dataclass
class TrainConfig:
    name: str = "qclip"
    runs_dir: str = "runs"
    preset: str = "tiny"
    checkpoint: str | None = None
    # A tiny CLIP pretrained by pyvision.qclip.pretrain (a .safetensors path): loaded when the file exists,
    # else pretrained on the synthetic set's photos outside this run's test split and saved there.
    pretrained_tiny: str | None = None
    pretrain_steps: int = 600
    pretrain_pairs: int = 6000
    score_head: str = "linear"
    dataset: str = "synthetic"
    data_root: str | None = None
    n_sources: int = 8
    clips_per_source: int = 12
    split: tuple[float, float, float] = (0.6, 0.2, 0.2)  # train / val / test fractions of the sources
    video_frames: int = 16
    frames: int = 8
    sampler: str = "uniform"
    min_spacing: int = 1
    epochs: int = 8
    warmup_epochs: int = 1
    batch_size: int = 12
    lr: float = 1e-3
    weight_decay: float = 1e-4
    rank_weight: float = 0.3
    ckpt_every: int = 1
    seed: int = 0
    device: str = "cpu"
    threads: int = 0  # torch intra-op threads; 0 leaves torch's default (1 is fastest on a busy 2-core box)


class Clips:
    """Decoded videos (each (T, H, W, 3) uint8 at the backbone's resolution) with MOS and source ids;
    ``batch`` samples frames with one of ``SAMPLERS`` and normalises them."""

    def __init__(self, videos: list[torch.Tensor], mos: torch.Tensor, source: np.ndarray, normalization: str):
        self.videos, self.mos, self.source, self.normalization = (
            videos,
            mos.float(),
            np.asarray(source),
            normalization,
        )

    def batch(self, idx, sampler: str, frames: int, rng: np.random.Generator, min_spacing: int = 1):
        out = []
        for i in idx:
            v = self.videos[i]
            pick = sample_indices(
                sampler,
                v.shape[0],
                frames,
                rng=rng,
                min_spacing=min_spacing,
                video=v.permute(0, 3, 1, 2) if sampler == "framediff" else None,
            )
            out.append(normalize_frames(v[pick], self.normalization))
        return torch.stack(out), self.mos[list(idx)]


def load_clips(cfg: TrainConfig, image_size: int, normalization: str) -> Clips:
    if cfg.dataset == "synthetic":
        data = make_synthetic_vqa(
            SyntheticVQAConfig(
                cfg.n_sources, cfg.clips_per_source, cfg.video_frames, image_size, seed=cfg.seed
            )
        )
        return Clips(list(data.videos), data.mos, data.source.numpy(), normalization)
    if cfg.data_root is None:
        raise ValueError(f"--dataset {cfg.dataset} needs --data-root (the local dataset folder)")
    records = read_vqa_records(cfg.data_root, cfg.dataset)
    videos = [torch.from_numpy(read_video(r.path, image_size)) for r in tqdm(records, desc="decode")]
    # Real sets have one video per source: the split by source is a split by video.
    return Clips(videos, torch.tensor([r.mos for r in records]), np.arange(len(records)), normalization)


def synthetic_test_photos(cfg: TrainConfig) -> list[str]:
    """The scikit-image photos whose clips form the synthetic set's test split for ``cfg``'s seed."""
    source = np.repeat(np.arange(cfg.n_sources), cfg.clips_per_source)
    _, _, test = split_by_source(source, cfg.split, seed=cfg.seed)
    return [photo_names()[i] for i in np.unique(source[test])]


def resolve_backbone(cfg: TrainConfig, progress: bool = True) -> str | None:
    """The CLIP checkpoint path for ``cfg``: ``cfg.checkpoint``, or with ``cfg.pretrained_tiny`` that
    file — pretrained (``pyvision.qclip.pretrain``) on every bundled photo except this run's test photos
    when it does not exist yet, and checked to exclude them when it does."""
    if not cfg.pretrained_tiny:
        return cfg.checkpoint
    if cfg.checkpoint:
        raise ValueError("give checkpoint or pretrained_tiny, not both")
    if cfg.dataset != "synthetic" or cfg.preset != "tiny":
        raise ValueError(
            f"pretrained_tiny is the CPU stand-in for the tiny preset on the synthetic set; got preset "
            f"{cfg.preset!r}, dataset {cfg.dataset!r} (use checkpoint for a real CLIP)"
        )
    test = synthetic_test_photos(cfg)
    path = Path(cfg.pretrained_tiny)
    if path.is_file():
        seen = checkpoint_photos(path)
        if seen is None:
            raise ValueError(f"{str(path)!r} does not record its pretraining photos (not a pretrain.py file)")
        overlap = sorted(set(seen) & set(test))
        if overlap:
            raise ValueError(
                f"{str(path)!r} was pretrained on {overlap}, which are in this run's test split (seed "
                f"{cfg.seed}): pretrain another file for this split"
            )
        return str(path)
    photos = tuple(p for p in photo_names() if p not in test)
    model, summary = pretrain_clip(
        PretrainConfig(photos=photos, pairs=cfg.pretrain_pairs, steps=cfg.pretrain_steps, seed=cfg.seed),
        progress=progress,
    )
    summary["excluded_test_photos"] = test
    save_clip_checkpoint(path, model, summary)
    print(f"pretrained tiny CLIP on {len(summary['photos'])} photos in {summary['seconds']:.0f} s -> {path}")
    return str(path)


@torch.no_grad()
def evaluate(model: QCLIP, clips: Clips, idx: np.ndarray, cfg: TrainConfig, rng: np.random.Generator):
    """Predictions on ``idx`` (batches of ``cfg.batch_size``) and the metrics against the MOS."""
    model.eval()
    preds = []
    for s in range(0, len(idx), cfg.batch_size):
        video, _ = clips.batch(idx[s : s + cfg.batch_size], cfg.sampler, cfg.frames, rng, cfg.min_spacing)
        preds.append(model(video.to(cfg.device)).float().cpu())
    pred = torch.cat(preds).numpy()
    true = clips.mos[list(idx)].numpy()
    return pred, true, vqa_metrics(pred, true)


def _schedule(cfg: TrainConfig, steps_per_epoch: int):
    warm, total = cfg.warmup_epochs * steps_per_epoch, cfg.epochs * steps_per_epoch

    return lambda step: cosine_lr(1.0, step, total, warmup=warm)


def train(
    cfg: TrainConfig,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    stop_after: int | None = None,
) -> dict:
    """Run (or resume) one training; returns the last epoch's metrics record. ``stop_after`` ends the run
    after that epoch as an interruption would (the schedule still spans ``cfg.epochs``)."""
    if cfg.sampler not in SAMPLERS:
        raise ValueError(f"sampler must be one of {SAMPLERS}, got {cfg.sampler!r}")
    if cfg.threads > 0:
        torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    run = RunDir(Path(cfg.runs_dir) / cfg.name, resume=resume, overwrite=overwrite)
    run.write_config(cfg)
    checkpoint = resolve_backbone(cfg, progress)
    torch.manual_seed(cfg.seed)  # the same initial head whether or not this call pretrained the backbone
    mcfg = qclip_config(
        cfg.preset, score_head=cfg.score_head, **({"checkpoint": checkpoint} if checkpoint else {})
    )
    model = QCLIP(mcfg).to(cfg.device)
    print(model.describe())
    vision = model.clip.config.vision
    clips = load_clips(cfg, vision.image_size, "pe" if vision.rope2d else "clip")
    train_idx, val_idx, test_idx = split_by_source(clips.source, cfg.split, seed=cfg.seed)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps = math.ceil(len(train_idx) / cfg.batch_size)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, _schedule(cfg, steps))
    rng = np.random.default_rng(cfg.seed)
    start = 0
    if resume and run.has_checkpoint():
        state = run.load_checkpoint(cfg.device)
        missing = model.load_state_dict(state["model"], strict=False).unexpected_keys
        if missing:
            raise ValueError(f"checkpoint holds tensors the model does not: {missing}")
        load_optimizer_state(opt, state["optimizer"])
        sched.load_state_dict(state["scheduler"])
        restore_rng(state["rng"], {"sampler": rng})
        start = int(state["epoch"])
        run.truncate_metrics("epoch", start)
    record: dict = {}
    for epoch in range(start + 1, cfg.epochs + 1):
        with kernels.nvtx.range(f"epoch {epoch}"):
            model.train()
            order = rng.permutation(train_idx)
            losses, t0 = [], time.perf_counter()
            bar = tqdm(
                range(0, len(order), cfg.batch_size),
                desc=f"epoch {epoch}/{cfg.epochs}",
                disable=not progress,
                leave=False,
            )
            for s in bar:
                with kernels.nvtx.range("step"):
                    video, mos = clips.batch(
                        order[s : s + cfg.batch_size], cfg.sampler, cfg.frames, rng, cfg.min_spacing
                    )
                    loss = qclip_loss(model(video.to(cfg.device)), mos.to(cfg.device), cfg.rank_weight)
                    opt.zero_grad(set_to_none=True)
                    loss.backward()
                    opt.step()
                    sched.step()
                    losses.append(loss.item())
                    bar.set_postfix(loss=f"{loss.item():.4f}")
            with kernels.nvtx.range("evaluate"):
                eval_rng = np.random.default_rng(cfg.seed + 1)  # the same frames every epoch
                _, _, val = evaluate(model, clips, val_idx, cfg, eval_rng)
                test_pred, test_true, test = evaluate(model, clips, test_idx, cfg, eval_rng)
        record = {
            "epoch": epoch,
            "train_loss": float(np.mean(losses)),
            "lr": sched.get_last_lr()[0],
            "seconds": time.perf_counter() - t0,
            **{f"val_{k}": v for k, v in val.items()},
            **{f"test_{k}": v for k, v in test.items()},
        }
        run.log(record)
        if epoch % cfg.ckpt_every == 0 or epoch == cfg.epochs:
            run.save_checkpoint(
                {
                    "model": model.trainable_state(),
                    "optimizer": optimizer_state(opt),
                    "scheduler": sched.state_dict(),
                    "rng": capture_rng({"sampler": rng}),
                    "epoch": epoch,
                }
            )
        if stop_after is not None and epoch >= stop_after:
            return record
    if record:
        _plots(run, test_pred, test_true, record)
    return record


def _plots(run: RunDir, pred: np.ndarray, true: np.ndarray, last: dict) -> None:
    hist = run.metrics()
    plot_curves(
        run.path / "curves.png",
        {k: [(r["epoch"], r[k]) for r in hist] for k in ("val_srcc", "val_plcc", "test_srcc", "test_plcc")},
        xlabel="epoch",
        ylabel="correlation",
        title="Q-CLIP",
    )
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.5, 4.5), dpi=120)
    ax.scatter(true, pred, s=12)
    ax.set_xlabel("true MOS")
    ax.set_ylabel("predicted score")
    ax.set_title(f"test: SRCC {last['test_srcc']:.3f}, PLCC {last['test_plcc']:.3f}")
    fig.tight_layout()
    save_figure(fig, run.path / "scatter.png")


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, TrainConfig, choices={"sampler": SAMPLERS})


def main(args: argparse.Namespace) -> int:
    cfg = config_from_args(args, TrainConfig)
    last = train(cfg, resume=args.resume, overwrite=args.overwrite)
    print({k: round(v, 4) if isinstance(v, float) else v for k, v in last.items()})
    return 0
