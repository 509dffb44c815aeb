"""What a table means: the task its target implies and the kind of every other column.

``infer_schema`` decides what each column is (numeric, categorical, boolean, datetime, or dropped with a reason) and
what task the target implies, with a notice for features that leak the target. Reading files is :mod:`.read`'s job,
splitting rows :mod:`.split`'s.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import DataError, Notify, SchemaError, closest_names, no_notice, option
from .read import NULL_MARKERS, parse_numbers

__all__ = [
    "KINDS",
    "Column",
    "Schema",
    "drop_missing_target",
    "infer_schema",
    "label_key",
    "parse_datetimes",
]


_MARKERS = frozenset(NULL_MARKERS)


KINDS = ("numeric", "categorical", "boolean", "datetime")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # one of KINDS


@dataclass(frozen=True)
class Schema:
    """What each column is and what the target means. Stored in the model file as JSON."""

    target: str
    task: str  # binary | multiclass | regression
    features: tuple[Column, ...]
    classes: tuple[Any, ...] = ()  # class labels as the user wrote them (classification only), sorted
    dropped: tuple[tuple[str, str], ...] = ()  # (column, reason)
    # other spellings of a class (label_key -> class), as "Y", "true" and "1" of a yes/no target's "yes"
    aliases: tuple[tuple[str, Any], ...] = ()
    # the order of day and month in a text date column's "01/02/2019": (column, "dayfirst" | "monthfirst"), given or
    # detected; a column without one is read as pandas reads it (month first where a value allows)
    date_orders: tuple[tuple[str, str], ...] = ()

    def dayfirst(self, column: str) -> bool | None:
        """Whether ``column``'s dates are written day first (True), month first (False), or neither is known."""
        order = dict(self.date_orders).get(column)
        return None if order is None else order == "dayfirst"

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def feature_names(self) -> list[str]:
        return [c.name for c in self.features]

    def to_dict(self) -> dict[str, Any]:
        out = {
            "target": self.target,
            "task": self.task,
            "classes": list(self.classes),
            "features": [{"name": c.name, "kind": c.kind} for c in self.features],
            "dropped": [{"name": n, "reason": r} for n, r in self.dropped],
        }
        if self.aliases:  # only then: a model without them writes the bytes it always did
            out["aliases"] = [[k, c] for k, c in self.aliases]
        if self.date_orders:  # likewise
            out["date_orders"] = [[c, o] for c, o in self.date_orders]
        return out

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Schema":
        return cls(
            target=d["target"],
            task=d["task"],
            classes=tuple(d["classes"]),
            features=tuple(Column(c["name"], c["kind"]) for c in d["features"]),
            dropped=tuple((c["name"], c["reason"]) for c in d["dropped"]),
            aliases=tuple((str(k), c) for k, c in d.get("aliases", [])),  # files written before aliases have none
            date_orders=tuple((str(c), _checked_order(o)) for c, o in d.get("date_orders", [])),
        )

    def class_codes(self) -> dict[str, int]:
        """Each class's position by the :func:`label_key` of every spelling of it (the class and its aliases)."""
        codes = {label_key(c): i for i, c in enumerate(self.classes)}
        for key, c in self.aliases:
            codes[key] = codes[label_key(c)]
        return codes


def label_key(value: Any) -> str:
    """A type-insensitive key for class labels, so 1, 1.0 and "1" from different files name the same class."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(value, np.datetime64):  # as the Timestamp a pandas column gives: "2020-01-01 00:00:00"
        return str(pd.Timestamp(value))
    if isinstance(value, np.timedelta64):
        return str(pd.Timedelta(value))
    return str(value)


def _plain(value: Any) -> Any:
    """A JSON-able Python scalar for a label, keeping its type (ints stay ints, bools stay bools)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return int(value) if float(value).is_integer() else float(value)
    return label_key(value)  # text, and anything else (dates too) as label_key writes it, so the two always match


_ID_NAME = re.compile(r"(^|[_\s.-])(id|uuid|guid|key|index)$|^(id|uuid|guid|index|unnamed_\d+)", re.IGNORECASE)


