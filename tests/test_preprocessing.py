"""Contract tests for neuraltab.data.preprocess, with scikit-learn as the oracle for the arithmetic."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import torch
from sklearn.impute import MissingIndicator, SimpleImputer
from scipy.special import ndtri
from sklearn.preprocessing import QuantileTransformer, StandardScaler

from neuraltab.errors import SchemaError
from neuraltab.data.preprocess import Preprocessor, _category_codes, _category_keys, quantile_normal_transform
from neuraltab.data.schema import Column, Schema


class Notices(list):
    def __call__(self, message: str) -> None:
        self.append(message)

    @property
    def text(self) -> str:
        return " | ".join(self)


def _schema(features: dict[str, str], *, task: str = "regression", classes: tuple = ()) -> Schema:
    return Schema(target="y", task=task, features=tuple(Column(n, k) for n, k in features.items()), classes=classes)


# ======================================================================================================================
# quantile_normal_transform vs scikit-learn's QuantileTransformer
# ======================================================================================================================
def _columns(rng: np.random.Generator, n: int, shift: float = 0.0, scale: float = 1.0) -> np.ndarray:
    return np.column_stack([
        rng.normal(shift, scale, n),  # continuous
        rng.exponential(scale, n) + shift,  # skewed
        rng.integers(0, 4, n).astype(float) * scale + shift,  # few values: ties everywhere
        np.where(rng.random(n) < 0.7, 0.0, rng.normal(5, scale, n)),  # a heavy tie at zero
    ])


@pytest.mark.parametrize(("n_train", "n_quantiles"), [(500, 10), (500, 100), (2000, 1000)])
def test_quantile_transform_matches_sklearn(n_train, n_quantiles):
    rng = np.random.default_rng(n_quantiles)
    x_train = _columns(rng, n_train)
    qt = QuantileTransformer(output_distribution="normal", n_quantiles=n_quantiles, subsample=None).fit(x_train)
    np.testing.assert_allclose(quantile_normal_transform(x_train, qt.quantiles_), qt.transform(x_train),
                               rtol=0, atol=1e-6)
    # New data, including values far below and above the training range and values exactly on the quantiles.
    x_new = np.vstack([_columns(rng, 300, shift=0.5, scale=3.0), qt.quantiles_[[0, -1]], qt.quantiles_[[0, -1]] * 10,
                       [[-1e9] * 4, [1e9] * 4]])
    ours = quantile_normal_transform(x_new, qt.quantiles_)
    np.testing.assert_allclose(ours, qt.transform(x_new), rtol=0, atol=1e-6)
    assert np.isfinite(ours).all() and np.abs(ours).max() < 5.3


def test_quantile_transform_of_a_constant_column_matches_sklearn():
    # A column constant in the training split: sklearn maps it (and anything equal to it) to the lower bound.
    rng = np.random.default_rng(0)
    x_train = np.column_stack([rng.normal(size=200), np.full(200, 3.0)])
    qt = QuantileTransformer(output_distribution="normal", n_quantiles=50, subsample=None).fit(x_train)
    x_new = np.array([[0.0, 3.0], [0.1, 2.0], [0.2, 4.0]])
    for x in (x_train, x_new):
        np.testing.assert_allclose(quantile_normal_transform(x, qt.quantiles_), qt.transform(x), rtol=0, atol=1e-6)


def test_quantile_transform_shape_and_dtype():
    q = np.linspace(0, 1, 11)[:, None].repeat(3, axis=1)
    out = quantile_normal_transform(np.full((5, 3), 0.5, dtype=np.float32), q)
    assert out.shape == (5, 3) and out.dtype == np.float64
    np.testing.assert_allclose(out, 0.0, atol=1e-12)


# ======================================================================================================================
# Preprocessor: numeric columns
# ======================================================================================================================
def _numeric_frame(rng: np.random.Generator, n: int, *, gaps: bool = True) -> pd.DataFrame:
    df = pd.DataFrame({
        "a": rng.normal(10, 3, n),
        "b": rng.exponential(2, n),
        "c": rng.integers(0, 5, n).astype(float),
        "y": rng.normal(size=n),
    })
    if gaps:
        df.loc[rng.random(n) < 0.2, "a"] = np.nan
        df.loc[rng.random(n) < 0.05, "c"] = np.nan
    return df


NUM_SCHEMA = _schema({"a": "numeric", "b": "numeric", "c": "numeric"})


def test_quantile_scaling_matches_sklearn_on_imputed_data():
    rng = np.random.default_rng(1)
    train, new = _numeric_frame(rng, 900), _numeric_frame(rng, 200)
    pre = Preprocessor(NUM_SCHEMA, scaling="quantile").fit(train)
    imputer = SimpleImputer(strategy="median").fit(train[["a", "b", "c"]])
    n_quantiles = max(min(len(train) // 30, 1000), 10)
    qt = QuantileTransformer(output_distribution="normal", n_quantiles=n_quantiles, subsample=None)
    qt.fit(imputer.transform(train[["a", "b", "c"]]))
    np.testing.assert_allclose(pre.stats["quantiles"], qt.quantiles_, rtol=0, atol=1e-9)
    for df in (train, new):
        x = pre.transform(df).x_num
        assert x.dtype == np.float32
        expected = qt.transform(imputer.transform(df[["a", "b", "c"]]))
        np.testing.assert_allclose(x[:, :3], expected, rtol=0, atol=1e-5)


def test_standard_scaling_matches_sklearn_on_imputed_data():
    rng = np.random.default_rng(2)
    train, new = _numeric_frame(rng, 400), _numeric_frame(rng, 100)
    pre = Preprocessor(NUM_SCHEMA, scaling="standard").fit(train)
    imputer = SimpleImputer(strategy="median").fit(train[["a", "b", "c"]])
    scaler = StandardScaler().fit(imputer.transform(train[["a", "b", "c"]]))
    for df in (train, new):
        expected = scaler.transform(imputer.transform(df[["a", "b", "c"]]))
        np.testing.assert_allclose(pre.transform(df).x_num[:, :3], expected, rtol=1e-5, atol=1e-5)


def test_no_scaling_leaves_imputed_values():
    rng = np.random.default_rng(3)
    train = _numeric_frame(rng, 100)
    pre = Preprocessor(NUM_SCHEMA, scaling="none").fit(train)
    expected = SimpleImputer(strategy="median").fit_transform(train[["a", "b", "c"]])
    np.testing.assert_allclose(pre.transform(train).x_num[:, :3], expected, rtol=1e-6)


def test_missing_indicators_only_for_columns_with_gaps_in_training():
    rng = np.random.default_rng(4)
    train = _numeric_frame(rng, 300)  # gaps in a and c, none in b
    new = _numeric_frame(rng, 50)
    new.loc[[0, 1], "b"] = np.nan  # b had no gaps in training: imputed, but no indicator
    pre = Preprocessor(NUM_SCHEMA, scaling="none").fit(train)
    oracle = MissingIndicator(features="missing-only", error_on_new=False).fit(train[["a", "b", "c"]])
    assert pre.indicators.tolist() == oracle.features_.tolist() == [0, 2]
    assert pre.input_names() == ["a", "b", "c", "a.missing", "c.missing"]
    assert pre.n_num == 5
    x = pre.transform(new).x_num
    np.testing.assert_array_equal(x[:, 3:], oracle.transform(new[["a", "b", "c"]]).astype(np.float32))
    np.testing.assert_allclose(x[[0, 1], 1], np.nanmedian(train["b"]), rtol=1e-6)


def test_no_gaps_means_no_indicators():
    pre = Preprocessor(NUM_SCHEMA, scaling="none").fit(_numeric_frame(np.random.default_rng(5), 50, gaps=False))
    assert len(pre.indicators) == 0 and pre.n_num == 3


def test_infinities_are_treated_as_missing():
    train = pd.DataFrame({"a": [1.0, 2.0, np.inf, 4.0, -np.inf, 100.0], "y": np.arange(6.0)})
    pre = Preprocessor(_schema({"a": "numeric"}), scaling="none").fit(train)
    assert pre.median.tolist() == [3.0]  # median of 1, 2, 4, 100
    assert pre.indicators.tolist() == [0]
    x = pre.transform(pd.DataFrame({"a": [np.inf, -np.inf, np.nan, 5.0]})).x_num
    assert np.isfinite(x).all()
    assert x[:, 0].tolist() == [3.0, 3.0, 3.0, 5.0]
    assert x[:, 1].tolist() == [1.0, 1.0, 1.0, 0.0]


def test_a_column_missing_everywhere_in_training_gets_a_finite_median():
    train = pd.DataFrame({"a": [np.nan] * 5, "b": [1.0, 2, 3, 4, 5], "y": np.arange(5.0)})
    pre = Preprocessor(_schema({"a": "numeric", "b": "numeric"}), scaling="standard").fit(train)
    assert np.isfinite(pre.transform(train).x_num).all()


def test_numbers_stored_as_text_are_parsed():
    train = pd.DataFrame({"a": [" 1.5", "2", "3", "4.5"], "y": np.arange(4.0)})
    pre = Preprocessor(_schema({"a": "numeric"}), scaling="none").fit(train)
    assert pre.transform(train).x_num[:, 0].tolist() == [1.5, 2.0, 3.0, 4.5]


# ======================================================================================================================
# Preprocessor: categorical, boolean, datetime columns
# ======================================================================================================================
CAT_SCHEMA = _schema({"c": "categorical"})


def test_vocabulary_is_ordered_by_frequency_with_code_zero_for_missing():
    train = pd.DataFrame({"c": ["z"] * 5 + ["x"] * 3 + ["y"] * 3 + [None] * 2, "y": np.arange(13.0)})
    pre = Preprocessor(CAT_SCHEMA).fit(train)
    assert pre.vocabs == [("c", ["z", "x", "y"])]  # most frequent first; ties by value
    assert pre.cat_cardinalities == [4]
    codes = pre.transform(pd.DataFrame({"c": ["z", "x", "y", None, np.nan]})).x_cat
    assert codes.dtype == np.int64 and codes[:, 0].tolist() == [1, 2, 3, 0, 0]


def test_unseen_categories_get_code_zero_with_a_notice_naming_the_column():
    train = pd.DataFrame({"color": ["red", "blue", "red"], "y": [1.0, 2.0, 3.0]})
    pre = Preprocessor(_schema({"color": "categorical"})).fit(train)
    notices = Notices()
    codes = pre.transform(pd.DataFrame({"color": ["red", "green", "mauve", "green"]}), notify=notices).x_cat
    assert codes[:, 0].tolist() == [1, 0, 0, 0]
    assert len(notices) == 1
    assert "'color'" in notices.text and "3 value(s)" in notices.text and "'green'" in notices.text


def test_max_categories_caps_the_vocabulary_with_a_notice():
    train = pd.DataFrame({"c": list("aaaabbbccd"), "y": np.arange(10.0)})
    notices = Notices()
    pre = Preprocessor(CAT_SCHEMA, max_categories=2).fit(train, notify=notices)
    assert pre.vocabs == [("c", ["a", "b"])] and pre.cat_cardinalities == [3]
    assert "'c'" in notices.text and "4 categories" in notices.text
    assert pre.transform(pd.DataFrame({"c": ["a", "b", "c", "d"]})).x_cat[:, 0].tolist() == [1, 2, 0, 0]


def test_numeric_categories_match_across_int_and_float():
    train = pd.DataFrame({"c": [20, 30, 30, 45], "y": np.arange(4.0)})
    pre = Preprocessor(CAT_SCHEMA).fit(train)
    as_float = pre.transform(pd.DataFrame({"c": [20.0, 30.0, np.nan, 45.0]})).x_cat[:, 0]
    as_text = pre.transform(pd.DataFrame({"c": ["20", "30", None, "45"]})).x_cat[:, 0]
    assert as_float.tolist() == as_text.tolist() == [2, 1, 0, 3]


def test_boolean_columns():
    train = pd.DataFrame({"b": [True, True, False, True], "y": np.arange(4.0)})
    pre = Preprocessor(_schema({"b": "boolean"})).fit(train)
    assert pre.vocabs == [("b", ["True", "False"])]
    new = pd.DataFrame({"b": pd.Series([False, None, True], dtype=object)})
    assert pre.transform(new).x_cat[:, 0].tolist() == [2, 0, 1]


def test_datetime_parts():
    stamps = pd.to_datetime(["2021-03-15 06:30", "2020-12-31 23:00", "2022-07-04 00:00", "2019-01-01 12:15"])
    train = pd.DataFrame({"d": stamps.strftime("%Y-%m-%d %H:%M"), "y": np.arange(4.0)})
    pre = Preprocessor(_schema({"d": "datetime"}), scaling="none").fit(train)
    names = pre.input_names()
    assert names == ["d.year", "d.month", "d.day", "d.dayofweek", "d.dayofyear", "d.hour", "d.epoch_days"]
    x = pre.transform(train).x_num
    row = dict(zip(names, x[0].tolist()))
    assert (row["d.year"], row["d.month"], row["d.day"]) == (2021, 3, 15)
    assert row["d.dayofweek"] == 0 and row["d.dayofyear"] == 74 and row["d.hour"] == 6.5  # a Monday
    expected_days = (pd.Timestamp("2021-03-15 06:30") - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
    assert row["d.epoch_days"] == pytest.approx(expected_days, rel=1e-6)


def test_datetime_parts_that_never_vary_in_training_are_left_out():
    train = pd.DataFrame({"d": pd.to_datetime(["2021-03-01", "2021-03-08", "2021-03-15"]), "y": [1.0, 2.0, 3.0]})
    pre = Preprocessor(_schema({"d": "datetime"}), scaling="none").fit(train)
    assert pre.input_names() == ["d.day", "d.dayofyear", "d.epoch_days"]  # same year, month, weekday, hour


def test_unparsable_dates_at_predict_time():
    train = pd.DataFrame({"d": [f"2021-01-{i:02d}" for i in range(1, 29)], "y": np.arange(28.0)})
    pre = Preprocessor(_schema({"d": "datetime"})).fit(train)
    with pytest.raises(SchemaError, match="'d'.*dates"):
        pre.transform(pd.DataFrame({"d": ["soon", "later", "2021-01-05"]}))


# ======================================================================================================================
# State round trip
# ======================================================================================================================
def _mixed_frame(rng: np.random.Generator, n: int) -> pd.DataFrame:
    df = _numeric_frame(rng, n)
    df["cat"] = rng.choice(["x", "y", "z", None], n)
    df["flag"] = rng.choice([True, False], n)
    df["when"] = (pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D")).astype(str)
    return df


MIXED_SCHEMA = _schema({"a": "numeric", "b": "numeric", "c": "numeric", "cat": "categorical", "flag": "boolean",
                        "when": "datetime"})


@pytest.mark.parametrize("scaling", ["quantile", "standard", "none"])
def test_state_round_trip_gives_identical_transforms(scaling):
    rng = np.random.default_rng(6)
    train, new = _mixed_frame(rng, 300), _mixed_frame(rng, 80)
    pre = Preprocessor(MIXED_SCHEMA, scaling=scaling, max_categories=2).fit(train)
    tensors, meta = pre.to_state()
    assert all(isinstance(v, np.ndarray) for v in tensors.values())
    # The state must survive a model file: arrays as they are, metadata through JSON.
    restored = Preprocessor.from_state(MIXED_SCHEMA, {k: np.array(v) for k, v in tensors.items()},
                                       json.loads(json.dumps(meta)))
    for df in (train, new):
        a, b = pre.transform(df, with_target=True), restored.transform(df, with_target=True)
        np.testing.assert_array_equal(a.x_num, b.x_num)
        np.testing.assert_array_equal(a.x_cat, b.x_cat)
        np.testing.assert_array_equal(a.y, b.y)
    assert restored.input_names() == pre.input_names()
    assert (restored.y_mean, restored.y_std) == (pre.y_mean, pre.y_std)


# ======================================================================================================================
# Predict-time checks and the target
# ======================================================================================================================
def test_missing_feature_column_is_named():
    rng = np.random.default_rng(7)
    pre = Preprocessor(MIXED_SCHEMA).fit(_mixed_frame(rng, 50))
    with pytest.raises(SchemaError) as info:
        pre.transform(_mixed_frame(rng, 10).drop(columns=["b", "cat"]), source="new.csv")
    msg = str(info.value)
    assert "'b'" in msg and "'cat'" in msg and "new.csv" in msg and "2 feature column(s)" in msg


def test_numeric_column_turned_into_text_is_named():
    rng = np.random.default_rng(8)
    pre = Preprocessor(NUM_SCHEMA).fit(_numeric_frame(rng, 50))
    new = _numeric_frame(rng, 20)
    new["b"] = ["low", "high"] * 10
    with pytest.raises(SchemaError) as info:
        pre.transform(new, source="new.csv")
    msg = str(info.value)
    assert "'b'" in msg and "numbers" in msg and "'low'" in msg


def test_numbers_written_with_another_decimal_mark_suggest_the_decimal_option():
    rng = np.random.default_rng(8)
    pre = Preprocessor(NUM_SCHEMA).fit(_numeric_frame(rng, 50))
    new = _numeric_frame(rng, 20)
    new["b"] = [f"{v:.2f}".replace(".", ",") for v in rng.normal(size=20)]  # "0,31": read with the wrong mark
    with pytest.raises(SchemaError, match=r"'b' should hold numbers .* pass 'decimal'\)$"):
        pre.transform(new, source="new.csv")
    new["b"] = ["low", "high"] * 10
    with pytest.raises(SchemaError) as info:
        pre.transform(new, source="new.csv")
    assert "--decimal" not in str(info.value)  # words are not numbers in another format


def test_a_few_bad_numbers_are_missing_with_a_notice():
    rng = np.random.default_rng(9)
    pre = Preprocessor(NUM_SCHEMA, scaling="none").fit(_numeric_frame(rng, 50))
    new = _numeric_frame(rng, 40, gaps=False)
    new["b"] = new["b"].astype(str)
    new.loc[5, "b"] = "oops"
    notices = Notices()
    x = pre.transform(new, notify=notices).x_num
    assert "'b'" in notices.text and "'oops'" in notices.text
    assert x[5, 1] == pytest.approx(pre.median[1])


def test_encode_target_classification_codes_and_unknown_label():
    schema = _schema({"a": "numeric"}, task="multiclass", classes=("ant", "bee", "cat"))
    train = pd.DataFrame({"a": [1.0, 2.0, 3.0, 4.0], "y": ["cat", "ant", "bee", "cat"]})
    pre = Preprocessor(schema).fit(train)
    assert pre.encode_target(train["y"]).tolist() == [2, 0, 1, 2]
    with pytest.raises(SchemaError) as info:
        pre.encode_target(pd.Series(["ant", "dog"]))
    assert "'dog'" in str(info.value) and "'y'" in str(info.value)
    with pytest.raises(SchemaError, match="missing"):
        pre.encode_target(pd.Series(["ant", None]))


def test_encode_target_matches_integer_labels_read_as_floats_or_text():
    schema = _schema({"a": "numeric"}, task="binary", classes=(0, 1))
    pre = Preprocessor(schema).fit(pd.DataFrame({"a": [1.0, 2.0], "y": [0, 1]}))
    assert pre.encode_target(pd.Series([1.0, 0.0])).tolist() == [1, 0]
    assert pre.encode_target(pd.Series(["1", "0"])).tolist() == [1, 0]


def test_regression_target_scale():
    rng = np.random.default_rng(10)
    train = _numeric_frame(rng, 200)
    train["y"] = rng.normal(50, 7, 200)
    pre = Preprocessor(NUM_SCHEMA).fit(train)
    assert pre.y_mean == pytest.approx(train["y"].mean(), rel=1e-5)
    assert pre.y_std == pytest.approx(train["y"].std(ddof=0), rel=1e-5)
    batch = pre.transform(train, with_target=True)
    assert batch.y.dtype == np.float32
    np.testing.assert_allclose(batch.y, train["y"].to_numpy(), rtol=1e-6)


def test_constant_regression_target_has_unit_scale():
    train = pd.DataFrame({"a": [1.0, 2.0, 3.0], "y": [4.0, 4.0, 4.0]})
    pre = Preprocessor(_schema({"a": "numeric"})).fit(train)
    assert (pre.y_mean, pre.y_std) == (4.0, 1.0)


def test_regression_target_must_be_numeric():
    pre = Preprocessor(_schema({"a": "numeric"})).fit(pd.DataFrame({"a": [1.0, 2.0], "y": [1.0, 2.0]}))
    with pytest.raises(SchemaError, match="'y'.*'abc'"):
        pre.encode_target(pd.Series(["1.5", "abc"]))


# ======================================================================================================================
# Fast paths against the definitions they replace
# ======================================================================================================================
def _reference_codes(s: pd.Series, vocab: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Category codes as first written: every value as its key string, looked up in a pandas Index."""
    keys = _category_keys(s)
    codes = pd.Index(vocab, dtype=object).get_indexer(keys).astype(np.int64) + 1
    return codes, (codes == 0) & pd.notna(keys)


