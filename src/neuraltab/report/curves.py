"""The numbers behind the report's plots, in numpy: ROC and precision-recall curves, calibration, thresholds and
bootstrap confidence intervals.

Each curve is defined as scikit-learn defines it (tests/test_report.py checks them against ``roc_curve``,
``precision_recall_curve`` and ``calibration_curve``), written here so that the plotted numbers are ours to test.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..metrics import compute

__all__ = ["roc", "precision_recall", "calibration", "expected_calibration_error", "brier", "threshold_table",
           "confusion", "bootstrap", "N_BOOTSTRAP"]

N_BOOTSTRAP = 300  # resamples of the evaluation rows for a 95% interval


def _counts_at_thresholds(positive: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positives, true positives, threshold) at each distinct score, highest first: the rows scoring at least
    the threshold are called positive."""
    order = np.argsort(-score, kind="stable")
    score, positive = score[order], positive[order].astype(np.float64)
    last = np.r_[np.flatnonzero(np.diff(score)), len(score) - 1]
    tps = np.cumsum(positive)[last]
    return 1 + last - tps, tps, score[last]


def roc(positive: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(false positive rate, true positive rate, thresholds) as ``sklearn.metrics.roc_curve`` gives them (collinear
    points dropped, a first point at threshold inf)."""
    fps, tps, thresholds = _counts_at_thresholds(np.asarray(positive, dtype=bool), np.asarray(score, dtype=np.float64))
    if len(fps) > 2:
        keep = np.r_[True, np.logical_or(np.diff(fps, 2), np.diff(tps, 2)), True]
        fps, tps, thresholds = fps[keep], tps[keep], thresholds[keep]
    fps, tps = np.r_[0.0, fps], np.r_[0.0, tps]
    return fps / fps[-1], tps / tps[-1], np.r_[np.inf, thresholds]


def precision_recall(positive: np.ndarray, score: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(precision, recall, thresholds) as ``sklearn.metrics.precision_recall_curve`` gives them (recall falling,
    ending at precision 1, recall 0)."""
    fps, tps, thresholds = _counts_at_thresholds(np.asarray(positive, dtype=bool), np.asarray(score, dtype=np.float64))
    called = tps + fps
    precision = np.divide(tps, called, out=np.zeros_like(tps), where=called != 0)
    recall = tps / tps[-1]
    return np.r_[precision[::-1], 1.0], np.r_[recall[::-1], 0.0], thresholds[::-1]


def calibration(positive: np.ndarray, prob: np.ndarray, n_bins: int = 10) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(observed frequency, mean predicted probability, rows) per non-empty bin of ``n_bins`` equal-width bins of
    [0, 1], as ``sklearn.calibration.calibration_curve(strategy="uniform")`` gives the first two."""
    prob = np.asarray(prob, dtype=np.float64)
    bins = np.searchsorted(np.linspace(0.0, 1.0, n_bins + 1)[1:-1], prob)
    total = np.bincount(bins, minlength=n_bins)
    true = np.bincount(bins, weights=np.asarray(positive, dtype=np.float64), minlength=n_bins)
    sums = np.bincount(bins, weights=prob, minlength=n_bins)
    seen = total != 0
    return true[seen] / total[seen], sums[seen] / total[seen], total[seen]


def expected_calibration_error(positive: np.ndarray, prob: np.ndarray, n_bins: int = 10) -> float:
    """The rows' share-weighted mean gap between observed frequency and mean probability over :func:`calibration`'s
    bins."""
    observed, predicted, rows = calibration(positive, prob, n_bins)
    return float(np.sum(rows * np.abs(observed - predicted)) / max(rows.sum(), 1))


def brier(y: np.ndarray, proba: np.ndarray) -> float:
    """Binary: the mean squared gap between class 1's probability and the outcome (``brier_score_loss``);
    multiclass: the mean over rows of the squared gaps summed over classes."""
    proba = np.asarray(proba, dtype=np.float64)
    if proba.shape[1] == 2:
        return float(np.mean((proba[:, 1] - (y == 1)) ** 2))
    return float(np.mean(np.sum((proba - np.eye(proba.shape[1])[y]) ** 2, axis=1)))


def threshold_table(positive: np.ndarray, score: np.ndarray, thresholds: np.ndarray) -> dict[str, np.ndarray]:
    """Precision, recall, F1 and accuracy when the rows scoring at least each threshold are called positive."""
    positive = np.asarray(positive, dtype=bool)
    called = np.asarray(score)[None, :] >= np.asarray(thresholds)[:, None]  # [thresholds, rows]
    tp = (called & positive).sum(1).astype(np.float64)
    n_called, n_pos = called.sum(1), positive.sum()
    precision = np.divide(tp, n_called, out=np.zeros_like(tp), where=n_called > 0)
    recall = tp / n_pos if n_pos else np.zeros_like(tp)
    f1 = np.divide(2 * tp, n_called + n_pos, out=np.zeros_like(tp), where=(n_called + n_pos) > 0)
    accuracy = (called == positive).mean(1)
    return {"threshold": np.asarray(thresholds, dtype=np.float64), "precision": precision, "recall": recall,
            "f1": f1, "accuracy": accuracy}


def confusion(y: np.ndarray, predicted: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """Counts int[C, C] (rows: true class, columns: predicted) and the rows normalised to sum to 1 (0 for an
    absent class)."""
    counts = np.bincount(y * n_classes + predicted, minlength=n_classes * n_classes).reshape(n_classes, n_classes)
    totals = counts.sum(1, keepdims=True)
    return counts, np.divide(counts, totals, out=np.zeros(counts.shape), where=totals > 0)


def _primary(task: str, y: np.ndarray, output: np.ndarray, draws: np.ndarray) -> np.ndarray:
    """The task's primary metric (accuracy, or RMSE) on each resample ``draws[r]``: float[R], vectorised."""
    if task == "regression":
        squared = (np.asarray(y, dtype=np.float64) - np.asarray(output, dtype=np.float64)) ** 2
        return np.sqrt(squared[draws].mean(1))
    return (np.asarray(output).argmax(1) == y)[draws].mean(1)


def bootstrap(task: str, y: np.ndarray, outputs: dict[str, np.ndarray], *, seed: int,
              n_resamples: int = N_BOOTSTRAP, full: tuple[str, ...] = ("network",)) -> dict[str, dict[str, np.ndarray]]:
    """Metrics on ``n_resamples`` resamples of the rows drawn with replacement, the same resamples for every model
    (so their differences are paired): name → metric → float[R], NaN where a resample leaves a metric undefined.
    The models named in ``full`` get every metric of :func:`neuraltab.metrics.compute`, the others the primary one
    (``PRIMARY[task]``)."""
    from ..metrics import PRIMARY

    rng = np.random.default_rng(seed)
    draws = rng.integers(0, len(y), size=(n_resamples, len(y)))
    out: dict[str, dict[str, np.ndarray]] = {}
    for name, output in outputs.items():
        if name not in full:
            out[name] = {PRIMARY[task]: _primary(task, y, output, draws)}
            continue
        values: dict[str, list[float]] = {}
        for rows in draws:
            for metric, value in compute(task, y[rows], output[rows]).items():
                if metric not in ("confusion_matrix", "n"):
                    values.setdefault(metric, []).append(np.nan if value is None else float(value))
        out[name] = {metric: np.asarray(v) for metric, v in values.items()}
    return out


def interval(values: np.ndarray) -> tuple[float, float] | None:
    """The 2.5th and 97.5th percentiles of the finite ``values``, or None when there are none."""
    finite = values[np.isfinite(values)]
    if not len(finite):
        return None
    low, high = np.percentile(finite, [2.5, 97.5])
    return float(low), float(high)


def summary_of(task: str, y: np.ndarray, output: np.ndarray) -> dict[str, Any]:
    """:func:`compute` without the confusion matrix."""
    return {k: v for k, v in compute(task, y, output).items() if k != "confusion_matrix"}
