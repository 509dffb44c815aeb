"""The refit of small regression tables on their training and validation rows (api.refits, api._refit)."""

from __future__ import annotations

import pytest

import neuraltab
from conftest import FAST, make_table
from neuraltab import api


def test_a_small_regression_table_refits_for_the_best_epoch_count_on_all_its_rows():
    df = make_table(300, task="regression")
    prepared = api.prepare(df, "label", seed=0, **FAST)
    model = api.fit_prepared(prepared)
    n_fit = len(prepared.batches["train"]) + len(prepared.batches["valid"])
    assert model.history["refit"] == {"rows": n_fit, "epochs": model.history["best_epoch"]}
    # the validation metrics are the first network's, on rows it did not train on; the refit network differs
    first = api.fit_prepared(api.prepare(df, "label", seed=0, **FAST, time_limit=1e6))  # a time limit: no refit
    assert "refit" not in first.history
    assert model.metrics["valid"] == first.metrics["valid"]
    assert model.metrics["test"] != first.metrics["test"]
    again = neuraltab.fit(df, "label", seed=0, **FAST)
    assert again.to_bytes() == model.to_bytes()  # still one seed, one file


@pytest.mark.parametrize("options", [{"task": "binary"}, {"rows": api.REFIT_ROWS + 10}, {"early_stopping": False},
                                     {"model": "mlp"}])
def test_no_refit_for_classification_large_tables_or_without_early_stopping(options):
    options = dict(options)
    rows = options.pop("rows", 300)
    task = options.pop("task", "regression")
    fast = {**FAST, "epochs": 2} if options.get("model") != "mlp" else {"epochs": 2, "threads": 1}
    model = neuraltab.fit(make_table(rows, task=task), "label", seed=0, test_size=0, **fast, **options)
    assert "refit" not in model.history


def test_a_refit_model_round_trips_through_its_file():
    df = make_table(300, task="regression")
    model = neuraltab.fit(df, "label", seed=0, **FAST)
    loaded = api.load_bytes(model.to_bytes())
    assert loaded.history["refit"] == model.history["refit"]
    assert (loaded.predict(df) == model.predict(df)).all()
