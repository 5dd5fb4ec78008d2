import argparse
import dataclasses
import json

import pytest
import torch

from kernels.runs import RunDir
from pyrecon.inr.hash_inr import (
    PRESETS,
    HashINRConfig,
    add_arguments,
    fit_hash_inr,
    hash_inr_losses,
    main,
    simulate_dynamic,
)
from pyrecon.ops.sense import sense_adjoint, sense_forward

TINY = dataclasses.replace(HashINRConfig(), **PRESETS["tiny"])


@pytest.fixture(scope="module")
def data():
    return simulate_dynamic(TINY.frames, TINY.size, TINY.coils, TINY.accel, center_lines=TINY.center_lines)


def test_losses_by_hand():
    g = torch.Generator().manual_seed(0)
    base = torch.complex(torch.randn(6, 5, generator=g), torch.randn(6, 5, generator=g))
    coef = torch.tensor([1.0, 2.0, 2.0, -1.0])
    x = coef[:, None, None] * base  # rank-one Casorati matrix
    smaps = torch.ones(1, 6, 5, dtype=torch.complex64)
    mask = torch.ones(4, 6, 5)
    y = sense_forward(x[None], smaps[None], mask)[0]

    def fwd(z):
        return sense_forward(z[None], smaps[None], mask)[0]

    loss, terms = hash_inr_losses(x, y, fwd, tv_weight=0.5, lowrank_weight=0.1)
    assert terms["dc"].item() == pytest.approx(0.0, abs=1e-10)
    # tv: |x_{t+1} − x_t| = |Δcoef|·|base|, Δcoef = (1, 0, −3)
    tv = (1 + 0 + 3) * base.abs().sum() / (3 * 30)  # mean over the 3 frame differences
    assert terms["tv"].item() == pytest.approx(tv.item(), rel=1e-5)
    # rank one: nuclear norm = Frobenius norm = ‖coef‖·‖base‖
    lr = coef.norm() * base.norm() / x.numel() ** 0.5
    assert terms["lowrank"].item() == pytest.approx(lr.item(), rel=1e-5)
    assert loss.item() == pytest.approx(0.5 * tv.item() + 0.1 * lr.item(), rel=1e-5)
    # dc: a wrong image by a factor 2 gives ‖y‖²/‖y‖² = 1
    _, t2 = hash_inr_losses(2 * x, y, fwd, tv_weight=0, lowrank_weight=0)
    assert t2["dc"].item() == pytest.approx(1.0, rel=1e-5) and set(t2) == {"dc", "loss"}


def test_tiny_fit_lowers_dc_and_beats_zero_filled(data):
    images, records = fit_hash_inr(data, TINY, progress=False)
    assert records[-1]["dc"] < 0.05 * records[0]["dc"]
    zf = sense_adjoint(data.kspace[None], data.smaps[None], data.mask)[0]
    err = ((images - data.images).norm() / data.images.norm()).item()
    err_zf = ((zf - data.images).norm() / data.images.norm()).item()
    assert err < 0.7 * err_zf


def test_resume_gives_the_same_curve(tmp_path, data):
    cfg = dataclasses.replace(TINY, iters=8, log_every=2, checkpoint_every=4)
    _, full = fit_hash_inr(data, cfg, run=RunDir(tmp_path / "a"), progress=False)
    fit_hash_inr(data, cfg, run=RunDir(tmp_path / "b"), stop_after=6, progress=False)
    _, resumed = fit_hash_inr(data, cfg, run=RunDir(tmp_path / "b", resume=True), resume=True, progress=False)
    strip = [{k: v for k, v in r.items() if k != "time_s"} for r in full]
    assert [{k: v for k, v in r.items() if k != "time_s"} for r in resumed] == strip


def test_cli_writes_the_run(tmp_path):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--preset", "tiny", "--iters", "4", "--out", str(tmp_path), "--name", "h"])
    assert main(args) == 0
    for f in ("config.json", "metrics.jsonl", "checkpoint.safetensors", "recon.png", "loss.png",
              "summary.json"):
        assert (tmp_path / "h" / f).is_file(), f
    assert set(json.loads((tmp_path / "h" / "summary.json").read_text())) == {"time_s", "nrmse",
                                                                              "zero_filled_nrmse"}


def test_bad_input_raises():
    with pytest.raises(ValueError, match="noise"):
        simulate_dynamic(4, 16, 1, 4, noise=-1.0)


def test_registered_in_the_pyrecon_cli(tmp_path):
    from pyrecon.cli import main as pyrecon_main

    argv = ["fit", "--method", "hash-inr", "--preset", "tiny", "--iters", "2", "--out", str(tmp_path),
            "--name", "r", "--threads", "1"]
    assert pyrecon_main(argv) == 0
    assert (tmp_path / "r" / "summary.json").is_file()


def test_radial_fit_lowers_dc_and_beats_the_gridded_adjoint():
    cfg = dataclasses.replace(TINY, spokes=6, iters=80)
    d = simulate_dynamic(cfg.frames, cfg.size, cfg.coils, cfg.accel, spokes=cfg.spokes)
    assert d.mask is None and d.traj.shape == (cfg.frames, 6 * 2 * cfg.size, 2)
    assert d.kspace.shape == (cfg.frames, cfg.coils, 6 * 2 * cfg.size)
    images, records = fit_hash_inr(d, cfg, progress=False)
    assert records[-1]["dc"] < 0.1 * records[0]["dc"]
    zf = d.zero_filled()
    assert ((images - d.images).norm() / d.images.norm()) < ((zf - d.images).norm() / d.images.norm())
