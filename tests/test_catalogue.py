"""The catalogue of bad and awkward inputs (issue 6), end to end through ``neuraltab.fit`` / ``Model.predict`` and,
for a handful, the CLI.

Every case either works, and the test checks the result (values read right, the kind of each column, one finite
prediction per row), or fails with neuraltab's one-line error, and the test checks the error type and the words that
tell the user what to do. Nothing else may escape. The files are generated here, small; the list with where each
case is tested is in ``tests/README.md`` ("Catalogue of awkward inputs").
"""

from __future__ import annotations

import json
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from typer.testing import CliRunner

import neuraltab
from neuraltab.data import read as nt_reading
from neuraltab.cli import app
from neuraltab.errors import ConfigError, DataError, SchemaError, UserError
from neuraltab.data.read import read_table

# conftest's FAST settings (k=2, d_block=32, n_blocks=1, epochs=8, threads=1)
FAST = {"k": 2, "d_block": 32, "n_blocks": 1, "epochs": 8, "n_bins": 8, "d_embedding": 4, "threads": 1}
FAST_CLI = ["--k", "2", "--d-block", "32", "--n-blocks", "1", "--epochs", "8", "--n-bins", "8", "--d-embedding", "4",
            "--threads", "1"]

runner = CliRunner()


# ======================================================================================================================
# Helpers
# ======================================================================================================================


class Notes(neuraltab.Callback):
    """Collects the notices of a run; ``notes.text`` joins them for substring checks."""

    def __init__(self) -> None:
        self.messages: list[str] = []

    def on_notice(self, message: str) -> None:
        assert "\n" not in message, f"a notice must be one line: {message!r}"
        self.messages.append(message)

    def __call__(self, message: str) -> None:  # also usable as the ``notify`` of predict
        self.on_notice(message)

    @property
    def text(self) -> str:
        return " | ".join(self.messages)


def fit(data, target: str = "label", **options) -> tuple[neuraltab.Model, Notes]:
    notes = Notes()
    model = neuraltab.fit(data, target=target, callbacks=[notes], **{**FAST, **options})
    return model, notes


def fit_error(error: type[UserError], data, target: str = "label", **options) -> str:
    """fit must raise ``error`` (a neuraltab UserError) with a one-line message; returns the message."""
    with pytest.raises(UserError) as info:
        neuraltab.fit(data, target=target, **{**FAST, **options})
    return one_line(info, error)


def one_line(info: pytest.ExceptionInfo, error: type[UserError]) -> str:
    assert isinstance(info.value, error), f"expected {error.__name__}, got {type(info.value).__name__}: {info.value}"
    message = str(info.value)
    assert message and "\n" not in message
    return message


def has(message: str, *phrases: str) -> None:
    for phrase in phrases:
        assert phrase.lower() in message.lower(), f"{phrase!r} missing from: {message}"


def check_predictions(model: neuraltab.Model, data, n_rows: int, notify=None) -> pd.Series:
    """One finite prediction per row; for classification known labels and probabilities that sum to one."""
    pred = model.predict(data, notify=notify)
    assert len(pred) == n_rows
    if model.task == "regression":
        assert np.isfinite(pred.to_numpy(dtype=float)).all()
    else:
        assert set(pred.tolist()) <= set(model.classes)
        proba = model.predict_proba(data).to_numpy()
        assert proba.shape == (n_rows, len(model.classes))
        assert np.isfinite(proba).all() and np.allclose(proba.sum(axis=1), 1.0, atol=1e-5)
    return pred


def kinds(model: neuraltab.Model) -> dict[str, str]:
    return {c.name: c.kind for c in model.schema.features}


def people(n: int = 60, seed: int = 0) -> pd.DataFrame:
    """Numbers, non-ASCII text and a yes/no label that depends on them."""
    rng = np.random.default_rng(seed)
    age = rng.integers(18, 80, n)
    income = rng.normal(50_000, 15_000, n).round(2)
    city = rng.choice(["Paris", "Zürich", "Köln", "Łódź"], n)
    label = np.where(age + rng.normal(0, 8, n) > 48, "yes", "no")
    return pd.DataFrame({"age": age, "income": income, "city": city, "label": label})


def write(path: Path, content: str | bytes, encoding: str = "utf-8") -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode(encoding))
    return path


def cli(*args: object):
    result = runner.invoke(app, [str(a) for a in args])
    if result.exception is not None and not isinstance(result.exception, SystemExit):
        raise AssertionError("an exception escaped the CLI:\n" + "".join(traceback.format_exception(*result.exc_info)))
    assert "Traceback" not in result.stdout + result.stderr
    return result


def cli_error(result, *phrases: str) -> str:
    assert result.exit_code == 2, result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    has(lines[0], *phrases)
    return lines[0]


# ======================================================================================================================
# Encodings
# ======================================================================================================================


@pytest.mark.parametrize("encoding, start", [("utf-8-sig", b"\xef\xbb\xbfage"), ("utf-16", b"\xff\xfea\x00"),
                                             ("utf-16-le", b"a\x00g\x00")],
                         ids=["utf8-bom", "utf16-bom", "utf16-no-bom"])
def test_encodings_with_and_without_a_byte_order_mark(tmp_path, encoding, start):
    table = people()
    path = tmp_path / "people.csv"
    table.to_csv(path, index=False, encoding=encoding)
    assert path.read_bytes().startswith(start)  # the file is what the case says
    pd.testing.assert_frame_equal(read_table(path), table, check_dtype=False)  # "age" is not "\ufeffage"
    model, _ = fit(path)
    assert model.schema.feature_names() == ["age", "income", "city"]
    assert sorted(dict(model.preprocessor.vocabs)["city"]) == sorted(["Paris", "Zürich", "Köln", "Łódź"])
    check_predictions(model, path, len(table))


