"""DUN-SRE training: the loss and schedule by hand, one step lowers the loss, the data family is
split into disjoint training / held-out phantoms, ``--resume`` gives the identical curve, the CLI
entry writes a run directory, and a tiny CPU run beats zero-filled PSNR."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from pyrecon.dunsre.train import (
    TrainConfig,
    build_model,
    evaluate,
    lr_at,
    make_family,
    mse_loss,
    run,
    sample_mask,
    train_step,
)

TINY = dict(stages=2, features=2, dc_features=2, frames=4, size=16, coils=2, accel=4, center_lines=2,
            n_train=2, n_val=1, epochs=3)


def test_mse_loss_by_hand():
    ref = torch.zeros(1, 1, 1, 2, dtype=torch.complex64)
    rec = ref.clone()
    rec[0, 0, 0, 0] = 1 + 1j
    assert mse_loss(rec, ref).item() == pytest.approx(1.0)  # (1² + 1²) / 2 entries
    assert mse_loss(torch.tensor([3.0, 0.0]), torch.tensor([0.0, 4.0])).item() == pytest.approx(12.5)
    with pytest.raises(ValueError, match="same shape"):
        mse_loss(rec, ref[..., :1])


def test_lr_schedule_by_hand():
    cfg = TrainConfig(lr=1e-3, lr_decay=0.95)
    assert lr_at(cfg, 0) == pytest.approx(1e-3)
    assert lr_at(cfg, 2) == pytest.approx(1e-3 * 0.9025)


def test_config_validation():
    with pytest.raises(ValueError, match="frames must be an int"):
        TrainConfig(frames=0)
    with pytest.raises(ValueError, match="dc must be one of"):
        TrainConfig(dc="admm")
    with pytest.raises(ValueError, match="lr_decay"):
        TrainConfig(lr_decay=1.5)
    with pytest.raises(ValueError, match="mask must be"):
        TrainConfig(mask="radial")


def test_family_split_is_disjoint():
    cfg = TrainConfig(**{**TINY, "n_train": 3, "n_val": 2})
    train, val = make_family(cfg, "train"), make_family(cfg, "val")
    assert len(train) == 3 and len(val) == 2
    assert train[0][0].shape == (4, 16, 16) and train[0][1].shape == (2, 16, 16)
    for x_val, _ in val:
        assert all(not torch.equal(x_val, x_tr) for x_tr, _ in train)
    with pytest.raises(ValueError, match="split must be"):
        make_family(cfg, "test")


@pytest.mark.parametrize("kind", ["kt", "vista"])
def test_sample_mask_kinds(kind):
    from pyrecon.sampling import acceleration

    cfg = TrainConfig(**{**TINY, "size": 32, "frames": 8, "accel": 8, "mask": kind})
    m = sample_mask(cfg, 3)
    assert m.shape == (8, 32, 32)
    assert 6 <= acceleration(m) <= 10
    assert not torch.equal(m, sample_mask(cfg, 4))


def test_one_step_lowers_the_loss():
    from pyrecon.ops.sense import sense_forward
    from pyrecon.sampling import kt_mask

    cfg = TrainConfig(**TINY)
    torch.manual_seed(0)
    model = build_model(cfg)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3)
    x, smaps = make_family(cfg, "train")[0]
    x, smaps = x[None], smaps[None]
    mask = kt_mask(cfg.frames, cfg.size, cfg.size, cfg.accel, center_lines=2, seed=0)[None]
    y = sense_forward(x, smaps, mask)
    before = train_step(model, opt, x, smaps, mask, y)
    with torch.no_grad():
        after = mse_loss(model(y, smaps, mask), x).item()
    assert after < before


def _curve(rd) -> list[dict]:
    return [{k: v for k, v in r.items() if k != "seconds"} for r in rd]


def test_resume_gives_the_identical_curve(tmp_path):
    cfg = TrainConfig(**TINY)
    _, full = run(cfg, tmp_path / "full", progress=False)
    run(cfg, tmp_path / "cut", progress=False, stop_after=2)
    lines = (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == 2
    # an interrupt after the checkpoint but before the next epoch's line would be dropped on resume
    with open(tmp_path / "cut" / "metrics.jsonl", "a") as f:
        f.write(json.dumps({"epoch": 3, "train_loss": -1.0}) + "\n")
    _, resumed = run(cfg, tmp_path / "cut", resume=True, progress=False)
    read = lambda p: [json.loads(s) for s in p.read_text().splitlines()]  # noqa: E731
    cut, whole = read(tmp_path / "cut" / "metrics.jsonl"), read(tmp_path / "full" / "metrics.jsonl")
    assert _curve(cut) == _curve(whole)
    assert resumed == full
    with pytest.raises(FileExistsError):
        run(cfg, tmp_path / "full", progress=False)
    with pytest.raises(ValueError, match="configuration differs"):
        run(dataclasses.replace(cfg, lr=2e-3), tmp_path / "full", resume=True, progress=False)


@pytest.mark.parametrize("model", ["plain-unrolled", "dun-sre"])
def test_cli_train_writes_a_run_directory(tmp_path, model):
    from pyrecon.cli import main as cli_main

    argv = ["train", "--model", model, "--runs-dir", str(tmp_path), "--epochs", "1", "--size", "16",
            "--frames", "4", "--coils", "2", "--stages", "2", "--features", "2", "--dc-features", "2",
            "--n-train", "1", "--n-val", "1", "--center-lines", "2", "--accel", "4"]
    assert cli_main(argv) == 0
    rd = tmp_path / model
    for name in ("config.json", "metrics.jsonl", "checkpoint.safetensors", "curves.png", "val_frame.png",
                 "results.json"):
        assert (rd / name).is_file(), name
    assert json.loads((rd / "config.json").read_text())["equivariant"] is (model == "dun-sre")
    assert cli_main(argv + ["--resume"]) == 0  # a finished run resumes to the same results
    assert len((rd / "metrics.jsonl").read_text().splitlines()) == 1


def test_tiny_run_beats_zero_filled(tmp_path):
    """24², 6 frames, 4 coils, R = 4, a 2-stage net of 4 fields, 24 Adam steps (batch 1)."""
    cfg = TrainConfig(stages=2, frames=6, size=24, coils=4, accel=4, center_lines=4, n_train=4, n_val=2,
                      epochs=6)
    model, res = run(cfg, tmp_path / "tiny", progress=False)
    assert res["psnr"] > res["zf_psnr"] + 0.5, res
    again = evaluate(model, make_family(cfg, "val"), cfg)
    assert again["psnr"] == pytest.approx(res["psnr"])
