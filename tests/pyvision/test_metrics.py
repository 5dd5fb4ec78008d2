"""pyvision.metrics: every number against a hand computation; bad input raises."""

import math

import numpy as np
import pytest
import torch

from pyvision.metrics import (
    auc,
    calibration,
    classification_report,
    f1_macro,
    f1_weighted,
    mae,
    plot_calibration,
    uar,
    war,
)

Y = [0, 0, 1, 1, 2]
P = [0, 1, 1, 1, 0]


def test_classification_by_hand():
    # recall per class: 1/2, 2/2, 0/1; F1 per class: 0.5, 0.8, 0 (class 2 never predicted).
    assert war(Y, P) == pytest.approx(3 / 5)
    assert uar(Y, P) == pytest.approx((0.5 + 1.0 + 0.0) / 3)
    assert f1_macro(Y, P) == pytest.approx((0.5 + 0.8 + 0.0) / 3)
    assert f1_weighted(Y, P) == pytest.approx((2 * 0.5 + 2 * 0.8 + 1 * 0.0) / 5)
    rep = classification_report(torch.tensor(Y), torch.tensor(P))
    assert rep == pytest.approx({"war": 0.6, "uar": 0.5, "f1_weighted": 0.52, "f1_macro": 1.3 / 3})


def test_auc_mae_by_hand():
    # positives 0.35, 0.8 vs negatives 0.1, 0.4: 3 of 4 pairs ordered.
    assert auc([0, 0, 1, 1], [0.1, 0.4, 0.35, 0.8]) == pytest.approx(0.75)
    assert auc([0, 1], [0.5, 0.5]) == pytest.approx(0.5)  # a tie counts 1/2
    assert mae([1.0, 2.0, 3.0], np.array([2.0, 2.0, 1.0])) == pytest.approx(1.0)


def test_calibration_by_hand(tmp_path):
    c = calibration([0, 1, 1, 0, 1], [0.1, 0.15, 0.8, 0.85, 0.9], n_bins=2)
    np.testing.assert_allclose(c["prob_pred"], [0.125, 0.85])
    np.testing.assert_allclose(c["prob_true"], [0.5, 2 / 3])
    np.testing.assert_array_equal(c["count"], [2, 3])
    assert c["ece"] == pytest.approx(0.4 * 0.375 + 0.6 * abs(2 / 3 - 0.85))
    # A probability on an inner bin edge goes to the lower bin, as in sklearn.
    e = calibration([0, 1, 1], [0.5, 0.5, 0.9], n_bins=2)
    np.testing.assert_array_equal(e["count"], [2, 1])
    np.testing.assert_allclose(e["prob_pred"], [0.5, 0.9])
    path = plot_calibration(tmp_path / "cal.png", {"model": c}, title="t")
    assert path.stat().st_size > 1000


def test_bad_input():
    with pytest.raises(ValueError, match="same length"):
        war([0, 1], [0])
    with pytest.raises(ValueError, match="y_true must be 1-D"):
        uar([[0, 1]], [[0, 1]])
    with pytest.raises(ValueError, match="empty"):
        f1_macro([], [])
    with pytest.raises(ValueError, match="single class"):
        auc([1, 1], [0.2, 0.3])
    with pytest.raises(ValueError, match="binary"):
        auc([0, 2], [0.2, 0.3])
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        calibration([0, 1], [0.2, 1.3])
    with pytest.raises(ValueError, match="n_bins"):
        calibration([0, 1], [0.2, 0.3], n_bins=0)
    assert math.isfinite(mae(torch.tensor([1.0]), torch.tensor([2.0])))