def test_latin1_file_is_read_with_a_notice_and_its_accents_survive(tmp_path):
    table = people().assign(city=lambda d: d.city.replace({"Łódź": "Genève"}))  # Latin-1 has no Ł
    path = tmp_path / "people.csv"
    table.to_csv(path, index=False, encoding="latin-1")
    model, notes = fit(path)
    has(notes.text, "Latin-1")
    assert sorted(dict(model.preprocessor.vocabs)["city"]) == sorted(["Paris", "Zürich", "Köln", "Genève"])
    check_predictions(model, path, len(table))


def test_explicit_encoding_is_honoured(tmp_path):
    table = people().assign(city=lambda d: d.city.replace({"Łódź": "Œuvre"}))  # Œ exists in cp1252, not in Latin-1
    path = tmp_path / "people.csv"
    table.to_csv(path, index=False, encoding="cp1252")
    model, _ = fit(path, encoding="cp1252")
    assert "Œuvre" in dict(model.preprocessor.vocabs)["city"]


# ======================================================================================================================
# Structure
# ======================================================================================================================


@pytest.mark.parametrize("sep, suffix", [(";", ".csv"), ("\t", ".tsv"), ("|", ".txt")],
                         ids=["semicolon", "tab", "pipe"])
def test_delimiters(tmp_path, sep, suffix):
    table = people()
    path = tmp_path / f"people{suffix}"
    table.to_csv(path, index=False, sep=sep)
    pd.testing.assert_frame_equal(read_table(path), table, check_dtype=False)
    model, _ = fit(path)
    assert kinds(model) == {"age": "numeric", "income": "numeric", "city": "categorical"}
    check_predictions(model, path, len(table))


def test_quoted_delimiters_and_newlines_inside_values(tmp_path):
    table = people()
    table["note"] = np.resize(["plain", "a, b", "two\nlines", 'say "hi"'], len(table))
    path = tmp_path / "people.csv"
    table.to_csv(path, index=False)  # pandas quotes what needs it
    assert read_table(path)["note"].tolist() == table["note"].tolist()
    model, _ = fit(path)
    assert sorted(dict(model.preprocessor.vocabs)["note"]) == sorted(["plain", "a, b", "two\nlines", 'say "hi"'])
    check_predictions(model, path, len(table))


def test_duplicate_column_names_are_renamed_and_both_used(tmp_path):
    table = people()
    rng = np.random.default_rng(1)
    rows = table[["age", "income", "city", "label"]].to_numpy()
    text = "age,income,age,city,label\n" + "".join(f"{a},{i},{rng.integers(0, 100)},{c},{y}\n" for a, i, c, y in rows)
    path = write(tmp_path / "dup.csv", text)
    model, notes = fit(path)
    has(notes.text, "renamed", "'age' -> 'age.1'")
    assert model.schema.feature_names() == ["age", "income", "age.1", "city"]
    check_predictions(model, path, len(table))


def test_blank_column_names_get_a_name(tmp_path):
    table = people()
    table.insert(2, " ", np.random.default_rng(2).normal(size=len(table)))
    table.insert(3, "", np.random.default_rng(3).choice(["p", "q"], len(table)))
    path = tmp_path / "blank.csv"
    table.to_csv(path, index=False)
    model, notes = fit(path)
    has(notes.text, "renamed 2", "unnamed_3", "unnamed_4")
    assert kinds(model) == {"age": "numeric", "income": "numeric", "unnamed_3": "numeric", "unnamed_4": "categorical",
                            "city": "categorical"}
    check_predictions(model, path, len(table))


@pytest.mark.parametrize("tail", ["\n\n\n", "\r\n\r\n", "\n   \n\t\n", "\n,,,\n"],
                         ids=["empty-lines", "crlf-empty-lines", "whitespace-lines", "delimiter-only-line"])
def test_trailing_empty_lines(tmp_path, tail):
    table = people()
    path = write(tmp_path / "t.csv", table.to_csv(index=False) + tail)
    read = read_table(path)
    if tail.strip(" \t\r\n"):  # a line of empty fields is a row of missing values: its target is missing, it is dropped
        assert len(read) == len(table) + 1 and read.iloc[-1].isna().all()
    else:
        pd.testing.assert_frame_equal(read, table, check_dtype=False)
    model, notes = fit(path)
    assert model.data_fingerprint["rows"] == len(read)
    if tail.strip(" \t\r\n"):
        has(notes.text, "dropped 1 row(s)", "missing")
    check_predictions(model, table, len(table))


def test_ragged_rows_name_the_line(tmp_path):
    lines = people(10).to_csv(index=False).splitlines()
    lines[6] += ",extra"
    path = write(tmp_path / "ragged.csv", "\n".join(lines) + "\n")
    message = fit_error(DataError, path)
    has(message, "ragged.csv", "line 7", "5 fields", "header has 4")


def test_unquoted_thousands_separator_in_a_comma_file_is_a_ragged_row_with_the_fix(tmp_path):
    path = write(tmp_path / "money.csv", "amount,label\n12,yes\n1,234,no\n56,yes\n78,no\n")
    message = fit_error(DataError, path)
    has(message, "line 3", "3 fields", "header has 2", "quote values that contain the delimiter ','")


# ======================================================================================================================
# Values
# ======================================================================================================================


def _amounts(n: int = 60, seed: int = 4) -> np.ndarray:
    """Amounts from 5 to 2,000,000: some under 1000 (no separator), some with one or two separators."""
    rng = np.random.default_rng(seed)
    return np.round(np.exp(rng.uniform(np.log(5), np.log(2_000_000), n)), 2)


def _money_table(text_values: list[str], values: np.ndarray, sep: str) -> tuple[str, np.ndarray]:
    labels = np.where(values > np.median(values), "high", "low")
    rows = [f"amount{sep}label"] + [f"{t}{sep}{y}" for t, y in zip(text_values, labels)]
    return "\n".join(rows) + "\n", labels


