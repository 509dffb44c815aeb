"""The HTML report: every section for each task, scikit-learn as the oracle of the curves and the importance, one
self-contained file written the same way twice, and the bad inputs of the issue."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import neuraltab
from conftest import FAST, make_table
from neuraltab.report import build_report, curves, explain

pytest.importorskip("matplotlib", reason="the report needs matplotlib (pip install 'neuraltab[report]')")

SECTIONS = ["summary", "model", "learning", "importance", "checks", "baselines"]


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """task → (model file, training CSV), trained once for the module."""
    folder = tmp_path_factory.mktemp("report")
    out = {}
    for task in ("binary", "multiclass", "regression"):
        csv = folder / f"{task}.csv"
        make_table(300, task=task, seed=1).to_csv(csv, index=False)
        model = folder / f"{task}.ntab"
        neuraltab.fit(str(csv), target="label", **FAST).save(model)
        out[task] = (model, csv)
    return out


@pytest.fixture(scope="module")
def pages(trained):
    """task → the report's text for the model and its training table."""
    return {task: build_report(model, str(csv)).decode() for task, (model, csv) in trained.items()}


def _section(page: str, key: str) -> str:
    match = re.search(rf'<section id="{key}">(.*?)</section>', page, flags=re.DOTALL)
    assert match, f"no section {key!r}"
    return match.group(1)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
def test_every_section_is_there_with_its_figures(pages, task):
    page = pages[task]
    for key in SECTIONS + (["regression"] if task == "regression" else ["classification"]):
        assert "Not shown" not in _section(page, key), key
    assert "Deep learning" in page or "No clear winner" in page
    summary = _section(page, "summary")
    for item in ("<b>task</b>", "<b>target</b>", "<b>SHA-256</b>", "<b>training time</b>", "<b>device</b> cpu",
                 "95% interval", 'class="verdict'):
        assert item in summary, item
    assert "<th>preprocessing (learned on the training rows)</th>" in _section(page, "model")
    figures = re.findall(r'aria-label="([^"]+)"', page)
    expected = {"network diagram", "learning curves", "permutation importance", "partial dependence", "baselines"}
    expected |= ({"regression diagnostics"} if task == "regression" else
                 {"confusion matrix", "ROC and precision-recall curves", "calibration"})
    if task == "binary":
        expected.add("threshold against metric")
    assert expected <= set(figures), expected - set(figures)
    for name in ("majority class" if task != "regression" else "mean",
                 "logistic regression" if task != "regression" else "linear regression"):
        assert f"<td>{name}</td>" in _section(page, "baselines")


def test_the_test_metrics_are_those_the_model_file_recorded(trained, pages):
    """DATA that is the training table is split again with the model's seed: the very test rows."""
    model = neuraltab.load(trained["binary"][0])
    summary = _section(pages["binary"], "summary")
    for metric in ("accuracy", "log_loss", "roc_auc"):
        assert f"<td>{metric}</td><td class=\"n\">{model.metrics['test'][metric]:.4f}</td>" in summary
    assert f"Evaluated on {model.metrics['test']['n']} rows: the test rows" in summary


def test_the_file_names_no_address_runs_no_script_and_embeds_no_data_row(pages, trained):
    for task, page in pages.items():
        hrefs = re.findall(r'href="([^"]*)"', page)
        assert hrefs and all(h.startswith("#") or re.fullmatch(r"data:image/png;base64,[A-Za-z0-9+/=\s]+", h)
                             for h in hrefs), task
        # embedded images are base64, whose alphabet holds "//" followed by letters: look past them
        text = re.sub(r"data:image/png;base64,[A-Za-z0-9+/=\s]+", "data:image/png;base64,", page)
        assert not re.search(r"https?:|//[a-z]|<script|<link|<iframe|@import|src=", text, flags=re.I), task
        assert re.findall(r"url\(([^)]*)\)", page) == [u for u in re.findall(r"url\(([^)]*)\)", page)
                                                      if u.startswith("#")]
        assert len(page.encode()) < 2_000_000
        ids = re.findall(r' id="([^"]+)"', page)
        assert len(ids) == len(set(ids)), "ids repeat across figures"
        rows = pd.read_csv(trained[task][1])
        # no training row's x1 value (printed as pandas writes it) appears in the page
        assert not any(f"{v:.6f}" in page for v in rows["x1"].head(50)), task


