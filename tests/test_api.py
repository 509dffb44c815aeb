"""Contract tests of the Python API: fit → predict/evaluate, save → load round trips, determinism, the classic recipe."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import neuraltab
from neuraltab.artifacts import bundle_bytes, read_bundle_bytes
from neuraltab.errors import ConfigError, SchemaError
from neuraltab.data.read import read_table

from conftest import FAST, make_table


class _Collect(neuraltab.Callback):
    def __init__(self, into: list) -> None:
        self.into = into

    def on_notice(self, message: str) -> None:
        self.into.append(message)


@pytest.fixture(scope="module")
def binary_model():
    df = make_table(400, task="binary")
    return df, neuraltab.fit(df, target="label", **FAST)


def test_fit_reports_test_metrics_and_learns(binary_model):
    df, model = binary_model
    test = model.metrics["test"]
    assert test["n"] == 120  # 30% of 400
    assert test["accuracy"] > 0.7  # the signal is strong; chance is 0.5
    assert set(test) >= {"accuracy", "balanced_accuracy", "log_loss", "roc_auc", "f1_macro", "confusion_matrix"}
    assert model.classes == ("no", "yes")


def test_predictions_come_back_as_written_and_in_order(binary_model):
    df, model = binary_model
    labels = model.predict(df)
    proba = model.predict_proba(df)
    assert len(labels) == len(df) and set(labels) <= {"no", "yes"}
    assert list(proba.columns) == ["no", "yes"]
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, rtol=1e-5)
    assert (labels.to_numpy() == np.where(proba["yes"] > proba["no"], "yes", "no")).all()
    shuffled = df.sample(frac=1.0, random_state=1)
    assert (model.predict(shuffled).to_numpy() == labels.to_numpy()[shuffled.index.to_numpy()]).all()


def test_predictions_for_a_dataframe_carry_its_index(binary_model, tmp_path):
    df, model = binary_model
    tail = df.iloc[300:]  # a slice: its index starts at 300, so a 0..n-1 result would align with nothing
    shuffled = df.sample(frac=1.0, random_state=2)
    for frame in (tail, shuffled, shuffled.set_axis([f"r{i}" for i in range(len(df))])):
        labels, proba, table = model.predict(frame), model.predict_proba(frame), model.predict_table(frame)
        for result in (labels, proba, table):
            assert result.index.equals(frame.index)
        assigned = frame.assign(pred=labels)
        assert assigned["pred"].notna().all()
        # each row keeps its own prediction: the same as predicting that row in file order
        in_order = model.predict(frame.reset_index(drop=True)).to_numpy()
        assert (assigned["pred"].to_numpy() == in_order).all()
    # a file has no index of its own: rows are numbered 0..n-1
    path = tmp_path / "tail.csv"
    tail.to_csv(path, index=False)
    assert model.predict(path).index.equals(pd.RangeIndex(len(tail)))


def test_predict_on_the_test_split_reproduces_the_test_accuracy_exactly(binary_model):
    df, model = binary_model
    test_rows = df.loc[model.splits["test"]]
    accuracy = float((model.predict(test_rows).to_numpy() == test_rows["label"].to_numpy()).mean())
    assert accuracy == model.metrics["test"]["accuracy"]
    assert model.evaluate(test_rows) == model.metrics["test"]


def test_save_load_predict_is_identical(binary_model, tmp_path):
    df, model = binary_model
    path = model.save(tmp_path / "m.ntab")
    loaded = neuraltab.load(path)
    pd.testing.assert_frame_equal(loaded.predict_proba(df), model.predict_proba(df))
    assert loaded.metrics == model.metrics
    assert loaded.schema == model.schema
    assert loaded.config == model.config


def test_model_bytes_are_the_file_bytes_and_load_back_identically(binary_model, tmp_path):
    df, model = binary_model
    data = model.to_bytes()
    assert data == model.save(tmp_path / "m.ntab").read_bytes()
    pd.testing.assert_frame_equal(neuraltab.api.load_bytes(data).predict_proba(df), model.predict_proba(df))
    with pytest.raises(neuraltab.ArtifactError, match="the model bytes: corrupted model file"):
        neuraltab.api.load_bytes(data[:-1] + bytes([data[-1] ^ 1]))


def _rewritten(model, **changes):
    """The model's bytes with its metadata changed (None deletes a key) and a fresh checksum: a genuine other file."""
    tensors, meta = read_bundle_bytes(model.to_bytes())
    meta = {k: v for k, v in {**meta, **changes}.items() if k != "checksum" and v is not None}
    return bundle_bytes(tensors, meta)


