"""Contract tests of the scikit-learn estimators: scikit-learn's own estimator checks, then the workflows people use
them in (Pipeline, cross-validation, grid search, clone, pickle), files, messages, and agreement with neuraltab.fit."""

from __future__ import annotations

import dataclasses
import inspect
import io
import json
import pickle
import re

import numpy as np
import pandas as pd
import pytest
from sklearn.base import clone
from sklearn.compose import ColumnTransformer
from sklearn.exceptions import NotFittedError
from sklearn.impute import SimpleImputer
from sklearn.model_selection import GridSearchCV, cross_val_score
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler
from sklearn.utils.estimator_checks import parametrize_with_checks

import neuraltab
from neuraltab import NeuralTabClassifier, NeuralTabRegressor, TrainConfig
from neuraltab.errors import ArtifactError

from conftest import make_table

# The smallest settings that still learn scikit-learn's check problems (its blobs need accuracy > 0.83 and its
# regression R² > 0.5): one member, one block of width 8, four epochs, one thread.
TINY = {"k": 1, "d_block": 8, "n_blocks": 1, "d_embedding": 4, "n_bins": 8, "epochs": 4, "lr": 0.01, "threads": 1}


# ======================================================================================================================
# scikit-learn's estimator checks
# ======================================================================================================================
# No check is expected to fail, so no `expected_failed_checks` are given: any failure is a real failure.
@parametrize_with_checks([NeuralTabClassifier(**TINY), NeuralTabRegressor(**TINY)])
def test_scikit_learn_estimator_checks(estimator, check, monkeypatch):
    # check_array_api_input (NumPy inputs with array API dispatch on) skips itself unless this variable is set. It
    # only reads it at call time; neuraltab calls no SciPy function under dispatch, so setting it here is enough.
    monkeypatch.setenv("SCIPY_ARRAY_API", "1")
    check(estimator)


def test_parameters_are_the_config_fields_with_the_same_defaults():
    fields = {f.name: f.default for f in dataclasses.fields(TrainConfig)}
    for cls in (NeuralTabClassifier, NeuralTabRegressor):
        params = cls().get_params()
        # the task comes from the estimator type, and there is no test split: scikit-learn does the splitting
        assert set(params) == set(fields) - {"task", "test_size"}
        assert params == {name: fields[name] for name in params}
        assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in list(inspect.signature(cls).parameters.values()))


# ======================================================================================================================
# workflows
# ======================================================================================================================
@pytest.fixture(scope="module")
def table():
    df = make_table(240, task="binary", seed=1)
    return df.drop(columns="label"), df["label"]


@pytest.fixture(scope="module")
def fitted(table):
    X, y = table
    return NeuralTabClassifier(**TINY, seed=2).fit(X, y)


def test_mixed_dataframe_with_missing_values_and_string_categories(table, fitted):
    X, y = table
    X = X.assign(member=np.arange(len(X)) % 3 == 0, joined=pd.date_range("2020-01-01", periods=len(X), freq="D"))
    assert X["x2"].isna().any()
    before = X.copy(deep=True)
    clf = NeuralTabClassifier(**TINY, seed=2).fit(X, y)
    pd.testing.assert_frame_equal(X, before)  # the caller's table is never modified
    kinds = {c.name: c.kind for c in clf.model_.schema.features}
    assert kinds == {"x1": "numeric", "x2": "numeric", "color": "categorical", "size": "categorical",
                     "member": "boolean", "joined": "datetime"}
    assert clf.classes_.tolist() == ["no", "yes"]
    assert clf.feature_names_in_.tolist() == list(X.columns) and clf.n_features_in_ == 6
    proba = clf.predict_proba(X)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-6)
    assert (clf.predict(X) == clf.classes_[proba.argmax(axis=1)]).all()
    assert clf.score(X, y) > 0.65  # chance is 0.5
    assert clf.history_["epochs"] and clf.history_["stop_reason"] in {"max_epochs", "early_stopping"}


