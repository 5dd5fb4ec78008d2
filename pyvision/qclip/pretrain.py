"""Contrastive pretraining of the tiny CLIP on captioned photo crops: a CPU stand-in for CLIP's web
pretraining, so that Q-CLIP's CPU evidence adapts a frozen backbone whose towers are *aligned*.

What it stands in for. Q-CLIP trains only adapters, prompt context and a 5→1 head on top of a frozen
CLIP (PE-Core-L14 in the release) whose image and text towers were aligned by InfoNCE on hundreds of
millions of web image–caption pairs. A randomly initialised tiny CLIP has no such alignment, and the
method's premise is missing. Here both towers of the tiny CLIP are trained from scratch, as CLIP is, with
the symmetric InfoNCE loss on image–caption pairs built offline:

- images: random square crops (side 40–90 % of the short side, random horizontal flip) of
  scikit-image's bundled photos — only those named in ``photos`` (callers exclude the VQA test split's
  source photos), plus extra bundled images that the synthetic VQA set never uses (``EXTRA_PHOTOS``);
- each crop gets each of four appearance edits with probability ½ at a strength s ~ U(0, 1): blur,
  noise, JPEG and exposure (darker or brighter), with ``pyvision.data.vqa.distort_frames`` (the same
  implementations as the synthetic VQA set: a web CLIP has seen these effects in other forms, so this
  stand-in is an optimistic one);
- a caption from templates, e.g. "a blurry dark photo of a cat", "a very noisy picture of a clock",
  "a sharp photo of old coins", "a slightly blocky video frame": the content (dropped with
  probability 0.2), the kind of each edit and its rough degree ("slightly" for s < 1/3, "very" for
  s > 2/3) — general visual vocabulary that a web-trained CLIP also has.

What it leaks, and what not. The captions name the content and the kind and rough degree of the visible
appearance edits, and the edits follow the synthetic set's recipe (kinds, strength range, probability
½ each); the photos of the VQA train and val splits are among the pretraining photos (as crops, never
their clips or scores). They never contain a MOS value, the MOS formula or its weights, any quality word
("bad", "poor", "fair", "good", "excellent", "quality": those token embeddings stay at their random
initialisation), nor stutter (frame drops: a temporal distortion that still images cannot show).

Loss (CLIP's): with unit-norm image features u_i, text features v_j of a batch of B pairs and the
learned temperature t (exp t clamped to ≤ 100),

    l_ij = exp(t) · u_i·v_j,    L = ½ [CE(l, diag) + CE(lᵀ, diag)] = −(1/2B) Σ_i [log softmax_j l_ij
                                                                       + log softmax_j l_ji]  at j = i.

The checkpoint is a plain safetensors file of the CLIP state dict (loaded by
``pyvision.models.clip.load_clip_checkpoint(path, "tiny")``) whose metadata records the photos it was
trained on (``checkpoint_photos``), so a run can check that they are disjoint from its test split.
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

import kernels.nvtx
from kernels.runs import atomic_write, cosine_lr
from pyvision.data.vqa import distort_frames, load_photo, normalize_frames
from pyvision.models.clip import CLIP, CLIP_PRESETS
from pyvision.tokenizer import SimpleTokenizer

__all__ = [
    "CAPTION_CONTENT",
    "EXTRA_PHOTOS",
    "PretrainConfig",
    "PretrainPairs",
    "caption",
    "checkpoint_photos",
    "clip_contrastive_loss",
    "make_pairs",
    "pretrain_clip",
    "retrieval_accuracy",
    "save_clip_checkpoint",
]

# What each photo shows, in words (the synthetic VQA set's photos first, then extras it never uses).
CAPTION_CONTENT = {
    "astronaut": "an astronaut",
    "coffee": "a cup of coffee",
    "chelsea": "a cat",
    "rocket": "a rocket",
    "camera": "a man with a camera",
    "coins": "old coins",
    "hubble_deep_field": "galaxies in space",
    "immunohistochemistry": "cells under a microscope",
    "horse": "a horse",
    "moon": "the moon",
    "page": "a page of text",
    "text": "printed text",
    "clock": "a clock",
    "brick": "a brick wall",
    "grass": "grass",
    "gravel": "gravel",
    "retina": "a retina",
    "cell": "a cell",
    "logo": "a logo",
    "microaneurysms": "blood vessels",
    "colorwheel": "a color wheel",
    "checkerboard": "a checkerboard",
    "shepp_logan_phantom": "a medical scan",
}
EXTRA_PHOTOS = (
    "retina",
    "cell",
    "logo",
    "microaneurysms",
    "colorwheel",
    "checkerboard",
    "shepp_logan_phantom",
)
# (slightly, plain, very) wording per edit; exposure has a darker and a brighter wording.
_WORDS = {
    "blur": ("slightly blurry", "blurry", "very blurry"),
    "noise": ("slightly noisy", "noisy", "very noisy"),
    "jpeg": ("slightly blocky", "blocky", "very blocky"),
    "dark": ("slightly dark", "dark", "very dark"),
    "bright": ("slightly bright", "bright", "very bright"),
}
_CLEAN = ("sharp", "clean", "clear", "")
_NOUNS = ("photo", "picture", "video frame")
# Index into distort_frames' strength vector (the synthetic set's order: blur, noise, jpeg, stutter,
# exposure); stutter (3) is never applied here.
_EDITS = {"blur": 0, "noise": 1, "jpeg": 2, "exposure": 4}


@dataclass
class PretrainConfig:
    """Defaults: 1–2.5 minutes on one CPU thread of a busy 2-core box (held-out retrieval in groups of 16
    ≈ 0.79, chance ≈ 0.06). ``photos`` are scikit-image names (see CAPTION_CONTENT)."""

    photos: tuple[str, ...] = ()
    extra_photos: bool = True  # add EXTRA_PHOTOS (never used by the synthetic VQA set)
    pairs: int = 6000  # image–caption pairs drawn once, offline
    size: int = 32
    steps: int = 600
    batch_size: int = 128
    lr: float = 1e-3
    warmup_steps: int = 100
    weight_decay: float = 0.05  # on matrices only (not embeddings, norms, biases, temperature)
    content_dropout: float = 0.2
    seed: int = 0
    backbone: str = "tiny"


def caption(content: str | None, s: np.ndarray, exposure_sign: float, rng: np.random.Generator) -> str:
    """The caption of one edited crop: appearance words in a fixed order (blur, noise, jpeg, exposure),
    a noun from ``_NOUNS`` and, unless ``content`` is None, "of <content>"."""
    words = []
    for edit, k in _EDITS.items():
        if s[k] <= 0:
            continue
        key = edit if edit != "exposure" else ("dark" if exposure_sign < 0 else "bright")
        words.append(_WORDS[key][0 if s[k] < 1 / 3 else (2 if s[k] > 2 / 3 else 1)])
    if not words:
        clean = _CLEAN[rng.integers(len(_CLEAN))]
        words = [clean] if clean else []
    noun = _NOUNS[rng.integers(len(_NOUNS))]
    text = " ".join([*words, noun])
    text = ("an " if text[0] in "aeiou" else "a ") + text
    return text if content is None else f"{text} of {content}"


@dataclass
class PretrainPairs:
    images: torch.Tensor  # (N, H, W, 3) uint8
    captions: list[str]
    photo: np.ndarray  # (N,) index into names
    names: tuple[str, ...]


def _crop(photo: np.ndarray, size: int, rng: np.random.Generator) -> np.ndarray:
    h, w = photo.shape[:2]
    side = max(8, int(rng.uniform(0.4, 0.9) * min(h, w)))
    y, x = rng.integers(0, h - side + 1), rng.integers(0, w - side + 1)
    crop = torch.from_numpy(np.ascontiguousarray(photo[y : y + side, x : x + side])).permute(2, 0, 1)
    crop = F.interpolate(crop[None].float(), size=(size, size), mode="bilinear", antialias=True)[0]
    out = crop.clamp(0, 255).round().byte().permute(1, 2, 0).numpy()
    return out[:, ::-1].copy() if rng.random() < 0.5 else out


def make_pairs(
    names: tuple[str, ...] | list[str],
    n: int,
    size: int = 32,
    seed: int = 0,
    content_dropout: float = 0.2,
) -> PretrainPairs:
    """``n`` (edited crop, caption) pairs from the named photos (recipe: module doc), deterministic in
    ``seed``. Photos that need a download are skipped; none left is a ValueError."""
    unknown = [p for p in names if p not in CAPTION_CONTENT]
    if unknown:
        raise ValueError(f"photos must be names from CAPTION_CONTENT, got unknown {unknown}")
    if n < 1:
        raise ValueError(f"n must be positive, got {n}")
    loaded = [(p, load_photo(p)) for p in names]
    loaded = [(p, img) for p, img in loaded if img is not None]
    if not loaded:
        raise ValueError(f"none of the photos {list(names)} is available here")
    from pyvision.data.vqa import _shrink

    used = tuple(p for p, _ in loaded)
    photos = [_shrink(img, 4 * size) for _, img in loaded]
    rng = np.random.default_rng(seed)
    images, captions, which = [], [], []
    for _ in range(n):
        i = int(rng.integers(len(photos)))
        s = rng.uniform(0, 1, 5) * (rng.random(5) < 0.5)
        s[3] = 0.0  # no stutter on stills
        sign = float(rng.choice([-1.0, 1.0]))
        images.append(distort_frames(_crop(photos[i], size, rng)[None], s, sign, rng)[0])
        content = None if rng.random() < content_dropout else CAPTION_CONTENT[used[i]]
        captions.append(caption(content, s, sign, rng))
        which.append(i)
    return PretrainPairs(torch.from_numpy(np.stack(images)), captions, np.asarray(which), used)


def clip_contrastive_loss(
    image_features: torch.Tensor, text_features: torch.Tensor, logit_scale: torch.Tensor
):
    """CLIP's symmetric InfoNCE over a batch of matched pairs (formula: module doc); features need not be
    normalised, ``logit_scale`` is t (the logits are scaled by exp t)."""
    if image_features.shape != text_features.shape or image_features.dim() != 2:
        raise ValueError(
            f"image_features and text_features must both be (B, D), got {tuple(image_features.shape)} "
            f"and {tuple(text_features.shape)}"
        )
    logits = logit_scale.exp() * F.normalize(image_features, dim=-1) @ F.normalize(text_features, dim=-1).T
    target = torch.arange(len(logits), device=logits.device)
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


@torch.no_grad()
def retrieval_accuracy(model: CLIP, pairs: PretrainPairs, group: int = 16, tokenizer=None) -> float:
    """Image→caption top-1 accuracy within consecutive groups of ``group`` pairs: a hit when the caption
    with the highest cosine similarity reads the same as the image's own (duplicate captions in a group
    count as correct). Chance is about 1/group (a little more where captions repeat)."""
    tok = tokenizer or SimpleTokenizer(context_length=model.config.text.context_length)
    model.eval()
    hits, total = 0, 0
    for s in range(0, len(pairs.captions) - group + 1, group):
        img = model.encode_image(normalize_frames(pairs.images[s : s + group]))
        txt = model.encode_text(tok(pairs.captions[s : s + group]))
        best = (F.normalize(img, dim=-1) @ F.normalize(txt, dim=-1).T).argmax(1).tolist()
        caps = pairs.captions[s : s + group]
        hits += sum(caps[j] == caps[i] for i, j in enumerate(best))
        total += group
    if total == 0:
        raise ValueError(f"retrieval needs at least {group} pairs, got {len(pairs.captions)}")
    return hits / total


def _param_groups(model: CLIP, used_rows: torch.nn.Parameter, weight_decay: float):
    decay, no_decay = [], [used_rows]
    for name, p in model.named_parameters():
        if name != "token_embedding.weight":
            (decay if p.dim() >= 2 else no_decay).append(p)
    return [{"params": decay, "weight_decay": weight_decay}, {"params": no_decay, "weight_decay": 0.0}]


def pretrain_clip(cfg: PretrainConfig, progress: bool = True) -> tuple[CLIP, dict]:
    """Train a fresh ``cfg.backbone`` CLIP contrastively on ``make_pairs`` of ``cfg.photos`` (+ extras);
    returns the model (eval mode) and a summary (photos used, final loss, seconds)."""
    if not cfg.photos:
        raise ValueError("PretrainConfig.photos must name at least one photo")
    if cfg.backbone not in CLIP_PRESETS:
        raise ValueError(f"unknown CLIP preset {cfg.backbone!r}; known: {sorted(CLIP_PRESETS)}")
    names = tuple(cfg.photos) + (
        tuple(p for p in EXTRA_PHOTOS if p not in cfg.photos) if cfg.extra_photos else ()
    )
    t0 = time.perf_counter()
    pairs = make_pairs(names, cfg.pairs, cfg.size, cfg.seed, cfg.content_dropout)
    torch.manual_seed(cfg.seed)
    model = CLIP(cfg.backbone)
    tok = SimpleTokenizer(context_length=model.config.text.context_length)
    images, tokens = normalize_frames(pairs.images), tok(pairs.captions)
    # Only the embedding rows of tokens in the captions ever get a gradient; training them as a small
    # parameter is the same AdamW update (zero-gradient rows of the full table never move without weight
    # decay) at a fraction of the cost of the 49,408-row table.
    used, local = torch.unique(tokens, return_inverse=True)
    rows = torch.nn.Parameter(model.token_embedding.weight.detach()[used].clone())
    model.token_embedding.weight.requires_grad_(False)
    opt = torch.optim.AdamW(_param_groups(model, rows, cfg.weight_decay), lr=cfg.lr)

    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda step: cosine_lr(1.0, step, cfg.steps, warmup=cfg.warmup_steps)
    )
    gen = torch.Generator().manual_seed(cfg.seed)
    model.train()
    losses: list[float] = []
    order = torch.randperm(len(images), generator=gen)
    pos = 0
    for _ in tqdm(range(cfg.steps), desc="pretrain CLIP", disable=not progress, leave=False):
        with kernels.nvtx.range("pretrain step"):
            if pos + cfg.batch_size > len(order):
                order, pos = torch.randperm(len(images), generator=gen), 0
            b = order[pos : pos + cfg.batch_size]
            pos += cfg.batch_size
            text = model.encode_text(tokens[b], embeddings=rows[local[b]])
            loss = clip_contrastive_loss(model.encode_image(images[b]), text, model.logit_scale)
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            sched.step()
            with torch.no_grad():
                model.logit_scale.clamp_(0, math.log(100))
            losses.append(loss.item())
    with torch.no_grad():
        model.token_embedding.weight[used] = rows
    model.token_embedding.weight.requires_grad_(True)
    model.eval()
    summary = {
        "photos": list(pairs.names),
        "final_loss": float(np.mean(losses[-20:])),
        "seconds": time.perf_counter() - t0,
        "config": asdict(cfg),
    }
    return model, summary


def save_clip_checkpoint(path: str | os.PathLike, model: CLIP, summary: dict) -> None:
    """The CLIP state dict as one safetensors file (written atomically), ``summary`` as JSON metadata."""
    from safetensors.torch import save

    tensors = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, save(tensors, metadata={"pretrain": json.dumps(summary)}))


def checkpoint_photos(path: str | os.PathLike) -> list[str] | None:
    """The photos a ``save_clip_checkpoint`` file was pretrained on (None for other checkpoints)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"CLIP checkpoint {str(path)!r} does not exist")
    if path.suffix != ".safetensors":
        return None
    with safe_open(str(path), framework="pt") as f:
        meta = f.metadata() or {}
    return json.loads(meta["pretrain"])["photos"] if "pretrain" in meta else None
