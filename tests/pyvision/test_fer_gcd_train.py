"""pyvision.fer_gcd.train: the loss assembly, a tiny optimization that fits a fixed batch (CE halves),
backbone pretraining (learns, never reads a label it must not), a tiny run that beats chance on New,
and the ``fer-gcd`` task of the CLI (runs/<name>/ files, --resume continuing with an identical curve)."""

import json

import numpy as np
import pytest
import torch

import pyvision.fer_gcd.train as T
from pyvision.cli import main as cli_main
from pyvision.data.faces import make_faces
from pyvision.fer_gcd.evaluate import split_cluster_accuracy

TINY = dict(n_train=96, image_size=16, resnet_width=4, hidden_dim=16, proj_dim=8, mlp_layers=2,
            batch_size=16, epochs=3, warmup_teacher_temp_epochs=2, cluster_warmup_epochs=1, pretrain_epochs=1)


@pytest.mark.parametrize("method", ["simgcd", "fer-gcd"])
def test_loss_terms_and_a_fixed_batch_is_fitted(method):
    torch.manual_seed(0)
    cfg = T.FerGcdConfig(method=method, **TINY, lr=5e-3)
    model = T.build_model(cfg)
    data = make_faces(32, seed=1, config=T.FaceGeneratorConfig(image_size=16))
    labelled = torch.isin(data.labels, torch.tensor(cfg.old_classes)) & (torch.arange(32) % 2 == 0)
    views = torch.cat([data.images, data.images.flip(-1)])
    terms = T.compute_losses(cfg, model, views, data.labels, labelled, epoch=1, step=0, total_steps=10)
    w = cfg.sup_weight
    expected = (1 - w) * (terms["distill"] + cfg.memax_weight * terms["memax"] + terms["infonce"]) + w * (
        terms["ce"] + terms["supcon"])
    if method == "fer-gcd":
        expected = expected + 0.3 * terms["lsr"] + 0.2 * terms["worst"] + 0.2 * terms["compact"]
        assert terms["compact"] > 0  # past the warm-up epoch
    else:
        assert "worst" not in terms and model.adv_head is None
    torch.testing.assert_close(terms["loss"], expected)
    opt = torch.optim.AdamW(model.parameters(), lr=5e-3)
    first = None
    for step in range(40):
        t = T.compute_losses(cfg, model, views, data.labels, labelled, epoch=1, step=step, total_steps=40)
        opt.zero_grad()
        t["loss"].backward()
        opt.step()
        first = first if first is not None else float(t["ce"].detach())
    assert float(t["loss"].detach()) < float(terms["loss"].detach())
    assert float(t["ce"].detach()) < 0.5 * first


def test_gcd_split():
    labels = torch.tensor([0] * 10 + [5] * 4 + [1] * 6)
    mask = T.gcd_split(labels, (0, 1), 0.5, torch.Generator().manual_seed(0))
    assert int(mask[labels == 0].sum()) == 5 and int(mask[labels == 1].sum()) == 3
    assert not mask[labels == 5].any()


def _argv(tmp_path, name, *extra):
    opts = []
    for k, v in TINY.items():
        opts += [f"--{k.replace('_', '-')}", str(v)]
    return ["train", "--task", "fer-gcd", "--runs-dir", str(tmp_path), "--name", name, "--no-progress",
            "--checkpoint-every", "1", *opts, *extra]


def _curve(path):
    return [{k: v for k, v in json.loads(line).items() if k != "seconds"}
            for line in path.read_text().splitlines()]


def test_cli_run_dir_and_resume_identical_curve(tmp_path, monkeypatch):
    assert cli_main(_argv(tmp_path, "full")) == 0
    run = tmp_path / "full"
    for f in ("config.json", "metrics.jsonl", "checkpoint.safetensors", "accuracy.png", "loss.png"):
        assert (run / f).is_file(), f
    assert json.loads((run / "config.json").read_text())["method"] == "fer-gcd"
    full = _curve(run / "metrics.jsonl")
    assert [r["epoch"] for r in full] == [1, 2, 3]
    assert all(0 <= r["all"] <= 1 for r in full) and full[-1]["grl_coeff"] > 0

    # interrupt the same run during epoch 3, then resume it
    real_evaluate, calls = T.evaluate, []

    def crash_on_third(*args, **kwargs):
        calls.append(1)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real_evaluate(*args, **kwargs)

    monkeypatch.setattr(T, "evaluate", crash_on_third)
    with pytest.raises(KeyboardInterrupt):
        cli_main(_argv(tmp_path, "cut"))
    monkeypatch.setattr(T, "evaluate", real_evaluate)
    assert len(_curve(tmp_path / "cut" / "metrics.jsonl")) == 2
    with pytest.raises(FileExistsError, match="resume"):
        cli_main(_argv(tmp_path, "cut"))
    assert cli_main(_argv(tmp_path, "cut", "--resume")) == 0
    assert _curve(tmp_path / "cut" / "metrics.jsonl") == full


