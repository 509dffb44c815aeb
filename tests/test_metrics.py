"""neuraltab.metrics (numpy) against scikit-learn's metric functions called directly (the oracle)."""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
from sklearn import metrics as skm

from neuraltab.metrics import PRIMARY, classification_metrics, compute, regression_metrics, roc_auc


def _proba(rng: np.random.Generator, n: int, n_classes: int) -> np.ndarray:
    logits = rng.normal(size=(n, n_classes)) * 2
    p = np.exp(logits)
    return p / p.sum(axis=1, keepdims=True)


def _quietly(fn, *args):
    with warnings.catch_warnings():  # "y_pred contains classes not in y_true" is expected in some cases here
        warnings.simplefilter("ignore")
        return fn(*args)


def _oracle(y_true: np.ndarray, proba: np.ndarray) -> dict:
    labels = np.arange(proba.shape[1])
    y_pred = proba.argmax(axis=1)
    return {
        "accuracy": skm.accuracy_score(y_true, y_pred),
        "balanced_accuracy": _quietly(skm.balanced_accuracy_score, y_true, y_pred),
        "log_loss": skm.log_loss(y_true, proba, labels=labels),
        "f1_macro": skm.f1_score(y_true, y_pred, average="macro", zero_division=0),
        "confusion_matrix": skm.confusion_matrix(y_true, y_pred, labels=labels).tolist(),
    }


def _assert_matches(ours: dict, oracle: dict) -> None:
    for name in ("accuracy", "balanced_accuracy", "log_loss", "f1_macro"):
        assert ours[name] == pytest.approx(oracle[name], rel=1e-9, abs=1e-12), name
    assert ours["confusion_matrix"] == oracle["confusion_matrix"]


def test_binary_matches_sklearn():
    rng = np.random.default_rng(0)
    y = rng.integers(0, 2, 200)
    proba = _proba(rng, 200, 2)
    proba[y == 1] = proba[y == 1][:, ::-1] * 0.3 + proba[y == 1] * 0.7  # some signal, not perfect
    ours = classification_metrics(y, proba)
    _assert_matches(ours, _oracle(y, proba))
    assert ours["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba[:, 1]), rel=1e-12)
    assert ours["n"] == 200
    json.dumps(ours)  # the metrics go into the model file and --json output


def test_multiclass_matches_sklearn():
    rng = np.random.default_rng(1)
    y = rng.integers(0, 4, 300)
    proba = _proba(rng, 300, 4)
    ours = classification_metrics(y, proba)
    _assert_matches(ours, _oracle(y, proba))
    assert ours["roc_auc"] == pytest.approx(skm.roc_auc_score(y, proba, multi_class="ovr", average="macro"), rel=1e-9)
    assert np.array(ours["confusion_matrix"]).shape == (4, 4)


def test_multiclass_with_a_class_missing_from_y_true():
    # Class 2 never occurs in y_true but the model predicts it for some rows: sklearn's macro F1 counts it
    # (F1 = 0 for that class), and there is no one-vs-rest AUC for a class without positives.
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, 120)
    proba = _proba(rng, 120, 3)
    assert (proba.argmax(axis=1) == 2).any()
    ours = classification_metrics(y, proba)
    _assert_matches(ours, _oracle(y, proba))
    assert ours["roc_auc"] is None
    assert np.array(ours["confusion_matrix"]).shape == (3, 3)
    assert sum(ours["confusion_matrix"][2]) == 0  # no true rows of class 2


def test_multiclass_class_missing_from_y_true_and_never_predicted():
    rng = np.random.default_rng(3)
    y = rng.integers(0, 2, 100)
    proba = _proba(rng, 100, 3)
    proba[:, 2] = 0.0
    proba /= proba.sum(axis=1, keepdims=True)
    ours = classification_metrics(y, proba)
    oracle = _oracle(y, proba)
    for name in ("accuracy", "balanced_accuracy", "f1_macro"):
        assert ours[name] == pytest.approx(oracle[name], rel=1e-9)
    assert np.isfinite(ours["log_loss"])
    assert ours["roc_auc"] is None


@pytest.mark.parametrize("n_classes", [2, 3])
def test_roc_auc_is_none_when_only_one_class_is_present(n_classes):
    rng = np.random.default_rng(4)
    y = np.ones(30, dtype=np.int64)
    proba = _proba(rng, 30, n_classes)
    ours = classification_metrics(y, proba)
    assert ours["roc_auc"] is None
    assert ours["accuracy"] == pytest.approx(skm.accuracy_score(y, proba.argmax(axis=1)))
    assert ours["log_loss"] == pytest.approx(skm.log_loss(y, proba, labels=np.arange(n_classes)), rel=1e-9)