def test_numpy_input_gets_positional_column_names():
    X = np.random.default_rng(0).normal(size=(50, 3))
    reg = NeuralTabRegressor(**TINY).fit(X, X[:, 0] * 2.0)
    assert reg.model_.schema.feature_names() == ["x0", "x1", "x2"]
    assert not hasattr(reg, "feature_names_in_") and reg.n_features_in_ == 3
    assert reg.predict(X).dtype == np.float64 and reg.predict(X).shape == (50,)


def test_pipeline_after_a_column_transformer(table):
    X, y = table
    numbers = Pipeline([("impute", SimpleImputer()), ("scale", StandardScaler())])
    prepare = ColumnTransformer([("num", numbers, ["x1", "x2"]),
                                 ("cat", OneHotEncoder(handle_unknown="ignore", sparse_output=False), ["color", "size"])])
    pipe = Pipeline([("prepare", prepare), ("net", NeuralTabClassifier(**TINY))]).fit(X, y)
    assert pipe.named_steps["net"].n_features_in_ == 2 + 3 + 3
    assert pipe.score(X, y) > 0.65  # chance is 0.5
    assert set(pipe.predict(X)) <= {"no", "yes"}


def test_cross_val_score(table):
    X, y = table
    scores = cross_val_score(NeuralTabClassifier(**TINY), X, y, cv=3)
    assert scores.shape == (3,)
    assert scores.min() > 0.65, scores


def test_grid_search_in_two_processes(table):
    X, y = table
    search = GridSearchCV(NeuralTabClassifier(**TINY), {"lr": [0.003, 0.01]}, cv=2, n_jobs=2).fit(X, y)
    assert search.best_params_["lr"] in (0.003, 0.01)
    assert np.isfinite(search.cv_results_["mean_test_score"]).all()
    assert search.best_estimator_.lr == search.best_params_["lr"]
    assert search.best_estimator_.score(X, y) > 0.65


def test_clone_keeps_parameters_and_drops_the_fit(fitted, table):
    copy = clone(fitted)
    assert copy.get_params() == fitted.get_params()
    assert not hasattr(copy, "model_")
    with pytest.raises(NotFittedError):
        copy.predict(table[0])


def _modules_in_pickle(data: bytes) -> set[str]:
    seen: set[str] = set()

    class Recorder(pickle.Unpickler):
        def find_class(self, module, name):
            seen.add(module)
            return super().find_class(module, name)

    Recorder(io.BytesIO(data)).load()
    return seen


def test_pickle_round_trip_predicts_identically_and_carries_no_torch_objects(fitted, table):
    X, _ = table
    data = pickle.dumps(fitted)
    assert not any(m.split(".")[0] == "torch" for m in _modules_in_pickle(data))
    restored = pickle.loads(data)
    np.testing.assert_array_equal(restored.predict_proba(X), fitted.predict_proba(X))
    np.testing.assert_array_equal(restored.predict(X), fitted.predict(X))
    assert restored.classes_.tolist() == fitted.classes_.tolist() and restored.history_ == fitted.history_
    assert isinstance(fitted.model_, neuraltab.Model)  # pickling must not touch the live estimator


def test_save_load_round_trip_predicts_identically(fitted, table, tmp_path):
    X, _ = table
    path = fitted.save(tmp_path / "clf.ntab")
    loaded = NeuralTabClassifier.load(path)
    np.testing.assert_array_equal(loaded.predict_proba(X), fitted.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X), fitted.predict(X))
    assert loaded.get_params() == fitted.get_params()
    assert loaded.feature_names_in_.tolist() == fitted.feature_names_in_.tolist()
    assert loaded.n_features_in_ == fitted.n_features_in_ and loaded.classes_.tolist() == ["no", "yes"]
    # the same safe file the CLI reads: the target keeps the name of the y Series
    model = neuraltab.load(path)
    assert model.schema.target == "label"
    pd.testing.assert_series_equal(model.predict(X), pd.Series(fitted.predict(X), name="prediction"))
    with pytest.raises(ArtifactError, match="holds a NeuralTabClassifier.*NeuralTabClassifier.load"):
        NeuralTabRegressor.load(path)


