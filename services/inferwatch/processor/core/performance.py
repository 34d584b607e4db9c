"""Model performance from joined labels: classification from a confusion matrix, ROC-AUC from score
histograms by true class, regression from error sums. Pure numpy on mergeable counts."""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

AUC_BINS = 200
"""Bins of the positive-class score on [0, 1] for ROC-AUC (ties within a bin count one half)."""


def classification(confusion: npt.NDArray[np.int64]) -> dict[str, float]:
    """Accuracy and macro precision/recall/F1 from ``confusion[true, predicted]``.

    Macro averages run over the classes present in the labels or predictions; with two classes
    this is the average of both classes' scores (sklearn's ``average="macro"``).
    """
    c = np.asarray(confusion, dtype=np.float64)
    n = c.sum()
    if n == 0:
        return {}
    tp = np.diag(c)
    pred = c.sum(axis=0)
    true = c.sum(axis=1)
    present = (pred + true) > 0
    with np.errstate(divide="ignore", invalid="ignore"):
        prec = np.where(pred > 0, tp / pred, 0.0)
        rec = np.where(true > 0, tp / true, 0.0)
        f1 = np.where(prec + rec > 0, 2 * prec * rec / (prec + rec), 0.0)
    return {
        "perf.accuracy": float(tp.sum() / n),
        "perf.precision": float(prec[present].mean()),
        "perf.recall": float(rec[present].mean()),
        "perf.f1": float(f1[present].mean()),
    }


def auc_from_hist(pos: npt.NDArray[np.int64], neg: npt.NDArray[np.int64]) -> float | None:
    """ROC-AUC = P(score_pos > score_neg) + 0.5 P(equal bin), from score histograms on the same bins.

    Equals ``sklearn.metrics.roc_auc_score`` on the scores rounded to their bins; None when one class
    is absent.
    """
    p = np.asarray(pos, dtype=np.float64)
    q = np.asarray(neg, dtype=np.float64)
    npos, nneg = p.sum(), q.sum()
    if npos == 0 or nneg == 0:
        return None
    neg_below = np.cumsum(q) - q
    return float((np.sum(p * neg_below) + 0.5 * np.sum(p * q)) / (npos * nneg))


def auc_bin(score: npt.NDArray[np.float64]) -> npt.NDArray[np.int64]:
    """The AUC bin of each positive-class score in [0, 1]."""
    return np.clip((np.asarray(score) * AUC_BINS).astype(np.int64), 0, AUC_BINS - 1)


def regression(n: float, abs_err_sum: float, sq_err_sum: float) -> dict[str, float]:
    """MAE and RMSE from error sums."""
    if n <= 0:
        return {}
    return {"perf.mae": abs_err_sum / n, "perf.rmse": float(np.sqrt(sq_err_sum / n))}