@pytest.mark.parametrize("sep", [";", ","], ids=["semicolon", "comma-quoted"])
def test_thousands_separators_are_read_as_numbers(tmp_path, sep):
    values = np.round(_amounts())  # whole numbers: "1,234" and "999"
    texts = [f"{v:,.0f}" for v in values]
    if sep == ",":
        texts = [f'"{t}"' for t in texts]
    content, _ = _money_table(texts, values, sep)
    path = write(tmp_path / "money.csv", content)
    notes = Notes()
    read = read_table(path, notify=notes)
    np.testing.assert_array_equal(read["amount"].to_numpy(dtype=float), values)
    has(notes.text, "'amount'", "thousands separators")
    model, notes = fit(path, target="label")
    assert kinds(model) == {"amount": "numeric"}
    has(notes.text, "thousands separators")
    check_predictions(model, path, len(values))


def test_thousands_separators_with_decimals_in_a_quoted_comma_file(tmp_path):
    values = _amounts(seed=5)
    content, _ = _money_table([f'"{v:,.2f}"' for v in values], values, ",")
    path = write(tmp_path / "money.csv", content)
    np.testing.assert_allclose(read_table(path)["amount"].to_numpy(dtype=float), values)


def test_decimal_commas_in_a_semicolon_file_are_read_as_numbers(tmp_path):
    values = np.round(np.random.default_rng(6).normal(3, 2, 60), 2)
    content, _ = _money_table([f"{v:.2f}".replace(".", ",") for v in values], values, ";")
    path = write(tmp_path / "decimal.csv", content)
    notes = Notes()
    np.testing.assert_allclose(read_table(path, notify=notes)["amount"].to_numpy(dtype=float), values)
    has(notes.text, "'amount'", "decimal commas")
    model, _ = fit(path)
    assert kinds(model) == {"amount": "numeric"}
    check_predictions(model, path, len(values))


@pytest.mark.parametrize("thousands, encoding", [(".", "latin-1"), ("\u202f", "utf-8")], ids=["german", "french"])
def test_european_numbers_with_thousands_separators_and_decimal_commas(tmp_path, thousands, encoding):
    values = _amounts(seed=7)
    texts = [f"{v:,.2f}".replace(",", " ").replace(".", ",").replace(" ", thousands) for v in values]  # 1.234.567,89
    assert any(t.count(thousands) == 2 for t in texts)
    content, _ = _money_table(texts, values, ";")
    path = write(tmp_path / "euro.csv", content, encoding=encoding)
    np.testing.assert_allclose(read_table(path)["amount"].to_numpy(dtype=float), values)


def test_decimal_commas_in_a_regression_target(tmp_path):
    rng = np.random.default_rng(8)
    x = rng.normal(size=80)
    price = np.round(1000 + 250 * x + rng.normal(0, 5, 80), 2)
    rows = ["x;price"] + [f"{a:.4f};{p:.2f}".replace(".", ",") for a, p in zip(x, price)]
    path = write(tmp_path / "prices.csv", "\n".join(rows) + "\n")
    model, _ = fit(path, target="price")
    assert model.task == "regression"
    pred = check_predictions(model, path, len(price)).to_numpy()
    assert price.min() - 3 * price.std() < pred.mean() < price.max() + 3 * price.std()


def test_explicit_decimal_point_overrides_the_guess(tmp_path):
    path = write(tmp_path / "t.csv", "a;b\n1,234;x\n2,500;y\n3,750;x\n")  # ambiguous: decimal in a ';' file
    assert read_table(path)["a"].tolist() == [1.234, 2.5, 3.75]
    assert read_table(path, decimal=".")["a"].tolist() == [1234.0, 2500.0, 3750.0]
    with pytest.raises(DataError, match="'decimal' must be"):
        read_table(path, decimal="#")


def _decimal_comma_files(folder: Path) -> tuple[Path, Path, pd.DataFrame]:
    """A tab-separated training file whose prices show its decimal commas ("6,37"), and a prediction file written the
    same way that alone is ambiguous: every price has three decimals ("6,370": 6.37 or 6370?) and every area a dot
    before three digits ("1.234": 1234 or 1.234?). Returns both paths and the prediction table as numbers."""
    rng = np.random.default_rng(11)

    def table(n: int, decimals: int) -> tuple[list[str], list[str], np.ndarray, np.ndarray, np.ndarray]:
        price = rng.uniform(0, 10, n).round(decimals)
        area = rng.integers(1000, 9000, n)
        label = np.where(price + area / 1000 > 9.5, "big", "small")
        texts = [f"{p:.{decimals}f}".replace(".", ",") for p in price]
        return texts, [f"{a // 1000}.{a % 1000:03d}" for a in area], area, label, price

    def write_tsv(path: Path, prices: list[str], areas: list[str], labels: np.ndarray) -> Path:
        rows = ["price\tarea\tlabel"] + [f"{p}\t{a}\t{y}" for p, a, y in zip(prices, areas, labels)]
        return write(path, "\n".join(rows) + "\n")

    prices, areas, _, labels, _ = table(160, 2)
    train = write_tsv(folder / "train.tsv", prices, areas, labels)
    prices, areas, area, labels, _ = table(40, 3)
    new = write_tsv(folder / "new.tsv", prices, areas, labels)
    truth = pd.DataFrame({"price": [float(p.replace(",", ".")) for p in prices], "area": area.astype(float),
                          "label": labels})
    return train, new, truth


def test_prediction_files_are_read_with_the_training_files_decimal_mark(tmp_path):
    train, new, truth = _decimal_comma_files(tmp_path)
    model, notes = fit(train)
    has(notes.text, "decimal commas", "'price'", "'area' (")
    assert model.reading == {"decimal": ",", "decimal_from": "detected"}
    alone = read_table(new)  # read on its own, the file is guessed otherwise: "6,370" as 6370, "1.234" as 1.234
    assert (alone["price"] > 10).any() and (alone["area"] < 10).all()
    expected = model.predict_proba(truth)
    pd.testing.assert_frame_equal(model.predict_proba(new), expected)
    assert model.evaluate(new) == model.evaluate(truth)
    loaded = neuraltab.load(model.save(tmp_path / "m.ntab"))
    pd.testing.assert_frame_equal(loaded.predict_proba(new), expected)
    assert loaded.info()["reading"] == {"decimal": ",", "decimal_from": "detected"}
    # a decimal mark given for the prediction file wins over the model's
    by_dot = model.predict_proba(read_table(new, decimal="."))
    pd.testing.assert_frame_equal(loaded.predict_proba(new, decimal="."), by_dot)


