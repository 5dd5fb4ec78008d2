import math

import numpy as np
import pytest
import torch

from pyvision.models.clip import CLIP
from pyvision.qclip.model import QCLIP, qclip_config
from pyvision.qclip.pretrain import (
    PretrainConfig,
    caption,
    checkpoint_photos,
    clip_contrastive_loss,
    make_pairs,
    pretrain_clip,
    retrieval_accuracy,
)
from pyvision.qclip.train import TrainConfig, resolve_backbone, synthetic_test_photos

QUALITY_WORDS = {"bad", "poor", "fair", "good", "excellent", "quality"}


@pytest.fixture(autouse=True)
def one_thread():
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def test_contrastive_loss_by_hand():
    eye = torch.eye(2)
    t = torch.tensor(math.log(2.0))  # logits = 2 · cosines
    # matched and orthogonal: every row/column is softmax([2, 0]) at the right place
    assert clip_contrastive_loss(3 * eye, eye, t).item() == pytest.approx(math.log(1 + math.exp(-2)))
    # both captions equal the first image: logits [[2, 2], [0, 0]]
    # image→text rows: log 2, log 2; text→image rows of [[2, 0], [2, 0]]: log(1 + e^-2), log(1 + e^2)
    text = torch.tensor([[1.0, 0.0], [2.0, 0.0]])
    want = 0.5 * (math.log(2) + 0.5 * (math.log(1 + math.exp(-2)) + math.log(1 + math.exp(2))))
    assert clip_contrastive_loss(eye, text, t).item() == pytest.approx(want)
    with pytest.raises(ValueError, match="text_features"):
        clip_contrastive_loss(eye, torch.ones(3, 2), t)


def test_captions_name_appearance_never_quality():
    rng = np.random.default_rng(0)
    text = caption("a cat", np.array([0.9, 0.0, 0.2, 0.0, 0.5]), -1.0, rng)
    assert text.startswith("a very blurry slightly blocky dark ") and text.endswith(" of a cat"), text
    assert caption(None, np.array([0.0, 0.5, 0.0, 0.0, 0.8]), 1.0, rng).startswith("a noisy very bright ")
    clean = caption(None, np.zeros(5), 1.0, rng)
    assert not any(w in clean for w in ("blurry", "noisy", "blocky", "dark", "bright")), clean
    pairs = make_pairs(("coffee", "clock"), 64, size=16, seed=1)
    assert pairs.images.shape == (64, 16, 16, 3) and pairs.images.dtype == torch.uint8
    words = {w for c in pairs.captions for w in c.split()}
    assert not words & QUALITY_WORDS and {"blurry", "noisy"} <= words
    assert {"coffee", "clock"} <= words  # content words are there (some captions drop them)
    with pytest.raises(ValueError, match="CAPTION_CONTENT"):
        make_pairs(("coffee", "not_a_photo"), 4)


def test_pretraining_aligns_towers():
    # Checked over seeds 0-3 with these settings: held-out retrieval 0.34-0.38, a random CLIP 0.05-0.10,
    # chance about 1/16.
    photos = ("coffee", "chelsea", "clock", "coins")
    cfg = PretrainConfig(
        photos=photos, extra_photos=False, pairs=640, steps=60, batch_size=64, warmup_steps=10, lr=3e-3
    )
    model, summary = pretrain_clip(cfg, progress=False)
    assert summary["photos"] == list(photos)
    held_out = make_pairs(photos, 192, seed=100)  # fresh crops, edits and captions
    torch.manual_seed(0)
    pretrained, random = (
        retrieval_accuracy(model, held_out),
        retrieval_accuracy(CLIP("tiny").eval(), held_out),
    )
    assert pretrained > 0.25 and pretrained > random + 0.15, (pretrained, random)


def test_pretrained_tiny_flag_pretrains_loads_and_guards_the_test_split(tmp_path):
    path = tmp_path / "clip.safetensors"
    cfg = TrainConfig(
        n_sources=6,
        clips_per_source=2,
        seed=0,
        pretrained_tiny=str(path),
        pretrain_steps=2,
        pretrain_pairs=32,
    )
    assert resolve_backbone(cfg, progress=False) == str(path)
    test = synthetic_test_photos(cfg)
    seen = checkpoint_photos(path)
    assert test and not set(test) & set(seen) and "retina" in seen  # extras join, test photos never
    stamp = path.stat().st_mtime_ns
    assert resolve_backbone(cfg, progress=False) == str(path) and path.stat().st_mtime_ns == stamp  # loaded
    model = QCLIP(qclip_config("tiny", checkpoint=str(path)))
    saved = CLIP("tiny")
    from safetensors.torch import load_file

    saved.load_state_dict(load_file(str(path)))
    assert torch.equal(model.clip.visual.proj, saved.visual.proj)
    assert not any(p.requires_grad for p in model.clip.parameters())
    other = next(
        s for s in range(1, 50) if set(synthetic_test_photos(TrainConfig(n_sources=6, seed=s))) & set(seen)
    )
    with pytest.raises(ValueError, match="test split"):
        resolve_backbone(TrainConfig(n_sources=6, clips_per_source=2, seed=other, pretrained_tiny=str(path)))
    with pytest.raises(ValueError, match="not both"):
        resolve_backbone(TrainConfig(pretrained_tiny=str(path), checkpoint=str(path)))
    with pytest.raises(ValueError, match="photos must name"):
        pretrain_clip(PretrainConfig())