def test_load_refuses_a_file_not_written_by_an_estimator(tmp_path):
    path = neuraltab.fit(make_table(60), target="label", **TINY).save(tmp_path / "cli.ntab")
    with pytest.raises(ArtifactError, match=r"neuraltab\.load\(path\)"):
        NeuralTabClassifier.load(path)


def test_estimator_and_neuraltab_fit_give_identical_predictions():
    df = make_table(200, task="multiclass", seed=4)
    X, y = df.drop(columns="label"), df["label"]
    clf = NeuralTabClassifier(**TINY, seed=5).fit(X, y)
    model = neuraltab.fit(df, target="label", test_size=0, seed=5, **TINY)
    np.testing.assert_array_equal(clf.predict_proba(X), model.predict_proba(X).to_numpy(dtype=np.float64))
    np.testing.assert_array_equal(clf.predict(X), model.predict(X).to_numpy())
    assert clf.history_ == model.history


def test_cross_validated_accuracy_on_hr_matches_the_cli(hr_csv, tmp_path):
    from typer.testing import CliRunner

    from neuraltab.cli import app

    small = {"k": 2, "d_block": 16, "n_blocks": 1, "epochs": 5, "threads": 1}
    options = [part for name, value in small.items() for part in (f"--{name.replace('_', '-')}", str(value))]
    result = CliRunner().invoke(app, ["train", str(hr_csv), "--target", "left", *options, "--quiet", "--json",
                                      "-o", str(tmp_path / "hr.ntab")])
    assert result.exit_code == 0, result.output
    cli_accuracy = json.loads(result.stdout)["metrics"]["test"]["accuracy"]
    df = pd.read_csv(hr_csv)
    scores = cross_val_score(NeuralTabClassifier(**small), df.drop(columns="left"), df["left"], cv=5)
    # the CLI tests on 4,500 rows: its accuracy (about 0.96) carries a standard error of about 0.003
    assert abs(scores.mean() - cli_accuracy) < 0.01, (scores, cli_accuracy)


# ======================================================================================================================
# messages
# ======================================================================================================================
def test_predict_before_fit_raises_not_fitted(table, tmp_path):
    for est in (NeuralTabClassifier(), NeuralTabRegressor()):
        for method in ("predict", "predict_proba", "score"):
            if hasattr(est, method):
                with pytest.raises(NotFittedError, match="not fitted yet"):
                    getattr(est, method)(*((table[0], table[1]) if method == "score" else (table[0],)))
        with pytest.raises(NotFittedError):
            est.save(tmp_path / "never.ntab")
    assert not (tmp_path / "never.ntab").exists()


def test_feature_name_mismatch_lists_unseen_and_missing_names_capped_at_five():
    rng = np.random.default_rng(0)
    X = pd.DataFrame(rng.normal(size=(40, 7)), columns=[f"f{i}" for i in range(7)])
    reg = NeuralTabRegressor(**TINY).fit(X, X["f0"])
    renamed = X.rename(columns={"f3": "g3"})
    with pytest.raises(ValueError) as info:
        reg.predict(renamed)
    message = str(info.value)
    assert "Feature names unseen at fit time:\n- g3\n" in message
    assert "Feature names seen at fit time, yet now missing:\n- f3\n" in message
    all_new = X.set_axis([f"h{i}" for i in range(7)], axis=1)
    with pytest.raises(ValueError) as info:
        reg.predict(all_new)
    unseen = re.search(r"unseen at fit time:\n((?:- .*\n)+)", str(info.value)).group(1).splitlines()
    assert unseen == ["- h0", "- h1", "- h2", "- h3", "- h4", "- ..."]


def test_unknown_parameter_suggests_the_closest_name():
    with pytest.raises(ValueError, match="invalid parameter 'lrr' for NeuralTabClassifier: did you mean 'lr'"):
        NeuralTabClassifier().set_params(lrr=0.1)
    with pytest.raises(ValueError, match="'d_blocks'.*did you mean 'd_block'"):
        NeuralTabRegressor().set_params(d_blocks=64)