_TEXT = ["a", "b", None, "é", "日本", "1", "1.0", "nan", "None", "True", " a", "a ", "", "unseen", "b", "😀"]


@pytest.mark.parametrize("column", [
    pd.Series(_TEXT, dtype="str"),  # pyarrow-backed text: looked up by Arrow
    pd.Series(_TEXT, dtype="string[pyarrow]"),
    pd.Series(_TEXT, dtype="string[python]"),
    pd.Series(_TEXT, dtype=object),
    pd.Series(_TEXT + [1, 2.0, True, -0.0], dtype=object),  # mixed: numbers and booleans as their keys
    pd.Series([True, False, None, True], dtype="boolean"),
    pd.Series([True, False, True]),
    pd.Series([1, 2, 3, 1]),
    pd.Series([1.0, 2.5, np.nan, -0.0, 0.0, 1e15, np.inf, 3.0]),
    pd.Series([1, 2, None], dtype="Int64"),
    pd.Series([0, 5, 12, -3, 2**53, 2**53 + 1, -(2**53) - 1, 2**63 - 1, -(2**63), 1000]),  # numbers as categories
    pd.Series([0, 5, 2**63 + 5, 2**64 - 1], dtype=np.uint64),
    pd.Series([5.0, 0.5, -0.0, 0.0, np.nan, np.inf, -np.inf, 1e20, 2.0**53, 2.0**53 + 2, 1e3, -3.0], dtype=np.float32),
    pd.Series([5.0, 0.5, -0.0, 0.0, np.nan, np.inf, -np.inf, 1e20, 2.0**53, 2.0**53 + 2, 1e3, -3.0, 12.0]),
    pd.Series([5.0, 0.5, None, -0.0], dtype="Float64"),
    pd.Series([], dtype="str"),
], ids=lambda s: str(s.dtype))
@pytest.mark.parametrize("vocab", [
    ["a", "é", "1", "nan", "True", "0", "False", "2.5", "日本", "😀", "", " a"],
    ["b"],
    [],
    ["5", "-0", "0", "05", "0.5", "1000", "1e3", "1_000", " 12", "١٢", "12", "-3", "inf", "-inf", "nan", "100000000000000000000",
     str(2**53), str(2**53 + 1), str(2**53 + 2), str(-(2**53) - 1), str(2**63 - 1), str(-(2**63)), str(2**64 - 1)],
])
@pytest.mark.filterwarnings("ignore::RuntimeWarning")  # the keys of inf and of huge numbers, as ever
@pytest.mark.parametrize("few", [True, False], ids=["value-by-value", "vectorised"])
def test_category_codes_match_the_key_lookup(column, vocab, few, monkeypatch):
    from neuraltab.data import preprocess

    if not few:  # these columns are short: without this they would all take the few-rows lookup
        monkeypatch.setattr(preprocess, "_FEW_ROWS", 0)
    codes, unseen = _category_codes(column, vocab)
    expected_codes, expected_unseen = _reference_codes(column, vocab)
    assert codes.dtype == np.int64
    np.testing.assert_array_equal(codes, expected_codes)
    np.testing.assert_array_equal(unseen, expected_unseen)