def _pretrained_state(cfg, labels_override=None):
    torch.manual_seed(0)
    images, labels = T.load_dataset(cfg)
    labelled = T.gcd_split(labels, cfg.old_classes, cfg.labelled_fraction, torch.Generator().manual_seed(1))
    if labels_override is not None:
        labels = labels_override(labels, labelled)
    model = T.build_model(cfg)
    losses = T.pretrain_backbone(cfg, model, images, labels, labelled, torch.Generator().manual_seed(2))
    return losses, model.backbone.state_dict()


@pytest.mark.parametrize("mode", ["simclr", "supervised-old"])
def test_pretraining_learns_and_reads_no_label_it_must_not(mode):
    cfg = T.FerGcdConfig(**{**TINY, "n_train": 64, "pretrain_epochs": 4, "batch_size": 8}, pretrain=mode)
    losses, state = _pretrained_state(cfg)
    assert len(losses) == 4 and losses[-1] < losses[0]

    # SimCLR reads no label at all; supervised-old only the labels of the labelled (old-class) samples.
    def scramble(labels, labelled):
        hidden = ~labelled if mode == "supervised-old" else torch.ones_like(labelled)
        return torch.where(hidden, (labels + 3) % 7, labels)

    _, state2 = _pretrained_state(cfg, scramble)
    for k in state:
        torch.testing.assert_close(state2[k], state[k], rtol=0, atol=0)
    if mode == "supervised-old":  # ...and it does read the labelled ones
        _, state3 = _pretrained_state(cfg, lambda y, m: torch.where(m, (y + 1) % 4, y))
        assert any(not torch.equal(state3[k], state[k]) for k in state)
    # grad_from_block freezes only the GCD stage: pretraining trains every stage and restores the flags
    cfg4 = T.FerGcdConfig(**{**TINY, "n_train": 32, "pretrain_epochs": 1, "batch_size": 8}, pretrain=mode,
                          grad_from_block=4)
    model = T.build_model(cfg4)
    before = {k: v.clone() for k, v in model.backbone.state_dict().items()}
    images, labels = T.load_dataset(cfg4)
    T.pretrain_backbone(cfg4, model, images, labels, torch.ones(32, dtype=torch.bool) & (labels < 4),
                        torch.Generator().manual_seed(0))
    assert not torch.equal(model.backbone.conv1.weight, before["conv1.weight"])
    assert not model.backbone.conv1.weight.requires_grad
    assert model.backbone.layer4[0].conv1.weight.requires_grad


SMALL = dict(n_train=400, epochs=6, pretrain_epochs=15, warmup_teacher_temp_epochs=2, cluster_warmup_epochs=2)


@pytest.mark.parametrize("method", ["simgcd", "fer-gcd"])
def test_small_run_beats_chance_on_new_classes(method):
    """400 generated faces (uniform classes, 3 new of 7), 15 SimCLR + 6 GCD epochs: New is at least 10
    points above chance and All above chance. Chance is computed here on the same unlabelled set: the mean
    Hungarian-matched accuracy of uniformly random predictions (≈ 18 % New, 19 % All).

    Measured (one thread) New for seeds 0-4: SimGCD 35.0 32.9 36.8 36.0 24.7, FER-GCD 37.4 34.7 36.2 38.4
    38.6; All 22.3-25.6 for all ten runs. The +10-point margin holds for 9 of the 10 runs (not SimGCD seed
    4); this test runs seed 0. Old stays low at this size (2.5-20 %): new-class samples outnumber the
    unlabelled old ones and take the old heads in the one Hungarian assignment."""
    cfg = T.FerGcdConfig(method=method, seed=0, **SMALL)
    f = T.train(cfg, progress=False)["final"]
    images, labels = T.load_dataset(cfg)
    labelled = T.gcd_split(labels, cfg.old_classes, cfg.labelled_fraction,
                           torch.Generator().manual_seed(cfg.seed + 1))
    y = labels[~labelled].numpy()
    old = np.isin(y, cfg.old_classes)
    rng = np.random.default_rng(0)
    chance = np.mean([split_cluster_accuracy(y, rng.integers(0, 7, len(y)), old) for _ in range(100)], axis=0)
    assert 0.15 < chance[2] < 0.22  # the reference itself is what the docstring says
    assert f["new"] > chance[2] + 0.10, (f, chance)
    assert f["all"] > chance[0], (f, chance)


def test_config_errors():
    with pytest.raises(ValueError, match="method"):
        T.FerGcdConfig(method="gcd")
    with pytest.raises(ValueError, match="old_classes"):
        T.FerGcdConfig(old_classes=(0, 1, 2, 3, 4, 5, 6))
    with pytest.raises(ValueError, match="pretrain"):
        T.FerGcdConfig(pretrain="dino")
    with pytest.raises(ValueError, match="class_balance"):
        T.FerGcdConfig(class_balance="long")
    with pytest.raises(ValueError, match="data-root"):
        T.load_dataset(T.FerGcdConfig(dataset="fer2013"))
