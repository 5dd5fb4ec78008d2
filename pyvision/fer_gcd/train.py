"""``python -m pyvision train --task fer-gcd``: SimGCD baseline and FER-GCD on faces.

Before the GCD epochs the backbone is pretrained on the training images (``pretrain_backbone``: SimCLR,
no labels, by default; the stand-in for the DINO weights both methods assume — from scratch the GCD
objective collapses on the CPU generator). Evidence: benchmarks/results/vision/fer_gcd_generator.md.

Per step (V = 2 augmented views of a batch that is half labelled, half unlabelled in expectation, as
SimGCD's weighted sampler makes it; w_s = ``sup_weight`` = 0.35; logits sharpened by τ_s = 0.1):

    L_SimGCD = (1 − w_s)·(L_distill + w_me·R_me + L_infonce) + w_s·(L_ce + L_supcon)
    L_FER-GCD = L_SimGCD + w_lsr·L_lsr + w_wc·L_worst(λ) + [epoch ≥ E_c]·w_c·L_compact

(formulas in ``losses.py``; λ is the gradient-reversal coefficient of ``model.grl_coefficient`` over
training progress; w_lsr = 0.3, w_wc = 0.2, η′ = 2, w_c = 0.2 as released). Evaluation is transductive,
the GCD protocol: the unlabelled training samples are clustered by argmax of the classifier and scored
All / Old / New with one Hungarian assignment (``evaluate.py``).

Runs write ``runs/<name>/``: config.json, metrics.jsonl (one line per epoch), checkpoint.safetensors
(every ``checkpoint_every`` epochs and at the end; ``--resume`` continues with an identical curve),
accuracy.png and loss.png.
"""

from __future__ import annotations

import argparse
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from kernels import nvtx
from kernels.runs import (
    RunDir,
    capture_rng,
    cosine_lr,
    load_optimizer_state,
    optimizer_state,
    plot_curves,
    restore_rng,
)
from pyvision.cli import add_config_arguments
from pyvision.cli import config_from_args as _config_from_args
from pyvision.data.faces import (
    RAFDB_PROPORTIONS,
    FaceGeneratorConfig,
    load_affectnet,
    load_fer2013,
    load_rafdb,
    make_faces,
    random_views,
)
from pyvision.fer_gcd import losses as L
from pyvision.fer_gcd.evaluate import split_cluster_accuracy
from pyvision.fer_gcd.model import GCDModel, grl_coefficient

__all__ = ["PRESETS", "FerGcdConfig", "add_arguments", "build_model", "gcd_split", "load_dataset", "main",
           "pretrain_backbone", "train"]

METHODS = ("simgcd", "fer-gcd")
PRETRAIN = ("none", "simclr", "supervised-old")