def infer_schema(
    df: pd.DataFrame,
    target: str,
    *,
    task: str = "auto",
    categorical: tuple[str, ...] = (),
    numeric: tuple[str, ...] = (),
    drop: tuple[str, ...] = (),
    dayfirst: bool | None = None,
    source: str = "the data",
    notify: Notify = no_notice,
) -> Schema:
    """Decide the task from the target and the kind of every other column.

    ``df`` may include the rows whose target is missing or infinite (they are not dropped here; see
    :func:`drop_missing_target`): a column's kind is decided on every row, so a file gives the same kinds whichever of
    its rows are labelled, and its unlabelled rows hold what the model expects. The task, the row count and the leak
    check use the labelled rows only.

    ``dayfirst`` says how text dates such as "01/02/2019" are written (True: 1 February); None detects it per column
    (a value such as "13/02/2019" decides it), and the schema records the order of each column.
    """
    columns = list(df.columns)
    if target not in columns:
        raise SchemaError(_target_not_found(target, columns, source))
    for name, names in (("categorical", categorical), ("numeric", numeric), ("drop", drop)):
        for col in names:
            if col not in columns:
                raise SchemaError(f"{source}: column {col!r} given to {option(name)} not found; "
                                  f"{closest_names(col, columns)}")
    unlabelled, _ = _unlabelled(df[target])
    labelled = df if not unlabelled.any() else df.loc[~unlabelled]
    if len(labelled) < 2:
        raise DataError(f"{source}: has {len(labelled)} usable row(s) (rows with a target value); training needs at "
                        "least 4 (2 with test_size=0): add rows")
    task, classes, aliases = _infer_task(labelled[target], task, target, source, notify)

    features: list[Column] = []
    dropped: list[tuple[str, str]] = []
    n_unique: dict[str, int] = {}  # distinct non-missing values per column (of every row), counted once
    orders: dict[str, str] = {}  # text date columns' order of day and month, where known
    for col in columns:
        if col == target:
            continue
        if col in drop:
            dropped.append((col, "dropped by request"))
            continue
        kind, reason = _infer_kind(df[col], col, forced="categorical" if col in categorical else
                                   "numeric" if col in numeric else None, source=source, notify=notify,
                                   counts=n_unique, dayfirst=dayfirst, orders=orders)
        if kind is None:
            dropped.append((col, reason))
        else:
            features.append(Column(col, kind))
    if dropped:
        notify(f"{source}: ignoring {len(dropped)} column(s): " + "; ".join(f"{n!r} ({r})" for n, r in dropped[:8])
               + (" ..." if len(dropped) > 8 else ""))
    if not features:
        raise SchemaError(f"{source}: no usable feature columns besides the target {target!r}; "
                          "the table needs at least one column that is not an ID, constant or empty")
    for col, how in _leaks(labelled, target, [c.name for c in features], task, n_unique if labelled is df else {}):
        notify(f"{source}: column {col!r} {how} the target {target!r}: a leak? The model will just copy it, which is "
               f"useless unless it is known when predicting for real; if not, drop it ({option('drop', [col])})")
    return Schema(target=target, task=task, features=tuple(features), classes=classes, dropped=tuple(dropped),
                  aliases=aliases, date_orders=tuple(orders.items()))


def _target_not_found(target: Any, columns: list[str], source: str) -> str:
    if not isinstance(target, str) and str(target) in columns:  # DataFrame column 1 is read as the name "1"
        return (f"{source}: target {target!r} is not a column name: column names are text here; "
                f"pass target={str(target)!r}")
    return f"{source}: target column {target!r} not found; {closest_names(str(target), columns)}"


