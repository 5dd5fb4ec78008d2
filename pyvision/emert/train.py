"""``python -m pyvision train --task emert``: K-fold training and evaluation of EMERT on one protocol.

Data: the offline generator (``pyvision.data.emert.make_emert_data``) by default, or a local EMER-layout
directory with ``--data-root``. Both heads are trained (ER on felt-emotion labels, FER on displayed-
expression labels, at the protocol's granularity); the protocol's label source is the one reported as
the primary WAR/UAR/F1. A run writes ``runs/<name>/``: config.json, metrics.jsonl (one line per
epoch, ``step`` = fold·epochs + epoch), checkpoint.safetensors every ``checkpoint_every`` epochs (model,
optimizer, RNGs, fold results so far: ``--resume`` continues on an identical curve), curves.png and
results.json with the per-fold and mean metrics.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

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
from pyvision.cli import add_config_arguments, config_from_args
from pyvision.data.emert import EmotionData, load_emer, make_emert_data, to_coarse
from pyvision.emert.losses import emert_loss
from pyvision.emert.model import EMERT, EMERTModelConfig
from pyvision.emert.protocols import fold_splits, get_protocol
from pyvision.metrics import classification_report

__all__ = [
    "PRESETS",
    "EMERTConfig",
    "add_arguments",
    "build_model",
    "evaluate",
    "fit",
    "main",
    "prepare_data",
    "run",
]


@dataclass
class EMERTConfig:
    """Defaults run the 5-fold protocol on the generator on a laptop CPU in a few minutes."""

    name: str = "emert"
    protocol: str = "er7"
    data_root: str | None = None  # a local EMER-layout directory; None = the offline generator
    n_samples: int = 350
    data_seed: int = 0
    gap: float = 0.35  # generator: P(displayed expression != felt emotion)
    frames: int = 4
    image_size: int = 32
    steps: int = 16
    face_width: int = 8
    lstm_hidden: int = 32
    lstm_layers: int = 1  # the paper's 3 (preset) learns too slowly for a minutes-long CPU run
    d: int = 64
    depth: int = 2
    heads: int = 8
    dropout: float = 0.1
    epochs: int = 12
    batch_size: int = 32
    lr: float = 2e-3
    weight_decay: float = 1e-4
    alpha: float = 0.1  # weight of the adversarial modality loss on the shared features
    beta: float = 0.1  # weight of the modality loss on the private features
    fer_weight: float = 1.0
    reg_weight: float = 0.0  # SmoothL1 on (valence, arousal, intensity)
    grl_lambda: float = 1.0
    n_folds: int = 5
    folds: int = 0  # how many folds to run (0 = all n_folds)
    seed: int = 0
    checkpoint_every: int = 1

    def __post_init__(self):
        get_protocol(self.protocol)
        for k in ("n_samples", "epochs", "batch_size", "checkpoint_every"):
            if getattr(self, k) < 1:
                raise ValueError(f"{k} must be >= 1, got {getattr(self, k)}")
        if not 0 <= self.folds <= self.n_folds:
            raise ValueError(f"folds must be in [0, n_folds={self.n_folds}], got {self.folds}")


# "paper": the paper-scale settings (release: 112-px frames, 8 frames, T = 32, ResNet-18, 200 epochs,
# Adam 1e-4). "tiny": seconds per run on a CPU (4-wide ResNet-18 on 2 frames of 16 px, 16-unit LSTMs),
# what the tests and benchmarks/vision/emert_generator.py use.
PRESETS: dict[str, dict] = {
    "tiny": dict(
        n_samples=300,
        frames=2,
        image_size=16,
        steps=8,
        face_width=4,
        lstm_hidden=16,
        lstm_layers=1,
        d=32,
        epochs=15,
        batch_size=32,
        lr=2e-3,
        dropout=0.0,
    ),
    "paper": dict(
        frames=8,
        image_size=112,
        steps=32,
        face_width=64,
        lstm_hidden=128,
        lstm_layers=3,
        epochs=200,
        batch_size=16,
        lr=1e-4,
        weight_decay=5e-4,
        dropout=0.5,
        n_samples=1303,
    ),
}


def prepare_data(cfg: EMERTConfig) -> EmotionData:
    """Generator or local data, with labels mapped to the protocol's granularity."""
    if cfg.data_root:
        data = load_emer(cfg.data_root, frames=cfg.frames, image_size=cfg.image_size, steps=cfg.steps)
    else:
        data = make_emert_data(
            cfg.n_samples,
            seed=cfg.data_seed,
            frames=cfg.frames,
            image_size=cfg.image_size,
            steps=cfg.steps,
            gap=cfg.gap,
        )
    if get_protocol(cfg.protocol).classes == 3:
        data = dataclasses.replace(data, er=to_coarse(data.er), fer=to_coarse(data.fer))
    return data