def test_a_decimal_mark_given_for_training_is_the_models(tmp_path):
    path = write(tmp_path / "t.csv", "a;b;label\n" + "".join(f"{i},5;{i % 3};{'xy'[i % 2]}\n" for i in range(40)))
    model, _ = fit(path, decimal=",")
    assert model.reading == {"decimal": ",", "decimal_from": "given"}
    assert fit(people(), decimal=None)[0].reading == {"decimal": None, "decimal_from": None}  # a DataFrame says nothing


def test_text_with_commas_or_spaced_digits_is_not_taken_for_numbers(tmp_path):
    path = write(tmp_path / "t.csv", 'place,phone,n\n"Paris, France",+33 612 345 678,1\n'
                                     '"Lyon, France",+33 612 345 679,2\n"1,2,3",+33 612 345 670,3\n')
    read = read_table(path)
    assert read["place"].tolist() == ["Paris, France", "Lyon, France", "1,2,3"]
    assert read["phone"].tolist() == ["+33 612 345 678", "+33 612 345 679", "+33 612 345 670"]


@pytest.mark.parametrize("source", ["csv", "dataframe"])
def test_infinities_in_features_are_missing_and_predictions_stay_finite(tmp_path, source):
    table = people()
    table["income"] = table["income"].astype(object)
    table.loc[::7, "income"] = np.inf
    table.loc[3::11, "income"] = -np.inf
    if source == "csv":
        path = tmp_path / "inf.csv"
        table.to_csv(path, index=False)  # writes inf / -inf
        assert "-inf" in path.read_text()
        data = path
    else:
        data = table.assign(income=table["income"].astype(float))
    model, _ = fit(data)
    assert kinds(model)["income"] == "numeric"
    assert np.isfinite(model.preprocessor.median).all()
    check_predictions(model, data, len(table))


def test_infinite_regression_targets_are_dropped_with_a_notice():
    rng = np.random.default_rng(9)
    table = pd.DataFrame({"x": rng.normal(size=60)})
    table["y"] = 10 * table["x"] + rng.normal(size=60)
    table.loc[[5, 17], "y"] = [np.inf, -np.inf]
    model, notes = fit(table, target="y")
    has(notes.text, "dropped 2 row(s)", "infinite")
    pred = check_predictions(model, table, 60)
    assert np.abs(pred).max() < 1e3


def test_a_column_of_only_infinities_is_ignored():
    table = people().assign(broken=np.inf)
    model, notes = fit(table)
    assert "broken" not in kinds(model)
    has(notes.text, "'broken'")


@pytest.mark.filterwarnings("error::RuntimeWarning")
def test_floats_of_extreme_magnitude_give_finite_predictions():
    """Found by the property tests: quantiles a few subnormals apart (0 and 2e-311) made the quantile transform
    divide by ~0, and NaN inputs crashed the metrics at the end of fit."""
    tiny, huge = 2.225074e-311, -2.37092e232
    x = [np.nan, 0, 0, tiny / 100, 0, 0, 0, 1.0, np.nan, 0, 0, tiny] + [0] * 18 + [9.470221e8, huge, np.nan, 0, 0]
    table = pd.DataFrame({"x": x, "label": [0] * 21 + [1] * 14})
    model, _ = fit(table)
    check_predictions(model, table, 35)
    check_predictions(model, pd.DataFrame({"x": [tiny / 2, tiny * 2, -1e300, 1e308]}), 4)


# raw 1e30 inputs (scaling="none") make the loss explode: a one-line error since issue 20, unless keep_diverged
@pytest.mark.parametrize("options", [{}, {"model": "mlp", "layers": [16]}, {"model": "mlp", "layers": [16],
                                                                          "scaling": "none", "keep_diverged": True}],
                         ids=["default-quantile", "mlp-standard", "mlp-none"])
@pytest.mark.filterwarnings("error::RuntimeWarning")  # no overflow on the way, not just a finite end result
def test_values_near_the_float64_limit_give_finite_predictions(options):
    """1.7e308 overflowed the mean, standard deviation and quantile interpolation (inf - inf), and float32 inputs."""
    rng = np.random.default_rng(22)
    top = np.finfo(np.float64).max
    table = pd.DataFrame({"x": rng.choice([top, -top, 1.7e308, 0.5, 2.0], 60), "z": rng.normal(size=60)})
    table["label"] = np.where(table.z > 0, "a", "b")
    model, _ = fit(table, **options)
    check_predictions(model, table, 60)
    check_predictions(model, pd.DataFrame({"x": [1e308, -1e308, 0.0], "z": [1e300, -1e300, 0.0]}), 3)
    if options.get("keep_diverged"):
        has(fit_error(ConfigError, table, **{**options, "keep_diverged": False}), "diverged", "scaling='quantile'")


def test_numbers_as_text_with_missing_markers_in_a_file(tmp_path):
    table = people()
    text = table["income"].map(lambda v: f"{v:.2f}").to_numpy(dtype=object)
    text[::5], text[1::7], text[2::9] = "N/A", "?", ""
    path = tmp_path / "markers.csv"
    table.assign(income=text).to_csv(path, index=False)
    read = read_table(path)
    assert read["income"].isna().sum() == sum(v in ("N/A", "?", "") for v in text)
    model, _ = fit(path)
    assert kinds(model)["income"] == "numeric" and len(model.preprocessor.indicators) == 1  # a missing indicator
    check_predictions(model, path, len(table))


def test_numbers_as_text_with_missing_markers_in_a_dataframe():
    table = people()
    text = table["income"].map(lambda v: f"{v:.2f}").to_numpy(dtype=object)
    text[::3], text[1::4] = "N/A", "?"  # far more than 5% of the cells: markers, not bad numbers
    data = table.assign(income=text)
    model, notes = fit(data)
    assert kinds(model)["income"] == "numeric"
    assert "not numbers" not in notes.text
    pred_notes = Notes()
    check_predictions(model, data, len(table), notify=pred_notes)
    assert "income" not in pred_notes.text  # markers at predict time are missing values, not a type change


