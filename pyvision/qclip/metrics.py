"""VQA metrics: SRCC and KRCC (scipy.stats), and PLCC after the standard 4-parameter logistic mapping
(VQEG): the predictions x are first mapped by

    f(x) = (β1 − β2) / (1 + exp(−(x − β3) / |β4|)) + β2

fitted to the true scores by least squares (scipy.optimize.curve_fit, initial guess β1 = max y,
β2 = min y, β3 = mean x, β4 = std x), then PLCC = pearson(f(x), y). The fit is constrained to an
increasing mapping (β1 ≥ β2): an unconstrained fit can flip a decreasing logistic onto predictions that
rank the videos backwards and report a high PLCC next to a negative SRCC. If the fit does not converge the
raw pearson(x, y) is returned and ``vqa_metrics`` says so (``plcc_fitted`` = 0).
"""

from __future__ import annotations

import warnings

import numpy as np

__all__ = ["krcc", "logistic4", "plcc", "srcc", "vqa_metrics"]


def _arrays(pred, target) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(pred, dtype=np.float64).reshape(-1)
    y = np.asarray(target, dtype=np.float64).reshape(-1)
    if x.shape != y.shape or x.size < 2:
        raise ValueError(
            f"pred and target must hold the same number (>= 2) of scores, got {x.size} and {y.size}"
        )
    return x, y


def srcc(pred, target) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(*_arrays(pred, target)).statistic)


def krcc(pred, target) -> float:
    from scipy.stats import kendalltau

    return float(kendalltau(*_arrays(pred, target)).statistic)


def logistic4(x: np.ndarray, b1: float, b2: float, b3: float, b4: float) -> np.ndarray:
    z = np.clip(-(x - b3) / (abs(b4) + 1e-12), -50, 50)
    return (b1 - b2) / (1 + np.exp(z)) + b2


def plcc(pred, target, *, maxfev: int = 10000) -> tuple[float, bool]:
    """(PLCC after the logistic fit, True) or (raw PLCC, False) when the fit fails."""
    from scipy.optimize import curve_fit
    from scipy.stats import pearsonr

    x, y = _arrays(pred, target)
    # Parameters (β2, β1 − β2 >= 0, β3, β4 > 0) so that bounds express "increasing".
    p0 = [y.min(), max(y.max() - y.min(), 1e-6), x.mean(), x.std() or 1.0]
    increasing = lambda x, b2, d, b3, b4: logistic4(x, b2 + d, b2, b3, b4)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            beta, _ = curve_fit(
                increasing,
                x,
                y,
                p0=p0,
                maxfev=maxfev,
                bounds=([-np.inf, 0, -np.inf, 1e-12], [np.inf, np.inf, np.inf, np.inf]),
            )
            mapped = increasing(x, *beta)
            if not np.all(np.isfinite(mapped)) or mapped.std() == 0:
                raise RuntimeError("degenerate fit")
            r = float(pearsonr(mapped, y).statistic)
            if not np.isfinite(r):
                raise RuntimeError("degenerate fit")
            return r, True
    except (RuntimeError, ValueError):
        return float(pearsonr(x, y).statistic), False


def vqa_metrics(pred, target) -> dict[str, float]:
    r, fitted = plcc(pred, target)
    return {"srcc": srcc(pred, target), "plcc": r, "krcc": krcc(pred, target), "plcc_fitted": float(fitted)}
