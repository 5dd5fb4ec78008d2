"""All / Old / New clustering accuracy of generalized category discovery (GCD).

The standard protocol (Vaze et al., CVPR 2022; SimGCD's ``split_cluster_acc_v2``): the predicted
cluster ids of all unlabelled samples are matched to the true classes by ONE Hungarian assignment
(maximum number of agreeing samples, ``scipy.optimize.linear_sum_assignment``); then

    All = (# samples whose matched prediction equals the label) / N
    Old = the same over samples whose true class is an old (labelled) class
    New = the same over samples of new classes

So Old and New share one mapping (not the 'v1' variant that solves separate assignments per subset).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.optimize import linear_sum_assignment

__all__ = ["cluster_accuracy", "hungarian_mapping", "split_cluster_accuracy"]


def _as_int_array(name: str, x) -> np.ndarray:
    if isinstance(x, torch.Tensor):
        x = x.detach().cpu().numpy()
    x = np.asarray(x)
    if x.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {x.shape}")
    if x.size and not np.issubdtype(x.dtype, np.integer):
        raise TypeError(f"{name} must hold integers, got dtype {x.dtype}")
    if x.size and x.min() < 0:
        raise ValueError(f"{name} must be >= 0")
    return x.astype(np.int64)


def hungarian_mapping(y_true, y_pred) -> dict[int, int]:
    """The assignment predicted id → true class that maximizes the number of agreeing samples."""
    y_true, y_pred = _as_int_array("y_true", y_true), _as_int_array("y_pred", y_pred)
    if y_true.shape != y_pred.shape:
        raise ValueError(f"y_true and y_pred differ in length: {y_true.size} vs {y_pred.size}")
    if y_true.size == 0:
        raise ValueError("y_true is empty")
    d = int(max(y_true.max(), y_pred.max())) + 1
    w = np.zeros((d, d), dtype=np.int64)
    np.add.at(w, (y_pred, y_true), 1)
    rows, cols = linear_sum_assignment(w, maximize=True)
    return {int(r): int(c) for r, c in zip(rows, cols, strict=True)}


def cluster_accuracy(y_true, y_pred) -> float:
    """Accuracy after the Hungarian matching of predicted ids to classes, in [0, 1]."""
    mapping = hungarian_mapping(y_true, y_pred)
    y_true, y_pred = _as_int_array("y_true", y_true), _as_int_array("y_pred", y_pred)
    return float(np.mean(np.array([mapping[p] for p in y_pred]) == y_true))


def split_cluster_accuracy(y_true, y_pred, old_mask) -> tuple[float, float, float]:
    """(All, Old, New) accuracy of the standard GCD protocol: one assignment over all samples, then
    accuracies on the samples of old classes (``old_mask`` True) and of new classes. A subset with no
    samples gives nan."""
    y_true_a, y_pred_a = _as_int_array("y_true", y_true), _as_int_array("y_pred", y_pred)
    if isinstance(old_mask, torch.Tensor):
        old_mask = old_mask.detach().cpu().numpy()
    old_mask = np.asarray(old_mask)
    if old_mask.dtype != bool or old_mask.shape != y_true_a.shape:
        raise ValueError(f"old_mask must be a bool array of shape {y_true_a.shape}, got "
                         f"{old_mask.dtype} {old_mask.shape}")
    mapping = hungarian_mapping(y_true_a, y_pred_a)
    hit = np.array([mapping[p] for p in y_pred_a]) == y_true_a
    old = float(hit[old_mask].mean()) if old_mask.any() else float("nan")
    new = float(hit[~old_mask].mean()) if (~old_mask).any() else float("nan")
    return float(hit.mean()), old, new