def _unlabelled(y: pd.Series) -> tuple[np.ndarray, str]:
    """Rows whose target is missing or infinite, and how to say it ("missing", or "missing or infinite")."""
    missing = y.isna().to_numpy()
    if pd.api.types.is_float_dtype(y):
        infinite = np.isinf(y.to_numpy(dtype=float, na_value=np.nan))
    elif y.dtype == object:
        infinite = np.array([isinstance(v, (float, np.floating)) and bool(np.isinf(v)) for v in y], dtype=bool)
    else:
        infinite = np.zeros(len(y), dtype=bool)
    return missing | infinite, "missing or infinite" if infinite.any() else "missing"


def drop_missing_target(df: pd.DataFrame, target: str, *, source: str, notify: Notify) -> pd.DataFrame:
    """``df`` without the rows whose target is missing or infinite (with a notice saying how many)."""
    if target not in df.columns:
        raise SchemaError(_target_not_found(target, list(df.columns), source))
    missing, what = _unlabelled(df[target])
    n_missing = int(missing.sum())
    if n_missing:
        if n_missing == len(df):
            raise SchemaError(f"{source}: every value of the target column {target!r} is {what}; fill it in")
        notify(f"{source}: dropped {n_missing} row(s) whose target {target!r} is {what}")
        df = df.loc[~missing]
    return df


_LEAK_MIN_ROWS = 10  # fewer rows than this say too little to call a one-to-one match a leak


def _leaks(df: pd.DataFrame, target: str, features: list[str], task: str,
           n_unique: dict[str, int]) -> list[tuple[str, str]]:
    """Features that determine the target exactly: (column, how), for a notice.

    One-to-one: on the rows where the feature is present (at least half of them, and 10), each feature value goes with
    one target value and each target value with one feature value, and target values repeat there (else any column of
    distinct values would match). For a regression target whose values do not repeat: a numeric feature that rises or
    falls strictly with it. Cheap on big tables: most columns are ruled out by their count of distinct values.
    """
    y = df[target]
    n = len(df)
    n_y = y.nunique()
    found: list[tuple[str, str]] = []
    order: np.ndarray | None = None
    for col in features:
        x = df[col]
        n_x = n_unique[col] if col in n_unique else x.nunique()
        if n_x < 2 or n_x > n_y:
            continue
        present = x.notna().to_numpy()
        n_present = int(present.sum())
        if n_present < max(_LEAK_MIN_ROWS, n / 2):
            continue
        xs, ys = (x, y) if n_present == n else (x[present], y[present])
        try:
            if n_x != (n_y if n_present == n else ys.nunique()):
                continue
            if n_x < n_present:  # the target repeats: a one-to-one match is evidence
                pairs = len(pd.DataFrame({"x": xs.to_numpy(), "y": ys.to_numpy()}).drop_duplicates())
                if pairs != n_x:
                    continue
                how = "maps one-to-one onto"
            elif task == "regression" and pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x):
                if order is None:
                    order = np.argsort(y.to_numpy(dtype=float), kind="stable")
                steps = np.diff(x.to_numpy(dtype=float)[order][present[order]])
                if not (np.all(steps > 0) or np.all(steps < 0)):
                    continue
                how = "rises or falls strictly with"
            else:
                continue
            if bool(np.all(xs.to_numpy(dtype=object) == ys.to_numpy(dtype=object))):
                how = "is identical to"
        except (TypeError, ValueError):  # cells that cannot be hashed or compared: not this check's business
            continue
        found.append((col, how))
    return found


# a classification target with at least this many classes, over half as many as rows, is not one
_MANY_CLASSES, _CLASS_SHARE = 20, 0.5

# spellings of yes and no a boolean-looking target mixes ("Y", "true", "1"), compared in lower case
_TRUTH = {"yes": True, "y": True, "true": True, "t": True, "1": True,
          "no": False, "n": False, "false": False, "f": False, "0": False}