def test_unseen_text_categories_are_named_as_before():
    schema = _schema({"s": "categorical"}, task="binary", classes=("x", "y"))
    train = pd.DataFrame({"s": pd.Series(["a", "b", "a"], dtype="str"), "y": ["x", "y", "x"]})
    pre = Preprocessor(schema).fit(train)
    notices = Notices()
    new = pd.DataFrame({"s": pd.Series(["zé", None, "a", "q", "zé", "r", "s"], dtype="str", index=[9, 8, 7, 6, 5, 4, 3])})
    assert pre.transform(new, notify=notices).x_cat[:, 0].tolist() == [0, 0, 1, 0, 0, 0, 0]
    assert notices == ["the data: column 's' has 5 value(s) not seen in training ('zé', 'q', 'r'); they are treated as "
                       "unknown"]


def _reference_quantile_normal(x: np.ndarray, quantiles: np.ndarray) -> np.ndarray:
    """quantile_normal_transform as first written: two np.interp calls per column."""
    refs = np.linspace(0.0, 1.0, quantiles.shape[0])
    out = np.empty_like(x, dtype=np.float64)
    for j in range(x.shape[1]):
        col, q = x[:, j], quantiles[:, j]
        with np.errstate(invalid="ignore", over="ignore"):
            u = 0.5 * (np.interp(col, q, refs) - np.interp(-col, -q[::-1], -refs[::-1]))
        bad = ~np.isfinite(u) & np.isfinite(col)
        if bad.any():
            lo, hi = np.searchsorted(q, col[bad], side="left"), np.searchsorted(q, col[bad], side="right")
            u[bad] = np.clip((lo + hi - 1) / 2 / max(len(q) - 1, 1), 0.0, 1.0)
        u[col + 1e-7 > q[-1]] = 1.0
        u[col - 1e-7 < q[0]] = 0.0
        out[:, j] = u
    clip = 1e-7 - np.spacing(1)
    ndtri = _torch_ndtri  # the interpolation is what is compared; the inverse normal CDF is the product's own
    return np.clip(ndtri(np.clip(out, clip, 1 - clip)), ndtri(clip), ndtri(1 - clip))


