"""Presets (issue 15, item 2): ``--preset fast|default|best``, ``preset=`` in fit and the estimators.

``default`` is exactly the run without options; a preset only chooses the options left unset; ``best`` trains
cross-validated fold models saved together in one model file, predicting as their average.
"""

from __future__ import annotations

import copy
import json
import traceback

import numpy as np
import pytest
import torch
from conftest import FAST, make_table
from sklearn.base import clone
from typer.testing import CliRunner

import neuraltab
from neuraltab import api, artifacts
from neuraltab.cli import app
from neuraltab.config import PRESET_VALUES, TrainConfig, preset_choices, resolve
from neuraltab.errors import ArtifactError, ConfigError
from neuraltab.estimators import NeuralTabClassifier, NeuralTabRegressor
from neuraltab.networks import Bag, predict_output, temper

runner = CliRunner()
BAG = {**FAST, "preset": "best", "folds": 3}


@pytest.fixture(scope="module")
def table():
    return make_table(300, seed=3)


@pytest.fixture(scope="module")
def bag(table):
    return neuraltab.fit(table, "label", **BAG)


# ======================================================================================================================
# presets as options
# ======================================================================================================================
def test_default_preset_writes_the_very_bytes_of_a_run_without_options(table):
    plain = neuraltab.fit(table, "label", **FAST).to_bytes()
    assert neuraltab.fit(table, "label", preset="default", **FAST).to_bytes() == plain
    _, meta = artifacts.read_bundle_bytes(plain)
    assert "preset" not in meta["config"] and "folds" not in meta["config"]  # files as before presets existed


def test_a_preset_chooses_only_the_options_left_unset():
    fast = preset_choices(TrainConfig(preset="fast"))
    assert {name: getattr(fast, name) for name in PRESET_VALUES["fast"]} == PRESET_VALUES["fast"]
    given = preset_choices(TrainConfig(preset="fast", k=3, epochs=7))
    assert (given.k, given.epochs, given.d_block) == (3, 7, PRESET_VALUES["fast"]["d_block"])
    mlp = preset_choices(TrainConfig(preset="fast", model="mlp"))  # the default model's options stay unset
    assert mlp.k is None and mlp.d_block is None and mlp.epochs == PRESET_VALUES["fast"]["epochs"]
    resolved = resolve(TrainConfig(preset="fast"), n_train=1000, device_type="cpu")
    assert resolved.k == PRESET_VALUES["fast"]["k"]
    assert preset_choices(TrainConfig()) == TrainConfig()


def test_fast_preset_trains_its_smaller_network_and_the_users_options_win(table):
    fast = neuraltab.fit(table, "label", preset="fast", threads=1, epochs=3)
    assert fast.config.preset == "fast"
    assert (fast.spec["k"], fast.spec["d_block"]) == (PRESET_VALUES["fast"]["k"], PRESET_VALUES["fast"]["d_block"])
    assert len(fast.history["epochs"]) <= 3  # the user's epochs, not the preset's
    mine = neuraltab.fit(table, "label", preset="fast", threads=1, epochs=2, k=2)
    assert mine.spec["k"] == 2 and mine.spec["d_block"] == PRESET_VALUES["fast"]["d_block"]


def test_unknown_preset_and_bad_folds_are_one_line_config_errors(table):
    with pytest.raises(ConfigError, match="option 'preset' must be one of fast, default, best"):
        neuraltab.fit(table, "label", preset="quick")
    with pytest.raises(ConfigError, match="option 'folds' must be an integer from 2 to 20"):
        neuraltab.fit(table, "label", preset="best", folds=1)


def test_folds_without_the_best_preset_says_it_is_not_used(table):
    model = neuraltab.fit(table, "label", folds=3, **FAST)
    assert any("folds" in n and "not used" in n for n in model.notices)
    assert model.spec["kind"] == "tabm"
    unused = neuraltab.fit(make_table(120, seed=1), "label", valid_size=0.3, **{**BAG, "folds": 2})
    assert any("valid_size" in n and "not used" in n for n in unused.notices)