def test_bad_targets_are_value_errors_that_say_what_is_wrong():
    X = np.random.default_rng(0).normal(size=(20, 2))
    with pytest.raises(ValueError, match="single class"):
        NeuralTabClassifier(**TINY).fit(X, np.ones(20))
    with pytest.raises(ValueError, match="Input y contains NaN: 1 missing"):
        NeuralTabRegressor(**TINY).fit(X, np.r_[np.nan, np.ones(19)])
    with pytest.raises(ValueError, match="Unknown label type: continuous"):
        NeuralTabClassifier(**TINY).fit(X, X[:, 0])
    with pytest.raises(ValueError, match="option 'k' must be an integer from 1 to 256, got 0"):
        NeuralTabClassifier(**{**TINY, "k": 0}).fit(X, X[:, 0] > 0)


def test_float_labels_are_classes_for_a_classifier_and_two_values_are_numbers_for_a_regressor():
    X = np.random.default_rng(0).normal(size=(30, 2))
    y = (X[:, 0] > 0).astype(np.float64)
    clf = NeuralTabClassifier(**TINY).fit(X, y)
    assert clf.model_.task == "binary" and clf.classes_.tolist() == [0.0, 1.0] and clf.predict(X).dtype == np.float64
    reg = NeuralTabRegressor(**TINY).fit(X, y)
    assert reg.model_.task == "regression" and np.unique(reg.predict(X)).size > 2


def test_estimator_and_the_cli_give_identical_predictions(tmp_path):
    from typer.testing import CliRunner

    from neuraltab.cli import app

    df = make_table(200, seed=6)
    data = tmp_path / "table.csv"
    df.to_csv(data, index=False)
    options = [part for name, value in TINY.items() for part in (f"--{name.replace('_', '-')}", str(value))]
    runner = CliRunner()
    train = runner.invoke(app, ["train", str(data), "--target", "label", "--test-size", "0", "--seed", "7",
                                *options, "--quiet", "-o", str(tmp_path / "m.ntab")])
    assert train.exit_code == 0, train.output
    predict = runner.invoke(app, ["predict", str(tmp_path / "m.ntab"), str(data), "-o", str(tmp_path / "p.csv"),
                                  "--quiet"])
    assert predict.exit_code == 0, predict.output
    cli = pd.read_csv(tmp_path / "p.csv")

    table = pd.read_csv(data)  # the estimator sees the same numbers the CLI read
    clf = NeuralTabClassifier(**TINY, seed=7).fit(table.drop(columns="label"), table["label"])
    np.testing.assert_array_equal(clf.predict(table.drop(columns="label")), cli["prediction"].to_numpy())
    np.testing.assert_allclose(clf.predict_proba(table.drop(columns="label")),
                               cli[[f"proba_{c}" for c in clf.classes_]].to_numpy(), rtol=1e-6)


def _threads_in_a_worker(_):
    from neuraltab.system import compute_threads

    return compute_threads()


def test_threads_are_the_share_of_the_cores_joblib_gives_each_parallel_worker(monkeypatch):
    from joblib import Parallel, delayed

    from neuraltab.system import available_cores, compute_threads

    cores = available_cores()
    # joblib tells each of its n_jobs workers its share of the cores in OMP_NUM_THREADS
    shares = Parallel(n_jobs=2)(delayed(_threads_in_a_worker)(i) for i in range(2))
    assert shares == [max(cores // 2, 1)] * 2
    monkeypatch.setenv("OMP_NUM_THREADS", "1")
    assert compute_threads() == 1
    X, y = np.random.default_rng(0).normal(size=(80, 3)), np.arange(80) % 2
    from neuraltab.api import prepare

    prepared = prepare(pd.DataFrame(X).set_axis(["a", "b", "c"], axis=1).assign(y=y), "y", epochs=1)
    assert prepared.threads() == 1  # not every core: a sibling worker has the others
    monkeypatch.setenv("OMP_NUM_THREADS", "4,2")  # nested levels: no single share stated
    assert compute_threads() == cores
    monkeypatch.delenv("OMP_NUM_THREADS")
    assert compute_threads() == cores