def test_confident_wrong_predictions_give_a_finite_log_loss():
    y = np.array([0, 1, 1, 0])
    proba = np.array([[0.0, 1.0], [1.0, 0.0], [0.0, 1.0], [1.0, 0.0]])
    ours = classification_metrics(y, proba)
    assert np.isfinite(ours["log_loss"]) and ours["log_loss"] > 10
    assert ours["accuracy"] == 0.5


def test_input_probabilities_are_not_modified():
    rng = np.random.default_rng(5)
    proba = _proba(rng, 50, 3)
    before = proba.copy()
    classification_metrics(rng.integers(0, 3, 50), proba)
    np.testing.assert_array_equal(proba, before)


def test_regression_matches_sklearn():
    rng = np.random.default_rng(6)
    y = rng.normal(100, 15, 500)
    pred = y + rng.normal(0, 5, 500)
    ours = regression_metrics(y, pred)
    assert ours["rmse"] == pytest.approx(np.sqrt(skm.mean_squared_error(y, pred)), rel=1e-12)
    assert ours["mae"] == pytest.approx(skm.mean_absolute_error(y, pred), rel=1e-12)
    assert ours["r2"] == pytest.approx(skm.r2_score(y, pred), rel=1e-12)
    assert ours["n"] == 500
    json.dumps(ours)


def test_regression_accepts_float32_and_single_rows():
    y = np.array([1.0, 2.0, 3.0], dtype=np.float32)
    pred = np.array([1.5, 2.0, 2.0], dtype=np.float32)
    ours = regression_metrics(y, pred)
    assert ours["mae"] == pytest.approx(skm.mean_absolute_error(y.astype(float), pred.astype(float)))
    one = regression_metrics(np.array([2.0]), np.array([3.0]))
    assert one["r2"] is None and one["rmse"] == 1.0


def test_compute_dispatches_on_task():
    reg = compute("regression", np.array([1.0, 2.0]), np.array([1.0, 2.5]))
    assert set(reg) == {"rmse", "mae", "r2", "n"} and reg["mae"] == 0.25
    clf = compute("binary", np.array([0, 1]), np.array([[0.8, 0.2], [0.3, 0.7]]))
    assert clf["accuracy"] == 1.0 and clf["roc_auc"] == 1.0
    for task, metric in PRIMARY.items():  # every task's headline metric is actually computed
        assert metric in (reg if task == "regression" else clf)


@pytest.mark.parametrize("seed", range(6))
def test_roc_auc_with_heavy_ties_matches_sklearn(seed):
    rng = np.random.default_rng(seed)
    n = int(rng.integers(5, 300))
    positive = rng.random(n) < rng.uniform(0.1, 0.9)
    positive[:2] = [True, False]
    score = rng.integers(0, int(rng.integers(2, 12)), n) / 10  # few distinct scores: many ties
    assert roc_auc(positive, score) == pytest.approx(skm.roc_auc_score(positive, score), rel=1e-12)


def test_metrics_of_predictions_in_classes_missing_from_y_true_match_sklearn():
    y = np.array([0, 0, 1, 1, 1, 0])
    proba = np.eye(4)[[0, 2, 1, 3, 1, 0]] * 0.7 + 0.075  # predicts classes 2 and 3, which never occur
    ours = classification_metrics(y, proba)
    _assert_matches(ours, _oracle(y, proba))
    assert ours["roc_auc"] is None


@pytest.mark.parametrize(("y", "pred"), [([2.0, 2.0, 2.0], [2.0, 2.0, 2.0]), ([2.0, 2.0, 2.0], [1.0, 2.0, 3.0])])
def test_r2_of_a_constant_target_is_sklearns(y, pred):
    y, pred = np.array(y), np.array(pred)
    assert regression_metrics(y, pred)["r2"] == skm.r2_score(y, pred)


def test_metrics_do_not_import_sklearn():
    import subprocess
    import sys

    code = ("import sys, numpy as np; from neuraltab.metrics import compute; "
            "compute('binary', np.array([0, 1]), np.array([[0.8, 0.2], [0.3, 0.7]])); "
            "compute('regression', np.array([1.0, 2.0]), np.array([1.0, 2.5])); "
            "print(sorted(m for m in ('sklearn', 'scipy') if m in sys.modules))")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[]"