def _infer_task(y: pd.Series, task: str, target: str, source: str,
                notify: Notify) -> tuple[str, tuple[Any, ...], tuple[tuple[str, Any], ...]]:
    values = y.dropna()
    n_unique = values.nunique()
    aliases: tuple[tuple[str, Any], ...] = ()
    if task in ("auto", "binary") and 2 < n_unique <= len(_TRUTH) and not pd.api.types.is_numeric_dtype(values):
        aliases = _yes_no_spellings(values, target, source, notify)
        if aliases:
            values = values[~values.map(label_key).isin(dict(aliases))]  # the two classes' own spellings
            n_unique = 2
    is_numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if task == "auto":
        if not is_numeric:
            task = "binary" if n_unique <= 2 else "multiclass"
        else:
            floats = values.to_numpy(dtype=float)
            integral = bool(np.all(np.isfinite(floats))) and bool(np.all(np.mod(floats, 1) == 0))
            if n_unique <= 2:
                task = "binary"
            elif integral and n_unique <= 20 and n_unique * 20 <= len(values):
                task = "multiclass"
                notify(f"{source}: target {target!r} has {n_unique} integer values: treated as multiclass "
                       f"classification (pass {option('task', 'regression')} to predict it as a number)")
            else:
                task = "regression"
    if task == "regression":
        if not is_numeric:
            raise SchemaError(f"{source}: target {target!r} is not numeric, so it cannot be a regression target; "
                              f"use {option('task', 'binary')} or {option('task', 'multiclass')}")
        if n_unique < 2:
            raise SchemaError(f"{source}: target {target!r} has a single value ({_plain(values.iloc[0])!r}); "
                              "a model needs a target that varies")
        return task, (), ()
    if n_unique < 2:
        only = _plain(values.iloc[0]) if len(values) else None
        raise SchemaError(f"{source}: target {target!r} has a single class ({only!r}); "
                          "classification needs at least two classes in the data")
    if n_unique >= _MANY_CLASSES and n_unique > _CLASS_SHARE * len(values):
        numbers = parse_numbers(values.astype(str)).notna().mean() > 0.95 if values.dtype == object or \
            pd.api.types.is_string_dtype(values) else pd.api.types.is_numeric_dtype(values)
        fix = (f"to predict it as a number, pass {option('task', 'regression')}; else choose another target"
               if numbers else "choose another target (a date, an ID or free text cannot be learned as classes)")
        raise SchemaError(f"{source}: target {target!r} has {n_unique:,} distinct values in {len(values):,} rows, "
                          f"nearly one per row, so a class has too few rows to learn from; {fix}")
    if task == "binary" and n_unique > 2:
        raise SchemaError(f"{source}: {option('task', 'binary')} but target {target!r} has {n_unique} classes; use "
                          f"{option('task', 'multiclass')}")
    uniques = [_plain(v) for v in pd.unique(values)]
    by_key: dict[str, Any] = {}
    for v in uniques:
        by_key.setdefault(label_key(v), v)
    try:
        classes = tuple(sorted(by_key.values()))
    except TypeError:
        classes = tuple(sorted(by_key.values(), key=label_key))
    return task, classes, aliases


def _yes_no_spellings(values: pd.Series, target: str, source: str, notify: Notify) -> tuple[tuple[str, Any], ...]:
    """For a target that writes yes and no several ways (yes/no/Y/N/true/false/1/0): each other spelling's
    :func:`label_key` and the class it means, the most frequent spelling of each side; else ()."""
    counts = values.map(label_key).value_counts()
    if not all(str(k).lower() in _TRUTH for k in counts.index):
        return ()
    sides: dict[bool, list[str]] = {True: [], False: []}
    for key in counts.index:  # most frequent first (ties: as value_counts ordered them)
        sides[_TRUTH[str(key).lower()]].append(str(key))
    if not sides[True] or not sides[False]:
        return ()
    first = {label_key(v): _plain(v) for v in pd.unique(values)}
    aliases = tuple((key, first[side[0]]) for side in sides.values() for key in side[1:])
    shown = "; ".join(f"{first[side[0]]!r} ({', '.join(repr(k) for k in side[1:]) or 'only'})"
                      for side in sides.values())
    notify(f"{source}: target {target!r} writes yes and no {len(counts)} ways: read as two classes, {shown}")
    return aliases


