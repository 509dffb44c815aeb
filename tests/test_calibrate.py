"""Temperature scaling of the default model's probabilities (train/calibrate.py, networks.temper)."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.metrics import log_loss

import neuraltab
from conftest import FAST, make_table
from neuraltab.api import fit_prepared, load_bytes, prepare
from neuraltab.artifacts import bundle_bytes, read_bundle_bytes
from neuraltab.networks import predict_output, temper
from neuraltab.train.calibrate import HIGHEST, LOWEST, calibrated_log_loss, fit_temperature


def _p(t: torch.Tensor) -> np.ndarray:
    """float64 rows summing to one, as scikit-learn's log_loss wants them."""
    p = t.double().numpy()
    return p / p.sum(1, keepdims=True)


def _overconfident(n: int = 2000, classes: int = 3, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Probabilities sharper than the labels' true ones: a calibrated model would be softer."""
    rng = np.random.default_rng(seed)
    logits = rng.normal(size=(n, classes)) * 2
    true = torch.softmax(torch.from_numpy(logits), 1).numpy()
    y = np.array([rng.choice(classes, p=p) for p in true])
    return torch.softmax(torch.from_numpy(logits * 3), 1).numpy(), y


def test_temperature_minimises_the_log_loss_sklearn_computes():
    proba, y = _overconfident()
    t = fit_temperature(proba, y)
    assert 1.5 < t < HIGHEST  # the probabilities were made 3x too sharp in logit
    tempered = _p(temper(torch.from_numpy(proba).float(), t))
    before, after = log_loss(y, proba), log_loss(y, tempered)
    assert after < before - 0.05
    grid = {g: log_loss(y, _p(temper(torch.from_numpy(proba).float(), g)))
            for g in np.linspace(LOWEST, HIGHEST, 400)}
    assert after <= min(grid.values()) + 1e-4  # the bisection found the minimum a fine grid finds


def test_the_calibrated_loss_is_sklearns_log_loss_of_the_tempered_probabilities():
    proba, y = _overconfident(seed=2)
    tempered = _p(temper(torch.from_numpy(proba).float(), fit_temperature(proba, y)))
    assert calibrated_log_loss(proba, y) == pytest.approx(log_loss(y, tempered), abs=1e-6)
    assert calibrated_log_loss(proba, y) < log_loss(y, proba) - 0.05  # overconfidence is not charged for
    # the same accuracy, one overconfident and one soft version of it: the same calibrated loss
    soft = torch.softmax(torch.from_numpy(np.log(proba) / 3), 1).numpy()
    assert calibrated_log_loss(soft, y) == pytest.approx(calibrated_log_loss(proba, y), abs=1e-4)


def test_tempering_leaves_every_rows_class_and_sums_to_one():
    proba, _ = _overconfident(seed=1)
    p = torch.from_numpy(proba).float()
    for t in (LOWEST, 0.5, 2.0, HIGHEST):
        out = temper(p, t)
        assert torch.equal(out.argmax(1), p.argmax(1))
        assert torch.allclose(out.sum(1), torch.ones(len(out)), atol=1e-5)
    assert torch.allclose(temper(p, 1.0), p, atol=1e-6)


def test_temperature_is_clipped_and_empty_is_one():
    y = np.array([0, 1, 0, 1])
    right = np.array([[0.9, 0.1], [0.2, 0.8], [0.7, 0.3], [0.4, 0.6]])
    assert fit_temperature(right, y) == LOWEST  # every row right: sharper is always better on these rows
    assert fit_temperature(right, 1 - y) == HIGHEST  # every row wrong: as soft as allowed
    assert fit_temperature(np.zeros((0, 2)), np.zeros(0, dtype=np.int64)) == 1.0


@pytest.mark.parametrize("task", ["binary", "multiclass"])
def test_fit_tempers_the_validation_probabilities_and_lowers_their_log_loss(task):
    prepared = prepare(make_table(400, task=task), "label", seed=0, test_size=0, **{**FAST, "epochs": 30})
    model = fit_prepared(prepared)
    t = model.spec["temperature"]
    assert LOWEST <= t <= HIGHEST and t != 1.0
    x_num, x_cat, y = prepared.tensors("valid")
    raw = _p(predict_output(model.network, x_num, x_cat, task=task, precision=model.config.precision))
    tempered = _p(predict_output(model.network, x_num, x_cat, task=task, precision=model.config.precision,
                                 temperature=t))
    labels = list(range(raw.shape[1]))
    assert log_loss(y.numpy(), tempered, labels=labels) <= log_loss(y.numpy(), raw, labels=labels) + 1e-9
    assert np.array_equal(tempered.argmax(1), raw.argmax(1))


def test_the_temperature_survives_the_file_and_an_old_file_predicts_untempered():
    df = make_table(300)
    model = neuraltab.fit(df, "label", seed=0, **FAST)
    loaded = load_bytes(model.to_bytes())
    assert loaded.spec["temperature"] == model.spec["temperature"]
    pd.testing.assert_frame_equal(loaded.predict_proba(df), model.predict_proba(df))
    tensors, meta = read_bundle_bytes(model.to_bytes())
    meta["model"] = {k: v for k, v in meta["model"].items() if k != "temperature"}  # as written before it existed
    old = load_bytes(bundle_bytes(tensors, meta))
    p_old = old.predict_proba(df).to_numpy()
    p_new = model.predict_proba(df).to_numpy()
    assert not np.allclose(p_old, p_new)
    assert np.array_equal(p_old.argmax(1), p_new.argmax(1))
    expected = temper(torch.from_numpy(p_old.copy()).float(), model.spec["temperature"]).numpy()
    np.testing.assert_allclose(p_new, expected, atol=1e-5)


def test_regression_and_the_plain_mlp_get_no_temperature():
    assert "temperature" not in neuraltab.fit(make_table(200, task="regression"), "label", **FAST).spec
    assert "temperature" not in neuraltab.fit(make_table(200), "label", model="mlp", epochs=3, threads=1).spec


def test_the_default_model_early_stops_on_the_calibrated_loss_and_the_plain_mlp_on_the_raw_one():
    df = make_table(300)
    default = neuraltab.fit(df, "label", seed=0, test_size=0, **FAST)
    prepared = prepare(df, "label", seed=0, test_size=0, **FAST)
    x_num, x_cat, y = prepared.tensors("valid")
    proba = predict_output(default.network, x_num, x_cat, task="binary", precision=default.config.precision)
    kept = default.history["epochs"][default.history["best_epoch"] - 1]
    # the kept epoch's weights are the model's: its logged validation loss is their calibrated loss, not the raw one
    assert kept["valid_loss"] == pytest.approx(calibrated_log_loss(proba, y), abs=1e-6)
    assert kept["valid_loss"] < log_loss(y.numpy(), _p(proba), labels=[0, 1]) - 1e-4
    assert kept["valid_loss"] == min(e["valid_loss"] for e in default.history["epochs"])
    mlp = neuraltab.fit(df, "label", seed=0, test_size=0, model="mlp", epochs=5, threads=1)
    prepared = prepare(df, "label", seed=0, test_size=0, model="mlp", epochs=5, threads=1)
    x_num, x_cat, y = prepared.tensors("valid")
    proba = predict_output(mlp.network, x_num, x_cat, task="binary", precision=mlp.config.precision)
    kept = mlp.history["epochs"][mlp.history["best_epoch"] - 1]
    assert kept["valid_loss"] == pytest.approx(log_loss(y.numpy(), _p(proba), labels=[0, 1]), abs=1e-5)
