"""Property-based tests (issue 6): random tables of mixed types and missingness never crash neuraltab.

For any generated table, ``neuraltab.fit(table, target, **TINY)`` either raises neuraltab's own
:class:`~neuraltab.errors.UserError` (with a one-line message) or returns a model whose ``predict`` on the same table
gives one finite prediction per row (known labels; probabilities that sum to one), rows without a target included
(their values count when the column kinds are decided). Nothing else may escape, and the table passed in is never
modified.
The second property writes the table to a file first (random delimiter and encoding), so the reader's sniffing and
number parsing are exercised too.
"""

from __future__ import annotations

import math
import os
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, find, given, settings
from hypothesis import strategies as st

import neuraltab
from neuraltab.errors import UserError

TINY = {"epochs": 2, "k": 1, "d_block": 8, "n_blocks": 1, "n_bins": 4, "d_embedding": 4, "threads": 1}
SETTINGS = {"deadline": None, "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
            "print_blob": True}

MARKERS = ["N/A", "?", "", "NA", "null"]
# examples per property; CI runs the default, a deeper search sets e.g. NEURALTAB_PROPERTY_SCALE=20
SCALE = float(os.environ.get("NEURALTAB_PROPERTY_SCALE", "1"))


# ======================================================================================================================
# Strategies
# ======================================================================================================================


def _cells(n: int, element: st.SearchStrategy) -> st.SearchStrategy:
    return st.lists(element, min_size=n, max_size=n)


def _with_gaps(element: st.SearchStrategy, gap=None) -> st.SearchStrategy:
    return st.one_of(element, element, element, st.just(gap))


finite_floats = st.floats(min_value=-1e9, max_value=1e9, allow_nan=False, allow_infinity=False)
any_floats = st.one_of(finite_floats, st.floats(allow_nan=True, allow_infinity=True),  # 1e308, inf, nan, -0.0
                       st.sampled_from([0.0, 1.5, -2.25, 1e12]))
dates = st.datetimes(min_value=pd.Timestamp("1950-01-01").to_pydatetime(),
                     max_value=pd.Timestamp("2090-12-31").to_pydatetime())
words = st.sampled_from(["red", "green", "blue", "Zürich", "東京", "a, b", "x\ny"])


def column(kind: str, n: int) -> st.SearchStrategy:
    """A list of ``n`` cells of one kind of column, missing values included."""
    if kind == "float":
        return _cells(n, _with_gaps(any_floats, np.nan))
    if kind == "int":
        return _cells(n, st.integers(-1000, 1000)).map(lambda v: pd.array(v, dtype="int64"))
    if kind == "nullable_int":
        return _cells(n, _with_gaps(st.integers(-5, 5), None)).map(lambda v: pd.array(v, dtype="Int64"))
    if kind == "category":
        return _cells(n, _with_gaps(words, None))
    if kind == "bool":
        return _cells(n, _with_gaps(st.booleans(), None))
    if kind == "date":
        return _cells(n, _with_gaps(dates, None)).map(lambda v: pd.Series(v, dtype="datetime64[ns]"))
    if kind == "date_text":
        return _cells(n, _with_gaps(dates.map(lambda d: d.strftime("%Y-%m-%d")), None))
    if kind == "empty":
        return st.sampled_from([[np.nan] * n, [None] * n, [""] * n])
    if kind == "number_text":  # numbers stored as text with missing-value markers
        return _cells(n, st.one_of(finite_floats.map(lambda v: f"{v:.3f}"), st.sampled_from(MARKERS)))
    if kind == "formatted":  # numbers for people: thousands separators, or decimal commas (read as numbers from files)
        styles = st.sampled_from([lambda v: f"{v:,.2f}", lambda v: f"{v:,.0f}", lambda v: f"{v:.2f}".replace(".", ",")])
        return st.tuples(styles, _cells(n, _with_gaps(finite_floats, None))).map(
            lambda sv: [None if v is None else sv[0](v) for v in sv[1]])
    if kind == "mixed":
        return _cells(n, st.one_of(finite_floats, st.integers(-3, 3), words, st.booleans(), st.none()))
    raise AssertionError(kind)