def _infer_kind(s: pd.Series, col: str, *, forced: str | None, source: str, notify: Notify,
                counts: dict[str, int] | None = None, dayfirst: bool | None = None,
                orders: dict[str, str] | None = None) -> tuple[str | None, str]:
    non_null = s.dropna()
    try:
        n, n_unique = len(s), non_null.nunique()
        if counts is not None:
            counts[col] = n_unique
    except TypeError:  # unhashable cells: dicts, lists, arrays
        bad = next((v for v in non_null if getattr(v, "__hash__", None) is None), None)
        if bad is None:
            raise
        raise SchemaError(f"{source}: column {col!r} holds {type(bad).__name__} values such as {str(bad)[:40]!r}; "
                          "a cell must hold one number, text, boolean or date: flatten or drop that column") from None
    if forced == "categorical":
        return "categorical", ""
    if forced == "numeric":
        if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
            text = non_null.astype(str).str.strip()
            failed = parse_numbers(text).isna().to_numpy() & ~text.isin(_MARKERS).to_numpy(dtype=bool)
            if len(text) and failed.all():
                raise SchemaError(f"{source}: column {col!r} given to {option('numeric')} has no numbers, only values "
                                  f"such as {text.iloc[0]!r}; clean them or leave the column to be inferred")
            if failed.any():  # asked for: the values that are not numbers are missing, and the notice counts them
                examples = ", ".join(repr(v) for v in pd.unique(text[failed])[:3])
                notify(f"{source}: column {col!r} given to {option('numeric')}: {int(failed.sum())} of {len(text)} "
                       f"value(s) are not numbers ({examples}); they are treated as missing")
        return "numeric", ""
    if len(non_null) == 0:
        return None, "all values missing"
    if n_unique == 1:
        return None, "constant"
    if pd.api.types.is_bool_dtype(s) or (s.dtype == object and non_null.map(type).eq(bool).all()):
        return "boolean", ""
    if pd.api.types.is_datetime64_any_dtype(s):
        return "datetime", ""
    if pd.api.types.is_numeric_dtype(s):
        values = non_null.to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        if len(finite) == 0:
            return None, "no finite values (only infinities)"
        integral = len(finite) == len(values) and bool(np.all(np.mod(finite, 1) == 0))
        if integral and n_unique == n and n >= 20 and (_ID_NAME.search(col) or non_null.is_monotonic_increasing):
            return None, "ID-like: a distinct integer per row"
        if integral and 3 <= n_unique <= 32 and n >= 10 * n_unique and n_unique * 2 < finite.max() - finite.min() + 1:
            return "categorical", ""  # sparse integer codes (e.g. 20, 30, 45, 190) are labels, not quantities
        return "numeric", ""
    # text: numbers stored as text, dates, IDs, or categories
    text = non_null.astype(str).str.strip()
    text = text[~text.isin(_MARKERS)]  # "N/A", "?", "" in a DataFrame: missing, as they are in a file
    if text.empty:
        return None, "all values missing"
    n_unique = text.nunique()
    if n_unique == 1:
        return None, "constant"
    parsed = parse_numbers(text)
    n_bad = int(parsed.isna().sum())
    # whole numbers written with leading zeros ("001", "02134") are codes: categories kept as written
    codes = n_bad == 0 and bool(text.str.match(r"^[+-]?0\d+$").any()) and bool(np.all(np.mod(parsed, 1) == 0))
    if n_bad <= 0.05 * len(text) and n_bad < len(text) and not codes:
        if n_bad:
            examples = ", ".join(repr(v) for v in text[parsed.isna()].unique()[:3])
            notify(f"{source}: column {col!r} is numeric but {n_bad} value(s) are not numbers ({examples}); "
                   "they are treated as missing")
        return "numeric", ""
    if _looks_like_dates(text, dayfirst):
        order = (("dayfirst" if dayfirst else "monthfirst") if dayfirst is not None else
                 _date_order(text, col, source, notify))
        if order is not None and orders is not None:
            orders[col] = order
        return "datetime", ""
    if n_bad < 0.5 * len(text) and not codes:  # mostly numbers: say why it is text, and how to have numbers
        unparsed = text[parsed.isna()].value_counts()
        examples = ", ".join(repr(v) for v in unparsed.index[:5]) + (" ..." if len(unparsed) > 5 else "")
        notify(f"{source}: column {col!r} looks numeric, but {n_bad} of {len(text)} value(s) are not numbers "
               f"({examples}), so it is read as text; to read it as numbers with those values missing, pass "
               f"{option('numeric', [col])}")
    if n_unique == n and n >= 20:
        return None, "ID-like: a distinct value per row"
    if n >= 100 and n_unique > 0.9 * n:
        return None, "almost every value distinct (an ID or free text)"
    return "categorical", ""


