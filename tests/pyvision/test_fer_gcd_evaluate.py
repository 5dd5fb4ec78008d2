"""pyvision.fer_gcd.evaluate: Hungarian accuracy on hand-made predictions (standard GCD protocol)."""

import numpy as np
import pytest
import torch

from pyvision.fer_gcd.evaluate import cluster_accuracy, hungarian_mapping, split_cluster_accuracy


def test_permuted_labelling_is_perfect():
    y = np.array([0, 0, 1, 2, 2, 2, 3])
    perm = np.array([2, 3, 0, 1])
    assert cluster_accuracy(y, perm[y]) == 1.0
    assert hungarian_mapping(y, perm[y]) == {2: 0, 3: 1, 0: 2, 1: 3}
    assert split_cluster_accuracy(torch.tensor(y), torch.tensor(perm[y]), y < 2) == (1.0, 1.0, 1.0)


def test_one_assignment_then_old_new():
    y_true = np.array([0, 0, 1, 1, 2, 2])
    y_pred = np.array([1, 1, 0, 0, 0, 2])
    # best matching: 1→0 (2 hits), 0→1 (2), 2→2 (1): 5/6 overall
    all_, old, new = split_cluster_accuracy(y_true, y_pred, y_true < 2)
    assert all_ == pytest.approx(5 / 6)
    assert old == 1.0
    assert new == 0.5


def test_more_clusters_than_classes_and_nan_subset():
    y_true = np.array([0, 0, 1, 1])
    y_pred = np.array([5, 5, 5, 6])  # 5→0 (2 hits) beats 5→1 (1); 6→1 (1)
    assert cluster_accuracy(y_true, y_pred) == pytest.approx(0.75)
    all_, old, new = split_cluster_accuracy(y_true, y_pred, np.ones(4, dtype=bool))
    assert all_ == old == pytest.approx(0.75) and np.isnan(new)


def test_bad_input():
    with pytest.raises(ValueError, match="differ in length"):
        cluster_accuracy([0, 1], [0])
    with pytest.raises(TypeError, match="y_pred"):
        cluster_accuracy([0, 1], [0.0, 1.0])
    with pytest.raises(ValueError, match="old_mask"):
        split_cluster_accuracy([0, 1], [0, 1], [1, 0])