def _torch_ndtri(u):
    return torch.special.ndtri(torch.as_tensor(u, dtype=torch.float64)).numpy()


def test_inverse_normal_cdf_matches_scipy_to_a_few_ulps():
    from neuraltab.data.quantile import _ndtri

    rng = np.random.default_rng(0)
    u = np.concatenate([rng.random(100_000), np.linspace(1e-7, 1 - 1e-7, 10_001), [1e-7 - np.spacing(1), 0.5]])
    ours, theirs = _ndtri(u), ndtri(u)
    np.testing.assert_allclose(ours, theirs, rtol=4 * np.finfo(np.float64).eps, atol=4 * np.finfo(np.float64).eps)
    assert ours[-1] == 0.0 and np.all(np.diff(ours[100_000:-2]) > 0)


def _awkward_training_columns(rng: np.random.Generator, n: int) -> np.ndarray:
    return np.column_stack([
        rng.normal(size=n),  # continuous
        rng.integers(0, 5, n).astype(float),  # few values: every quantile tied (counted, not bucketed)
        rng.integers(0, 40, n).astype(float),  # ties, bucketed
        np.where(rng.random(n) < 0.7, 0.0, rng.exponential(size=n)),  # a heavy tie at zero
        rng.lognormal(0, 4, n),  # crowded buckets near zero: searched
        np.full(n, 3.0),  # constant
        rng.normal(size=n) * 1e-310,  # quantiles a few subnormals apart
        rng.normal(size=n) * 1e307,  # near float64's limit: interpolation overflows
        rng.normal(1e6, 1e-3, n),  # narrow range far from zero
        np.r_[np.zeros(n - 2), -0.0, 1.0],  # zeros of both signs
    ])