# ======================================================================================================================
# the best preset: folds, members, averaging, out-of-fold score
# ======================================================================================================================
def test_folds_are_seeded_stratified_and_cover_every_row():
    y = np.array([0] * 50 + [1] * 23 + [2] * 7)
    folds = api._fold_ids(y, 5, seed=4, classes=True)
    assert sorted(set(folds.tolist())) == [0, 1, 2, 3, 4]
    for c in range(3):  # each class spread over the folds within one row
        counts = np.bincount(folds[y == c], minlength=5)
        assert counts.max() - counts.min() <= 1, (c, counts)
    assert np.array_equal(folds, api._fold_ids(y, 5, seed=4, classes=True))
    assert not np.array_equal(folds, api._fold_ids(y, 5, seed=5, classes=True))
    sizes = np.bincount(api._fold_ids(np.zeros(23), 4, seed=0, classes=False))
    assert sizes.tolist() == [6, 6, 6, 5]


def test_bag_holds_one_network_per_fold_trained_on_the_other_folds(bag):
    assert bag.spec["kind"] == "bag" and isinstance(bag.network, Bag)
    assert len(bag.network.members) == len(bag.spec["members"]) == len(bag.history["members"]) == 3
    n_train = len(bag.splits["train"])
    assert len(bag.splits["valid"]) == 0  # the folds are the validation rows
    rows = [m["valid_rows"] for m in bag.history["members"]]
    assert sum(rows) == n_train and max(rows) - min(rows) <= 1
    assert all(m["train_rows"] == n_train - m["valid_rows"] for m in bag.history["members"])
    assert len({m["seed"] for m in bag.history["members"]}) == 3  # each its own initialisation
    assert bag.history["folds"] == 3


def test_bag_predicts_the_mean_of_its_fold_models(bag, table):
    batch = bag.preprocessor.transform(table.drop(columns="label"))
    x_num, x_cat = torch.from_numpy(batch.x_num), torch.from_numpy(batch.x_cat)
    each = [predict_output(m, x_num, x_cat, task="binary", precision=bag.config.precision).numpy()
            for m in bag.network.members]
    mean = temper(torch.from_numpy(np.mean(each, axis=0)), bag.spec["temperature"]).numpy()
    np.testing.assert_allclose(bag.predict_proba(table).to_numpy(), mean, rtol=0, atol=1e-6)
    assert not np.allclose(each[0], each[1], atol=1e-4)  # the members differ: averaging does something
    assert all("temperature" not in member for member in bag.spec["members"])  # one temperature, the bag's


def test_bag_temperature_is_fitted_on_the_out_of_fold_rows(bag, table):
    """The bag's one temperature minimises the log-loss of the out-of-fold probabilities (scikit-learn's as oracle),
    and the saved validation metrics are those tempered out-of-fold predictions'."""
    from sklearn.metrics import log_loss

    pool = api.prepare(table, "label", **BAG).batches["train"]
    folds = api._fold_ids(pool.y, 3, seed=bag.config.seed, classes=True)
    proba = np.zeros((len(pool.y), 2), np.float32)
    for i, member in enumerate(bag.network.members):
        rows = np.flatnonzero(folds == i)
        proba[rows] = predict_output(member, torch.from_numpy(pool.x_num[rows]), torch.from_numpy(pool.x_cat[rows]),
                                     task="binary", precision=bag.config.precision).numpy()

    def loss(t: float) -> float:
        return log_loss(pool.y, temper(torch.from_numpy(proba), t).numpy(), labels=[0, 1])

    t = bag.spec["temperature"]
    assert t != 1.0 and loss(t) < loss(1.0)
    from neuraltab.train.calibrate import HIGHEST, LOWEST

    # a minimum within the allowed temperatures, not just better than 1
    assert loss(t) <= min(loss(min(t * 1.05, HIGHEST)), loss(max(t / 1.05, LOWEST))) + 1e-9
    assert bag.metrics["valid"]["log_loss"] == pytest.approx(loss(t), rel=1e-4)


def test_regression_bag_averages_values(table):
    df = make_table(240, task="regression", seed=2)
    model = neuraltab.fit(df, "label", **BAG)
    batch = model.preprocessor.transform(df.drop(columns="label"))
    x_num, x_cat = torch.from_numpy(batch.x_num), torch.from_numpy(batch.x_cat)
    each = [predict_output(m, x_num, x_cat, task="regression", precision=model.config.precision).numpy()
            for m in model.network.members]
    expected = np.mean(each, axis=0) * model.preprocessor.y_std + model.preprocessor.y_mean
    np.testing.assert_allclose(model.predict(df).to_numpy(), expected, rtol=1e-5)
    assert model.metrics["valid"]["n"] == len(model.splits["train"]) and "rmse" in model.metrics["valid"]