def test_a_report_written_twice_is_byte_identical(trained, tmp_path):
    model, csv = trained["binary"]
    first, second = tmp_path / "a.html", tmp_path / "b.html"
    neuraltab.load(model).report(str(csv), first)
    runner = CliRunner()
    from neuraltab.cli import app

    result = runner.invoke(app, ["report", str(model), str(csv), "-o", str(second), "--quiet"])
    assert result.exit_code == 0, result.output
    assert first.read_bytes() == second.read_bytes()


def test_without_data_the_report_shows_what_the_model_file_records(trained):
    page = build_report(trained["multiclass"][0]).decode()
    assert "Not shown" not in _section(page, "learning") and "Not shown" not in _section(page, "model")
    assert 'aria-label="confusion matrix"' in page  # from the recorded test metrics
    for key in ("importance", "checks", "baselines"):
        assert "no DATA was given" in _section(page, key)


def test_data_without_the_target_gives_the_data_checks_and_says_what_is_left_out(trained, tmp_path):
    model, csv = trained["binary"]
    features = tmp_path / "features.csv"
    df = pd.read_csv(csv).drop(columns="label")
    df["extra"] = 1
    df.loc[:9, "color"] = "purple"
    df.to_csv(features, index=False)
    notices = []
    page = build_report(model, str(features), notify=notices.append).decode()
    assert "Not shown" not in _section(page, "checks")
    assert "has no target column 'label'" in _section(page, "importance")
    assert any("ignoring 1 column" in n for n in notices) and any("no target column" in n for n in notices)
    checks = _section(page, "checks")
    assert re.search(r"<code>color</code></td><td>categorical</td><td class=\"n\">0.0%</td><td class=\"n\">0.0%"
                     r"</td><td class=\"n\">3.3%</td>", checks), checks  # 10 of 300 values never seen in training


def test_other_labelled_rows_are_evaluated_whole_without_baselines(trained, tmp_path):
    model, _ = trained["regression"]
    other = tmp_path / "other.csv"
    make_table(120, task="regression", seed=9).to_csv(other, index=False)
    page = build_report(model, str(other)).decode()
    assert "Evaluated on 120 rows: every labelled row of" in page
    assert "is not the table the model was trained on" in _section(page, "baselines")
    assert "Not shown" not in _section(page, "regression")


def test_drift_is_measured_against_the_training_summary_and_old_files_say_it_is_unavailable(trained, tmp_path):
    model_path, csv = trained["regression"]
    shifted = pd.read_csv(csv)
    shifted["x2"] = shifted["x2"] + 8.0
    shifted.to_csv(tmp_path / "shifted.csv", index=False)
    page = build_report(model_path, str(tmp_path / "shifted.csv")).decode()
    assert re.search(r"<code>x2</code>.*?major shift", _section(page, "checks"), flags=re.DOTALL)
    assert re.search(r"<code>x1</code>(?:(?!</tr>).)*stable", _section(page, "checks"), flags=re.DOTALL)
    old = neuraltab.load(model_path)
    old.training_summary = None  # as a file saved before summaries were recorded
    old.save(tmp_path / "old.ntab")
    page = build_report(tmp_path / "old.ntab", str(csv)).decode()
    assert "records no summary of its training data" in _section(page, "checks")


def test_a_corrupt_model_file_gives_predicts_error_and_no_file(trained, tmp_path):
    from neuraltab.cli import app

    model, csv = trained["binary"]
    broken = tmp_path / "broken.ntab"
    data = bytearray(model.read_bytes())
    data[-10] ^= 0xFF
    broken.write_bytes(bytes(data))
    runner = CliRunner()
    out = tmp_path / "r.html"
    report = runner.invoke(app, ["report", str(broken), str(csv), "-o", str(out)])
    predict = runner.invoke(app, ["predict", str(broken), str(csv)])
    assert report.exit_code == predict.exit_code == 2
    assert report.output.strip() == predict.output.strip() and report.output.count("\n") == 1
    assert "checksum mismatch" in report.output and not out.exists()
    missing = runner.invoke(app, ["report", str(model), str(tmp_path / "nope.csv"), "-o", str(out)])
    assert missing.exit_code == 2 and "nope.csv" in missing.output and not out.exists()