def build_model(cfg: EMERTConfig) -> EMERT:
    p = get_protocol(cfg.protocol)
    return EMERT(
        EMERTModelConfig(
            num_er_classes=p.classes,
            num_fer_classes=p.classes,
            modalities=p.modalities,
            face_width=cfg.face_width,
            lstm_hidden=cfg.lstm_hidden,
            lstm_layers=cfg.lstm_layers,
            d=cfg.d,
            depth=cfg.depth,
            heads=cfg.heads,
            dropout=cfg.dropout,
            max_tokens=max(cfg.frames, cfg.steps),
        )
    )


@torch.no_grad()
def evaluate(model: EMERT, data: EmotionData, index, batch_size: int = 128) -> dict[str, float]:
    """WAR, UAR, weighted and unweighted F1 of both heads on ``data[index]`` (keys ``er_*``, ``fer_*``)."""
    model.eval()
    index = np.asarray(index)
    preds = {"er": [], "fer": []}
    for s in range(0, index.size, batch_size):
        out = model(data.batch(index[s : s + batch_size]))
        for k in preds:
            preds[k].append(out[k].argmax(1))
    res = {}
    for k in preds:
        for m, v in classification_report(getattr(data, k)[index], torch.cat(preds[k])).items():
            res[f"{k}_{m}"] = v
    return res


def _train_epoch(model, opt, data, train_idx, cfg, gen) -> dict[str, float]:
    model.train()
    perm = torch.as_tensor(train_idx)[torch.randperm(len(train_idx), generator=gen)]
    sums: dict[str, float] = {}
    nb = 0
    for s in range(0, len(perm), cfg.batch_size):
        with kernels.nvtx.range("emert.step"):
            batch = data.batch(perm[s : s + cfg.batch_size])
            out = model(batch, grl_lambda=cfg.grl_lambda)
            terms = emert_loss(
                out,
                batch,
                alpha=cfg.alpha,
                beta=cfg.beta,
                fer_weight=cfg.fer_weight,
                reg_weight=cfg.reg_weight,
            )
            opt.zero_grad(set_to_none=True)
            terms["loss"].backward()
            opt.step()
        for k, v in terms.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        nb += 1
    return {f"train_{k}": v / nb for k, v in sums.items()}


def fit(
    cfg: EMERTConfig, data: EmotionData, train_idx, test_idx, *, progress: bool = False
) -> tuple[EMERT, dict]:
    """Train one model on ``train_idx`` for ``cfg.epochs`` (no run directory) and evaluate on ``test_idx``."""
    torch.manual_seed(cfg.seed)
    gen = torch.Generator().manual_seed(cfg.seed)
    model = build_model(cfg)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    from tqdm.auto import trange

    for _ in trange(cfg.epochs, desc="emert", disable=not progress, leave=False):
        _train_epoch(model, opt, data, train_idx, cfg, gen)
    return model, evaluate(model, data, test_idx)


def _mean(results: list[dict]) -> dict[str, float]:
    return {k: float(np.mean([r[k] for r in results])) for k in results[0]}