@dataclass
class FerGcdConfig:
    """Defaults: a narrow ResNet-18 (width 8), SimCLR-pretrained for 30 epochs on the 1,000 generated 32×32
    faces (``pretrain_backbone``; no labels), then 15 GCD epochs; 4 old / 3 new classes drawn with equal
    frequency (``class_balance='rafdb'`` gives RAF-DB's long tail, where New stays near 0 at this size);
    under a minute per run on one laptop core. ``PRESETS['paper']`` is the released setting."""

    method: str = "fer-gcd"
    seed: int = 0
    # data
    dataset: str = "generator"  # generator | rafdb | fer2013 | affectnet
    data_root: str = ""
    n_train: int = 1000
    class_balance: str = "uniform"  # generator only: rafdb (long-tailed, RAF-DB proportions) | uniform
    image_size: int = 32
    channels: int = 1
    old_classes: tuple[int, ...] = (0, 1, 2, 3)  # neutral, happiness, sadness, surprise
    labelled_fraction: float = 0.5
    # backbone
    backbone: str = "resnet18"  # resnet18 | vit
    patch_size: int = 4
    embed_dim: int = 64
    depth: int = 4
    num_heads: int = 4
    mlp_ratio: float = 2.0
    resnet_width: int = 8
    backbone_checkpoint: str = ""
    grad_from_block: int = 0  # 0: train the whole backbone; the paper trains block 11 of ViT-B/16 only
    # backbone pretraining on the training images before GCD (stand-in for DINO; see pretrain_backbone)
    pretrain: str = "simclr"  # none | simclr | supervised-old
    pretrain_epochs: int = 30
    pretrain_lr: float = 2e-3
    pretrain_temp: float = 0.2
    # heads
    proj_dim: int = 64
    hidden_dim: int = 128
    mlp_layers: int = 3
    # optimization (cosine to lr·1e-3 per epoch, as SimGCD; SimGCD uses SGD, from scratch AdamW is faster)
    epochs: int = 15
    batch_size: int = 64
    optimizer: str = "adamw"  # sgd | adamw
    lr: float = 5e-3
    momentum: float = 0.9
    weight_decay: float = 5e-5
    min_lr_ratio: float = 1e-3
    grad_clip: float = 100.0
    # SimGCD
    sup_weight: float = 0.35
    student_temp: float = 0.1
    warmup_teacher_temp: float = 0.07
    teacher_temp: float = 0.04
    warmup_teacher_temp_epochs: int = 5
    memax_weight: float = 1.0
    supcon_temp: float = 0.07
    infonce_temp: float = 1.0
    # FER-GCD
    worst_weight: float = 0.2
    eta_prime: float = 2.0
    grl_max: float = 0.1
    grl_gamma: float = 10.0
    lsr_weight: float = 0.3
    lsr_epsilon: float = 0.1
    lsr_delta: float = 0.1
    cluster_weight: float = 0.2
    cluster_warmup_epochs: int = 4
    maxmin_weight: float = 0.1
    # run
    checkpoint_every: int = 5

    def __post_init__(self):
        self.old_classes = tuple(int(c) for c in self.old_classes)
        if self.method not in METHODS:
            raise ValueError(f"method must be one of {METHODS}, got {self.method!r}")
        if self.dataset not in ("generator", "rafdb", "fer2013", "affectnet"):
            raise ValueError(f"dataset must be generator, rafdb, fer2013 or affectnet, got {self.dataset!r}")
        if self.backbone not in ("vit", "resnet18"):
            raise ValueError(f"backbone must be 'vit' or 'resnet18', got {self.backbone!r}")
        if self.class_balance not in ("rafdb", "uniform"):
            raise ValueError(f"class_balance must be 'rafdb' or 'uniform', got {self.class_balance!r}")
        if self.pretrain not in PRETRAIN:
            raise ValueError(f"pretrain must be one of {PRETRAIN}, got {self.pretrain!r}")
        if self.optimizer not in ("sgd", "adamw"):
            raise ValueError(f"optimizer must be 'sgd' or 'adamw', got {self.optimizer!r}")
        if not self.old_classes or len(set(self.old_classes)) != len(self.old_classes) or not all(
                0 <= c < 7 for c in self.old_classes) or len(self.old_classes) >= 7:
            raise ValueError(f"old_classes must be distinct ids in [0, 7) leaving a new class, "
                             f"got {self.old_classes}")
        if not 0 < self.labelled_fraction < 1:
            raise ValueError(f"labelled_fraction must be in (0, 1), got {self.labelled_fraction}")
        if self.pretrain_epochs < 0:
            raise ValueError(f"pretrain_epochs must be >= 0, got {self.pretrain_epochs}")
        for name in ("epochs", "batch_size", "n_train", "checkpoint_every"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} must be >= 1, got {getattr(self, name)}")
        if self.batch_size < 4:
            raise ValueError(f"batch_size must be >= 4, got {self.batch_size}")

    @property
    def num_classes(self) -> int:
        return 7


