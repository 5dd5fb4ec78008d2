import argparse
import dataclasses
import json

import pytest
import torch

from kernels.runs import RunDir
from pyrecon.inr.t1rho import (
    PRESETS,
    T1_MAX_MS,
    T1_MIN_MS,
    T1RHO_MS_BY_T2,
    T1rhoConfig,
    add_arguments,
    calibrate_from_data,
    fit_t1rho_inr,
    lowrank_images,
    main,
    map_errors,
    simulate_t1rho,
    zero_filled_images,
)
from pyrecon.ops.sense import sense_forward

TINY = dataclasses.replace(T1rhoConfig(), **PRESETS["tiny"])


@pytest.fixture(scope="module")
def data():
    return simulate_t1rho(TINY.size, TINY.coils, TINY.tsl, TINY.accel, center_lines=TINY.center_lines,
                          noise=TINY.noise, seed=0)


def _nrmse(a, b):
    return ((a - b).norm() / b.norm()).item()


def test_simulation_follows_the_documented_model():
    d = simulate_t1rho(32, 2, (5.0, 20.0, 60.0), 4, noise=0.0, seed=1)
    assert d.images.shape == (3, 32, 32) and d.kspace.shape == (3, 2, 32, 32) and d.mask.shape == (3, 32, 32)
    # T1rho per tissue is the documented table, background 0
    values = list(T1RHO_MS_BY_T2.values())
    for i in range(1, len(values) + 1):
        sel = d.labels == i
        if sel.any():
            assert torch.all(d.t1rho[sel] == values[i - 1])
    assert torch.all(d.t1rho[d.labels == 0] == 0)
    # the series is M0·exp(−TSL/T1rho) (phase aside) and the k-space is the SENSE model, noiseless here
    inside = d.labels > 0
    ratio = d.images[2].abs()[inside] / d.images[0].abs()[inside]
    torch.testing.assert_close(ratio, torch.exp(-55.0 / d.t1rho[inside]), rtol=1e-5, atol=0)
    torch.testing.assert_close(d.kspace, sense_forward(d.images[None], d.smaps[None], d.mask)[0])
    assert 3.0 < 1 / d.mask.mean().item() < 5.0


def test_baselines_exact_on_full_noiseless_data():
    d = simulate_t1rho(32, 2, (5.0, 20.0, 60.0), 1, noise=0.0, seed=2)
    full = torch.ones_like(d.mask)
    y = sense_forward(d.images[None], d.smaps[None], full)[0]
    torch.testing.assert_close(zero_filled_images(y, d.smaps, full), d.images, rtol=1e-4, atol=1e-5)
    # one IHT step reaches Eᴴy = x; rank K (= 3) projection is the identity
    # complex64 SVD round trip: absolute error ~3e-5 on a unit-peak image
    x = lowrank_images(y, d.smaps, full, rank=3, iters=1)
    torch.testing.assert_close(x, d.images, rtol=1e-4, atol=1e-4)


def test_map_errors_by_hand():
    labels = torch.tensor([[0, 1], [1, 2]])
    true = torch.tensor([[0.0, 30.0], [30.0, 45.0]])
    est = torch.tensor([[7.0, 33.0], [27.0, 45.0]])
    e = map_errors(est, true, labels)
    assert e["nrmse"] == pytest.approx((9 + 9) ** 0.5 / (900 + 900 + 2025) ** 0.5)
    assert e["tissue1"]["mean"] == pytest.approx(30.0) and e["tissue1"]["std"] == pytest.approx(18 ** 0.5)
    assert e["tissue2"] == {"true": 45.0, "mean": 45.0, "std": 0.0, "n": 1}
    assert e["bound_hits"] == 0 and "m0_nrmse" not in e