@pytest.mark.parametrize("n_quantiles", [2, 3, 10, 279, 1000])
def test_quantile_transform_matches_its_first_version_bit_for_bit(n_quantiles):
    rng = np.random.default_rng(n_quantiles)
    train = _awkward_training_columns(rng, 5000)
    q = np.maximum.accumulate(np.percentile(train, np.linspace(0, 100, n_quantiles), axis=0), axis=0)
    d = q.shape[1]
    x = np.vstack([
        train[:3000], _awkward_training_columns(rng, 3000) * 3 + 0.5,  # new values, some out of range
        q, np.nextafter(q, np.inf), np.nextafter(q, -np.inf), q[:-1] / 2 + q[1:] / 2, q - 1e-7, q + 1e-7,  # on, beside
        np.full((1, d), np.nan), np.full((1, d), np.inf), np.full((1, d), -np.inf), np.full((1, d), -0.0),
        np.full((1, d), 0.0), np.full((1, d), 1e308), np.full((1, d), -1e308), np.full((1, d), 5e-324),
    ])
    x = np.vstack([x] * 4)  # more than a chunk
    np.testing.assert_array_equal(quantile_normal_transform(x, q), _reference_quantile_normal(x, q))


def test_quantile_transform_of_unsorted_or_non_finite_quantiles_is_the_reference():
    q = np.array([[0.0, 0.0, np.nan], [2.0, 1.0, 1.0], [1.0, np.inf, 2.0], [3.0, np.inf, 3.0]])
    x = np.array([[0.5, 0.5, 0.5], [1.5, 2.0, 1.5], [2.5, np.inf, np.nan], [-1.0, -np.inf, 9.0]])
    with np.errstate(invalid="ignore"):
        np.testing.assert_array_equal(quantile_normal_transform(x, q), _reference_quantile_normal(x, q))


