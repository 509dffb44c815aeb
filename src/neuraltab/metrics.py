"""Metric tables per task, computed with scikit-learn's functions."""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["classification_metrics", "regression_metrics", "compute", "PRIMARY"]

# The metric each task is judged by first (shown first, used by the benchmarks).
PRIMARY = {"binary": "accuracy", "multiclass": "accuracy", "regression": "rmse"}


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    """y_true: int64[n] class codes; proba: float[n, C] rows summing to 1.

    >>> m = classification_metrics(np.array([0, 1, 1]), np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]]))
    >>> round(m["accuracy"], 4), m["confusion_matrix"]
    (0.6667, [[1, 0], [1, 1]])
    """
    from sklearn import metrics as skm

    n_classes = proba.shape[1]
    labels = np.arange(n_classes)
    y_pred = proba.argmax(axis=1)
    proba = np.clip(proba.astype(np.float64), 1e-15, 1.0)
    proba /= proba.sum(axis=1, keepdims=True)
    out: dict[str, Any] = {
        "accuracy": float(skm.accuracy_score(y_true, y_pred)),
        "balanced_accuracy": float(_quiet(skm.balanced_accuracy_score, y_true, y_pred)),
        "log_loss": float(skm.log_loss(y_true, proba, labels=labels)),
        "roc_auc": None,
        "f1_macro": float(skm.f1_score(y_true, y_pred, average="macro", zero_division=0)),
    }
    present = np.unique(y_true)
    if len(present) >= 2:
        if n_classes == 2:
            out["roc_auc"] = float(skm.roc_auc_score(y_true, proba[:, 1]))
        elif len(present) == n_classes:
            out["roc_auc"] = float(skm.roc_auc_score(y_true, proba, multi_class="ovr", average="macro", labels=labels))
    out["confusion_matrix"] = skm.confusion_matrix(y_true, y_pred, labels=labels).tolist()
    out["n"] = int(len(y_true))
    return out


def regression_metrics(y_true: np.ndarray, y_pred: np.ndarray) -> dict[str, Any]:
    """y_true, y_pred: float[n] in the target's own units.

    >>> regression_metrics(np.array([1.0, 2.0, 3.0]), np.array([1.0, 2.0, 4.0]))["mae"]
    0.3333333333333333
    """
    from sklearn import metrics as skm

    y_true = np.asarray(y_true, dtype=np.float64)
    y_pred = np.asarray(y_pred, dtype=np.float64)
    return {
        "rmse": float(np.sqrt(skm.mean_squared_error(y_true, y_pred))),
        "mae": float(skm.mean_absolute_error(y_true, y_pred)),
        "r2": float(skm.r2_score(y_true, y_pred)) if len(y_true) > 1 else None,
        "n": int(len(y_true)),
    }


def compute(task: str, y_true: np.ndarray, output: np.ndarray) -> dict[str, Any]:
    """Metrics for ``task`` from probabilities [n, C] (classification) or values [n] (regression)."""
    if task == "regression":
        return regression_metrics(y_true, output)
    return classification_metrics(y_true, output)


def _quiet(fn: Any, *args: Any) -> Any:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return fn(*args)