def test_a_failure_while_writing_leaves_no_file_and_the_old_report_intact(trained, tmp_path, monkeypatch):
    import neuraltab.report.html as page_module

    model, csv = trained["binary"]
    out = tmp_path / "r.html"
    out.write_text("old report")

    def broken(facts):
        raise KeyboardInterrupt

    monkeypatch.setattr(page_module, "render", broken)
    with pytest.raises(KeyboardInterrupt):
        neuraltab.load(model).report(str(csv), out, force=True)
    assert out.read_text() == "old report" and sorted(p.name for p in tmp_path.iterdir()) == ["r.html"]


def test_writing_a_report_from_a_file_loads_no_training_code(trained, tmp_path):
    model, csv = trained["binary"]
    code = ("import sys; from neuraltab.report import write_report; write_report(sys.argv[1], sys.argv[2], "
            "sys.argv[3]); print(sorted(m for m in sys.modules if m.startswith('neuraltab.train')))")
    out = subprocess.run([sys.executable, "-c", code, str(model), str(csv), str(tmp_path / "r.html")],
                         capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_train_with_report_writes_both_files(tmp_path):
    from neuraltab.cli import app

    csv = tmp_path / "t.csv"
    make_table(200, seed=4).to_csv(csv, index=False)
    options = [f"--{k.replace('_', '-')}={v}" for k, v in FAST.items()]
    result = CliRunner().invoke(app, ["train", str(csv), "--target", "label", "--report", str(tmp_path / "t.html"),
                                      "--quiet", *options])
    assert result.exit_code == 0, result.output
    page = (tmp_path / "t.html").read_text()
    assert (tmp_path / "t.ntab").exists() and "training time</b> " in page and " s</div>" in page
    assert "Not shown" not in _section(page, "baselines")


# ----------------------------------------------------------------------------------------------- the oracle
def _scores(seed: int, n: int = 400, ties: bool = False):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, n).astype(bool)
    score = np.clip(rng.normal(0.35 + 0.3 * y, 0.2), 0, 1)
    return y, (np.round(score, 1) if ties else score)


@pytest.mark.parametrize("seed, ties", [(0, False), (1, True), (2, False)])
def test_the_curves_equal_scikit_learns(seed, ties):
    from sklearn.calibration import calibration_curve
    from sklearn.metrics import brier_score_loss, precision_recall_curve, roc_curve

    y, score = _scores(seed, ties=ties)
    for ours, theirs in zip(curves.roc(y, score), roc_curve(y, score)):
        np.testing.assert_array_equal(ours, theirs)
    for ours, theirs in zip(curves.precision_recall(y, score), precision_recall_curve(y, score)):
        np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-15)
    observed, predicted, _ = curves.calibration(y, score)
    sk_observed, sk_predicted = calibration_curve(y, score, n_bins=10, strategy="uniform")
    np.testing.assert_allclose(observed, sk_observed)
    np.testing.assert_allclose(predicted, sk_predicted)
    assert curves.brier(y.astype(int), np.c_[1 - score, score]) == pytest.approx(brier_score_loss(y, score))


def test_thresholds_confusion_and_calibration_error_equal_scikit_learns_definitions():
    from sklearn.metrics import accuracy_score, confusion_matrix, f1_score, precision_score, recall_score

    y, score = _scores(3)
    table = curves.threshold_table(y, score, np.array([0.2, 0.5, 0.7]))
    for i, t in enumerate((0.2, 0.5, 0.7)):
        called = score >= t
        assert table["precision"][i] == pytest.approx(precision_score(y, called))
        assert table["recall"][i] == pytest.approx(recall_score(y, called))
        assert table["f1"][i] == pytest.approx(f1_score(y, called))
        assert table["accuracy"][i] == pytest.approx(accuracy_score(y, called))
    rng = np.random.default_rng(0)
    truth, guess = rng.integers(0, 4, 300), rng.integers(0, 4, 300)
    counts, normalised = curves.confusion(truth, guess, 4)
    np.testing.assert_array_equal(counts, confusion_matrix(truth, guess))
    np.testing.assert_allclose(normalised, confusion_matrix(truth, guess, normalize="true"))
    observed, predicted, rows = curves.calibration(y, score)
    expected = sum(n / len(y) * abs(o - p) for o, p, n in zip(observed, predicted, rows))
    assert curves.expected_calibration_error(y, score) == pytest.approx(expected)