def test_quantile_transform_does_not_depend_on_the_threads():
    import torch

    rng = np.random.default_rng(0)
    x = rng.normal(size=(50_000, 3))
    q = np.percentile(x, np.linspace(0, 100, 100), axis=0)
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(1)
        one = quantile_normal_transform(x, q)
        torch.set_num_threads(2)
        two = quantile_normal_transform(x, q)
    finally:
        torch.set_num_threads(before)
    np.testing.assert_array_equal(one, two)
    np.testing.assert_array_equal(one, _reference_quantile_normal(x, q))


@pytest.mark.parametrize("scaling", ["quantile", "standard", "none"])
def test_transform_matches_its_first_version_bit_for_bit(scaling):
    rng = np.random.default_rng(11)
    train, new = _numeric_frame(rng, 900), _numeric_frame(rng, 40_000)
    new.loc[:3, "b"] = [np.inf, -np.inf, 1e300, -0.0]
    pre = Preprocessor(NUM_SCHEMA, scaling=scaling).fit(train)
    raw = pre._numeric_matrix(new, source="x", notify=lambda _: None, check_types=True)
    missing = np.isnan(raw)
    x = np.where(missing, pre.median, raw)
    if scaling == "quantile":
        x = _reference_quantile_normal(x, pre.stats["quantiles"])
    elif scaling == "standard":
        x = x / pre.stats["std"] - pre.stats["mean"] / pre.stats["std"]
    limit = {"standard": 1e6}.get(scaling, 1e30)
    x = np.clip(np.nan_to_num(x, nan=0.0), -limit, limit)
    expected = np.concatenate([x, missing[:, pre.indicators]], axis=1).astype(np.float32)
    np.testing.assert_array_equal(pre.transform(new).x_num, expected)


