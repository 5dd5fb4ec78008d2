"""Evaluation metrics shared by the pyvision methods: thin, validated wrappers over scikit-learn.

Classification (EMERT, FER-GCD): ``war`` (weighted average recall = accuracy), ``uar`` (unweighted
average recall = mean per-class recall), ``f1_weighted``, ``f1_macro``. Risk prediction (myopia):
``auc`` and ``calibration`` (reliability curve, with ``plot_calibration`` for a PNG). Regression: ``mae``.

Inputs are 1-D array-likes (numpy arrays, lists or CPU tensors); a wrong shape, an empty input or a
length mismatch raises ``ValueError`` naming the argument.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from kernels.runs import save_figure

__all__ = [
    "auc",
    "calibration",
    "classification_report",
    "f1_macro",
    "f1_weighted",
    "mae",
    "plot_calibration",
    "uar",
    "war",
]


def _vec(x, name: str, *, dtype=None) -> np.ndarray:
    if hasattr(x, "detach"):
        x = x.detach().cpu().numpy()
    a = np.asarray(x, dtype=dtype)
    if a.ndim != 1:
        raise ValueError(f"{name} must be 1-D, got shape {a.shape}")
    if a.size == 0:
        raise ValueError(f"{name} is empty")
    return a


def _pair(y_true, y_pred, *, dtype=None) -> tuple[np.ndarray, np.ndarray]:
    t = _vec(y_true, "y_true", dtype=dtype)
    p = _vec(y_pred, "y_pred", dtype=dtype)
    if t.shape != p.shape:
        raise ValueError(f"y_true and y_pred must have the same length, got {t.size} and {p.size}")
    return t, p


def war(y_true, y_pred) -> float:
    """Weighted average recall: Σ_c (n_c/n)·recall_c = (1/n) Σ_i [ŷ_i = y_i], i.e. accuracy."""
    from sklearn.metrics import recall_score

    t, p = _pair(y_true, y_pred)
    return float(recall_score(t, p, average="weighted", zero_division=0))


def uar(y_true, y_pred) -> float:
    """Unweighted average recall: (1/C) Σ_c TP_c / n_c over the C classes present in ``y_true`` or
    ``y_pred`` (balanced accuracy when every predicted class is also a true class)."""
    from sklearn.metrics import recall_score

    t, p = _pair(y_true, y_pred)
    return float(recall_score(t, p, average="macro", zero_division=0))


def f1_weighted(y_true, y_pred) -> float:
    """Σ_c (n_c/n)·F1_c with F1_c = 2·P_c·R_c/(P_c + R_c) (sklearn ``average='weighted'``)."""
    from sklearn.metrics import f1_score

    t, p = _pair(y_true, y_pred)
    return float(f1_score(t, p, average="weighted", zero_division=0))


def f1_macro(y_true, y_pred) -> float:
    """(1/C) Σ_c F1_c, the unweighted F1 (sklearn ``average='macro'``)."""
    from sklearn.metrics import f1_score

    t, p = _pair(y_true, y_pred)
    return float(f1_score(t, p, average="macro", zero_division=0))


def classification_report(y_true, y_pred) -> dict[str, float]:
    """The four classification numbers at once: war (= accuracy), uar, f1_weighted, f1_macro."""
    return {
        "war": war(y_true, y_pred),
        "uar": uar(y_true, y_pred),
        "f1_weighted": f1_weighted(y_true, y_pred),
        "f1_macro": f1_macro(y_true, y_pred),
    }


def mae(y_true, y_pred) -> float:
    """(1/n) Σ_i |y_i − ŷ_i|."""
    t, p = _pair(y_true, y_pred, dtype=np.float64)
    return float(np.abs(t - p).mean())


def _binary(y_true, y_score) -> tuple[np.ndarray, np.ndarray]:
    t, s = _pair(y_true, y_score, dtype=np.float64)
    if not np.isin(t, (0.0, 1.0)).all():
        raise ValueError("y_true must hold binary labels 0/1")
    if not np.isfinite(s).all():
        raise ValueError("y_score must be finite")
    return t.astype(np.int64), s


def auc(y_true, y_score) -> float:
    """Area under the ROC curve = P(score of a random positive > score of a random negative), ties
    counted 1/2 (sklearn ``roc_auc_score``). Needs both classes in ``y_true``: else ``ValueError``."""
    from sklearn.metrics import roc_auc_score

    t, s = _binary(y_true, y_score)
    if t.min() == t.max():
        raise ValueError("y_true holds a single class: the AUC is undefined")
    return float(roc_auc_score(t, s))


def calibration(y_true, y_prob, n_bins: int = 10) -> dict[str, np.ndarray | float]:
    """Reliability curve and expected calibration error of predicted probabilities.

    Bins [0,1] into ``n_bins`` equal-width bins; per non-empty bin b, ``prob_pred[b]`` = mean
    predicted probability and ``prob_true[b]`` = fraction of positives (sklearn
    ``calibration_curve``, ``strategy='uniform'``); ``ece`` = Σ_b (n_b/n)·|prob_true_b − prob_pred_b|.
    """
    from sklearn.calibration import calibration_curve

    if not isinstance(n_bins, int) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive int, got {n_bins!r}")
    t, p = _binary(y_true, y_prob)
    if p.min() < 0 or p.max() > 1:
        raise ValueError("y_prob must lie in [0, 1]")
    prob_true, prob_pred = calibration_curve(t, p, n_bins=n_bins, strategy="uniform")
    # sklearn's binning (searchsorted on the inner edges: a value on an edge goes to the lower bin),
    # repeated here to count the samples per bin.
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    counts = np.bincount(np.searchsorted(edges[1:-1], p), minlength=n_bins)
    counts = counts[counts > 0]
    ece = float(np.sum(counts / t.size * np.abs(prob_true - prob_pred)))
    return {"prob_true": prob_true, "prob_pred": prob_pred, "count": counts, "ece": ece}


def plot_calibration(path: str | os.PathLike, curves: dict[str, dict], title: str = "") -> Path:
    """One reliability diagram (PNG) with a line per named ``calibration`` result."""
    import matplotlib

    matplotlib.use("Agg", force=True)
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(4.8, 4.8), dpi=120)
    ax.plot([0, 1], [0, 1], "k--", linewidth=1, label="perfect")
    for name, c in curves.items():
        ax.plot(c["prob_pred"], c["prob_true"], "o-", label=f"{name} (ECE {c['ece']:.3f})")
    ax.set_xlabel("predicted probability")
    ax.set_ylabel("observed frequency")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    if title:
        ax.set_title(title)
    ax.legend(fontsize=8)
    fig.tight_layout()
    return save_figure(fig, path)
