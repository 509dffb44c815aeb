"""End-to-end tests of the ``neuraltab`` command (train, evaluate, predict, info), driven by typer's CliRunner.

Every table is tiny and synthetic (written in ``tmp_path``) and every training run uses FAST settings, so the whole
module runs in seconds on a 2-core machine. A few tests start the real console script in a subprocess to prove the
exit codes and the stdout/stderr separation a shell user sees.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import subprocess
import sys
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import neuraltab
from neuraltab.cli import app

# A small default model: 2 ensemble members, one 16-wide block, 3 epochs, one thread (the machine is shared).
FAST = ["--epochs", "3", "--k", "2", "--d-block", "16", "--n-blocks", "1", "--threads", "1", "--quiet"]
N_ROWS = 300
FEATURES = ["age", "income", "city", "plan"]

runner = CliRunner()


# ======================================================================================================================
# Helpers
# ======================================================================================================================


def make_table(n: int = N_ROWS, *, target: str = "strings", seed: int = 0) -> pd.DataFrame:
    """customer_id (dropped as an ID), two numeric and two string columns, and a target that depends on them.

    target: "strings" (churn: no/yes), "ints" (churn: 0/1), "bools" (churn: False/True), "multiclass"
    (churn: high/low/mid), "int_classes" (churn: 0/1/2) or "regression" (spend: a float).
    """
    rng = np.random.default_rng(seed)
    age = rng.normal(40, 10, n).round(1)
    income = rng.lognormal(10, 0.5, n).round(2)
    city = rng.choice(["paris", "lyon", "nice"], n)
    plan = rng.choice(["basic", "pro"], n)
    signal = (age - 40) / 10 + np.where(city == "paris", 1.0, -0.5) + (plan == "pro") * 0.5 + rng.normal(0, 0.3, n)
    df = pd.DataFrame({"customer_id": [f"c{i:04d}" for i in range(n)], "age": age, "income": income,
                       "city": city, "plan": plan})
    if target == "strings":
        df["churn"] = np.where(signal > np.median(signal), "yes", "no")
    elif target == "ints":
        df["churn"] = (signal > np.median(signal)).astype(np.int64)
    elif target == "bools":
        df["churn"] = signal > np.median(signal)
    elif target == "multiclass":
        df["churn"] = np.array(["low", "mid", "high"])[np.digitize(signal, np.quantile(signal, [1 / 3, 2 / 3]))]
    elif target == "int_classes":
        df["churn"] = np.digitize(signal, np.quantile(signal, [1 / 3, 2 / 3])).astype(np.int64)
    elif target == "regression":
        df["spend"] = 3.0 * signal + rng.normal(0, 0.1, n) + 50.0
    else:
        raise AssertionError(f"unknown target kind {target!r}")
    return df


def cli(*args: object, ok: bool = True):
    """Run ``neuraltab ARGS`` in-process; with ok=True, fail with the full output unless it exits 0."""
    result = runner.invoke(app, [str(a) for a in args])
    if ok and result.exit_code != 0:
        tb = ""
        if result.exc_info and not isinstance(result.exception, SystemExit):
            tb = "".join(traceback.format_exception(*result.exc_info))
        raise AssertionError(f"neuraltab {' '.join(map(str, args))} exited {result.exit_code}\n"
                             f"--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}\n{tb}")
    return result


def sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def console_script() -> list[str]:
    """The installed ``neuraltab`` entry point next to this interpreter, else ``python -m neuraltab.cli``."""
    script = Path(sys.executable).with_name("neuraltab")
    return [str(script)] if script.exists() else [sys.executable, "-m", "neuraltab.cli"]


def run_process(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONWARNINGS": "ignore", "NO_COLOR": "1"}
    return subprocess.run([*console_script(), *map(str, args)], cwd=cwd, capture_output=True, text=True,
                          timeout=120, env=env)


def leftovers(folder: Path) -> list[str]:
    """Temporary files an atomic write might leave behind (hidden or *.tmp)."""
    return sorted(p.name for p in folder.iterdir() if p.name.startswith(".") or p.name.endswith(".tmp"))


# ======================================================================================================================
# One trained model shared by the read-only tests (evaluate, predict, info)
# ======================================================================================================================


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """(data.csv, model file, parsed `train --json` output) for a binary string-label table."""
    folder = tmp_path_factory.mktemp("trained")
    data = folder / "customers.csv"
    make_table().to_csv(data, index=False)
    model = folder / "churn.ntab"
    result = cli("train", data, "--target", "churn", *FAST, "--json", "-o", model)
    return data, model, json.loads(result.stdout)


# ======================================================================================================================
# train
# ======================================================================================================================


def test_train_writes_model_next_to_the_data_by_default(tmp_path):
    data = tmp_path / "customers.csv"
    make_table().to_csv(data, index=False)
    result = cli("train", data, "--target", "churn", *FAST)
    model_file = tmp_path / "customers.ntab"
    assert model_file.is_file()
    assert f"model saved to {model_file}" in result.stdout
    assert "test metrics (90 rows)" in result.stdout  # 30% of 300 rows held out by default
    assert "accuracy" in result.stdout
    assert sorted(p.name for p in tmp_path.iterdir()) == ["customers.csv", "customers.ntab"]  # no temp files
    model = neuraltab.load(model_file)
    assert model.task == "binary" and model.classes == ("no", "yes")


def test_train_output_option_refuses_to_overwrite_without_force(tmp_path):
    data = tmp_path / "customers.csv"
    make_table().to_csv(data, index=False)
    (tmp_path / "models").mkdir()
    out = tmp_path / "models" / "churn.ntab"
    cli("train", data, "--target", "churn", *FAST, "--output", out)
    first = out.read_bytes()

    # not --quiet: the refusal must come before any training starts (no progress line on stderr)
    refused = cli("train", data, "--target", "churn", *FAST[:-1], "--seed", "1", "-o", out, ok=False)
    assert refused.exit_code == 2
    lines = refused.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), refused.stderr
    assert str(out) in lines[0] and "already exists" in lines[0] and "--force" in lines[0]
    assert "training on" not in refused.stderr
    assert out.read_bytes() == first

    cli("train", data, "--target", "churn", *FAST, "--seed", "1", "-o", out, "--force")
    assert out.read_bytes() != first  # replaced by the seed-1 model
    assert leftovers(out.parent) == []
    assert neuraltab.load(out).config.seed == 1


def test_train_json_is_the_whole_stdout_and_has_test_metrics(trained):
    data, model, result = trained
    assert result["model_file"] == str(model)
    assert result["task"] == "binary" and result["target"] == "churn"
    test = result["metrics"]["test"]
    assert 0.0 <= test["accuracy"] <= 1.0
    assert test["n"] == 90
    assert {"balanced_accuracy", "log_loss", "roc_auc", "f1_macro", "confusion_matrix"} <= set(test)
    assert sum(map(sum, test["confusion_matrix"])) == 90
    assert result["epochs_run"] == 3 and 1 <= result["best_epoch"] <= 3


def test_regression_task_train_evaluate_predict(tmp_path):
    data = tmp_path / "spend.csv"
    make_table(target="regression").to_csv(data, index=False)
    trained = json.loads(cli("train", data, "--target", "spend", *FAST, "--json").stdout)
    assert trained["task"] == "regression"
    assert {"rmse", "mae", "r2", "n"} <= set(trained["metrics"]["test"])

    model = tmp_path / "spend.ntab"
    metrics = json.loads(cli("evaluate", model, data, "--json").stdout)
    predict = cli("predict", model, data, "-o", tmp_path / "pred.csv")
    preds = pd.read_csv(tmp_path / "pred.csv")
    assert list(preds.columns) == ["prediction"]
    assert preds["prediction"].dtype == np.float64 and len(preds) == N_ROWS
    rmse = float(np.sqrt(np.mean((preds["prediction"].to_numpy() - pd.read_csv(data)["spend"].to_numpy()) ** 2)))
    assert rmse == pytest.approx(metrics["rmse"], rel=1e-6)
    assert predict.stdout == ""


@pytest.mark.parametrize("task, expected", [(None, "multiclass"), ("regression", "regression")])
def test_task_is_inferred_and_can_be_overridden(tmp_path, task, expected):
    data = tmp_path / "levels.csv"
    make_table(target="int_classes").to_csv(data, index=False)  # 0/1/2: multiclass unless told otherwise
    options = [] if task is None else ["--task", task]
    result = json.loads(cli("train", data, "--target", "churn", *FAST, *options, "--json").stdout)
    assert result["task"] == expected
    model = neuraltab.load(tmp_path / "levels.ntab")
    assert model.task == expected
    assert model.classes == ((0, 1, 2) if expected == "multiclass" else ())
    cli("predict", tmp_path / "levels.ntab", data, "-o", tmp_path / "pred.csv")
    preds = pd.read_csv(tmp_path / "pred.csv")
    if expected == "multiclass":
        assert list(preds.columns) == ["prediction", "proba_0", "proba_1", "proba_2"]
        assert set(preds["prediction"]) <= {0, 1, 2} and preds["prediction"].dtype == np.int64
    else:
        assert list(preds.columns) == ["prediction"] and preds["prediction"].dtype == np.float64


@pytest.mark.parametrize("sep, name", [(";", "customers.csv"), ("\t", "customers.tsv")], ids=["semicolon", "tab"])
def test_semicolon_and_tab_delimited_input(tmp_path, sep, name):
    data = tmp_path / name
    make_table().to_csv(data, sep=sep, index=False)
    cli("train", data, "--target", "churn", *FAST)
    model = tmp_path / "customers.ntab"
    info = json.loads(cli("info", model, "--json").stdout)
    assert [f["name"] for f in info["features"]] == FEATURES  # the delimiter was sniffed: every column found
    assert {f["name"]: f["kind"] for f in info["features"]}["city"] == "categorical"
    cli("predict", model, data, "-o", tmp_path / "pred.csv")
    assert len(pd.read_csv(tmp_path / "pred.csv")) == N_ROWS


def test_same_seed_gives_identical_model_files_and_another_seed_does_not(tmp_path):
    data = tmp_path / "customers.csv"
    make_table().to_csv(data, index=False)
    for name, seed in (("a.ntab", 0), ("b.ntab", 0), ("c.ntab", 1)):
        cli("train", data, "--target", "churn", *FAST, "--seed", seed, "-o", tmp_path / name)
    a, b, c = ((tmp_path / n).read_bytes() for n in ("a.ntab", "b.ntab", "c.ntab"))
    assert a == b
    assert a != c


@pytest.mark.parametrize("kind, n_out", [("strings", 2), ("multiclass", 3)], ids=["binary", "multiclass"])
def test_classic_recipe_flags_build_exactly_that_mlp(tmp_path, kind, n_out):
    data = tmp_path / "customers.csv"
    make_table(target=kind).to_csv(data, index=False)
    cli("train", data, "--target", "churn", "--model", "mlp", "--layers", "64,64", "--activation", "relu",
        "--optimizer", "adam", "--epochs", "2", "--batch-size", "32", "--no-early-stopping", "--threads", "1",
        "--quiet")
    model = neuraltab.load(tmp_path / "customers.ntab")
    layers = list(model.network.net)
    assert [type(layer).__name__ for layer in layers] == ["Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert [layer.out_features for layer in layers[::2]] == [64, 64, n_out]
    # input: the numeric inputs plus one one-hot slot per category (and one for missing/unknown) of each column
    assert layers[0].in_features == model.preprocessor.n_num + sum(model.preprocessor.cat_cardinalities)
    cfg = model.config
    assert (cfg.model, cfg.layers, cfg.activation, cfg.optimizer) == ("mlp", (64, 64), "relu", "adam")
    assert (cfg.epochs, cfg.batch_size, cfg.early_stopping) == (2, 32, False)
    assert len(model.history["epochs"]) == 2  # no early stop: exactly the epochs asked for


# ======================================================================================================================
# evaluate
# ======================================================================================================================


def test_evaluate_prints_the_metric_table(trained):
    data, model, _ = trained
    result = cli("evaluate", model, data)
    for name in ("accuracy", "balanced_accuracy", "log_loss", "roc_auc", "f1_macro", "confusion matrix"):
        assert name in result.stdout
    assert f"({N_ROWS} rows)" in result.stdout
    assert result.stderr == ""


def test_evaluate_json(trained):
    data, model, _ = trained
    metrics = json.loads(cli("evaluate", model, data, "--json").stdout)
    assert metrics["n"] == N_ROWS
    assert 0.0 <= metrics["accuracy"] <= 1.0
    assert sum(map(sum, metrics["confusion_matrix"])) == N_ROWS


# ======================================================================================================================
# predict
# ======================================================================================================================


def test_predict_writes_one_row_per_input_row_in_order(trained, tmp_path):
    data, model, _ = trained
    out = tmp_path / "pred.csv"
    result = cli("predict", model, data, "-o", out, "--id", "customer_id")
    assert f"wrote {N_ROWS} predictions to {out}" in result.stderr
    assert result.stdout == ""
    preds = pd.read_csv(out)
    assert list(preds.columns) == ["customer_id", "prediction", "proba_no", "proba_yes"]
    assert len(preds) == N_ROWS
    assert preds["customer_id"].tolist() == pd.read_csv(data)["customer_id"].tolist()
    assert set(preds["prediction"]) <= {"no", "yes"}
    proba = preds[["proba_no", "proba_yes"]].to_numpy()
    np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    assert (preds["prediction"] == np.array(["no", "yes"])[proba.argmax(axis=1)]).all()

    # rows keep their order: the same rows reversed give the same predictions, reversed
    reversed_data = tmp_path / "reversed.csv"
    pd.read_csv(data).iloc[::-1].to_csv(reversed_data, index=False)
    cli("predict", model, reversed_data, "-o", tmp_path / "pred_rev.csv", "--id", "customer_id")
    rev = pd.read_csv(tmp_path / "pred_rev.csv")
    pd.testing.assert_frame_equal(rev.iloc[::-1].reset_index(drop=True), preds)


def test_predict_to_stdout_without_output(trained):
    data, model, _ = trained
    result = cli("predict", model, data, "--quiet")
    preds = pd.read_csv(io.StringIO(result.stdout))
    assert list(preds.columns) == ["prediction", "proba_no", "proba_yes"] and len(preds) == N_ROWS


def test_predict_reproduces_evaluate_accuracy_exactly(trained, tmp_path):
    data, model, _ = trained
    metrics = json.loads(cli("evaluate", model, data, "--json").stdout)
    cli("predict", model, data, "-o", tmp_path / "pred.csv")
    preds = pd.read_csv(tmp_path / "pred.csv")
    truth = pd.read_csv(data)["churn"]
    assert float((preds["prediction"] == truth).mean()) == metrics["accuracy"]
    # and the API, save -> load -> predict, gives the same labels
    assert neuraltab.load(model).predict(str(data)).tolist() == preds["prediction"].tolist()


@pytest.mark.parametrize(
    "kind, labels, is_dtype",
    [("ints", [0, 1], pd.api.types.is_integer_dtype), ("bools", [False, True], pd.api.types.is_bool_dtype),
     ("multiclass", ["high", "low", "mid"], pd.api.types.is_string_dtype)],
    ids=["int-labels", "bool-labels", "string-labels"],
)
def test_predicted_labels_come_back_as_the_user_wrote_them(tmp_path, kind, labels, is_dtype):
    data = tmp_path / "customers.csv"
    table = make_table(target=kind)
    table.to_csv(data, index=False)
    cli("train", data, "--target", "churn", *FAST)
    model = tmp_path / "customers.ntab"
    cli("predict", model, data, "-o", tmp_path / "pred.csv")
    cli("predict", model, data, "-o", tmp_path / "pred.parquet")
    for name in ("pred.csv", "pred.parquet"):
        path = tmp_path / name
        preds = pd.read_csv(path) if path.suffix == ".csv" else pd.read_parquet(path)
        assert list(preds.columns) == ["prediction"] + [f"proba_{label}" for label in labels], name
        assert is_dtype(preds["prediction"].dtype), (name, preds["prediction"].dtype)
        assert set(preds["prediction"]) <= set(labels), name
        assert len(preds) == N_ROWS, name
    assert list(neuraltab.load(model).classes) == labels
    for value in neuraltab.load(model).classes:
        assert type(value) is type(labels[0])  # ints stay ints, bools stay bools, strings stay strings


def test_predict_ignores_the_target_column(trained, tmp_path):
    data, model, _ = trained
    table = pd.read_csv(data)
    table.drop(columns=["churn"]).to_csv(tmp_path / "no_target.csv", index=False)
    table.assign(churn="maybe").to_csv(tmp_path / "odd_target.csv", index=False)  # labels the model never saw
    cli("predict", model, data, "-o", tmp_path / "a.csv")
    cli("predict", model, tmp_path / "no_target.csv", "-o", tmp_path / "b.csv")
    cli("predict", model, tmp_path / "odd_target.csv", "-o", tmp_path / "c.csv")
    assert (tmp_path / "a.csv").read_bytes() == (tmp_path / "b.csv").read_bytes() == (tmp_path / "c.csv").read_bytes()


def test_predict_ignores_extra_columns_with_a_notice(trained, tmp_path):
    data, model, _ = trained
    pd.read_csv(data).assign(notes="call back", score_2024=1.5).to_csv(tmp_path / "extra.csv", index=False)
    cli("predict", model, data, "-o", tmp_path / "plain.csv")
    result = cli("predict", model, tmp_path / "extra.csv", "-o", tmp_path / "extra_pred.csv")
    notices = [line for line in result.stderr.splitlines() if "ignoring" in line]
    assert len(notices) == 1 and "'notes'" in notices[0] and "'score_2024'" in notices[0], result.stderr
    assert result.stdout == ""
    assert (tmp_path / "plain.csv").read_bytes() == (tmp_path / "extra_pred.csv").read_bytes()


def test_predict_reads_parquet_and_jsonl_and_writes_parquet(trained, tmp_path):
    data, model, _ = trained
    table = pd.read_csv(data).drop(columns=["churn"])
    table.to_parquet(tmp_path / "rows.parquet", index=False)
    table.to_json(tmp_path / "rows.jsonl", orient="records", lines=True)
    cli("predict", model, data, "-o", tmp_path / "from_csv.csv")
    cli("predict", model, tmp_path / "rows.parquet", "-o", tmp_path / "from_parquet.parquet")
    cli("predict", model, tmp_path / "rows.jsonl", "-o", tmp_path / "from_jsonl.csv")
    expected = pd.read_csv(tmp_path / "from_csv.csv")
    for got in (pd.read_parquet(tmp_path / "from_parquet.parquet"), pd.read_csv(tmp_path / "from_jsonl.csv")):
        assert list(got.columns) == list(expected.columns)
        assert got["prediction"].tolist() == expected["prediction"].tolist()
        np.testing.assert_allclose(got[["proba_no", "proba_yes"]], expected[["proba_no", "proba_yes"]], rtol=1e-6)


# ======================================================================================================================
# info
# ======================================================================================================================


def test_info_text(trained):
    data, model, result = trained
    out = cli("info", model).stdout
    assert "binary model of 'churn'" in out and "classes: no, yes" in out
    for name in FEATURES:
        assert name in out
    assert "customer_id" in out and "dropped" in out  # the ID column is listed as dropped
    assert "test metrics" in out and "config" in out
    assert sha256(data) in out
    assert f"neuraltab {neuraltab.__version__}" in out and "torch " in out
    assert "trained through the hand-derived CPU step tabm-step" in out
    assert result["path"] == "tabm-step" and result["path_reason"] is None
    details = json.loads(cli("info", model, "--json").stdout)
    assert details["training"]["path"] == "tabm-step"


def test_a_run_that_autograd_trains_says_so_and_why(tmp_path):
    data = tmp_path / "t.csv"
    make_table().to_csv(data, index=False)
    result = cli("train", data, "--target", "churn", *FAST, "--optimizer", "sgd", "--json", "-o", tmp_path / "m.ntab")
    trained = json.loads(result.stdout)
    assert trained["path"] == "autograd" and "optimizer is sgd" in trained["path_reason"]
    assert "trained through autograd (the hand-derived steps implement Adam and AdamW, and the optimizer is sgd)" \
        in cli("info", tmp_path / "m.ntab").stdout


def test_info_json_has_schema_config_metrics_data_and_versions(trained):
    data, model, result = trained
    info = json.loads(cli("info", model, "--json").stdout)
    assert info["task"] == "binary" and info["target"] == "churn" and info["classes"] == ["no", "yes"]
    assert {f["name"]: f["kind"] for f in info["features"]} == {
        "age": "numeric", "income": "numeric", "city": "categorical", "plan": "categorical"}
    assert [d["name"] for d in info["dropped"]] == ["customer_id"]
    cfg = info["config"]
    assert (cfg["epochs"], cfg["k"], cfg["d_block"], cfg["n_blocks"], cfg["seed"]) == (3, 2, 16, 1, 0)
    assert info["metrics"]["test"]["accuracy"] == result["metrics"]["test"]["accuracy"]
    assert info["data"]["sha256"] == sha256(data)
    assert (info["data"]["rows"], info["data"]["columns"]) == (N_ROWS, 6)
    assert info["versions"]["neuraltab"] == neuraltab.__version__
    assert {"torch", "numpy", "pandas", "python"} <= set(info["versions"])
    assert isinstance(info["format_version"], int)


# ======================================================================================================================
# The real console script: exit codes and stdout/stderr separation as a shell sees them
# ======================================================================================================================


def test_console_script_train_json_on_stdout_progress_on_stderr(tmp_path):
    data = tmp_path / "customers.csv"
    make_table().to_csv(data, index=False)
    proc = run_process("train", data, "--target", "churn", "--epochs", "2", "--k", "2", "--d-block", "16",
                       "--n-blocks", "1", "--threads", "1", "--json", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    result = json.loads(proc.stdout)  # nothing but the JSON document on stdout
    assert result["model_file"] == str(tmp_path / "customers.ntab")
    assert "training on" in proc.stderr and "epoch 1/2" in proc.stderr  # plain progress lines: not a terminal
    assert "Traceback" not in proc.stderr
    assert (tmp_path / "customers.ntab").is_file()


def test_console_script_predict_to_stdout_is_pure_csv(trained, tmp_path):
    data, model, _ = trained
    pd.read_csv(data).assign(notes="x").to_csv(tmp_path / "extra.csv", index=False)
    proc = run_process("predict", model, tmp_path / "extra.csv", cwd=tmp_path)
    assert proc.returncode == 0, proc.stderr
    preds = pd.read_csv(io.StringIO(proc.stdout))
    assert list(preds.columns) == ["prediction", "proba_no", "proba_yes"] and len(preds) == N_ROWS
    assert "'notes'" in proc.stderr  # the notice went to stderr, not into the CSV


@pytest.mark.parametrize(("args", "status", "stream", "text"), [
    (["--help"], 0, "stdout", "train"),
    (["train", "missing.csv", "--target", "y"], 2, "stderr", "error: missing.csv: file not found"),
    (["train", "--no-such-option"], 2, "stderr", "error: No such option"),
])
def test_python_m_exits_with_mains_status_and_delivers_its_output(tmp_path, args, status, stream, text):
    # `python -m neuraltab.cli` and the console script end through cli.run, which skips the interpreter's teardown
    # (os._exit): the status and every byte written before it must still arrive
    proc = subprocess.run([sys.executable, "-m", "neuraltab.cli", *args], cwd=tmp_path, capture_output=True,
                          text=True, timeout=120)
    assert proc.returncode == status
    assert text in getattr(proc, stream) and "Traceback" not in proc.stderr


# ======================================================================================================================
# demo
# ======================================================================================================================


@pytest.mark.slow
def test_demo_writes_csv_model_and_predictions(tmp_path, request):
    # The README's first command: it must keep working, so it runs in CI even though it trains the real default.
    out = tmp_path / "demo"
    result = cli("demo", "-o", out, "--quiet")
    assert {p.name for p in out.iterdir()} == {"breast_cancer.csv", "breast_cancer.ntab", "predictions.csv"}
    assert "test metrics" in result.stdout
    assert neuraltab.load(out / "breast_cancer.ntab").metrics["test"]["accuracy"] > 0.9
    assert len(pd.read_csv(out / "predictions.csv")) == 569


@pytest.mark.parametrize("rows", [0, 1, 7, 250_001])
def test_csv_bytes_formatted_in_parts_equal_one_pyarrow_write(rows):
    import io

    import pyarrow as pa
    import pyarrow.csv as pacsv

    from neuraltab.data.write import csv_bytes

    rng = np.random.default_rng(0)
    table = pa.table({"id": np.arange(rows), "prediction": np.array(["a,b", "plain"], dtype=object)[np.arange(rows) % 2],
                      "proba_x": rng.random(rows).astype(np.float32)})
    one = io.BytesIO()
    pacsv.write_csv(table, one, write_options=pacsv.WriteOptions(delimiter="\t", quoting_style="needed"))
    assert csv_bytes(table, delimiter="\t", rows_per_part=1000) == one.getvalue()


def test_keep_freed_memory_sets_glibc_thresholds_unless_the_user_did(monkeypatch):
    import sys as _sys

    from neuraltab.cli.runtime import keep_freed_memory

    monkeypatch.setenv("MALLOC_MMAP_THRESHOLD_", "1000000")
    assert keep_freed_memory() is False  # the user's own setting wins
    monkeypatch.delenv("MALLOC_MMAP_THRESHOLD_")
    monkeypatch.delenv("MALLOC_TRIM_THRESHOLD_", raising=False)
    if _sys.platform.startswith("linux") and "glibc" in " ".join(__import__("platform").libc_ver()):
        assert keep_freed_memory() is True


def test_train_evaluate_and_predict_never_import_sklearn_or_scipy(tmp_path):
    # together they are a large share of every start (scipy.stats via scikit-learn, scipy.special); the split, the
    # metrics and the inverse normal CDF are done without them
    make_table(200, target="multiclass").to_csv(tmp_path / "t.csv", index=False)
    code = """
import sys
from neuraltab.cli import main
for argv in (["train", "t.csv", "--target", "churn", "--output", "m.ntab", "--epochs", "2", "--k", "2",
              "--d-block", "16", "--threads", "1"],
             ["evaluate", "m.ntab", "t.csv"], ["predict", "m.ntab", "t.csv", "--output", "p.csv"]):
    sys.argv = ["neuraltab", *argv]
    try:
        main()
    except SystemExit as exc:
        assert not exc.code, (argv, exc.code)
print("LOADED", sorted(m for m in ("sklearn", "scipy") if m in sys.modules))
"""
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path)
    assert out.returncode == 0, out.stderr[-2000:]
    assert "LOADED []" in out.stdout and (tmp_path / "p.csv").exists()