def run(
    cfg: EMERTConfig,
    out_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> dict:
    """K-fold training with a run directory (see the module docstring). Returns the mean metrics."""
    from tqdm.auto import tqdm

    rd = RunDir(out_dir, resume=resume, overwrite=overwrite)
    protocol = get_protocol(cfg.protocol)
    data = prepare_data(cfg)
    primary = protocol.labels
    splits = fold_splits(
        getattr(data, primary).numpy(), data.subject.numpy(), protocol.split, cfg.n_folds, cfg.seed
    )
    n_run = cfg.folds or cfg.n_folds
    fold, epoch, done = 0, 0, []
    gen = torch.Generator()
    model = opt = None
    if resume and rd.has_checkpoint():
        state = rd.load_checkpoint(config=cfg)
        fold, epoch, done = state["fold"], state["epoch"], state["done"]
        model = build_model(cfg)
        model.load_state_dict(state["model"])
        opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        load_optimizer_state(opt, state["optimizer"])
        restore_rng(state["rng"], {"shuffle": gen})
        rd.truncate_metrics("step", fold * cfg.epochs + epoch)
    else:
        rd.write_config(cfg)
    bar = tqdm(
        total=n_run * cfg.epochs,
        initial=fold * cfg.epochs + epoch,
        desc=f"emert {cfg.protocol}",
        disable=not progress,
    )
    while fold < n_run:
        tr, te = splits[fold]
        if model is None:  # a fresh fold
            torch.manual_seed(cfg.seed + fold)
            gen.manual_seed(cfg.seed + fold)
            model = build_model(cfg)
            opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        while epoch < cfg.epochs:
            t0 = time.perf_counter()
            with kernels.nvtx.range(f"emert.epoch{epoch}"):
                rec = _train_epoch(model, opt, data, tr, cfg, gen)
            epoch += 1
            rec.update({f"test_{k}": v for k, v in evaluate(model, data, te).items()})
            rd.log(
                {
                    "step": fold * cfg.epochs + epoch,
                    "fold": fold,
                    "epoch": epoch,
                    **rec,
                    "seconds": time.perf_counter() - t0,
                }
            )
            if epoch == cfg.epochs:
                done.append({k.removeprefix("test_"): v for k, v in rec.items() if k.startswith("test_")})
            bar.update(1)
            if epoch % cfg.checkpoint_every == 0 or epoch == cfg.epochs:
                last = epoch == cfg.epochs
                rd.save_checkpoint(
                    {
                        "config": dataclasses.asdict(cfg),
                        "fold": fold + 1 if last else fold,
                        "epoch": 0 if last else epoch,
                        "done": done,
                        "model": model.state_dict(),
                        "optimizer": optimizer_state(opt),
                        "rng": capture_rng({"shuffle": gen}),
                    }
                )
        fold, epoch, model = fold + 1, 0, None
    bar.close()
    mean = _mean(done)
    result = {
        "protocol": cfg.protocol,
        "folds": done,
        "mean": mean,
        "primary": {k: mean[f"{primary}_{k}"] for k in ("war", "uar", "f1_weighted", "f1_macro")},
    }
    atomic_write(rd.path / "results.json", (json.dumps(result, indent=2) + "\n").encode())
    ms = rd.metrics()
    plot_curves(
        rd.path / "curves.png",
        {
            "train loss": [(r["step"], r["train_loss"]) for r in ms],
            f"test {primary} WAR": [(r["step"], r[f"test_{primary}_war"]) for r in ms],
        },
        xlabel="epoch (all folds)",
        ylabel="value",
        title=f"EMERT {cfg.protocol}",
    )
    return result


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, EMERTConfig, presets=PRESETS,
                         help={"data_root": "local EMER-layout directory (default: the offline generator)"})
    parser.add_argument("--runs-dir", "--out", dest="out", default="runs", help="parent of runs/<name>/")


def main(args: argparse.Namespace) -> int:
    cfg = config_from_args(args, EMERTConfig, PRESETS)
    result = run(cfg, Path(args.out) / cfg.name, resume=args.resume, overwrite=args.overwrite)
    print(json.dumps({"protocol": result["protocol"], **result["primary"]}, indent=2))
    return 0