@pytest.mark.parametrize("spacing", [4.0, 2.0, 1.0, 0.6, 0.2])  # dense quantiles, this many grid buckets apart
def test_quantile_transform_with_a_dense_block_of_quantiles_matches_its_first_version(spacing):
    from neuraltab.data.quantile import _InterpolationPlan

    n_buckets = 32 * 1000
    dense = np.arange(430) * spacing * 100 / n_buckets
    q = np.r_[dense, np.linspace(dense[-1] + 0.5, 100, 570)][:, None]
    plan = _InterpolationPlan.make(q[:, 0])
    assert plan.n_buckets == n_buckets and plan.n_steps == {4.0: 1, 2.0: 2, 1.0: 3, 0.6: 1, 0.2: 1}[spacing]
    rng = np.random.default_rng(0)
    x = np.r_[rng.uniform(-1, 101, 20_000), rng.uniform(0, dense[-1], 20_000), q[:, 0], np.nextafter(q[:, 0], 0)]
    np.testing.assert_array_equal(quantile_normal_transform(x[:, None], q), _reference_quantile_normal(x[:, None], q))


def test_numeric_inputs_of_every_number_dtype_are_read_as_before():
    from neuraltab.data.preprocess import _to_float

    df = pd.DataFrame({
        "i": np.array([1, -2, 2**62, 0]), "u": np.array([0, 2**64 - 1, 7, 2**53 + 1], dtype=np.uint64),
        "f": np.array([0.1, np.nan, -0.0, 3e38], dtype=np.float32), "b": [True, False, True, True],
        "n": pd.array([1, None, 3, 4], dtype="Int64"), "s": ["1.5", " 2", None, "x"], "g": [1.5, np.nan, np.inf, -1.0],
    })
    pre = Preprocessor(_schema({c: "numeric" for c in df.columns}))
    pre.numeric_inputs = [(c, None) for c in df.columns]
    rows = pre._numeric_rows(df, source="x", notify=lambda _: None, check_types=False)
    for j, c in enumerate(df.columns):
        expected = np.array(_to_float(df[c], c, "x", lambda _: None, check_types=False))
        expected[~np.isfinite(expected)] = np.nan
        np.testing.assert_array_equal(rows[j], expected)