PRESETS: dict[str, FerGcdConfig] = {
    "cpu": FerGcdConfig(),
    # The released RAF-DB run: DINO ViT-B/16 at 224 px, last block trained, 200 epochs, SGD lr 0.1.
    "paper": FerGcdConfig(dataset="rafdb", pretrain="none", image_size=224, channels=3, backbone="vit",
                          patch_size=16,
                          embed_dim=768, depth=12, num_heads=12, mlp_ratio=4.0, grad_from_block=11,
                          proj_dim=256, hidden_dim=2048, epochs=200, batch_size=128, optimizer="sgd",
                          lr=0.1, warmup_teacher_temp_epochs=30, memax_weight=1.0, cluster_warmup_epochs=50,
                          checkpoint_every=10),
}


# ---------------------------------------------------------------------------------------------------
# data

def _proportions(balance: str) -> tuple[float, ...]:
    return RAFDB_PROPORTIONS if balance == "rafdb" else (1.0,) * len(RAFDB_PROPORTIONS)


def load_dataset(cfg: FerGcdConfig) -> tuple[torch.Tensor, torch.Tensor]:
    """Images (N, C, S, S) in [0, 1] and labels (N,) in EXPRESSIONS order, all in memory."""
    if cfg.dataset == "generator":
        data = make_faces(cfg.n_train, seed=cfg.seed,
                          config=FaceGeneratorConfig(image_size=cfg.image_size, channels=cfg.channels,
                                                     class_proportions=_proportions(cfg.class_balance)))
        return data.images, data.labels
    if not cfg.data_root:
        raise ValueError(f"dataset {cfg.dataset!r} needs --data-root")
    if cfg.dataset == "fer2013":
        data = load_fer2013(cfg.data_root, usage="Training")
        x = F.interpolate(data.images, size=(cfg.image_size, cfg.image_size), mode="bilinear",
                          align_corners=False)
        return x.expand(-1, cfg.channels, -1, -1).contiguous(), data.labels
    loader = load_rafdb if cfg.dataset == "rafdb" else load_affectnet
    folder = loader(cfg.data_root, "train", image_size=cfg.image_size, channels=cfg.channels)
    images = torch.stack([folder[i][0] for i in range(len(folder))])
    return images, folder.labels


def gcd_split(labels: torch.Tensor, old_classes: tuple[int, ...], labelled_fraction: float,
              generator: torch.Generator) -> torch.Tensor:
    """Bool mask of the labelled samples: a random ``labelled_fraction`` of each old class's samples
    (GCD's ``prop_train_labels``); the rest of the old classes and all new classes are unlabelled."""
    mask = torch.zeros(len(labels), dtype=torch.bool)
    for c in old_classes:
        idx = torch.nonzero(labels == c).flatten()
        perm = idx[torch.randperm(len(idx), generator=generator)]
        mask[perm[: int(round(labelled_fraction * len(idx)))]] = True
    return mask


# ---------------------------------------------------------------------------------------------------
# model

def build_model(cfg: FerGcdConfig) -> GCDModel:
    if cfg.backbone == "vit":
        from pyvision.models.vit import VisionTransformer, freeze_until_block, load_vit_checkpoint

        backbone = VisionTransformer(image_size=cfg.image_size, patch_size=cfg.patch_size,
                                     in_channels=cfg.channels, embed_dim=cfg.embed_dim, depth=cfg.depth,
                                     num_heads=cfg.num_heads, mlp_ratio=cfg.mlp_ratio)
        if cfg.backbone_checkpoint:
            load_vit_checkpoint(backbone, cfg.backbone_checkpoint)
        freeze_until_block(backbone, cfg.grad_from_block)
        feat_dim = cfg.embed_dim
    else:
        from pyvision.models.resnet import load_resnet_checkpoint, resnet18

        backbone = resnet18(num_classes=0, in_channels=cfg.channels, width=cfg.resnet_width)
        if cfg.backbone_checkpoint:
            load_resnet_checkpoint(backbone, cfg.backbone_checkpoint)
        if cfg.grad_from_block:
            # ResNet "blocks" are its 4 stages: train stages grad_from_block..4 only.
            for name, p in backbone.named_parameters():
                p.requires_grad = name.startswith(tuple(f"layer{i}." for i in range(cfg.grad_from_block, 5)))
        feat_dim = backbone.num_features
    return GCDModel(backbone, feat_dim, cfg.num_classes, proj_dim=cfg.proj_dim, hidden_dim=cfg.hidden_dim,
                    mlp_layers=cfg.mlp_layers, adversarial=cfg.method == "fer-gcd")


