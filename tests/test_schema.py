"""Contract tests for neuraltab.data.schema and .split: the task, the feature kinds, dropping rows without a target, the split."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from neuraltab.errors import DataError, SchemaError
from neuraltab.data.read import read_table
from conftest import Notices, write_file as _write
from neuraltab.data.schema import drop_missing_target, infer_schema
from neuraltab.data.split import split





# ======================================================================================================================
# infer_schema: the task
# ======================================================================================================================
def _frame(target, n=None, **extra):
    n = len(target) if n is None else n
    rng = np.random.default_rng(1)
    return pd.DataFrame({"f": rng.normal(size=n), **extra, "y": target})


@pytest.mark.parametrize(
    ("target", "task", "classes"),
    [
        (["yes", "no"] * 20, "binary", ("no", "yes")),
        (["a", "b", "c"] * 10, "multiclass", ("a", "b", "c")),
        ([0, 1] * 20, "binary", (0, 1)),
        ([True, False] * 20, "binary", (False, True)),
        ([0.0, 1.0] * 20, "binary", (0, 1)),
        ([0, 1, 2] * 40, "multiclass", (0, 1, 2)),
    ],
    ids=["strings-2", "strings-3", "ints-2", "bools", "floats-2", "ints-3-many-rows"],
)
def test_classification_is_detected_and_labels_keep_their_types(target, task, classes):
    schema = infer_schema(_frame(target), "y")
    assert schema.task == task
    assert schema.classes == classes
    assert [type(c) for c in schema.classes] == [type(c) for c in classes]
    assert schema.n_classes == len(classes)


def test_integer_labels_with_missing_values_stay_integers():
    df = _frame([0, 1, 2, None] * 30)  # float column because of the gap
    df = drop_missing_target(df, "y", source="t", notify=Notices())
    schema = infer_schema(df, "y")
    assert schema.classes == (0, 1, 2) and all(type(c) is int for c in schema.classes)


@pytest.mark.parametrize(
    "target",
    [np.random.default_rng(0).normal(size=200).tolist(), [0, 1, 2] * 5, list(range(100))],
    ids=["many-valued-float", "3-int-values-few-rows", "100-int-values"],
)
def test_regression_is_detected(target):
    schema = infer_schema(_frame(target), "y")
    assert schema.task == "regression" and schema.classes == ()


def test_integer_multiclass_guess_is_announced():
    notices = Notices()
    infer_schema(_frame([0, 1, 2] * 40), "y", notify=notices)
    assert "multiclass" in notices.text and "task='regression'" in notices.text


def test_task_override():
    df = _frame([0, 1, 2] * 40)
    assert infer_schema(df, "y", task="regression").task == "regression"
    assert infer_schema(_frame([0, 1, 2] * 5), "y", task="multiclass").classes == (0, 1, 2)
    with pytest.raises(SchemaError, match="3 classes"):
        infer_schema(df, "y", task="binary")
    with pytest.raises(SchemaError, match="not numeric"):
        infer_schema(_frame(["a", "b"] * 10), "y", task="regression")


@pytest.mark.parametrize("target", [["a"] * 20, [1] * 20, [2.5] * 20])
def test_single_class_target_is_a_schema_error(target):
    for task in ("auto", "regression") if not isinstance(target[0], str) else ("auto",):
        with pytest.raises(SchemaError, match="single") as info:
            infer_schema(_frame(target), "y", task=task)
        assert "'y'" in str(info.value)


def test_missing_target_names_the_closest_column():
    df = pd.DataFrame({"Survived": [0, 1] * 5, "age": range(10)})
    with pytest.raises(SchemaError) as info:
        infer_schema(df, "survived", source="titanic.csv")
    msg = str(info.value)
    assert "'survived'" in msg and "did you mean 'Survived'" in msg and "titanic.csv" in msg


def test_drop_missing_target_counts_rows():
    df = pd.DataFrame({"f": range(10), "y": [1, None, 0, None, 1, 0, None, 1, 0, 1]})
    notices = Notices()
    out = drop_missing_target(df, "y", source="t.csv", notify=notices)
    assert len(out) == 7 and out["y"].notna().all()
    assert "dropped 3 row(s)" in notices.text
    assert len(df) == 10  # input untouched


def test_drop_missing_target_errors():
    with pytest.raises(SchemaError, match="every value"):
        drop_missing_target(pd.DataFrame({"y": [None, None]}), "y", source="t", notify=Notices())
    with pytest.raises(SchemaError, match="did you mean 'label'"):
        drop_missing_target(pd.DataFrame({"label": [1]}), "lable", source="t", notify=Notices())


# ======================================================================================================================
# infer_schema: feature kinds
# ======================================================================================================================
def _kinds(df, **kwargs):
    schema = infer_schema(df, "y", **kwargs)
    return {c.name: c.kind for c in schema.features}, dict(schema.dropped)


N = 100


def _base(**cols):
    rng = np.random.default_rng(2)
    return pd.DataFrame({"x": rng.normal(size=N), **cols, "y": rng.choice(["a", "b"], N)})


def test_id_like_integer_column_is_dropped():
    rng = np.random.default_rng(3)
    kinds, dropped = _kinds(_base(customer_id=rng.permutation(N) + 1000, row=np.arange(N)))
    assert "customer_id" not in kinds and "ID-like" in dropped["customer_id"]
    assert "row" not in kinds and "ID-like" in dropped["row"]  # monotonic distinct integers


def test_distinct_integers_that_are_quantities_are_kept():
    rng = np.random.default_rng(4)
    kinds, _ = _kinds(_base(income=rng.permutation(N) * 37 + 20_000))
    assert kinds["income"] == "numeric"


def test_constant_and_all_missing_columns_are_dropped_with_a_notice():
    notices = Notices()
    kinds, dropped = _kinds(_base(const=7, empty=np.nan, empty_text=[None] * N), notify=notices)
    assert set(kinds) == {"x"}
    assert dropped["const"] == "constant"
    assert dropped["empty"] == "all values missing" and dropped["empty_text"] == "all values missing"
    assert "ignoring 3 column(s)" in notices.text


def test_numbers_stored_as_text_are_numeric_with_a_notice():
    rng = np.random.default_rng(5)
    values = [f"{v:.2f}" for v in rng.normal(size=N)]
    values[3], values[40], values[77] = "N/A", "unknown", " -"
    notices = Notices()
    kinds, _ = _kinds(_base(price=values), notify=notices)
    assert kinds["price"] == "numeric"
    # "N/A" is a missing-value marker (issue 6): missing, not one of the values that are not numbers
    assert "'price'" in notices.text and "2 value(s)" in notices.text and "N/A" not in notices.text


def test_text_with_many_non_numbers_is_categorical():
    values = ["1", "2", "3", "x", "y"] * (N // 5)
    kinds, _ = _kinds(_base(code=values))
    assert kinds["code"] == "categorical"


def test_date_strings_are_datetime():
    rng = np.random.default_rng(6)
    dates = [f"2021-{m:02d}-{d:02d}" for m, d in zip(rng.integers(1, 13, N), rng.integers(1, 29, N))]
    kinds, _ = _kinds(_base(signup=dates, stamp=pd.to_datetime(dates)))
    assert kinds["signup"] == "datetime" and kinds["stamp"] == "datetime"


def test_dates_in_a_csv_are_datetime(tmp_path):
    lines = ["when,x,y"] + [f"2020-01-{1 + i % 28:02d},{i % 7},{'ab'[i % 2]}" for i in range(40)]
    df = read_table(_write(tmp_path, "t.csv", "\n".join(lines) + "\n"))
    assert _kinds(df)[0]["when"] == "datetime"


def test_sparse_integer_codes_are_categorical_and_contiguous_small_ints_numeric():
    rng = np.random.default_rng(7)
    kinds, _ = _kinds(_base(dept=rng.choice([20, 30, 45, 60, 190], N), rating=rng.integers(1, 6, N)))
    assert kinds["dept"] == "categorical"
    assert kinds["rating"] == "numeric"


def test_boolean_columns():
    rng = np.random.default_rng(8)
    flags = rng.choice([True, False], N)
    with_gaps = pd.Series(flags, dtype=object)
    with_gaps[::10] = None
    kinds, _ = _kinds(_base(flag=flags, flag_gaps=with_gaps))
    assert kinds["flag"] == "boolean" and kinds["flag_gaps"] == "boolean"


def test_text_ids_and_free_text_are_dropped():
    kinds, dropped = _kinds(_base(email=[f"user{i}@x.org" for i in range(N)], city=["Paris", "Lyon"] * (N // 2)))
    assert "email" not in kinds and "ID-like" in dropped["email"]
    assert kinds["city"] == "categorical"


def test_categorical_numeric_and_drop_overrides():
    rng = np.random.default_rng(9)
    df = _base(zip=rng.integers(10_000, 99_999, N), grade=[str(v) for v in rng.integers(1, 6, N)],
               noise=rng.normal(size=N))
    kinds, dropped = _kinds(df, categorical=("zip",), numeric=("grade",), drop=("noise",))
    assert kinds["zip"] == "categorical" and kinds["grade"] == "numeric"
    assert "noise" not in kinds and dropped["noise"] == "dropped by request"


def test_overrides_are_checked():
    df = _base(city=["Paris", "Lyon"] * (N // 2))
    with pytest.raises(SchemaError) as info:
        infer_schema(df, "y", numeric=("city",))
    assert "'city'" in str(info.value) and "given to 'numeric'" in str(info.value)
    assert "given to --numeric" in info.value.render("cli")
    with pytest.raises(SchemaError, match="given to 'drop' not found; did you mean 'city'"):
        infer_schema(df, "y", drop=("cty",))


def test_no_usable_features_is_a_schema_error():
    df = pd.DataFrame({"id": np.arange(30), "y": ["a", "b", "c"] * 10})
    with pytest.raises(SchemaError, match="no usable feature"):
        infer_schema(df, "y")


def _partly_labelled(n: int = N) -> tuple[pd.DataFrame, np.ndarray]:
    """A table whose last fifth will have no target, and whose columns differ there: 'size' holds a word ("unknown")
    only in those rows, 'weight' two stray words, 'batch' its only second value."""
    rng = np.random.default_rng(5)
    unlabelled = np.arange(n) >= n - n // 5
    weight = rng.normal(70, 10, n).round(1).astype(str).astype(object)
    weight[np.flatnonzero(unlabelled)[:2]] = "n.k."
    return pd.DataFrame({
        "x": rng.normal(size=n),
        "size": np.where(unlabelled, "unknown", rng.integers(1, 50, n).astype(str)).astype(object),
        "weight": weight,
        "batch": np.where(unlabelled, "B", "A"),
        "y": rng.choice(["a", "b"], n),
    }), unlabelled


def test_kinds_are_decided_on_every_row_whichever_rows_are_labelled():
    """A column's kind describes the column as the file holds it, so the same file gives the same kinds whether its
    targets are all filled in or some are missing; and the model can take every row of the file, unlabelled ones
    included. Decided on the labelled rows only (before), 'size' was numeric (so predicting the unlabelled rows,
    all "unknown", was refused) and 'batch' was dropped as constant."""
    labelled, unlabelled = _partly_labelled()
    partly = labelled.assign(y=labelled["y"].where(~unlabelled))
    notices = Notices()
    kinds, dropped = _kinds(partly, notify=notices)
    assert (kinds, dropped) == _kinds(labelled)
    # a fifth of 'size' is words: categorical; 2% of 'weight' is: numeric, the words missing (with a notice)
    assert kinds == {"x": "numeric", "size": "categorical", "weight": "numeric", "batch": "categorical"}
    assert "'weight' is numeric but 2 value(s) are not numbers ('n.k.')" in notices.text
    # the task and the rows counted are the labelled ones
    assert infer_schema(partly, "y").classes == ("a", "b")
    with pytest.raises(DataError, match="has 1 usable row"):
        infer_schema(partly.assign(y=[None] * (N - 1) + ["a"]), "y")


def test_cells_holding_dicts_or_lists_are_a_schema_error_naming_the_column():
    df = _base(meta=[{"a": 1}] + [{}] * (N - 1))
    with pytest.raises(SchemaError, match="column 'meta' holds dict values such as \"{'a': 1}\""):
        infer_schema(df, "y")


def test_schema_round_trips_through_a_dict():
    from neuraltab.data.schema import Schema

    schema = infer_schema(_base(const=1, city=["Paris", "Lyon"] * (N // 2)), "y")
    assert Schema.from_dict(schema.to_dict()) == schema


# ======================================================================================================================
# split
# ======================================================================================================================
def test_split_sizes_disjoint_and_covering():
    train, valid, test = split(100, y=None, test_size=0.3, valid_size=0.2, seed=0)
    assert (len(train), len(valid), len(test)) == (56, 14, 30)
    together = np.concatenate([train, valid, test])
    assert len(np.unique(together)) == 100 and set(together.tolist()) == set(range(100))
    for part in (train, valid, test):
        assert np.all(np.diff(part) > 0)  # sorted, no repeats


def test_stratified_split_keeps_class_ratios_like_sklearn():
    from sklearn.model_selection import train_test_split

    y = np.repeat([0, 1, 2], [300, 150, 50])
    np.random.default_rng(0).shuffle(y)
    train, valid, test = split(len(y), y=y, test_size=0.3, valid_size=0.2, seed=3)
    sk_rest, sk_test = train_test_split(np.arange(len(y)), test_size=0.3, random_state=3, stratify=y)
    sk_train, sk_valid = train_test_split(sk_rest, test_size=0.2, random_state=3, stratify=y[sk_rest])
    for ours, theirs in ((train, sk_train), (valid, sk_valid), (test, sk_test)):
        assert np.array_equal(np.bincount(y[ours], minlength=3), np.bincount(y[theirs], minlength=3))
        expected = np.bincount(y) / len(y) * len(ours)
        assert np.all(np.abs(np.bincount(y[ours], minlength=3) - expected) <= 1)


@pytest.mark.parametrize("case", range(40))
def test_split_draws_the_same_rows_as_sklearn_train_test_split(case):
    # neuraltab makes scikit-learn's draws itself (importing scikit-learn slows every start): the same seed
    # must hold out the same rows, in the same order, stratified or not, with absent class codes and tied remainders
    from sklearn.model_selection import train_test_split

    from neuraltab.data.split import _shuffle_split

    rng = np.random.default_rng(case)
    n = int(rng.integers(8, 400))
    size = float(rng.choice([0.1, 0.2, 0.25, 0.3, 1 / 3, 0.5, rng.uniform(0.05, 0.6)]))
    seed = int(rng.integers(0, 2**31))
    idx = np.sort(rng.choice(10 * n, n, replace=False))  # positions that are not 0..n-1
    strata = None
    if case % 4:
        n_codes = int(rng.integers(2, 7))
        strata = rng.choice(n_codes + 2, n, p=rng.dirichlet(np.ones(n_codes + 2)))  # some codes absent
        present = np.unique(strata)
        n_held = int(np.ceil(size * n))
        if np.bincount(strata).max() == n or np.bincount(strata)[present].min() < 2 \
                or not len(present) <= n_held <= n - len(present):
            strata = np.arange(n) % 3  # a case the split itself would not stratify: use a balanced one
    ours = _shuffle_split(idx, size, seed=seed, strata=strata)
    theirs = train_test_split(idx, test_size=size, random_state=seed, stratify=strata)
    assert ours[0].tolist() == theirs[0].tolist() and ours[1].tolist() == theirs[1].tolist()


def test_holding_out_every_row_is_an_error_that_names_the_option():
    with pytest.raises(DataError) as info:
        split(4, y=None, test_size=0.8, valid_size=0.2, seed=0, source="t.csv")
    assert str(info.value) == ("t.csv: holding out 0.8 of 4 rows for the test split leaves none to train on: "
                               "add rows or lower 'test_size'")


def test_split_is_deterministic_per_seed():
    y = np.tile([0, 1], 50)
    a = split(100, y=y, test_size=0.3, valid_size=0.2, seed=1)
    b = split(100, y=y, test_size=0.3, valid_size=0.2, seed=1)
    c = split(100, y=y, test_size=0.3, valid_size=0.2, seed=2)
    assert all(np.array_equal(p, q) for p, q in zip(a, b))
    assert not np.array_equal(a[2], c[2])


def test_split_without_test():
    train, valid, test = split(50, y=None, test_size=0.0, valid_size=0.2, seed=0)
    assert len(test) == 0 and len(valid) == 10 and len(train) == 40
    assert set(np.concatenate([train, valid]).tolist()) == set(range(50))


def test_rare_classes_fall_back_to_a_random_split_with_a_notice():
    y = np.array([0] * 30 + [1] * 30 + [2])
    notices = Notices()
    train, valid, test = split(len(y), y=y, test_size=0.3, valid_size=0.2, seed=0, notify=notices)
    assert len(train) + len(valid) + len(test) == len(y)
    assert "too rare to stratify" in notices.text


@pytest.mark.parametrize(("n_rows", "test_size"), [(0, 0.3), (3, 0.3), (1, 0.0)])
def test_tiny_tables_are_an_error(n_rows, test_size):
    with pytest.raises(DataError) as info:
        split(n_rows, y=None, test_size=test_size, valid_size=0.2, seed=0)
    assert f"{n_rows} usable row(s)" in str(info.value)


@pytest.mark.parametrize(("n_rows", "test_size"), [(4, 0.3), (3, 0.0)])
def test_smallest_tables_leave_a_row_for_each_part(n_rows, test_size):
    train, valid, test = split(n_rows, y=None, test_size=test_size, valid_size=0.2, seed=0)
    assert len(train) >= 1 and len(valid) >= 1 and (len(test) >= 1 or test_size == 0)


def test_two_rows_without_a_test_split_train_on_both_without_validation():
    notices = Notices()
    train, valid, test = split(2, y=np.array([0, 1]), test_size=0.0, valid_size=0.2, seed=0, notify=notices)
    assert train.tolist() == [0, 1] and len(valid) == 0 and len(test) == 0
    assert "too few to hold some out for validation" in notices.text and "without early stopping" in notices.text
