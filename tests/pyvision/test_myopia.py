"""Myopia progression: the least-squares rate and the loss by hand, model shapes, the generator, the
longitudinal-CSV loader on files the test writes, precise BatchNorm statistics, the cosine lr, a tiny
run that beats the trivial predictor (training-mean rate, mean drift)."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from pyvision.data.myopia import least_squares_rate, load_myopia_csv, make_myopia_data
from pyvision.myopia import MyopiaModelConfig, MyopiaNet, myopia_loss
from pyvision.myopia.train import MyopiaConfig, cosine_lr, fit, prepare_data, recompute_bn_stats, split


def test_least_squares_rate_by_hand_and_polyfit():
    se0 = torch.tensor([0.0, 0.0])
    traj = torch.tensor([[-1.0, -2.0, -3.0, -4.0, -5.0, -6.0], [1.0, 9.0, 9.0, 9.0, 9.0, 9.0]])
    mask = torch.tensor([[True] * 6, [True] + [False] * 5])
    torch.testing.assert_close(least_squares_rate(se0, traj, mask), torch.tensor([-1.0, 1.0]))
    rng = np.random.default_rng(0)
    y = rng.standard_normal(7)
    m = np.array([1, 1, 0, 1, 0, 1, 1], bool)
    want = np.polyfit(np.arange(7)[m], y[m], 1)[0]
    got = least_squares_rate(torch.tensor(y[:1]), torch.tensor(y[None, 1:]), torch.tensor(m[None, 1:]))
    assert float(got[0]) == pytest.approx(want)


def test_loss_by_hand():
    out = {"traj": torch.zeros(1, 6), "risk_logits": torch.zeros(1, 2)}
    batch = {
        "traj": torch.tensor([[0.5, 2.0, 0, 0, 0, 0]]),
        "traj_mask": torch.tensor([[True, True] + [False] * 4]),
    }
    # SmoothL1 over the 2 observed years: (½·0.25 + (2 − ½))/2; SE at year 2 = +2 → both labels 0 → 2·log 2.
    t = myopia_loss(out, batch, horizon=2, risk_weight=0.5)
    assert float(t["traj"]) == pytest.approx((0.125 + 1.5) / 2)
    assert float(t["risk"]) == pytest.approx(2 * math.log(2))
    assert float(t["loss"]) == pytest.approx(0.8125 + 0.5 * 2 * math.log(2))
    t3 = myopia_loss(out, batch, horizon=3)  # year 3 unobserved: no risk term
    assert float(t3["risk"]) == 0.0
    with pytest.raises(ValueError, match="horizon"):
        myopia_loss(out, batch, horizon=7)


def test_model_single_visit_and_series():
    for v in (1, 3):
        model = MyopiaNet(MyopiaModelConfig(width=4))
        out = model(torch.rand(2, v, 3, 32, 32), torch.randn(2, v), torch.full((2, v), 8.0))
        assert (
            out["traj"].shape == (2, 6) and out["rate"].shape == (2,) and out["risk_logits"].shape == (2, 2)
        )
    tab = MyopiaNet(MyopiaModelConfig(use_image=False))
    assert tab(None, torch.randn(2, 1), torch.randn(2, 1))["traj"].shape == (2, 6)
    assert not any("encoder" in n for n, _ in tab.named_parameters())
    with pytest.raises(ValueError, match="images must be"):
        MyopiaNet(MyopiaModelConfig(width=4))(None, torch.randn(2, 1), torch.randn(2, 1))


def test_generator():
    d = make_myopia_data(40, seed=0, image_size=32, visits=2)
    assert d.images.shape == (40, 2, 3, 32, 32) and d.se.shape == (40, 2) and d.traj.shape == (40, 6)
    assert float(d.images.min()) >= 0 and float(d.images.max()) <= 1
    torch.testing.assert_close(d.age[:, 1] - d.age[:, 0], torch.ones(40))
    assert float(d.rate.mean()) < -0.2  # children drift myopic
    myo, high, seen = d.risk_labels(6)
    assert bool(seen.all()) and 0 < float(myo.mean()) < 1
    # Axial-length signs make the fundus of fast progressors look different (pixel distance grows).
    e = make_myopia_data(200, seed=1, image_size=32)
    fast, slow = e.rate < e.rate.quantile(0.2), e.rate > e.rate.quantile(0.8)
    diff = (e.images[fast].mean(0) - e.images[slow].mean(0)).abs().mean()
    assert float(diff) > 0.01
    with pytest.raises(ValueError, match="visits"):
        make_myopia_data(4, visits=0)


def test_csv_loader(tmp_path):
    img = np.zeros((10, 12, 3), np.uint8)
    img[..., 0] = 200
    Image.fromarray(img).save(tmp_path / "a.png")
    rows = [
        "child_id,exam_date,image_path,se,birth_date",
        "c1,2015-03-01,a.png,0.5,2008-03-01",
        "c1,2016-03-02,a.png,-0.25,2008-03-01",
        "c1,2018-02-20,a.png,-1.5,2008-03-01",
        "c1,2016-09-01,a.png,-0.5,2008-03-01",  # 1.5 years: not matched to a whole year
        "c2,2015-01-01,a.png,1.0,2010-01-01",
    ]  # no follow-up: dropped
    (tmp_path / "exams.csv").write_text("\n".join(rows) + "\n")
    d = load_myopia_csv(tmp_path / "exams.csv", image_size=8, tolerance=0.25)
    assert len(d) == 1 and d.images.shape == (1, 1, 3, 8, 8)
    assert float(d.images[0, 0, 0].mean()) == pytest.approx(200 / 255, abs=1e-3)
    assert d.age[0, 0] == pytest.approx(7.0, abs=0.01) and float(d.se[0, 0]) == 0.5
    assert d.traj_mask[0].tolist() == [True, False, True, False, False, False]
    torch.testing.assert_close(d.traj[0, [0, 2]], torch.tensor([-0.25, -1.5]))
    want = np.polyfit([0, 1, 3], [0.5, -0.25, -1.5], 1)[0]
    assert float(d.rate[0]) == pytest.approx(want, rel=1e-5)
    with pytest.raises(FileNotFoundError, match="missing.csv"):
        load_myopia_csv(tmp_path / "missing.csv")
    (tmp_path / "bad.csv").write_text("child_id,exam_date,image_path,se,age\nc1,2015/03/01,a.png,0.5,7\n")
    with pytest.raises(ValueError, match="YYYY-MM-DD"):
        load_myopia_csv(tmp_path / "bad.csv")
    (tmp_path / "img.csv").write_text(
        "child_id,exam_date,image_path,se,age\nc1,2015-03-01,zz.png,0.5,7\nc1,2016-03-01,zz.png,0.1,8\n"
    )
    with pytest.raises(FileNotFoundError, match="zz.png"):
        load_myopia_csv(tmp_path / "img.csv")


def test_recompute_bn_stats_is_the_average_of_batch_statistics():
    torch.manual_seed(0)
    d = make_myopia_data(10, seed=0, image_size=16)
    model = MyopiaNet(MyopiaModelConfig(width=2))
    model.eval()
    recompute_bn_stats(model, d, np.arange(10), batch_size=6)  # batches of 6 and 4 children
    bn = model.encoder.bn1
    with torch.no_grad():
        y = model.encoder.conv1(d.images[:, 0])  # the input of the first BN layer
    parts = (y[:6], y[6:])
    want_mean = sum(p.mean((0, 2, 3)) for p in parts) / 2
    want_var = sum(p.transpose(0, 1).flatten(1).var(1, unbiased=True) for p in parts) / 2
    torch.testing.assert_close(bn.running_mean, want_mean)
    torch.testing.assert_close(bn.running_var, want_var)
    assert bn.momentum == 0.1 and not model.training  # settings restored
    tab = MyopiaNet(MyopiaModelConfig(use_image=False))
    before = {k: v.clone() for k, v in tab.state_dict().items()}
    recompute_bn_stats(tab, d, np.arange(10))  # no BatchNorm: nothing changes
    assert all(torch.equal(before[k], v) for k, v in tab.state_dict().items())


def test_cosine_lr():
    cfg = MyopiaConfig(lr=0.4, epochs=2)
    assert [cosine_lr(cfg, t, 5) for t in (0, 5, 10)] == pytest.approx([0.4, 0.2, 0.0])
    assert cosine_lr(cfg, 2, 4) == pytest.approx(0.2 * (1 + math.cos(math.pi / 4)))
    assert cosine_lr(MyopiaConfig(lr=0.4, lr_schedule="constant"), 7, 5) == 0.4
    with pytest.raises(ValueError, match="lr_schedule"):
        MyopiaConfig(lr_schedule="step")


def _tiny_run(seed: int) -> tuple[dict, dict]:
    cfg = MyopiaConfig(
        n_samples=240, image_size=32, width=4, epochs=12, batch_size=16, seed=seed, data_seed=seed
    )
    data = prepare_data(cfg)
    tr, te = split(len(data), cfg.test_fraction, seed)
    res = fit(cfg, data, tr, te)[1]
    drift = (data.traj[tr] - data.se[tr, -1:]).mean(0)  # trivial trajectory: SE0 + mean drift per year
    trivial = {
        "rate_mae": float((data.rate[te] - data.rate[tr].mean()).abs().mean()),
        "traj_mae": float((data.traj[te] - data.se[te, -1:] - drift).abs().mean()),
    }
    return res, trivial


def test_tiny_run_beats_the_trivial_predictor():
    # Margins checked on seeds 0..9: rate MAE / trivial 0.57..0.90, trajectory MAE / trivial 0.58..0.87,
    # AUC of myopia 0.84..0.99 (high myopia is left out: at 60 hold-out children it has a handful of
    # positives and its AUC ranged 0.50..0.96).
    res, trivial = _tiny_run(0)
    assert res["rate_mae"] < 0.95 * trivial["rate_mae"], (res, trivial)
    assert res["traj_mae"] < 0.95 * trivial["traj_mae"], (res, trivial)
    assert res["myopia_auc"] > 0.75, res


def test_cli_flags_reach_the_config():
    import argparse

    from pyvision.cli import config_from_args
    from pyvision.myopia.train import PRESETS, MyopiaConfig, add_arguments

    p = argparse.ArgumentParser()
    add_arguments(p)
    cfg = config_from_args(p.parse_args(["--no-precise-bn", "--tabular-only", "--epochs", "3"]), MyopiaConfig)
    assert (cfg.precise_bn, cfg.tabular_only, cfg.epochs) == (False, True, 3)
    default = MyopiaConfig()
    cfg = config_from_args(p.parse_args([]), MyopiaConfig)
    assert (cfg.precise_bn, cfg.tabular_only, cfg.epochs) == (default.precise_bn, default.tabular_only,
                                                               default.epochs)
    cfg = config_from_args(p.parse_args(["--preset", "paper", "--epochs", "2"]), MyopiaConfig, PRESETS)
    assert (cfg.image_size, cfg.epochs) == (PRESETS["paper"]["image_size"], 2)  # flags override the preset