def _every_kind(rng: np.random.Generator, n: int) -> pd.DataFrame:
    """A table with a column of each kind and its awkward values: numbers with gaps and infinities, categories with
    gaps and (in new rows) unseen values, numbers among text, booleans with gaps, dates, numbers written as text."""
    df = pd.DataFrame({
        "num": np.where(rng.random(n) < 0.1, np.nan, rng.normal(size=n)),
        "count": rng.integers(0, 5, n),
        "color": pd.Series(rng.choice(["red", "green", "blue", "mauve", None], n), dtype="str"),
        "mixed": pd.Series(rng.choice(np.array(["a", 1, 2.0, None, True], dtype=object), n), dtype=object),
        "flag": pd.Series(rng.choice(np.array([True, False, None], dtype=object), n), dtype=object),
        "when": pd.Series(pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 900, n), unit="D")),
        "text_number": pd.Series(rng.choice(["1.5", "2", "", "3.25", "7"], n), dtype="str"),
    })
    df.loc[df.index[:2], "num"] = [np.inf, -np.inf][: min(n, 2)]
    df["y"] = rng.normal(size=n)
    return df


_EVERY_KIND = _schema({"num": "numeric", "count": "numeric", "color": "categorical", "mixed": "categorical",
                       "flag": "boolean", "when": "datetime", "text_number": "numeric"})


@pytest.mark.parametrize("scaling", ["quantile", "standard"])
def test_a_few_rows_transform_as_the_whole_table_does(scaling, monkeypatch):
    """Row by row and in small batches (the value-by-value lookups and cached plans a served request takes), the
    inputs are bit for bit those of the vectorised path over the whole table, for every column kind."""
    from neuraltab.data import preprocess, read

    rng = np.random.default_rng(12)
    train, new = _every_kind(rng, 400), _every_kind(rng, 60)
    new.loc[new.index[:3], "color"] = ["ochre", None, "teal"]  # unseen, missing
    new.loc[new.index[3], "mixed"] = 7  # an unseen number among text
    pre = Preprocessor(_EVERY_KIND, scaling=scaling).fit(train)
    batches = {size: [pre.transform(read.read_table(new.iloc[i: i + size].reset_index(drop=True)))
                      for i in range(0, len(new), size)] for size in (1, 7)}
    monkeypatch.setattr(preprocess, "_FEW_ROWS", 0)
    monkeypatch.setattr(read, "_FEW_ROWS", 0)
    monkeypatch.setattr("neuraltab.data.quantile._PLAN_CACHE", {})
    whole = pre.transform(read.read_table(new))
    for parts in batches.values():
        np.testing.assert_array_equal(np.concatenate([b.x_num for b in parts]), whole.x_num)
        np.testing.assert_array_equal(np.concatenate([b.x_cat for b in parts]), whole.x_cat)
    assert (whole.x_cat[:3, 0] == 0).all() and whole.x_cat[3, 1] == 0  # the unseen values took the unknown slot
    assert np.isfinite(whole.x_num).all()


def test_cached_quantile_plans_follow_a_change_in_place():
    from neuraltab.data.quantile import quantile_normal_rows

    q = np.linspace(0.0, 1.0, 50)[:, None].copy()
    x = np.array([[0.25, 0.5]])
    before = quantile_normal_rows(x.copy(), q)
    q *= 2.0  # the same array, other values: a cached plan of the old ones would be wrong
    after = quantile_normal_rows(x.copy(), q)
    np.testing.assert_array_equal(after, quantile_normal_rows(x.copy(), q.copy()))
    assert not np.array_equal(before, after)
