"""Metric tables per task, in numpy.

Each metric is defined as scikit-learn defines it (tests/test_metrics.py checks every one against scikit-learn's
function on random and edge-case inputs), but computed here: importing scikit-learn loads scipy.stats, a large
share of every ``neuraltab train`` and ``evaluate`` start, for a dozen lines of arithmetic.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["classification_metrics", "regression_metrics", "compute", "roc_auc", "PRIMARY"]

# The metric each task is judged by first (shown first, used by the benchmarks).
PRIMARY = {"binary": "accuracy", "multiclass": "accuracy", "regression": "rmse"}


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """y_true: int64[n] class codes; proba: float[n, C] rows summing to 1.

    - ``balanced_accuracy``: the mean recall over the classes present in ``y_true``;
    - ``log_loss``: of the probabilities clipped to [1e-15, 1] and renormalised (so a confident mistake is finite);
    - ``roc_auc``: binary, of class 1's probability; multiclass, the mean one-vs-rest AUC (None unless every class
      is present, or with one class);
    - ``f1_macro``: the mean F1 over the classes that occur in ``y_true`` or in the predictions (0 where undefined).

    >>> m = classification_metrics(np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]))
    >>> round(m["accuracy"], 4), m["confusion_matrix"]
    (0.6667, [[1, 0], [1, 1]])
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    n, n_classes = len(y_true), proba.shape[1]
    y_pred = proba.argmax(axis=1)
    proba = np.clip(proba.astype(np.float64), 1e-15, 1.0)
    proba /= proba.sum(axis=1, keepdims=True)
    confusion = np.bincount(y_true * n_classes + y_pred, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    true_counts, pred_counts, hits = confusion.sum(1), confusion.sum(0), np.diag(confusion)
    present = true_counts > 0
    occurring = present | (pred_counts > 0)
    with np.errstate(invalid="ignore", divide="ignore"):
        f1 = np.where(occurring, 2 * hits / (true_counts + pred_counts), 0.0)
    out: dict[str, Any] = {
        "accuracy": float(hits.sum() / n) if n else 0.0,
        "balanced_accuracy": float(np.mean(hits[present] / true_counts[present])) if present.any() else 0.0,
        "log_loss": float(-np.log(proba[np.arange(n), y_true]).mean()) if n else 0.0,
        "roc_auc": None,
        "f1_macro": float(f1[occurring].mean()) if occurring.any() else 0.0,
    }
    if present.sum() >= 2:
        if n_classes == 2:
            out["roc_auc"] = roc_auc(y_true == 1, proba[:, 1])
        elif present.all():
            out["roc_auc"] = float(np.mean([roc_auc(y_true == c, proba[:, c]) for c in range(n_classes)]))
    out["confusion_matrix"] = confusion.tolist()
    out["n"] = int(n)
    return out


def roc_auc(positive: np.ndarray, score: np.ndarray) -> float:
    """Area under the ROC curve: the chance that a random positive scores above a random negative, ties counting
    half (the Mann-Whitney U statistic over the tie-averaged ranks). Needs both classes present.

    >>> roc_auc(np.array([False, True, False, True]), np.array([0.1, 0.4, 0.4, 0.8]))
    0.875
    """
    positive = np.asarray(positive, dtype=bool)
    _, inverse, counts = np.unique(score, return_inverse=True, return_counts=True)
    ends = np.cumsum(counts)  # 1-based rank of each distinct score's last copy
    ranks = (ends - (counts - 1) / 2.0)[inverse]  # tied scores share the mean of their ranks
    n_pos = int(positive.sum())
    n_neg = len(positive) - n_pos
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2.0) / (n_pos * n_neg))


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """y_true, y_pred: float[n] in the target's own units. ``r2`` is None for one row; a constant ``y_true`` gives
    r2 = 1 when predicted exactly, else 0.

    >>> regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))["mae"]
    0.3333333333333333
    """
    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    error = y_true - y_pred
    r2 = None
    if len(y_true) > 1:
        residual, total = float(np.sum(error ** 2)), float(np.sum((y_true - y_true.mean()) ** 2))
        r2 = 1.0 - residual / total if total > 0 else (1.0 if residual == 0 else 0.0)
    return {
        "rmse": float(np.sqrt(np.mean(error ** 2))),
        "mae": float(np.mean(np.abs(error))),
        "r2": r2,
        "n": int(len(y_true)),
    }


def compute(task: str, y_true: np.ndarray, output: np.ndarray) -> dict[str, Any]:
    """Metrics for ``task`` from probabilities [n, C] (classification) or values [n] (regression)."""
    if task == "regression":
        return regression_metrics(y_true, output)
    return classification_metrics(y_true, output)