def test_out_of_fold_metrics_predict_each_row_with_the_model_that_never_trained_on_it(bag, table):
    valid = bag.metrics["valid"]
    assert valid["n"] == len(bag.splits["train"])
    # the bag on its own training rows scores better than out of fold: the out-of-fold score is the honest one
    on_train = bag.evaluate(table.loc[bag.splits["train"]])
    assert on_train["log_loss"] < valid["log_loss"]
    assert bag.metrics["test"]["n"] == len(bag.splits["test"])


def test_same_seed_same_bag_bytes_and_another_seed_another(table, bag):
    assert neuraltab.fit(table, "label", **BAG).to_bytes() == bag.to_bytes()
    assert neuraltab.fit(table, "label", **{**BAG, "seed": 1}).to_bytes() != bag.to_bytes()


def test_save_load_round_trip_and_info(bag, table, tmp_path):
    path = bag.save(tmp_path / "bag.ntab")
    loaded = neuraltab.load(path)
    assert np.array_equal(loaded.predict_proba(table).to_numpy(), bag.predict_proba(table).to_numpy())
    assert loaded.to_bytes() == bag.to_bytes()
    info = loaded.info()
    assert info["model"]["kind"] == "bag" and len(info["model"]["members"]) == 3
    assert [m["fold"] for m in info["training"]["members"]] == [1, 2, 3]
    assert all(isinstance(m["best_epoch"], int) and m["best_score"] is not None for m in info["training"]["members"])
    assert info["config"]["preset"] == "best" and info["config"]["folds"] == 3


def test_time_limit_keeps_the_fold_models_finished_and_drops_the_one_it_cut(table, monkeypatch):
    real = api.fit_prepared
    calls = []

    def third_cut_short(prepared, **kwargs):  # the third fold model is the one the limit stops
        model = real(prepared, **kwargs)
        calls.append(prepared.cfg.time_limit)
        if len(calls) == 3:
            model.history["stop_reason"] = "time_limit"
        return model

    monkeypatch.setattr(api, "fit_prepared", third_cut_short)
    model = neuraltab.fit(table, "label", **{**BAG, "folds": 4, "time_limit": 600})
    assert len(calls) == 3 and all(0 < left <= 600 for left in calls)  # each gets what is left of the whole
    assert len(model.network.members) == 2 and [m["fold"] for m in model.history["members"]] == [1, 2]
    assert model.history["stop_reason"] == "time_limit"
    assert model.metrics["valid"]["n"] == sum(m["valid_rows"] for m in model.history["members"])


def test_a_time_limit_inside_the_first_fold_model_keeps_it_as_far_as_it_got(table):
    model = neuraltab.fit(table, "label", **{**BAG, "epochs": 5000, "patience": 5000, "time_limit": 0.3})
    assert len(model.network.members) == 1
    assert model.history["stop_reason"] == "time_limit"
    assert model.history["members"][0]["stop_reason"] == "time_limit"
    assert model.predict(table).isin(["yes", "no"]).all()


def test_resume_with_best_is_refused_before_training(table):
    with pytest.raises(ConfigError, match="'resume' does not work with .?preset.?") as info:
        neuraltab.fit(table, "label", resume=True, checkpoint="x.ckpt", **BAG)
    assert "\n" not in str(info.value)


def test_best_with_mlp_members_averages_them_too(table):
    model = neuraltab.fit(table, "label", model="mlp", layers=(8,), epochs=3, threads=1, preset="best", folds=2)
    assert [m["kind"] for m in model.spec["members"]] == ["mlp", "mlp"]
    batch = model.preprocessor.transform(table.drop(columns="label"))
    x_num, x_cat = torch.from_numpy(batch.x_num), torch.from_numpy(batch.x_cat)
    each = [predict_output(m, x_num, x_cat, task="binary", precision=model.config.precision).numpy()
            for m in model.network.members]
    np.testing.assert_allclose(model.predict_proba(table).to_numpy(), np.mean(each, axis=0), atol=1e-6)


# ======================================================================================================================
# model files: the loader checks the bag's keys
# ======================================================================================================================
def _resigned(model: neuraltab.Model, edit) -> bytes:
    tensors, meta = artifacts.read_bundle_bytes(model.to_bytes())
    meta = copy.deepcopy({k: v for k, v in meta.items() if k != "checksum"})
    tensors = dict(tensors)
    edit(tensors, meta)
    return artifacts.bundle_bytes(tensors, meta)