FEATURE_KINDS = ["float", "int", "nullable_int", "category", "bool", "date", "date_text", "empty", "number_text",
                 "formatted", "mixed"]
TARGETS = {
    "binary-text": st.sampled_from(["yes", "no"]),
    "binary-int": st.sampled_from([0, 1]),
    "binary-bool": st.booleans(),
    "multiclass-text": st.sampled_from(["ant", "bee", "cat", "dög"]),
    "multiclass-int": st.integers(0, 3),
    "regression": finite_floats,
    "regression-1e12": st.floats(min_value=1e11, max_value=1e13),
}
NAMES = ["x", "größe", "σ", "with space", "id", "value", "2nd", "ünïcödé"]


@st.composite
def tables(draw) -> tuple[pd.DataFrame, str]:
    n = draw(st.integers(min_value=1, max_value=40))
    kinds = draw(st.lists(st.sampled_from(FEATURE_KINDS), min_size=1, max_size=5))
    names = draw(st.lists(st.sampled_from(NAMES), min_size=len(kinds), max_size=len(kinds), unique=True))
    frame = {name: draw(column(kind, n)) for name, kind in zip(names, kinds)}
    target_kind = draw(st.sampled_from(sorted(TARGETS)))
    element = TARGETS[target_kind]
    if draw(st.booleans()):  # a target with missing values
        element = _with_gaps(element, None)
    frame["target"] = draw(_cells(n, element))
    return pd.DataFrame(frame), "target"


# ======================================================================================================================
# The property
# ======================================================================================================================


def check_fit_predict(data, table: pd.DataFrame, target: str) -> None:
    """fit + predict on ``data`` (the table or its file): a UserError, or one finite prediction per row.

    The column kinds were decided on every row of ``data``, those without a target too, so predicting them must work.
    """
    try:
        model = neuraltab.fit(data, target=target, **TINY)
    except UserError as exc:
        assert str(exc) and "\n" not in str(exc)
        return
    n = len(table)
    pred = model.predict(data)
    assert len(pred) == n
    if model.task == "regression":
        values = pred.to_numpy(dtype=float)
        assert np.isfinite(values).all(), values
        y = pd.to_numeric(table[target], errors="coerce").to_numpy(dtype=float)
        y = y[np.isfinite(y)]
        spread = max(y.max() - y.min(), abs(y).max(), 1.0)
        assert np.abs(values).max() <= abs(y).max() + 100 * spread  # in the target's units, not standardised
    else:
        assert set(pred.tolist()) <= set(model.classes)
        proba = model.predict_proba(data).to_numpy()
        assert proba.shape == (n, len(model.classes))
        assert np.isfinite(proba).all()
        np.testing.assert_allclose(proba.sum(axis=1), 1.0, atol=1e-5)


@settings(max_examples=int(150 * SCALE), **SETTINGS)
@given(tables())
def test_fit_then_predict_a_random_dataframe(case):
    table, target = case
    original = table.copy(deep=True)
    check_fit_predict(table, table, target)
    pd.testing.assert_frame_equal(table, original)  # the caller's table is untouched


@settings(max_examples=int(40 * SCALE), **SETTINGS)
@given(tables(), st.sampled_from([",", ";", "\t"]), st.sampled_from(["utf-8", "utf-8-sig", "utf-16"]))
def test_fit_then_predict_a_random_table_written_to_a_file(case, sep, encoding):
    table, target = case
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "table.csv"
        table.to_csv(path, index=False, sep=sep, encoding=encoding)
        written = pd.read_csv(path, sep=sep, encoding=encoding, keep_default_na=False, dtype=str)
        check_fit_predict(path, written, target)


def test_the_strategies_cover_every_kind_and_task():
    """Control: each column kind and target kind is producible (a typo in a name would silently skip it)."""
    for kind in FEATURE_KINDS:
        assert len(find(column(kind, 3), lambda values: True)) == 3
    for name, element in TARGETS.items():
        value = find(element, lambda v: True)
        assert value is not None and (not isinstance(value, float) or math.isfinite(value)), name
