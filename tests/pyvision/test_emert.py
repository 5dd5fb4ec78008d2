"""EMERT: gradient reversal, every loss term by hand, model shapes and decoupling gradients, protocols."""

import math

import numpy as np
import pytest
import torch

import pyvision.emert.model as emert_model
from pyvision.emert import (
    EMERT,
    PROTOCOLS,
    EMERTModelConfig,
    emert_loss,
    fold_splits,
    get_protocol,
    modality_loss,
    task_loss,
)

TINY = dict(face_width=4, lstm_hidden=16, lstm_layers=3, d=16, heads=8, depth=2, max_tokens=8, dropout=0.0)


def _inputs(b=3, frames=2, steps=5, size=32):
    g = torch.Generator().manual_seed(0)
    return {
        "face": torch.rand(b, frames, 3, size, size, generator=g),
        "eye": torch.randn(b, steps, 39, generator=g),
        "eye2": torch.randn(b, steps, 2, generator=g),
    }


def test_modality_loss_by_hand():
    # stream 0: uniform logits, target 0 → log 3; stream 1: logits (0, log 2, 0), target 1 → −log(2/4).
    z = torch.tensor([[[0.0, 0.0, 0.0], [0.0, math.log(2), 0.0]]]).repeat(2, 1, 1)
    ids = torch.tensor([0, 1])
    assert float(modality_loss(z, ids)) == pytest.approx(math.log(3) + math.log(2))
    with pytest.raises(ValueError, match="mod_ids"):
        modality_loss(z, torch.tensor([0, 1, 2]))
    with pytest.raises(ValueError, match="logits"):
        modality_loss(z[0], ids)


def _out_by_hand():
    return {
        "feat": torch.zeros(1, 4),
        "er": torch.tensor([[0.0, 0.0]]),
        "fer": torch.tensor([[math.log(3), 0.0]]),
        "reg": torch.zeros(1, 3),
        "mod_shared": torch.zeros(1, 3, 3),
        "mod_private": torch.zeros(1, 3, 3),
        "mod_ids": torch.tensor([0, 1, 2]),
    }


def test_task_and_total_loss_by_hand():
    out = _out_by_hand()
    batch = {"er": torch.tensor([0]), "fer": torch.tensor([0]), "reg": torch.tensor([[0.5, 2.0, 0.0]])}
    # CE(er) = log 2; CE(fer) = −log(3/4); SmoothL1 = mean(½·0.5², 2 − ½, 0) = 1.625/3.
    t = task_loss(out, batch, er_weight=1.0, fer_weight=1.0, reg_weight=0.5)
    assert float(t["er"]) == pytest.approx(math.log(2))
    assert float(t["fer"]) == pytest.approx(math.log(4 / 3))
    assert float(t["reg"]) == pytest.approx(1.625 / 3)
    assert float(t["task"]) == pytest.approx(math.log(2) + math.log(4 / 3) + 0.5 * 1.625 / 3)
    # Uniform modality logits on 3 streams: each loss = 3·log 3.
    tot = emert_loss(out, batch, alpha=0.1, beta=0.2, reg_weight=0.5)
    assert float(tot["adv"]) == pytest.approx(3 * math.log(3))
    assert float(tot["loss"]) == pytest.approx(float(t["task"]) + 0.3 * 3 * math.log(3))
    with pytest.raises(ValueError, match="'fer' labels"):
        task_loss(out, {"er": torch.tensor([0])})
    with pytest.raises(ValueError, match="alpha"):
        emert_loss(out, batch, alpha=-1.0)


def test_model_shapes_and_subsets():
    x = _inputs()
    out = EMERT(EMERTModelConfig(num_er_classes=7, num_fer_classes=3, **TINY))(x)
    assert out["er"].shape == (3, 7) and out["fer"].shape == (3, 3) and out["reg"].shape == (3, 3)
    assert out["mod_shared"].shape == (3, 3, 3) and out["mod_ids"].tolist() == [0, 1, 2]
    eye_only = EMERT(EMERTModelConfig(modalities=("eye", "eye2"), **TINY))
    o = eye_only({k: x[k] for k in ("eye", "eye2")})
    assert o["mod_private"].shape == (3, 2, 3) and o["mod_ids"].tolist() == [1, 2]
    assert not any("face" in n for n, _ in eye_only.named_parameters())
    with pytest.raises(ValueError, match="lacks the stream"):
        eye_only({"eye": x["eye"]})
    with pytest.raises(ValueError, match=r"eye must be \(B, T, 39\)"):
        eye_only({"eye": x["eye"][..., :5], "eye2": x["eye2"]})
    with pytest.raises(ValueError, match="modalities"):
        EMERTModelConfig(modalities=("audio",))
    with pytest.raises(ValueError, match="divisible"):
        EMERTModelConfig(d=10, heads=8)


def test_adversarial_gradient_is_reversed_on_shared_path_only(monkeypatch):
    """The adversarial loss trains the modality classifier normally and the shared projection with the
    reversed gradient: against the same loss without reversal, the classifier's gradient is equal and the
    shared projection's is negated; the private projections get none from it."""
    torch.manual_seed(0)
    model = EMERT(EMERTModelConfig(**TINY)).eval()
    x = _inputs()

    def grads(lam):
        model.zero_grad()
        out = model(x, grl_lambda=lam)
        modality_loss(out["mod_shared"], out["mod_ids"]).backward()
        return {
            n: (p.grad.clone() if p.grad is not None else torch.zeros_like(p))
            for n, p in model.named_parameters()
        }

    rev = grads(1.0)
    monkeypatch.setattr(emert_model, "grad_reverse", lambda t, lam=1.0: t)
    plain = grads(1.0)
    shared = [n for n in rev if n.startswith("shared.")]
    assert shared and all(rev[n].abs().sum() > 0 for n in shared)
    for n in shared:
        torch.testing.assert_close(rev[n], -plain[n])
    for n in ("modality_classifier.weight", "modality_classifier.bias"):
        torch.testing.assert_close(rev[n], plain[n])
    assert all(rev[n].abs().sum() == 0 for n in rev if n.startswith("private."))


def test_protocols_and_splits():
    assert len(PROTOCOLS) == 7
    assert {p.labels for p in PROTOCOLS.values()} == {"er", "fer"}
    assert {p.split for p in PROTOCOLS.values()} == {"subject_dependent", "subject_independent"}
    assert get_protocol("er7-face").modalities == ("face",)
    with pytest.raises(ValueError, match="unknown protocol"):
        get_protocol("er9")
    rng = np.random.default_rng(0)
    labels, subjects = rng.integers(0, 7, 70), rng.integers(0, 10, 70)
    for split in ("subject_dependent", "subject_independent"):
        folds = fold_splits(labels, subjects, split, 5)
        assert len(folds) == 5
        assert np.array_equal(np.sort(np.concatenate([te for _, te in folds])), np.arange(70))
        for tr, te in folds:
            assert not set(tr) & set(te)
            if split == "subject_independent":
                assert not set(subjects[tr]) & set(subjects[te])
    with pytest.raises(ValueError, match="needs >= 5 subjects"):
        fold_splits(labels, np.zeros(70, int), "subject_independent", 5)
    with pytest.raises(ValueError, match="split"):
        fold_splits(labels, subjects, "random", 5)