BROKEN_BAGS = {
    "a member spec dropped": lambda t, m: m["model"]["members"].pop(),
    "no members": lambda t, m: m["model"].update(members=[]),
    "members not a list": lambda t, m: m["model"].update(members={"0": m["model"]["members"][0]}),
    "a member with other outputs": lambda t, m: m["model"]["members"][1].update(n_out=3),
    "a bag inside the bag": lambda t, m: m["model"]["members"][0].update(kind="bag"),
    "a member's tensor dropped": lambda t, m: t.pop(next(k for k in sorted(t) if k.startswith("model.members.1."))),
    "a tensor of a fourth member": lambda t, m: t.update({"model.members.3.scaling": t["model.members.0.scaling"].clone()}),
    "member records dropped": lambda t, m: m["history"]["members"].pop(),
    "member records not a list": lambda t, m: m["history"].update(members=3),
    "200 members": lambda t, m: m["model"].update(members=m["model"]["members"] * 67),
}


@pytest.mark.parametrize("case", list(BROKEN_BAGS))
def test_inconsistent_bag_files_are_one_line_artifact_errors(bag, tmp_path, case):
    path = tmp_path / "bag.ntab"
    path.write_bytes(_resigned(bag, BROKEN_BAGS[case]))
    with pytest.raises(ArtifactError, match="bag.ntab: the model file is incomplete or inconsistent") as info:
        neuraltab.load(path)
    assert "\n" not in str(info.value)


def test_fuzzed_bag_files_load_identically_or_raise_artifact_error(bag, tmp_path):
    from test_model_file_fuzz import Reference, _summary, byte_mutations, check_file, check_loads_or_artifact_error, \
        resigned_mutations

    ref = Reference(bag.save(tmp_path / "original.ntab"))
    path = tmp_path / "model.ntab"
    failures, count = [], 0
    rng = np.random.default_rng(15)
    for description, data in byte_mutations(ref, rng, 400):
        path.write_bytes(data)
        count += 1
        if (problem := check_file(path, ref)) is not None:
            failures.append(f"{description} -> {problem}")
    for description, data in resigned_mutations(ref, rng, 200):
        path.write_bytes(data)
        count += 1
        if (problem := check_loads_or_artifact_error(path, ref)) is not None:
            failures.append(f"{description} -> {problem}")
    assert count > 500
    assert not failures, _summary(failures, count)


# ======================================================================================================================
# estimators
# ======================================================================================================================
TINY = {"k": 1, "d_block": 8, "n_blocks": 1, "d_embedding": 4, "n_bins": 8, "epochs": 4, "lr": 0.01, "threads": 1}


def test_estimators_take_preset_and_folds_and_clone_them(table):
    X, y = table.drop(columns="label"), table["label"]
    clf = NeuralTabClassifier(**TINY, preset="best", folds=2).fit(X, y)
    assert clf.model_.spec["kind"] == "bag" and len(clf.model_.network.members) == 2
    assert clf.predict_proba(X).shape == (len(X), 2)
    assert clf.model_.metrics["valid"]["n"] == len(X)  # no test split: every row is in a fold
    assert clone(clf).get_params() == clf.get_params() and clone(clf).get_params()["preset"] == "best"
    fast = NeuralTabClassifier(preset="fast", epochs=2, threads=1).fit(X, y)
    assert fast.model_.spec["k"] == PRESET_VALUES["fast"]["k"] and fast.k is None  # the parameter is left as given
    df = make_table(200, task="regression", seed=4)
    reg = NeuralTabRegressor(**TINY, preset="best", folds=3).fit(df.drop(columns="label"), df["label"])
    assert len(reg.model_.network.members) == 3 and reg.predict(df.drop(columns="label")).shape == (200,)


def test_estimator_bag_equals_fit_with_the_same_options(table):
    X, y = table.drop(columns="label"), table["label"]
    clf = NeuralTabClassifier(**TINY, preset="best", folds=2, seed=3).fit(X, y)
    model = neuraltab.fit(table, "label", task="binary", test_size=0.0, preset="best", folds=2, seed=3, **TINY)
    np.testing.assert_array_equal(clf.predict_proba(X)[:, 1], model.predict_proba(table)["yes"].to_numpy())


# ======================================================================================================================
# the command line
# ======================================================================================================================
CLI_FAST = ["--epochs", "3", "--k", "2", "--d-block", "16", "--n-blocks", "1", "--threads", "1", "--quiet"]


