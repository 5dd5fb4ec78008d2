"""pyvision.fer_gcd.train: the loss assembly, a tiny optimization that fits a fixed batch (CE halves),
and the ``fer-gcd`` task of the CLI (runs/<name>/ files, --resume continuing with an identical curve)."""

import json

import pytest
import torch

import pyvision.fer_gcd.train as T
from pyvision.cli import main as cli_main
from pyvision.data.faces import make_faces

TINY = dict(n_train=96, image_size=16, resnet_width=4, hidden_dim=16, proj_dim=8, mlp_layers=2,
            batch_size=16, epochs=3, warmup_teacher_temp_epochs=2, cluster_warmup_epochs=1)


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
    assert float(t["ce"]) < 0.5 * first


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


def test_config_errors():
    with pytest.raises(ValueError, match="method"):
        T.FerGcdConfig(method="gcd")
    with pytest.raises(ValueError, match="old_classes"):
        T.FerGcdConfig(old_classes=(0, 1, 2, 3, 4, 5, 6))
    with pytest.raises(ValueError, match="data-root"):
        T.load_dataset(T.FerGcdConfig(dataset="fer2013"))