def test_model_files_saved_before_the_decimal_mark_was_recorded_still_load(binary_model, tmp_path):
    df, model = binary_model
    old = neuraltab.api.load_bytes(_rewritten(model, reading=None))
    assert old.reading == {"decimal": None, "decimal_from": None} and old.info()["reading"]["decimal"] is None
    pd.testing.assert_frame_equal(old.predict_proba(df), model.predict_proba(df))
    # a file is read as before: its decimal mark detected on its own ("5,123" in a ';' file is a decimal comma)
    path = tmp_path / "new.csv"
    df.assign(x2=df["x2"].map(lambda v: f"{v:.3f}".replace(".", ","))).to_csv(path, sep=";", index=False)
    pd.testing.assert_frame_equal(old.predict_proba(path), old.predict_proba(read_table(path)))
    assert read_table(path)["x2"].max() < 10


@pytest.mark.parametrize("reading", [{"decimal": "#", "decimal_from": "given"}, {"decimal": ","}, [","], "."])
def test_a_bad_decimal_mark_in_a_model_file_is_an_artifact_error(binary_model, reading):
    _, model = binary_model
    with pytest.raises(neuraltab.ArtifactError, match="the model bytes: the model file is incomplete or inconsistent"):
        neuraltab.api.load_bytes(_rewritten(model, reading=reading))


def test_same_seed_gives_identical_model_files_and_other_seed_differs(tmp_path):
    df = make_table(200)
    paths = []
    for name, seed in (("a", 3), ("b", 3), ("c", 4)):
        paths.append(neuraltab.fit(df, target="label", seed=seed, **FAST).save(tmp_path / f"{name}.ntab"))
    a, b, c = (p.read_bytes() for p in paths)
    assert a == b
    assert a != c


def test_input_dataframe_is_not_modified():
    df = make_table(150)
    before = df.copy(deep=True)
    neuraltab.fit(df, target="label", **FAST)
    pd.testing.assert_frame_equal(df, before)


def test_multiclass_with_integer_labels_returns_ints():
    df = make_table(300, task="multiclass")
    model = neuraltab.fit(df, target="label", **FAST)
    assert model.task == "multiclass"
    assert model.classes == (0, 1, 2)
    labels = model.predict(df.drop(columns="label"))
    assert labels.dtype.kind == "i"
    assert len(model.metrics["test"]["confusion_matrix"]) == 3


def test_regression_predicts_in_the_targets_units():
    df = make_table(400, task="regression")
    model = neuraltab.fit(df, target="label", **{**FAST, "epochs": 30})
    assert model.task == "regression"
    pred = model.predict(df)
    # the target is centred at about 100: an un-inverted standardised prediction would sit near 0
    assert abs(pred.mean() - df["label"].mean()) < 0.2 * df["label"].std()
    assert model.metrics["test"]["r2"] > 0.5


def test_boolean_labels_round_trip():
    df = make_table(200)
    df["label"] = df["label"] == "yes"
    model = neuraltab.fit(df, target="label", **FAST)
    assert model.classes == (False, True)
    assert model.predict(df).dtype == bool


def test_classic_recipe_builds_exactly_dense64_relu_dense64_relu_dense_c():
    df = make_table(200)
    model = neuraltab.fit(df, target="label", model="mlp", layers=(64, 64), activation="relu", optimizer="adam",
                          epochs=2, batch_size=32, early_stopping=False)
    net = model.network.net
    assert [type(m).__name__ for m in net] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert [(m.in_features, m.out_features) for m in net if isinstance(m, torch.nn.Linear)][1:] == [(64, 64), (64, 2)]
    # x1, x2, the missing-indicator of x2, then one-hot color (3 + unknown) and size (3 + unknown)
    assert net[0].in_features == 3 + 4 + 4
    # without early stopping there is no validation split: it trains on all non-test rows for every epoch
    assert model.history["stop_reason"] == "max_epochs" and len(model.history["epochs"]) == 2
    assert len(model.splits["valid"]) == 0 and len(model.splits["train"]) == 140
    assert isinstance(model.config, neuraltab.TrainConfig) and model.config.optimizer == "adam"