def _param_groups(model: torch.nn.Module) -> list[dict]:
    """No weight decay on biases and norm parameters (SimGCD's ``get_params_groups``)."""
    decay, no_decay = [], []
    for name, p in model.named_parameters():
        if p.requires_grad:
            (no_decay if name.endswith(".bias") or p.dim() == 1 else decay).append(p)
    return [{"params": decay}, {"params": no_decay, "weight_decay": 0.0}]


def _cosine_lr(cfg: FerGcdConfig, epoch: int) -> float:
    return cosine_lr(cfg.lr, epoch, cfg.epochs, floor=cfg.min_lr_ratio)


# ---------------------------------------------------------------------------------------------------
# backbone pretraining

def pretrain_backbone(cfg: FerGcdConfig, model: GCDModel, images: torch.Tensor, labels: torch.Tensor,
                      labelled: torch.Tensor, generator: torch.Generator, *,
                      progress: bool = False) -> list[float]:
    """Pretrain ``model.backbone`` on the training images before the GCD objective; returns the mean loss
    per pretraining epoch. SimGCD and FER-GCD start from a DINO ViT; trained from scratch on the CPU
    generator the GCD objective collapses (the first pass: All ≈ majority class, New = 0). This is the
    stand-in for DINO, and it never sees a new-class label:

    * ``simclr`` (default): SimCLR on ALL training images, no labels — two ``random_views`` per image,
      L = info_nce_loss(projector(backbone(views)), τ = ``pretrain_temp``) (NT-Xent, formula in losses.py);
    * ``supervised-old``: cross-entropy of a throw-away linear head on the LABELLED old-class samples only.

    AdamW, lr cosine from ``pretrain_lr`` to 0, batches of 2·``batch_size`` images. The projector keeps its
    pretrained weights; the classifier starts fresh. Measured on the generator (seed 0, uniform classes,
    SimGCD, 15 epochs): none → the first pass's collapse; simclr All/Old/New 50.3/45.2/53.8; supervised-old
    50.4/47.3/52.6. With RAF-DB's long tail (fear 2 %, 20 of 1,000 images) New stays ≈ 5 % with either.
    """
    if cfg.pretrain == "none" or cfg.pretrain_epochs == 0:
        return []
    if cfg.pretrain == "simclr":
        pool = torch.arange(len(images))
        head = None
    else:
        pool = torch.nonzero(labelled).flatten()
        remap = torch.full((cfg.num_classes,), -1, dtype=torch.long)
        remap[torch.tensor(cfg.old_classes)] = torch.arange(len(cfg.old_classes))
        feat_dim = model.classifier_weight.shape[1]
        head = torch.nn.Linear(feat_dim, len(cfg.old_classes))
    # The whole backbone is pretrained (as DINO is); grad_from_block freezes applies to the GCD stage only.
    frozen = [p for p in model.backbone.parameters() if not p.requires_grad]
    for p in frozen:
        p.requires_grad_(True)
    params = list(model.backbone.parameters()) + list(model.projector.parameters())
    if head is not None:
        params += list(head.parameters())
    opt = torch.optim.AdamW(params, lr=cfg.pretrain_lr, weight_decay=cfg.weight_decay)
    bs = min(cfg.batch_size * 2, len(pool))
    steps = max(len(pool) // bs, 1)
    total = cfg.pretrain_epochs * steps
    losses = []
    model.train()
    for epoch in tqdm(range(cfg.pretrain_epochs), desc=f"pretrain {cfg.pretrain}", disable=not progress):
        with nvtx.range(f"pretrain epoch {epoch}"):
            perm = pool[torch.randperm(len(pool), generator=generator)]
            acc = 0.0
            for it in range(steps):
                step = epoch * steps + it
                for group in opt.param_groups:
                    group["lr"] = cosine_lr(cfg.pretrain_lr, step, total)
                idx = perm[it * bs:(it + 1) * bs]
                x = images[idx]
                views = torch.cat([random_views(x, generator), random_views(x, generator)])
                f = model.backbone(views)
                if head is None:
                    loss = L.info_nce_loss(model.projector(f), temperature=cfg.pretrain_temp)
                else:
                    loss = F.cross_entropy(head(f), remap[labels[idx]].repeat(2))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
                acc += float(loss.detach())
            losses.append(acc / steps)
    for p in frozen:
        p.requires_grad_(False)
    return losses


# ---------------------------------------------------------------------------------------------------
# one step

def compute_losses(cfg: FerGcdConfig, model: GCDModel, views: torch.Tensor, labels: torch.Tensor,
                   labelled: torch.Tensor, *, epoch: int, step: int,
                   total_steps: int) -> dict[str, torch.Tensor]:
    """All loss terms of one step on ``views`` (2B, C, H, W) = cat(view1, view2); ``labels`` and
    ``labelled`` (B,). Returns the terms and their weighted sum under 'loss'."""
    b = labels.shape[0]
    model.grl_coeff = grl_coefficient(min(step / max(total_steps, 1), 1.0), cfg.grl_max, cfg.grl_gamma)
    z, logits, adv = model(views)
    m = labelled
    n_lab = int(m.sum())
    out = logits / cfg.student_temp
    zero = logits.sum() * 0
    terms: dict[str, torch.Tensor] = {}
    sup_logits = torch.cat([o[m] for o in out.chunk(2)])
    sup_labels = labels[m].repeat(2)
    terms["ce"] = F.cross_entropy(sup_logits, sup_labels) if n_lab else zero
    t_temp = L.teacher_temperature(epoch, cfg.warmup_teacher_temp_epochs, cfg.warmup_teacher_temp,
                                   cfg.teacher_temp)
    terms["distill"] = L.self_distillation_loss(logits, logits.detach(), t_temp, cfg.student_temp)
    terms["memax"] = L.mean_entropy_regularizer(logits, cfg.student_temp)
    terms["infonce"] = L.info_nce_loss(z, temperature=cfg.infonce_temp)
    z_lab = F.normalize(torch.stack([zc[m] for zc in z.chunk(2)], dim=1), dim=-1)  # (B_l, 2, P)
    terms["supcon"] = L.sup_con_loss(z_lab, labels[m], cfg.supcon_temp) if n_lab else zero
    w = cfg.sup_weight
    loss = ((1 - w) * (terms["distill"] + cfg.memax_weight * terms["memax"] + terms["infonce"])
            + w * (terms["ce"] + terms["supcon"]))
    if cfg.method == "fer-gcd":
        eps = L.label_smoothing_epsilon(min(step, total_steps), total_steps, cfg.lsr_epsilon)
        if n_lab:
            cw = L.difficulty_weights(sup_logits, sup_labels, cfg.num_classes, cfg.lsr_delta)
            terms["lsr"] = L.dynamic_label_smoothing_loss(sup_logits, sup_labels, eps, cw)
        else:
            terms["lsr"] = zero
        v1, a1 = logits[:b], adv[:b]
        terms["worst"] = L.worst_case_estimation_loss(v1[m], a1[m], v1[~m], a1[~m], cfg.eta_prime)
        if epoch >= cfg.cluster_warmup_epochs and n_lab:
            # Both views of every labelled sample count as points of its class.
            terms["compact"] = L.cluster_compactness_loss(z_lab.transpose(0, 1).reshape(2 * n_lab, -1),
                                                          labels[m].repeat(2), cfg.maxmin_weight)
        else:
            terms["compact"] = zero
        loss = (loss + cfg.lsr_weight * terms["lsr"] + cfg.worst_weight * terms["worst"]
                + cfg.cluster_weight * terms["compact"])
    terms["loss"] = loss
    return terms


@torch.no_grad()
def predict(model: GCDModel, images: torch.Tensor, batch_size: int = 256) -> torch.Tensor:
    was = model.training
    model.eval()
    preds = [model(images[i:i + batch_size])[1].argmax(1) for i in range(0, len(images), batch_size)]
    model.train(was)
    return torch.cat(preds)


def evaluate(model: GCDModel, images: torch.Tensor, labels: torch.Tensor, labelled: torch.Tensor,
             old_classes: tuple[int, ...]) -> dict[str, float]:
    """Transductive GCD accuracy on the unlabelled training samples."""
    u = ~labelled
    pred = predict(model, images[u])
    y = labels[u]
    old = torch.isin(y, torch.tensor(old_classes))
    acc_all, acc_old, acc_new = split_cluster_accuracy(y.numpy(), pred.numpy(), old.numpy())
    return {"all": acc_all, "old": acc_old, "new": acc_new}


def train(cfg: FerGcdConfig, run_dir: RunDir | None = None, *, resume: bool = False,
          progress: bool = True) -> dict[str, Any]:
    """Train ``cfg.method`` and return {'final': {all, old, new}, 'history': [per-epoch records],
    'model': the trained GCDModel}."""
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    images, labels = load_dataset(cfg)
    g = torch.Generator().manual_seed(cfg.seed + 1)
    labelled = gcd_split(labels, cfg.old_classes, cfg.labelled_fraction, g)
    model = build_model(cfg)
    opt_cls = torch.optim.SGD if cfg.optimizer == "sgd" else torch.optim.AdamW
    extra = {"momentum": cfg.momentum} if cfg.optimizer == "sgd" else {}
    optimizer = opt_cls(_param_groups(model), lr=cfg.lr, weight_decay=cfg.weight_decay, **extra)
    # SimGCD's sampler: labelled samples weight 1, unlabelled n_l/n_u, so a batch is half labelled.
    n_l, n_u = int(labelled.sum()), int((~labelled).sum())
    weights = torch.where(labelled, 1.0, n_l / max(n_u, 1)).double()
    steps_per_epoch = max(len(labels) // cfg.batch_size, 1)
    total_steps = cfg.epochs * steps_per_epoch
    start_epoch = 0
    history: list[dict] = []
    if run_dir is not None:
        if resume and run_dir.has_checkpoint():
            state = run_dir.load_checkpoint()
            model.load_state_dict(state["model"])
            load_optimizer_state(optimizer, state["optimizer"])
            restore_rng(state["rng"], {"data": g})
            start_epoch = int(state["epoch"])
            run_dir.truncate_metrics("epoch", start_epoch)
            history = run_dir.metrics()
        else:
            run_dir.write_config(cfg)
    if start_epoch == 0:  # a resumed run has its pretrained (and trained) weights in the checkpoint
        with nvtx.range("pretrain"):
            pre = pretrain_backbone(cfg, model, images, labels, labelled, g, progress=progress)
        if run_dir is not None and pre:
            (run_dir.path / "pretrain_loss.json").write_text(json.dumps(pre))
    model.train()
    bar = tqdm(range(start_epoch, cfg.epochs), desc=f"{cfg.method} seed {cfg.seed}", disable=not progress,
               initial=start_epoch, total=cfg.epochs)
    for epoch in bar:
        with nvtx.range(f"epoch {epoch}"):
            t0 = time.perf_counter()
            for group in optimizer.param_groups:
                group["lr"] = _cosine_lr(cfg, epoch)
            order = torch.multinomial(weights, steps_per_epoch * cfg.batch_size, replacement=True,
                                      generator=g)
            sums: dict[str, float] = {}
            for it in range(steps_per_epoch):
                step = epoch * steps_per_epoch + it
                with nvtx.range("step"):
                    idx = order[it * cfg.batch_size:(it + 1) * cfg.batch_size]
                    x = images[idx]
                    views = torch.cat([random_views(x, g), random_views(x, g)])
                    terms = compute_losses(cfg, model, views, labels[idx], labelled[idx], epoch=epoch,
                                           step=step, total_steps=total_steps)
                    optimizer.zero_grad(set_to_none=True)
                    terms["loss"].backward()
                    torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
                    optimizer.step()
                for k, v in terms.items():
                    sums[k] = sums.get(k, 0.0) + float(v.detach())
            with nvtx.range("evaluate"):
                acc = evaluate(model, images, labels, labelled, cfg.old_classes)
            record = {"epoch": epoch + 1, **{k: v / steps_per_epoch for k, v in sums.items()}, **acc,
                      "lr": optimizer.param_groups[0]["lr"], "grl_coeff": model.grl_coeff,
                      "seconds": time.perf_counter() - t0}
            history.append(record)
            bar.set_postfix(loss=f"{record['loss']:.3f}", all=f"{acc['all']:.3f}", new=f"{acc['new']:.3f}")
            if run_dir is not None:
                run_dir.log(record)
                if (epoch + 1) % cfg.checkpoint_every == 0 or epoch + 1 == cfg.epochs:
                    run_dir.save_checkpoint({"model": model.state_dict(),
                                             "optimizer": optimizer_state(optimizer),
                                             "rng": capture_rng({"data": g}), "epoch": epoch + 1})
    if run_dir is not None and history:
        ep = [r["epoch"] for r in history]
        plot_curves(run_dir.path / "accuracy.png",
                    {k: list(zip(ep, [r[k] for r in history], strict=True)) for k in ("all", "old", "new")},
                    xlabel="epoch", ylabel="clustering accuracy (unlabelled train)",
                    title=f"{cfg.method} on {cfg.dataset}")
        plot_curves(run_dir.path / "loss.png",
                    {"loss": list(zip(ep, [r["loss"] for r in history], strict=True))},
                    xlabel="epoch", ylabel="training loss", title=cfg.method)
    final = {k: history[-1][k] for k in ("all", "old", "new")} if history else {}
    return {"final": final, "history": history, "model": model}


# ---------------------------------------------------------------------------------------------------
# CLI


def add_arguments(parser: argparse.ArgumentParser) -> None:
    add_config_arguments(parser, FerGcdConfig, presets=PRESETS, default_preset="cpu", skip=("name",))
    parser.add_argument("--name", default=None, help="run name (default: fer-gcd-<method>-seed<seed>)")
    parser.add_argument("--runs-dir", default="runs")
    parser.add_argument("--no-progress", action="store_true")


def config_from_args(args: argparse.Namespace) -> FerGcdConfig:
    return _config_from_args(args, FerGcdConfig, PRESETS)


def main(args: argparse.Namespace) -> int:
    cfg = config_from_args(args)
    name = args.name or f"fer-gcd-{cfg.method}-seed{cfg.seed}"
    run_dir = RunDir(Path(args.runs_dir) / name, resume=args.resume, overwrite=args.overwrite)
    out = train(cfg, run_dir, resume=args.resume, progress=not args.no_progress)
    f = out["final"]
    print(f"{cfg.method}: All {f['all']:.4f}  Old {f['old']:.4f}  New {f['new']:.4f}  → {run_dir.path}")
    return 0