def test_mixed_type_columns():
    table = people()
    rng = np.random.default_rng(10)
    mostly_numbers = table["income"].astype(object)
    mostly_numbers[[4, 40]] = ["unknown", "n.a."]  # under 5%: numeric, those cells missing
    half = np.where(rng.random(len(table)) < 0.5, rng.integers(0, 9, len(table)).astype(str), "text")
    data = table.assign(mostly_numbers=mostly_numbers, half=half.astype(object)).drop(columns="income")
    model, notes = fit(data)
    assert kinds(model)["mostly_numbers"] == "numeric" and kinds(model)["half"] == "categorical"
    # "n.a." is a missing-value marker (issue 20): missing, not a value that is not a number
    has(notes.text, "'mostly_numbers'", "1 value(s) are not numbers", "'unknown'")
    assert "'n.a.'" not in notes.text
    check_predictions(model, data, len(table))


def test_all_missing_columns_are_ignored_with_a_notice(tmp_path):
    table = people().assign(empty_num=np.nan, empty_text=None)
    path = tmp_path / "empty.csv"
    table.to_csv(path, index=False)
    model, notes = fit(path)
    assert set(kinds(model)) == {"age", "income", "city"}
    has(notes.text, "'empty_num' (all values missing)", "'empty_text' (all values missing)")
    check_predictions(model, path, len(table))


def test_dates_in_a_file_become_date_parts(tmp_path):
    table = people()
    table["joined"] = (pd.Timestamp("2020-01-01") + pd.to_timedelta(np.arange(len(table)) * 9, unit="D")).strftime(
        "%Y-%m-%d")
    path = tmp_path / "dates.csv"
    table.to_csv(path, index=False)
    model, _ = fit(path)
    assert kinds(model)["joined"] == "datetime"
    assert "joined.year" in model.preprocessor.input_names()
    check_predictions(model, path, len(table))


# ======================================================================================================================
# Categories
# ======================================================================================================================


def test_a_hundred_thousand_distinct_categories_are_capped_with_a_notice():
    n = 100_000
    rng = np.random.default_rng(11)
    codes = np.array([f"c{i:05d}" for i in range(n)], dtype=object)  # 10^5 levels, each once
    x = rng.normal(size=n)
    table = pd.DataFrame({"code": codes, "x": x, "label": np.where(x > 0, "a", "b")})
    model, notes = fit(table, categorical=["code"], epochs=1, batch_size=4096, test_size=0.05, valid_size=0.05)
    has(notes.text, "'code'", "categories", "the 1000 most frequent are kept",
        "('max_categories' sets how many)")
    assert model.preprocessor.cat_cardinalities == [1001]  # 1000 kept + the unknown slot
    new = pd.DataFrame({"code": ["c00001", "never-seen"], "x": [0.5, -0.5]})
    check_predictions(model, new, 2)


def test_max_categories_option_caps_harder(tmp_path):
    rng = np.random.default_rng(12)
    table = pd.DataFrame({"shop": rng.choice([f"shop{i}" for i in range(40)], 400), "x": rng.normal(size=400)})
    table["label"] = np.where(table.x > 0, "a", "b")
    model, notes = fit(table, max_categories=5)
    has(notes.text, "'shop' has 40 categories", "the 5 most frequent")
    assert model.preprocessor.cat_cardinalities == [6]


def test_unseen_categories_at_predict_time_get_a_notice_not_an_error():
    model, _ = fit(people())
    new = people(20, seed=1)
    new.loc[:4, "city"] = ["Oslo", "Oslo", "Lima", None, "Paris"]
    notes = Notes()
    check_predictions(model, new, 20, notify=notes)
    has(notes.text, "'city'", "3 value(s) not seen in training", "'Oslo'", "'Lima'", "unknown")


# ======================================================================================================================
# Size and shape
# ======================================================================================================================


def test_one_row_is_a_clear_error():
    message = fit_error(DataError, people(1))
    has(message, "1 usable row", "at least 4", "add rows")


def test_two_rows_are_too_few_for_a_test_split():
    table = people(2).assign(label=["yes", "no"])
    has(fit_error(DataError, table), "2 usable row(s)", "at least 4")


def test_two_rows_without_a_test_split_train_on_both():
    table = people(2).assign(label=["yes", "no"])
    model, notes = fit(table, test_size=0.0)
    has(notes.text, "without early stopping")
    check_predictions(model, table, 2)


def test_nine_rows_train():
    table = people(9).assign(label=["yes", "no", "yes", "no", "yes", "no", "yes", "no", "yes"])
    model, _ = fit(table)
    assert "test" in model.metrics and model.metrics["test"]["n"] == 3
    check_predictions(model, table, 9)


def test_one_feature(tmp_path):
    path = tmp_path / "one.csv"
    people()[["age", "label"]].to_csv(path, index=False)
    model, _ = fit(path)
    assert model.schema.feature_names() == ["age"]
    check_predictions(model, path, 60)


def test_only_the_target_column_is_a_clear_error(tmp_path):
    path = tmp_path / "target-only.csv"
    people()[["label"]].to_csv(path, index=False)
    has(fit_error(SchemaError, path), "no usable feature columns", "'label'")


def test_two_thousand_features(tmp_path):
    rng = np.random.default_rng(13)
    wide = pd.DataFrame(rng.normal(size=(30, 2000)).round(3), columns=[f"f{i}" for i in range(2000)])
    wide["label"] = np.where(wide["f0"] > 0, "a", "b")
    path = tmp_path / "wide.csv"
    wide.to_csv(path, index=False)
    model, _ = fit(path, d_embedding=0)
    assert len(model.schema.features) == 2000
    check_predictions(model, path, 30)