def test_the_bootstrap_resamples_are_paired_and_computed_as_the_metrics_are():
    from neuraltab.metrics import compute

    y, score = _scores(4, n=150)
    y = y.astype(np.int64)
    a, b = np.c_[1 - score, score], np.full((150, 2), 0.5)
    boot = curves.bootstrap("binary", y, {"a": a, "b": b}, seed=7, n_resamples=20, full=("a",))
    draws = np.random.default_rng(7).integers(0, 150, size=(20, 150))
    assert set(boot["b"]) == {"accuracy"}
    for r in (0, 13):
        assert boot["a"]["log_loss"][r] == compute("binary", y[draws[r]], a[draws[r]])["log_loss"]
        for name, output in (("a", a), ("b", b)):
            assert boot[name]["accuracy"][r] == pytest.approx(compute("binary", y[draws[r]], output[draws[r]])["accuracy"])
    values = np.arange(150.0)
    regression = curves.bootstrap("regression", values, {"network": values, "c": values + (values % 3)}, seed=7,
                                  n_resamples=20)
    for r in (0, 13):
        assert regression["c"]["rmse"][r] == pytest.approx(compute("regression", values[draws[r]],
                                                             (values + values % 3)[draws[r]])["rmse"])
    low, high = curves.interval(boot["a"]["roc_auc"])
    assert low < compute("binary", y, a)["roc_auc"] < high


def test_permutation_importance_follows_scikit_learns(trained):
    from sklearn.base import BaseEstimator
    from sklearn.inspection import permutation_importance

    model_path, csv = trained["multiclass"]
    model = neuraltab.load(model_path)
    df = pd.read_csv(csv).head(120)
    y = model.outputs(df, with_target=True)[1]

    class Wrapped(BaseEstimator):
        def fit(self, X, y):
            return self

    def accuracy(estimator, X, y_true):
        return float((model.outputs(X)[0].argmax(1) == y_true).mean())

    ours = explain.permutation_importance(model, df, y, seed=3, n_repeats=4)
    theirs = permutation_importance(Wrapped(), df[model.schema.feature_names()], y, scoring=accuracy, n_repeats=4,
                                    random_state=3)
    np.testing.assert_allclose(ours["importances"], theirs.importances, rtol=0, atol=1e-12)
    assert ours["importances"][0].mean() > 0.05  # x1 carries the signal: the check can fail


def test_the_summary_stored_at_fit_time_counts_the_training_rows(trained):
    model = neuraltab.load(trained["binary"][0])
    summary = model.training_summary
    n_train = summary["rows"]
    assert n_train == 300 - model.metrics["test"]["n"] - model.metrics["valid"]["n"]
    x2 = summary["columns"]["x2"]
    assert sum(x2["counts"]) + x2["missing"] == n_train and x2["missing"] > 0 and len(x2["edges"]) == 9
    color = summary["columns"]["color"]
    assert sorted(color["categories"]) == ["blue", "green", "red"] and sum(color["counts"]) == n_train