def cli(*args, code: int = 0):
    result = runner.invoke(app, [str(a) for a in args])
    if result.exit_code != code:
        tb = "".join(traceback.format_exception(*result.exc_info)) if result.exc_info else ""
        raise AssertionError(f"exit {result.exit_code}\n{result.stdout}\n{result.stderr}\n{tb}")
    return result


def test_cli_best_end_to_end(table, tmp_path):
    data = tmp_path / "t.csv"
    table.to_csv(data, index=False)
    model = tmp_path / "m.ntab"
    out = cli("train", data, "-t", "label", "--preset", "best", "--folds", "3", *CLI_FAST, "-o", model, "--json")
    result = json.loads(out.stdout)
    assert [m["fold"] for m in result["members"]] == [1, 2, 3]
    assert result["metrics"]["valid"]["n"] == sum(m["valid_rows"] for m in result["members"])
    again = tmp_path / "again.ntab"
    cli("train", data, "-t", "label", "--preset", "best", "--folds", "3", *CLI_FAST, "-o", again)
    assert again.read_bytes() == model.read_bytes()
    summary = cli("train", data, "-t", "label", "--preset", "best", "--folds", "3", *CLI_FAST, "-o", again, "--force")
    assert "out-of-fold validation metrics (3 fold models" in summary.stdout and "test metrics" in summary.stdout
    shown = cli("info", model).stdout
    assert "bag of 3 tabm fold models" in shown and "3 fold models of 3 folds" in shown
    evaluated = json.loads(cli("evaluate", model, data, "--json").stdout)
    assert evaluated["n"] == len(table)
    cli("predict", model, data, "-o", tmp_path / "p.csv", "--quiet")
    assert (tmp_path / "p.csv").read_text().count("\n") == len(table) + 1


def test_cli_default_preset_gives_the_same_file_and_resume_with_best_exits_2(table, tmp_path):
    data = tmp_path / "t.csv"
    table.to_csv(data, index=False)
    cli("train", data, "-t", "label", *CLI_FAST, "-o", tmp_path / "a.ntab")
    cli("train", data, "-t", "label", "--preset", "default", *CLI_FAST, "-o", tmp_path / "b.ntab")
    assert (tmp_path / "a.ntab").read_bytes() == (tmp_path / "b.ntab").read_bytes()
    refused = cli("train", data, "-t", "label", "--preset", "best", "--resume", *CLI_FAST, "-o", tmp_path / "c.ntab",
                  code=2)
    assert "--resume does not work with --preset best" in refused.stderr
    assert "Traceback" not in refused.stderr and not (tmp_path / "c.ntab").exists()


# ======================================================================================================================
# the other front doors use the averaged model through Model
# ======================================================================================================================
def test_serve_predicts_the_bags_average(bag, table):
    pytest.importorskip("fastapi", reason="the serve extra is not installed (pip install 'neuraltab[serve]')")
    from fastapi.testclient import TestClient

    from neuraltab.serve import create_app

    rows = table.drop(columns="label").head(5)
    records = [{k: (None if isinstance(v, float) and np.isnan(v) else v) for k, v in r.items()}
               for r in rows.to_dict(orient="records")]
    with TestClient(create_app({"bag": bag}, warm_up=True)) as client:
        response = client.post("/predict", json={"instances": records})
    assert response.status_code == 200, response.text
    served = [p["yes"] for p in response.json()["probabilities"]]
    np.testing.assert_allclose(served, bag.predict_proba(rows)["yes"].to_numpy(), atol=1e-6)


def test_report_describes_the_fold_models(bag):
    from neuraltab.report.collect import network_layers

    layers = network_layers(bag)
    assert layers[-1]["name"] == "3 fold models"
    assert layers[-1]["params"] == sum(p.numel() for p in bag.network.parameters())
    assert any(layer["name"].startswith("block") for layer in layers)


def test_cli_time_limit_bounds_the_whole_bag(table, tmp_path):
    data = tmp_path / "t.csv"
    table.to_csv(data, index=False)
    out = cli("train", data, "-t", "label", "--preset", "best", "--folds", "3", *CLI_FAST, "--epochs", "100000",
              "--patience", "100000", "--time-limit", "0.5", "-o", tmp_path / "m.ntab", "--json")
    result = json.loads(out.stdout)
    assert result["stop_reason"] == "time_limit" and len(result["members"]) == 1  # the first, as far as it got
    assert result["train_seconds"] < 30
    assert neuraltab.load(tmp_path / "m.ntab").predict(table).isin(["yes", "no"]).all()