def test_map_errors_m0_mask_and_bound_hits_by_hand():
    labels = torch.tensor([[0, 1, 1], [2, 2, 2]])
    true = torch.tensor([[0.0, 30.0, 30.0], [45.0, 45.0, 45.0]])
    # a low-M0 voxel at the upper bound, one at the lower bound inside the mask, the background at the
    # bound too (not tissue: not counted)
    est = torch.tensor([[T1_MAX_MS, T1_MAX_MS, 30.0], [T1_MIN_MS, 48.0, 45.0]])
    m0 = torch.tensor([[0.0, 0.1, 0.9], [1.0, 0.8, 0.3]])
    e = map_errors(est, true, labels, m0, m0_frac=0.25)
    # mask: M0 >= 0.25 → (0,2), (1,0), (1,1), (1,2); the (0,1) voxel (M0 0.1) is out
    assert e["m0_voxels"] == 4
    num = (0 + (T1_MIN_MS - 45) ** 2 + 9 + 0) ** 0.5
    assert e["m0_nrmse"] == pytest.approx(num / (900 + 3 * 2025) ** 0.5)
    assert e["bound_hits"] == 2 and e["m0_bound_hits"] == 1
    all_num = ((T1_MAX_MS - 30) ** 2 + (T1_MIN_MS - 45) ** 2 + 9) ** 0.5
    assert e["nrmse"] == pytest.approx(all_num / (2 * 900 + 3 * 2025) ** 0.5)
    with pytest.raises(ValueError, match="m0_frac"):
        map_errors(est, true, labels, m0, m0_frac=1.5)
    with pytest.raises(ValueError, match="m0 must"):
        map_errors(est, true, labels, m0[:, :2])


def test_fit_lowers_dc_and_beats_zero_filled(data):
    cfg = dataclasses.replace(TINY, iters=120, log_every=10)
    images, records = fit_t1rho_inr(data, cfg, progress=False)
    dcs = [r["dc"] for r in records]
    assert dcs[-1] < 0.1 * dcs[0]
    assert all(r["hankel"] >= 0 and r["spirit"] >= 0 for r in records)
    zf = zero_filled_images(data.kspace, data.smaps, data.mask)
    assert _nrmse(images, data.images) < 0.9 * _nrmse(zf, data.images)


def test_checkpoint_resume_gives_the_same_curve(tmp_path, data):
    cfg = dataclasses.replace(TINY, iters=12, log_every=2, checkpoint_every=6)
    _, full = fit_t1rho_inr(data, cfg, run=RunDir(tmp_path / "a"), progress=False)
    rd = RunDir(tmp_path / "b")
    fit_t1rho_inr(data, cfg, run=rd, stop_after=9, progress=False)  # interrupted after iter 9 (ckpt at 6)
    rd = RunDir(tmp_path / "b", resume=True)
    _, resumed = fit_t1rho_inr(data, cfg, run=rd, resume=True, progress=False)

    def strip(rs):
        return [{k: v for k, v in r.items() if k != "time_s"} for r in rs]

    assert strip(resumed) == strip(full)
    assert strip(RunDir(tmp_path / "b", resume=True).metrics()) == strip(full)


def test_calibration_needs_enough_acs_lines(data):
    with pytest.raises(ValueError, match=r"spirit_kernel\[0\]"):
        calibrate_from_data(data, dataclasses.replace(TINY, spirit_kernel=(7, 5)))


def test_cli_writes_the_run(tmp_path):
    parser = argparse.ArgumentParser()
    add_arguments(parser)
    args = parser.parse_args(["--preset", "tiny", "--iters", "6", "--checkpoint-every", "3",
                              "--lowrank-iters", "3", "--out", str(tmp_path), "--name", "t"])
    assert main(args) == 0
    run = tmp_path / "t"
    files = ("config.json", "metrics.jsonl", "checkpoint.safetensors", "maps.png", "loss.png", "summary.json")
    for f in files:
        assert (run / f).is_file(), f
    summary = json.loads((run / "summary.json").read_text())
    assert set(summary) >= {"zero-filled", "low-rank", "inr", "inr_time_s"}
    assert json.loads((run / "config.json").read_text())["iters"] == 6
    with pytest.raises(FileExistsError):
        main(args)
    args.resume = True
    assert main(args) == 0  # a finished run resumes to the same end
    args.cfg_lr = 0.5
    with pytest.raises(ValueError, match="configuration differs"):
        main(args)