# ----------------------------------------------------------------------------------------------- the browser
def test_chromium_opens_the_report_with_no_console_error_and_no_request(pages, tmp_path):
    import shutil

    sync_api = pytest.importorskip("playwright.sync_api", reason="the browser test needs playwright (pip install "
                                                                 "playwright)")
    chromium = shutil.which("chromium") or ("/usr/bin/chromium" if Path("/usr/bin/chromium").exists() else None)
    if chromium is None:
        pytest.skip("Chromium is not installed (apt-get install chromium)")
    page_file = tmp_path / "report.html"
    page_file.write_text(pages["binary"])
    with sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=chromium)
        page = browser.new_page(java_script_enabled=False)
        errors, requests = [], []
        page.on("console", lambda m: errors.append(m.text) if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: errors.append(str(e)))
        page.on("request", lambda r: requests.append(r.url))
        page.goto(page_file.as_uri())
        page.wait_for_load_state("networkidle")
        headings = page.locator("h2").all_inner_texts()
        svgs = page.locator("svg.plot").count()
        box = page.locator('svg[aria-label="ROC and precision-recall curves"]').bounding_box()
        browser.close()
    assert errors == [] and requests == [page_file.as_uri()]
    assert headings[:3] == ["Summary", "The model", "Learning curves"] and svgs >= 8
    assert box is not None and box["width"] > 300 and box["height"] > 100


@pytest.mark.slow
def test_the_hr_report_is_complete_and_under_2_mb(hr_csv, tmp_path):
    model = neuraltab.fit(str(hr_csv), target="left", threads=1, epochs=10)  # the network's quality is not at stake
    out = model.report(str(hr_csv), tmp_path / "hr.html")
    page = out.read_text()
    assert out.stat().st_size < 2_000_000
    for key in SECTIONS + ["classification"]:
        assert "Not shown" not in _section(page, key), key
    assert "LightGBM" in _section(page, "baselines")


def test_without_lightgbm_the_baselines_say_so(trained, monkeypatch):
    import neuraltab.report.baselines as baselines

    model, csv = trained["binary"]
    monkeypatch.setattr(baselines, "lightgbm_available", lambda: False)
    page = _section(build_report(model, str(csv)).decode(), "baselines")
    assert \
        "LightGBM: not installed, so not compared (pip install 'neuraltab[baselines]')" in page
    assert "<td>LightGBM</td>" not in page and "<td>logistic regression</td>" in page


def test_without_matplotlib_the_report_is_one_line_naming_the_extra(trained, tmp_path, monkeypatch):
    import neuraltab.report as reporting
    from neuraltab.cli import app

    monkeypatch.setattr(reporting, "missing_dependencies", lambda: ["matplotlib"])
    model, csv = trained["binary"]
    result = CliRunner().invoke(app, ["report", str(model), str(csv), "-o", str(tmp_path / "r.html")])
    assert result.exit_code == 2 and result.output.strip() == \
        "error: the report needs matplotlib: pip install 'neuraltab[report]'"
    assert not (tmp_path / "r.html").exists()


def test_partial_dependence_equals_scikit_learns_brute_method(trained):
    from sklearn.base import BaseEstimator, ClassifierMixin
    from sklearn.inspection import partial_dependence

    model_path, csv = trained["multiclass"]
    model = neuraltab.load(model_path)
    df = pd.read_csv(csv).head(150)[model.schema.feature_names()]

    class Wrapped(ClassifierMixin, BaseEstimator):
        def fit(self, X, y):
            self.classes_ = np.arange(len(model.classes))
            return self

        def predict_proba(self, X):
            return model.outputs(X)[0]

    ours = explain.partial_dependence(model, df, ["x1"], seed=0)[0]
    theirs = partial_dependence(Wrapped().fit(None, None), df, ["x1"], method="brute", kind="average",
                                custom_values={"x1": np.array(ours["grid"])})
    np.testing.assert_allclose(ours["mean"].T, theirs["average"], rtol=0, atol=1e-6)
    assert np.ptp(ours["mean"][:, 0]) > 0.05  # x1 moves the prediction: the check can fail


def test_a_model_fitted_on_a_dataframe_reports_on_that_dataframe_with_its_split(tmp_path):
    df = make_table(200, task="regression", seed=5)
    model = neuraltab.fit(df, target="label", **FAST)
    out = model.report(df, tmp_path / "r.html")
    page = out.read_text()
    assert f"Evaluated on {model.metrics['test']['n']} rows: the test rows" in page
    assert "Not shown" not in _section(page, "baselines") and "<td>linear regression</td>" in page
    assert df.shape == (200, 5) and list(df.columns) == ["x1", "x2", "color", "size", "label"]  # input untouched