def test_wide_but_short_table():
    rng = np.random.default_rng(14)
    n = 12
    cols = {f"num{i}": rng.normal(size=n) for i in range(150)}
    cols.update({f"cat{i}": rng.choice(list("pqr"), n) for i in range(50)})
    table = pd.DataFrame(cols).assign(label=np.resize(["a", "b"], n))
    model, _ = fit(table)
    assert len(model.schema.features) == 200 and model.preprocessor.n_num >= 150
    check_predictions(model, table, n)


# ======================================================================================================================
# Target
# ======================================================================================================================


def test_exactly_duplicated_rows_train_and_get_identical_predictions():
    table = pd.concat([people(30)] * 4, ignore_index=True)
    model, _ = fit(table)
    pred = check_predictions(model, table, 120)
    proba = model.predict_proba(table).to_numpy()
    np.testing.assert_array_equal(proba[:30], proba[30:60])  # same row, same answer
    assert pred[:30].tolist() == pred[90:].tolist()


@pytest.mark.parametrize("leak, how", [
    (lambda t: t["label"], "is identical to"),
    (lambda t: t["label"].map({"yes": 1, "no": 0}), "maps one-to-one onto"),
], ids=["copy", "recoded"])
def test_a_feature_that_leaks_the_target_is_named_in_a_notice(leak, how):
    table = people()
    table.insert(1, "outcome_code", leak(table))
    model, notes = fit(table)
    has(notes.text, f"column 'outcome_code' {how} the target 'label'", "leak", "drop=['outcome_code']")
    assert "outcome_code" in kinds(model)  # a warning, not a decision: the user may know better
    assert notes.text.count("leak") == 1  # only that column


def test_a_regression_feature_proportional_to_the_target_is_a_leak():
    rng = np.random.default_rng(15)
    table = pd.DataFrame({"x": rng.normal(size=60), "y": rng.normal(100, 20, 60)})
    table["y_in_cents"] = table["y"] * 100
    _, notes = fit(table, target="y")
    has(notes.text, "'y_in_cents'", "rises or falls strictly with the target 'y'")
    assert "'x'" not in notes.text


def test_no_leak_notice_on_an_ordinary_table():
    _, notes = fit(people(200))
    assert "leak" not in notes.text


def test_extreme_class_imbalance_trains_and_falls_back_to_a_random_split():
    rng = np.random.default_rng(16)
    n = 2002
    table = pd.DataFrame({"x": rng.normal(size=n), "label": ["common"] * 2000 + ["rare"] * 2})  # 1:1000
    model, notes = fit(table, epochs=2)
    has(notes.text, "too rare to stratify")
    assert model.classes == ("common", "rare")
    proba = model.predict_proba(table)
    assert list(proba.columns) == ["common", "rare"] and np.isfinite(proba.to_numpy()).all()
    check_predictions(model, table, n)


def test_regression_targets_of_1e12_scale_come_back_in_scale():
    rng = np.random.default_rng(17)
    x = rng.normal(size=200)
    y = 3e12 + 1e12 * x + rng.normal(0, 1e10, 200)
    table = pd.DataFrame({"x": x, "y": y})
    model, _ = fit(table, target="y")
    pred = check_predictions(model, table, 200).to_numpy()
    assert 1e11 < np.abs(pred).mean() < 1e14  # the target's scale, not the standardised one
    assert pred.min() > y.min() - 3 * y.std() and pred.max() < y.max() + 3 * y.std()
    assert model.metrics["test"]["rmse"] < 3 * y.std()


def test_non_ascii_column_and_label_names(tmp_path):
    table = people().rename(columns={"age": "âge", "city": "город", "label": "résultat"})
    table["résultat"] = table["résultat"].map({"yes": "oui ✓", "no": "非"})
    path = tmp_path / "unicode.csv"
    table.to_csv(path, index=False)
    model, _ = fit(path, target="résultat")
    assert model.schema.feature_names() == ["âge", "income", "город"]
    assert model.classes == ("oui ✓", "非")
    check_predictions(model, path, len(table))
    saved = model.save(tmp_path / "модель.ntab")
    assert neuraltab.load(saved).predict_table(path).columns.tolist() == ["prediction", "proba_oui ✓", "proba_非"]


def test_missing_target_values_drop_their_rows_with_a_notice(tmp_path):
    table = people()
    table.loc[[1, 2, 3], "label"] = None
    path = tmp_path / "gaps.csv"
    table.to_csv(path, index=False)
    model, notes = fit(path)
    has(notes.text, "dropped 3 row(s)", "'label'")
    assert model.data_fingerprint["rows"] == 60  # the file's rows; three were not used
    check_predictions(model, path, 60)  # the rows without a target still get a prediction


def test_rows_without_a_target_count_for_the_column_kinds_and_can_be_predicted(tmp_path):
    """Rows to predict often sit in the training file with an empty target. Their values count when a column's kind is
    decided, so a column whose only words are in those rows is the kind the whole file says (categorical here, as
    with every target filled in), and those rows can be predicted (new: 'code' was numeric, and predicting the
    unlabelled rows was refused as "should hold numbers")."""
    table = people()
    code = np.random.default_rng(20).integers(100, 999, 60).astype(str).astype(object)
    code[45:] = "pending"  # a quarter of the column, only in the rows without a target
    table["code"] = code
    table.loc[45:, "label"] = None
    path = write(tmp_path / "partly.csv", table.to_csv(index=False))
    model, notes = fit(path)
    has(notes.text, "dropped 15 row(s)")
    assert kinds(model)["code"] == "categorical"
    full = write(tmp_path / "full.csv", table.assign(label=people()["label"]).to_csv(index=False))
    assert kinds(fit(full)[0]) == kinds(model)  # the same file with every target filled in: the same kinds
    check_predictions(model, path, 60)
    unlabelled = write(tmp_path / "unlabelled.csv", table.iloc[45:].drop(columns="label").to_csv(index=False))
    check_predictions(model, unlabelled, 15)