def test_unknown_option_suggests_the_right_name():
    with pytest.raises(ConfigError, match="did you mean 'batch_size'"):
        neuraltab.fit(make_table(50), target="label", batchsize=3)


def test_unseen_category_and_missing_values_at_predict_time(binary_model):
    df, model = binary_model
    new = df.drop(columns="label").head(5).copy()
    new.loc[new.index[0], "color"] = "purple"
    new.loc[new.index[1], "x1"] = np.nan
    notices = []
    labels = model.predict(new, notify=notices.append)
    assert len(labels) == 5
    assert any("purple" in n and "color" in n for n in notices)


def test_missing_feature_at_predict_time_names_it(binary_model):
    df, model = binary_model
    with pytest.raises(SchemaError, match="'color'"):
        model.predict(df.drop(columns=["color"]))


def _with_dates_and_stray_words(n: int = 300) -> pd.DataFrame:
    """make_table plus a date column, and two stray words in the numeric x1 (so it stays numeric, with a notice)."""
    df = make_table(n)
    df["when"] = (pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(n) % 90, unit="D")).astype(str)
    df["x1"] = df["x1"].round(4).astype(str)
    df.loc[[5, 6], "x1"] = "n.k."
    return df


def test_fit_does_not_type_check_its_own_rows_again(monkeypatch, tmp_path):
    """The kinds were decided on the whole table, so fit does not run the predict-time type check on its own
    train/validation/test rows (it used to: twice the work, a second notice, and a chance to refuse a small split)."""
    from neuraltab.data import preprocess as preprocessing

    checked = []
    real_check = preprocessing._check_parsed
    monkeypatch.setattr(preprocessing, "_check_parsed", lambda *a, **k: checked.append(a[2]) or real_check(*a, **k))
    df = _with_dates_and_stray_words()
    notices = []
    model = neuraltab.fit(df, target="label", callbacks=[_Collect(notices)], **FAST)
    assert checked == []
    assert [n for n in notices if "not numbers" in n] == [
        "the DataFrame: column 'x1' is numeric but 2 value(s) are not numbers ('n.k.'); they are treated as missing"]
    model.predict(df)  # a table to predict is checked, every time
    assert sorted(set(checked)) == ["when", "x1"]


@pytest.mark.parametrize(("column", "new_values", "what"), [("x1", ["low", "high"], "numbers"),
                                                            ("when", ["soon", "later"], "dates")])
