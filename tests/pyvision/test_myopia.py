"""Myopia progression: the least-squares rate and the loss by hand, model shapes, the generator, the
longitudinal-CSV loader on files the test writes, a tiny run that beats the trivial predictor."""

import math

import numpy as np
import pytest
import torch
from PIL import Image

from pyvision.data.myopia import least_squares_rate, load_myopia_csv, make_myopia_data
from pyvision.myopia import MyopiaModelConfig, MyopiaNet, myopia_loss


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