def test_dates_as_class_labels_come_back_as_written():
    rng = np.random.default_rng(19)
    x = rng.normal(size=60)
    table = pd.DataFrame({"x": x, "when": pd.to_datetime(np.where(x > 0, "2020-01-01", "2021-06-30"))})
    model, _ = fit(table, target="when")
    assert model.classes == ("2020-01-01 00:00:00", "2021-06-30 00:00:00")
    check_predictions(model, table, 60)


def test_regression_targets_too_large_for_float32_are_a_clear_error():
    rng = np.random.default_rng(20)
    table = pd.DataFrame({"x": rng.normal(size=40), "y": rng.normal(size=40) * 1e200})
    has(fit_error(SchemaError, table, target="y"), "'y'", "rescale")


def test_a_target_given_as_a_number_for_numbered_columns_says_how_to_name_it():
    table = pd.DataFrame(np.random.default_rng(21).normal(size=(30, 3)))
    table[2] = np.where(table[0] > 0, "a", "b")
    has(fit_error(SchemaError, table, target=2), "target 2 is not a column name", "target='2'")
    model, _ = fit(table, target="2")
    assert model.schema.feature_names() == ["0", "1"]


def test_a_date_column_that_never_varies_in_the_training_rows_still_gives_an_input():
    from neuraltab.data.preprocess import Preprocessor
    from neuraltab.data.schema import Column, Schema

    schema = Schema(target="y", task="binary", features=(Column("d", "datetime"),), classes=("a", "b"))
    train = pd.DataFrame({"d": ["2020-01-01"] * 5 + [None], "y": list("ababab")})
    pre = Preprocessor(schema).fit(train)
    assert pre.input_names() == ["d.epoch_days", "d.epoch_days.missing"]  # not zero inputs: the model needs one
    x = pre.transform(pd.DataFrame({"d": ["2020-01-01", "2024-05-05", None], "y": list("aba")})).x_num
    assert x.shape == (3, 2) and np.isfinite(x).all()


# ======================================================================================================================
# Prediction files that differ from the training file
# ======================================================================================================================


def _training_table(n: int = 80) -> pd.DataFrame:
    rng = np.random.default_rng(18)
    table = people(n, seed=18)
    table["member"] = rng.choice([True, False], n)
    table["joined"] = (pd.Timestamp("2021-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")).strftime(
        "%Y-%m-%d")
    return table


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    folder = tmp_path_factory.mktemp("trained")
    table = _training_table()
    table.to_csv(folder / "train.csv", index=False)
    model, _ = fit(folder / "train.csv")
    model.save(folder / "model.ntab")
    assert kinds(model) == {"age": "numeric", "income": "numeric", "city": "categorical", "member": "boolean",
                            "joined": "datetime"}
    features = table.drop(columns="label")
    return model, features, folder


def test_prediction_file_with_columns_reordered(trained, tmp_path):
    model, features, _ = trained
    path = tmp_path / "reordered.csv"
    features[features.columns[::-1]].to_csv(path, index=False)
    expected = model.predict_proba(features).to_numpy()
    check_predictions(model, path, len(features))
    np.testing.assert_allclose(model.predict_proba(path).to_numpy(), expected, atol=1e-6)


def test_prediction_file_with_extra_columns(trained, tmp_path):
    model, features, _ = trained
    path = tmp_path / "extra.csv"
    features.assign(comment="x", label="yes", score=1.5).to_csv(path, index=False)
    notes = Notes()
    check_predictions(model, path, len(features), notify=notes)
    has(notes.text, "ignoring 2 column(s)", "'comment'", "'score'")
    assert "'label'" not in notes.text  # the target column is expected, not "extra"
    np.testing.assert_allclose(model.predict_proba(path).to_numpy(), model.predict_proba(features).to_numpy(),
                               atol=1e-6)


def test_prediction_file_with_a_missing_column(trained, tmp_path):
    model, features, _ = trained
    path = tmp_path / "missing.csv"
    features.drop(columns=["income"]).to_csv(path, index=False)
    with pytest.raises(UserError) as info:
        model.predict(path)
    has(one_line(info, SchemaError), "missing.csv", "'income'", "missing", "add them")


@pytest.mark.parametrize("column, value, words", [
    ("income", "lots", ["'income'", "numbers", "'lots'"]),
    ("joined", "someday", ["'joined'", "dates", "'someday'"]),
], ids=["numeric-now-text", "dates-now-text"])
def test_prediction_file_with_a_column_of_a_changed_type(trained, tmp_path, column, value, words):
    model, features, _ = trained
    path = tmp_path / "changed.csv"
    features.assign(**{column: value}).to_csv(path, index=False)
    with pytest.raises(UserError) as info:
        model.predict(path)
    has(one_line(info, SchemaError), "changed.csv", *words)


def test_a_stray_word_in_a_one_row_prediction_is_missing_with_a_notice(trained):
    model, features, _ = trained
    notes = Notes()
    check_predictions(model, features.iloc[:1].assign(income="unknown"), 1, notify=notes)
    has(notes.text, "'income'", "'unknown'", "treated as missing")


def test_prediction_file_whose_categories_became_numbers_still_works(trained):
    model, features, _ = trained
    notes = Notes()
    check_predictions(model, features.assign(city=7), len(features), notify=notes)
    has(notes.text, "'city'", "not seen in training")


def test_prediction_file_in_another_encoding_and_delimiter(trained, tmp_path):
    model, features, _ = trained
    path = tmp_path / "other.csv"
    latin = features.assign(city=features.city.replace({"Łódź": "Paris"}))
    latin.to_csv(path, index=False, sep=";", encoding="latin-1")
    np.testing.assert_allclose(model.predict_proba(path).to_numpy(), model.predict_proba(latin).to_numpy(),
                               atol=1e-6)


# ======================================================================================================================
# Memory guard
# ======================================================================================================================