def test_a_prediction_file_whose_column_changed_type_is_a_one_line_error(tmp_path, column, new_values, what):
    df = _with_dates_and_stray_words()
    model = neuraltab.fit(df, target="label", **FAST)
    path = tmp_path / "new.csv"
    df.assign(**{column: new_values * (len(df) // 2)}).to_csv(path, index=False)
    for call in (model.predict, model.predict_proba, model.evaluate):
        with pytest.raises(SchemaError) as info:
            call(path)
        message = str(info.value)
        assert "\n" not in message
        assert message.startswith(f"{path}: column {column!r} should hold {what} (as in training) but 300 of 300 ")
        assert message.endswith("fix the column or leave those cells empty")


def test_time_limit_stops_training_and_keeps_a_model():
    df = make_table(300)
    model = neuraltab.fit(df, target="label", time_limit=0.05, **{**FAST, "epochs": 1000})
    assert model.history["stop_reason"] == "time_limit"
    assert len(model.history["epochs"]) < 1000
    assert model.metrics["test"]["accuracy"] > 0


@pytest.mark.slow
def test_default_model_on_hr_beats_the_2017_recipe(hr_csv):
    model = neuraltab.fit(str(hr_csv), target="left", seed=0)
    assert model.metrics["test"]["n"] == 4500
    assert model.metrics["test"]["accuracy"] >= 0.975


def test_a_bf16_model_predicts_in_float32_where_the_hardware_has_no_bf16(monkeypatch):
    import neuraltab.api as api_module
    from conftest import FAST, make_table

    df = make_table(200, seed=8)
    model = neuraltab.fit(df, target="label", precision="bf16", **FAST)
    assert model.config.precision == "bf16"
    calls = []
    real = api_module.predict_output

    def spy(*args, **kwargs):
        calls.append(kwargs["precision"])
        return real(*args, **kwargs)

    monkeypatch.setattr(api_module, "predict_output", spy)
    monkeypatch.setattr(api_module, "native_bf16", lambda device: True)
    low = model.predict_proba(df).to_numpy()
    monkeypatch.setattr(api_module, "native_bf16", lambda device: False)
    full = model.predict_proba(df).to_numpy()
    assert calls == ["bf16", "fp32"]
    assert np.abs(low - full).max() < 0.02 and (low.argmax(1) == full.argmax(1)).mean() > 0.97


def test_same_seed_gives_identical_model_files_in_separate_processes(tmp_path):
    """Each process starts its math libraries afresh: a first call that takes another code path (torch's CPU log,
    once, gave another last bit in the validation loss of epoch 1) shows only across processes."""
    import subprocess
    import sys

    csv = tmp_path / "t.csv"
    make_table(300).to_csv(csv, index=False)
    script = ("import sys, neuraltab; neuraltab.fit(sys.argv[1], target='label', seed=1, k=2, d_block=32, n_blocks=1, "
              "epochs=3, n_bins=8, d_embedding=4).save(sys.argv[2])")
    runs = [subprocess.Popen([sys.executable, "-c", script, str(csv), str(tmp_path / f"{i}.ntab")]) for i in range(4)]
    assert [r.wait(timeout=300) for r in runs] == [0, 0, 0, 0]
    files = {(tmp_path / f"{i}.ntab").read_bytes() for i in range(4)}
    assert len(files) == 1


def test_the_validation_loss_is_the_same_in_every_process():
    """The score that picks the best epoch, computed first thing in fresh processes (where torch's CPU log gave
    another last bit in about one process in five, on 2,100 rows of probabilities)."""
    import subprocess
    import sys

    script = ("import torch; from neuraltab.train.loop import _score; g = torch.Generator().manual_seed(0); "
              "p = torch.rand(2100, 2, generator=g); p /= p.sum(1, keepdim=True); "
              "print(repr(_score('binary', p, torch.randint(0, 2, (2100,), generator=g))))")
    runs = [subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
            for _ in range(8)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr
    assert len({r.stdout for r in runs}) == 1


def test_fit_is_prepare_then_fit_prepared_and_the_stages_share_one_data_path():
    df = make_table(200)
    whole = neuraltab.fit(df, target="label", seed=2, **FAST).to_bytes()
    prepared = neuraltab.api.prepare(df, target="label", seed=2, **FAST)
    assert set(prepared.batches) == {"train", "valid", "test"}
    assert sum(len(b) for b in prepared.batches.values()) == len(df)
    assert prepared.cfg.batch_size is not None  # resolved for the data
    assert neuraltab.api.fit_prepared(prepared).to_bytes() == whole
    # a second network from the same prepared data starts from the same seed: the same model again
    assert neuraltab.api.fit_prepared(prepared).to_bytes() == whole


@pytest.mark.parametrize("options, path", [({}, "tabm-step"), ({"model": "mlp", "layers": (8,), "optimizer": "adam"},
                                                                 "mlp-step")])
def test_the_default_model_and_the_classic_mlp_train_through_their_hand_derived_steps_on_a_cpu(options, path):
    """A silent fall-back to autograd would otherwise show only as a slowdown."""
    model = neuraltab.fit(make_table(120), target="label", device="cpu", **{**FAST, **options})
    assert model.history["path"] == path and model.history["path_reason"] is None


@pytest.mark.parametrize("options", [{}, {"model": "mlp", "layers": (8,), "dropout": 0.3, "optimizer": "sgd"}])
def test_fit_and_the_estimators_never_touch_the_callers_global_random_generators(options):
    df = make_table(120)

    def draws():
        return torch.rand(3).tolist(), np.random.rand(3).tolist()

    torch.manual_seed(123)
    np.random.seed(123)
    untouched = draws()
    torch.manual_seed(123)
    np.random.seed(123)
    neuraltab.fit(df, target="label", **{**FAST, **options})
    neuraltab.NeuralTabClassifier(**{**FAST, **options}).fit(df.drop(columns="label"), df["label"])
    assert draws() == untouched


def test_the_seed_alone_decides_the_model_whatever_the_global_generator_holds():
    df = make_table(120)
    torch.manual_seed(1)
    a = neuraltab.fit(df, target="label", seed=5, **FAST).to_bytes()
    torch.manual_seed(2)
    torch.rand(10)
    assert neuraltab.fit(df, target="label", seed=5, **FAST).to_bytes() == a


def test_layers_drawn_from_a_generator_equal_torchs_own_from_the_global_one():
    from torch import nn

    from neuraltab.networks.layers import Dropout, linear

    torch.manual_seed(7)
    reference = nn.Linear(9, 4)
    ours = linear(9, 4, generator=torch.Generator().manual_seed(7))
    assert torch.equal(ours.weight, reference.weight) and torch.equal(ours.bias, reference.bias)
    x = torch.randn(50, 20)
    torch.manual_seed(3)
    theirs = nn.Dropout(0.3).train()(x)
    assert torch.equal(Dropout(0.3, generator=torch.Generator().manual_seed(3)).train()(x), theirs)


def test_labels_and_categories_written_with_leading_zeros_are_kept_as_written(tmp_path):
    rows = [f"{i % 7},{['02134', '10001', '00501'][i % 3]},{['001', '002', '010'][i % 3]}" for i in range(60)]
    path = tmp_path / "codes.csv"
    path.write_text("x,zip,y\n" + "\n".join(rows) + "\n")
    model = neuraltab.fit(path, "y", **(FAST | {"epochs": 2}))
    assert model.classes == ("001", "002", "010")  # not 1, 2 and 10
    assert dict(model.preprocessor.vocabs)["zip"] == ["00501", "02134", "10001"]
    model.save(tmp_path / "m.ntab")
    loaded = neuraltab.load(tmp_path / "m.ntab")
    assert set(loaded.predict(path)) <= {"001", "002", "010"}
    assert list(loaded.predict_table(path).columns) == ["prediction", "proba_001", "proba_002", "proba_010"]
    assert read_table(path)["y"].tolist()[:3] == ["001", "002", "010"]


def _dates_table(fmt: str) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    days = pd.date_range("2019-01-01", periods=120, freq="D")
    mixed = [[d.strftime("%Y-%m-%d"), d.strftime("%b %d, %Y"), d.strftime("%d %B %Y")][i % 3] for i, d in enumerate(days)]
    return pd.DataFrame({"when": [d.strftime(fmt) for d in days], "mixed": mixed, "x": rng.normal(size=120),
                         "y": rng.choice(["a", "b"], 120)})


def test_day_first_dates_are_detected_per_column_recorded_and_used_for_prediction_files(tmp_path):
    path = tmp_path / "dates.csv"
    _dates_table("%d/%m/%Y").to_csv(path, index=False)
    model = neuraltab.fit(path, "y", **(FAST | {"epochs": 1}))
    kinds = {c.name: c.kind for c in model.schema.features}
    assert kinds["when"] == "datetime" and kinds["mixed"] == "datetime"  # mixed formats: dates, not "ID-like"
    assert dict(model.schema.date_orders) == {"when": "dayfirst"}
    model.save(tmp_path / "m.ntab")
    loaded = neuraltab.load(tmp_path / "m.ntab")
    assert {f["name"]: f.get("date_order") for f in loaded.info()["features"]}["when"] == "dayfirst"
    # a prediction file of ambiguous dates alone ("01/02/2019") is read as the training file wrote them: 1 February
    row = {"mixed": "2019-02-01", "x": 0.0}
    ambiguous = loaded.preprocessor.transform(pd.DataFrame([{**row, "when": "01/02/2019"}]))
    iso = loaded.preprocessor.transform(pd.DataFrame([{**row, "when": "2019-02-01"}]))
    np.testing.assert_array_equal(ambiguous.x_num, iso.x_num)
    # month-first files, and the order given, are recorded the same way
    _dates_table("%m/%d/%Y").to_csv(path, index=False)
    assert dict(neuraltab.fit(path, "y", **(FAST | {"epochs": 1})).schema.date_orders) == {"when": "monthfirst"}
    _dates_table("%d/%m/%Y").iloc[:12].to_csv(path, index=False)  # only 01/01 .. 12/01: ambiguous on its own
    first12 = neuraltab.fit(path, "y", dayfirst=True, test_size=0.0, **(FAST | {"epochs": 1}))
    assert dict(first12.schema.date_orders)["when"] == "dayfirst"


def test_model_files_saved_before_date_orders_were_recorded_still_load(binary_model, tmp_path):
    from neuraltab.data.schema import Schema

    _, model = binary_model
    assert "date_orders" not in model.schema.to_dict()  # no dates: the file's bytes are as they were
    assert Schema.from_dict(model.schema.to_dict()).date_orders == ()


def test_options_of_the_other_model_are_named_in_a_notice_not_silently_ignored():
    df = make_table(120)
    notices: list[str] = []
    neuraltab.fit(df, "label", layers=(64, 64), activation="tanh", callbacks=[_Collect(notices)],
                  **(FAST | {"epochs": 1}))
    said = [n for n in notices if "not used" in n]
    assert len(said) == 1 and "'layers'" in said[0] and "'activation'" in said[0] and "model='mlp'" in said[0]
    notices.clear()
    neuraltab.fit(df, "label", model="mlp", layers=(8,), k=4, callbacks=[_Collect(notices)], epochs=1, threads=1)
    assert [n for n in notices if "not used" in n and "'k'" in n]
    notices.clear()
    neuraltab.fit(df, "label", callbacks=[_Collect(notices)], **(FAST | {"epochs": 1}))
    assert not [n for n in notices if "not used" in n]  # the default model's own options: nothing to say


def test_a_column_differing_only_in_case_and_an_empty_column_at_predict_time(binary_model):
    df, model = binary_model
    with pytest.raises(SchemaError, match=r"names must match in case: 'X1' should be 'x1'"):
        model.predict(df.rename(columns={"x1": "X1"}))
    notices: list[str] = []
    model.predict(df.assign(x2=np.nan), notify=notices.append)
    assert [n for n in notices if "'x2'" in n and "empty in every row" in n]
    notices.clear()
    model.predict(df.iloc[:1].assign(x2=np.nan), notify=notices.append)  # one row with a gap: nothing to say
    assert not [n for n in notices if "empty in every row" in n]


def test_a_json_array_file_is_read_like_json_lines(tmp_path, binary_model):
    df, model = binary_model
    array, lines = tmp_path / "rows.json", tmp_path / "rows.jsonl"
    df.to_json(array, orient="records")
    df.to_json(lines, orient="records", lines=True)
    assert read_table(array).equals(read_table(lines))
    assert (model.predict(array) == model.predict(lines)).all()
    (tmp_path / "bad.json").write_text('[1, 2]')
    from neuraltab.errors import DataError

    with pytest.raises(DataError, match="one object per row"):
        read_table(tmp_path / "bad.json")


def test_predictions_for_200_classes_give_no_pandas_warnings():
    import warnings

    rng = np.random.default_rng(0)
    df = pd.DataFrame({"x": rng.normal(size=2000), "y": [f"c{i % 200}" for i in range(2000)]})
    model = neuraltab.fit(df, "y", **(FAST | {"epochs": 1, "k": 1}))
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a PerformanceWarning per inserted column was printed 100 times
        assert model.predict_table(df).shape == (2000, 201) and model.predict_proba(df).shape == (2000, 200)