# dates written with numbers only, day and month first in either order: "01/02/2019", "1.2.19", "13-02-2019 10:00"
_DAY_MONTH = re.compile(r"^(\d{1,2})[-/.](\d{1,2})[-/.]\d{2,4}\b")
# a date in words or numbers with a 4-digit year: "Jan 5, 2019", "5 March 2019" (format="mixed" reads each its way)
_WRITTEN_DATE = re.compile(r"^(?=.*\b\d{4}\b)(?=.*([A-Za-z]{3}|\d[-/. ]\d)).{6,40}$")


def _checked_order(order: Any) -> str:
    if order not in ("dayfirst", "monthfirst"):
        raise ValueError(f"unknown date order {order!r}")
    return order


def _date_order(text: pd.Series, col: str, source: str, notify: Notify) -> str | None:
    """"dayfirst" or "monthfirst" as the column's numeric dates show (a first field over 12 is a day, and so is a
    second one); None when none decides it, or when they disagree (then with a notice)."""
    fields = text.str.extract(_DAY_MONTH)
    written = fields[0].notna().to_numpy(dtype=bool)
    if not written.any():
        return None
    first, second = (pd.to_numeric(fields[j][written]) for j in (0, 1))
    day_first, month_first = bool((first > 12).any()), bool((second > 12).any())
    if day_first != month_first:
        return "dayfirst" if day_first else "monthfirst"
    example = text[written].iloc[0]
    if day_first:
        notify(f"{source}: column {col!r} writes dates both day first and month first; each is read as it fits (pass "
               f"{option('dayfirst', True)} or {option('dayfirst', False)} to choose one)")
    elif not first.eq(second).all():
        notify(f"{source}: column {col!r}: dates such as {example!r} could be day first or month first; read month "
               f"first (pass {option('dayfirst', True)} if the day comes first)")
    return None


def _looks_like_dates(text: pd.Series, dayfirst: bool | None = None) -> bool:
    sample = text.iloc[:200]
    numeric = sample.str.contains(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}", regex=True)
    if not (numeric | sample.str.match(_WRITTEN_DATE)).mean() > 0.95:
        return False
    return parse_datetimes(sample, dayfirst=dayfirst).notna().mean() > 0.95


def parse_datetimes(s: pd.Series, *, dayfirst: bool | None = None) -> pd.Series:
    """Parse a column into naive UTC timestamps; unparsable values become NaT.

    ``dayfirst`` (True: "01/02/2019" is 1 February; False: 2 January) applies to dates written with numbers only and
    the day or month first; None reads them as pandas does. Other forms ("2019-02-01", "Feb 1, 2019") are unaffected.
    """
    if pd.api.types.is_datetime64_any_dtype(s):
        out = s
    else:
        text = s.astype("string")
        out = pd.to_datetime(text, errors="coerce", format="mixed", utc=True)
        if dayfirst is not None:
            ordered = text.str.strip().str.match(_DAY_MONTH).fillna(False).to_numpy(dtype=bool)
            if ordered.any():
                out = out.copy()
                out[ordered] = pd.to_datetime(text[ordered], errors="coerce", format="mixed", utc=True,
                                              dayfirst=dayfirst)
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_convert("UTC").dt.tz_localize(None)
    return out