def test_a_file_that_will_not_fit_in_memory_is_refused_before_reading(tmp_path, monkeypatch):
    path = tmp_path / "big.csv"
    people(200).to_csv(path, index=False)
    size = path.stat().st_size
    assert nt_reading.estimate_memory(path) >= 2 * size  # text needs more memory than disk
    monkeypatch.setattr(nt_reading, "available_memory", lambda: size // 2)
    with pytest.raises(UserError) as info:
        neuraltab.fit(path, target="label", **FAST)
    message = one_line(info, DataError)
    has(message, "big.csv", "needs about", "of memory", "is available", "sample", "streaming")
    with pytest.raises(DataError, match="streaming"):
        neuraltab.fit(people(200), target="label", **FAST).predict(path)  # predict reads files the same way


def test_memory_guard_lets_files_that_fit_through_and_skips_when_memory_is_unknown(tmp_path, monkeypatch):
    path = tmp_path / "small.csv"
    people().to_csv(path, index=False)
    monkeypatch.setattr(nt_reading, "available_memory", lambda: nt_reading.estimate_memory(path) + 1)
    assert len(read_table(path)) == 60
    monkeypatch.setattr(nt_reading, "available_memory", lambda: None)  # not Linux: no guard
    assert len(read_table(path)) == 60


def test_memory_estimate_depends_on_the_format(tmp_path):
    table = people(100)
    table.to_csv(tmp_path / "t.csv", index=False)
    table.to_parquet(tmp_path / "t.parquet")
    table.to_json(tmp_path / "t.jsonl", orient="records", lines=True)
    for name, factor in (("t.csv", "text"), ("t.parquet", "parquet"), ("t.jsonl", "json")):
        size = (tmp_path / name).stat().st_size
        assert nt_reading.estimate_memory(tmp_path / name) == int(size * nt_reading.MEMORY_FACTORS[factor])
    with pytest.raises(DataError, match="needs about"):
        nt_reading.check_memory(tmp_path / "t.parquet", available=1)


def test_available_memory_reads_the_system():
    available = nt_reading.available_memory()
    if Path("/proc/meminfo").exists():
        assert isinstance(available, int) and available > 0
    else:
        assert available is None


# ======================================================================================================================
# The same cases through the CLI: notes on stderr and exit 0, or one error line and exit 2
# ======================================================================================================================


def test_cli_trains_on_a_latin1_semicolon_file_with_decimal_commas(tmp_path):
    table = people()
    table["income"] = table["income"].map(lambda v: f"{v:.2f}".replace(".", ","))
    table["city"] = table["city"].replace({"Łódź": "Genève"})
    path = tmp_path / "données.csv"
    table.to_csv(path, index=False, sep=";", encoding="latin-1")
    result = cli("train", path, "--target", "label", *FAST_CLI, "-o", tmp_path / "m.ntab")
    assert result.exit_code == 0, result.stderr
    has(result.stderr, "Latin-1", "decimal commas", "'income'")
    assert (tmp_path / "m.ntab").exists()
    info = neuraltab.load(tmp_path / "m.ntab").info()
    assert {f["name"]: f["kind"] for f in info["features"]}["income"] == "numeric"


def test_cli_predict_and_evaluate_read_with_the_training_files_decimal_mark_and_info_shows_it(tmp_path):
    train, new, truth = _decimal_comma_files(tmp_path)
    model_file = tmp_path / "m.ntab"
    assert cli("train", train, "--target", "label", *FAST_CLI, "-o", model_file).exit_code == 0
    model = neuraltab.load(model_file)
    result = cli("predict", model_file, new, "-o", tmp_path / "pred.csv")
    assert result.exit_code == 0, result.stderr
    written = pd.read_csv(tmp_path / "pred.csv")
    np.testing.assert_allclose(written[["proba_big", "proba_small"]].to_numpy(),
                               model.predict_proba(truth).to_numpy(), rtol=0, atol=1e-6)
    result = cli("evaluate", model_file, new, "--json")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["accuracy"] == model.evaluate(truth)["accuracy"]
    assert cli("predict", model_file, new, "--decimal", ".", "-o", tmp_path / "dot.csv").exit_code == 0
    np.testing.assert_allclose(pd.read_csv(tmp_path / "dot.csv")["proba_big"].to_numpy(),
                               model.predict_proba(read_table(new, decimal="."))["big"].to_numpy(), rtol=0, atol=1e-6)
    has(cli("info", model_file).stdout, "decimal mark: ','", "detected in the training file")
    assert json.loads(cli("info", model_file, "--json").stdout)["reading"] == {"decimal": ",",
                                                                              "decimal_from": "detected"}


def test_cli_predicts_on_reordered_columns_with_unseen_categories(trained, tmp_path):
    _, features, folder = trained
    path = tmp_path / "new.csv"
    new = features[features.columns[::-1]].assign(city="Atlantis")
    new.to_csv(path, index=False)
    result = cli("predict", folder / "model.ntab", path, "-o", tmp_path / "pred.csv")
    assert result.exit_code == 0, result.stderr
    has(result.stderr, "'city'", "not seen in training", "'Atlantis'")
    out = pd.read_csv(tmp_path / "pred.csv")
    assert len(out) == len(new) and np.allclose(out[["proba_no", "proba_yes"]].sum(axis=1), 1.0, atol=1e-5)


def test_cli_predict_with_a_missing_column_is_one_error_line(trained, tmp_path):
    _, features, folder = trained
    path = tmp_path / "new.csv"
    features.drop(columns=["joined"]).to_csv(path, index=False)
    result = cli("predict", folder / "model.ntab", path, "-o", tmp_path / "pred.csv")
    cli_error(result, "new.csv", "'joined'", "missing")
    assert not (tmp_path / "pred.csv").exists()


def test_cli_one_row_is_one_error_line(tmp_path):
    path = tmp_path / "one.csv"
    people(1).to_csv(path, index=False)
    cli_error(cli("train", path, "--target", "label", *FAST_CLI), "one.csv", "1 usable row")
    assert not (tmp_path / "one.ntab").exists()


def test_cli_memory_guard_is_one_error_line(tmp_path, monkeypatch):
    path = tmp_path / "big.csv"
    people().to_csv(path, index=False)
    monkeypatch.setattr(nt_reading, "available_memory", lambda: 100)
    cli_error(cli("train", path, "--target", "label", *FAST_CLI), "big.csv", "memory", "streaming")
