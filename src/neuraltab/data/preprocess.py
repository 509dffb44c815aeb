"""Turning a DataFrame into model inputs, with statistics learned on the training split only.

:class:`Preprocessor` owns every number the transformation needs (medians, quantiles, vocabularies, target scale);
its state is plain arrays plus JSON, stored in the model file, so no pickle is ever needed to rebuild it.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import Notify, SchemaError, no_notice, option
from .quantile import quantile_normal_rows, quantile_normal_transform
from .read import NULL_MARKERS, parse_numbers
from .schema import Schema, label_key, parse_datetimes

__all__ = ["Batch", "Preprocessor", "category_counts", "quantile_normal_transform"]

DATETIME_PARTS = ("year", "month", "day", "dayofweek", "dayofyear", "hour", "epoch_days")
# model inputs are clipped to ±these: standard scores beyond a million are outliers beyond use; raw values
# (scaling="none") beyond 1e30 would overflow float32 arithmetic in the network
_INPUT_LIMITS = {"standard": 1e6, "none": 1e30}
_MAX_TARGET = 1e30  # float32 holds 3.4e38; the square of the spread must stay finite in float64 statistics
# At least 2 unparsable values that are over half of the values present mean the column changed type (an error);
# fewer are stray cells (missing, with a notice). Not 5%, as schema inference allows on the whole table: a small
# batch (one row, or a validation split of a table with a few stray cells) would exceed that by chance.
_WRONG_TYPE_SHARE = 0.5
_WRONG_TYPE_MIN = 2



@dataclass
class Batch:
    """Model inputs for n rows: ``x_num`` float32[n, d_num], ``x_cat`` int64[n, d_cat] (0 = missing/unknown),
    ``y`` int64[n] class codes, float32[n] raw regression values, or None."""

    x_num: np.ndarray
    x_cat: np.ndarray
    y: np.ndarray | None = None

    def __len__(self) -> int:
        return len(self.x_num)


def _category_keys(s: pd.Series) -> np.ndarray:
    """Column values as strings (1 and 1.0 give "1", True gives "True"), None where missing. Vectorised."""
    mask = s.isna().to_numpy()
    if pd.api.types.is_bool_dtype(s):
        keys = np.where(s.to_numpy(dtype=bool, na_value=False), "True", "False").astype(object)
    elif pd.api.types.is_numeric_dtype(s):
        values = s.to_numpy(dtype=np.float64, na_value=np.nan)
        integral = np.isfinite(values) & (np.mod(values, 1) == 0)
        keys = np.empty(len(values), dtype=object)
        keys[integral] = values[integral].astype(np.int64).astype(str)
        other = ~integral & ~mask
        keys[other] = [label_key(v) for v in values[other]]
    else:
        keys = s.to_numpy(dtype=object, copy=True)
        odd = np.array([not isinstance(v, str) for v in keys], dtype=bool) & ~mask if keys.size else mask
        keys[odd] = [label_key(v) for v in keys[odd]]
    keys[mask] = None
    return keys


def category_counts(s: pd.Series) -> pd.Series:
    """How often each category key (see :func:`_category_keys`) occurs in ``s``, missing values left out; counts of
    parts of a column add up to the counts of the whole (``a.add(b, fill_value=0)``)."""
    return pd.Series(_category_keys(s)).dropna().value_counts(sort=False)


def _category_codes(s: pd.Series, vocab: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """Codes int64[n] of the column's values in ``vocab`` (1 + position; 0 for missing and unseen values) and the unseen
    values' mask bool[n], as looking up :func:`_category_keys` gives (tested against it). Text held by Arrow and
    booleans are looked up directly, which is that lookup without making a Python string per value."""
    if len(s) <= _FEW_ROWS and (s.dtype == object or isinstance(s.dtype, pd.StringDtype)):
        # a few rows (a served request): each value looked up in a dict, cheaper than building Arrow or pandas
        # lookups per call; the keys are _category_keys's (tested equal to the vectorised path)
        lookup = _lookup(vocab)
        values = s.to_numpy(dtype=object)
        missing = pd.isna(values)  # as s.isna(), on the values
        keys = [v if isinstance(v, str) else None if gap else label_key(v) for v, gap in zip(values, missing)]
        codes = np.array([0 if k is None else lookup.get(k, 0) for k in keys], dtype=np.int64)
        return codes, np.array([k is not None and c == 0 for k, c in zip(keys, codes)], dtype=bool)
    if (isinstance(s.dtype, pd.StringDtype) and s.dtype.storage == "pyarrow" and hasattr(s.array, "__arrow_array__")
            and all(isinstance(v, str) for v in vocab)):
        import pyarrow as pa
        import pyarrow.compute as pc

        values = s.array.__arrow_array__()
        found = pc.index_in(values, value_set=pa.array(vocab, type=values.type))
        codes = found.fill_null(-1).to_numpy().astype(np.int64) + 1
        return codes, (codes == 0) & s.notna().to_numpy()
    if pd.api.types.is_bool_dtype(s):
        mask = s.isna().to_numpy()
        lookup = {key: i + 1 for i, key in enumerate(vocab) if key in ("True", "False")}
        codes = np.where(s.to_numpy(dtype=bool, na_value=False), lookup.get("True", 0), lookup.get("False", 0))
        codes = codes.astype(np.int64)
        codes[mask] = 0
        return codes, (codes == 0) & ~mask
    if (pd.api.types.is_integer_dtype(s) or pd.api.types.is_float_dtype(s)) and len(s):
        return _number_codes(s, vocab)
    keys = _category_keys(s)
    codes = pd.Index(vocab, dtype=object).get_indexer(keys).astype(np.int64) + 1
    return codes, (codes == 0) & pd.notna(keys)


_FEW_ROWS = 64  # up to this many rows, category codes are looked up value by value
# id(vocab) -> (that list, a copy, key -> code): holding the list keeps its id unique, the copy catches a change
_LOOKUPS: dict[int, tuple[list[str], list[str], dict[str, int]]] = {}


def _lookup(vocab: list[str]) -> dict[str, int]:
    """{key: 1 + its position in ``vocab``}, kept for the next call with the same vocabulary."""
    cached = _LOOKUPS.get(id(vocab))
    if cached is not None and cached[0] is vocab and cached[1] == vocab:
        return cached[2]
    lookup = {key: i + 1 for i, key in enumerate(vocab)}
    if len(_LOOKUPS) >= 256:
        _LOOKUPS.pop(next(iter(_LOOKUPS)))  # the oldest
    _LOOKUPS[id(vocab)] = (vocab, list(vocab), lookup)
    return lookup


def _number_codes(s: pd.Series, vocab: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """:func:`_category_codes` of a column of numbers. A whole number v within ±2**53 has the key str(int(v)), which
    is the vocabulary's key k exactly when k is written as Python writes int(k) and float(int(k)) == v (both exact
    there): those are looked up as numbers; other values (fractions, infinities, larger numbers) by their keys."""
    numbers: dict[float, int] = {}
    for i, key in enumerate(vocab):
        try:
            whole = int(key)
        except (TypeError, ValueError):
            continue
        if str(whole) == key and abs(whole) <= 2**53:
            numbers[float(whole)] = i + 1
    values = s.to_numpy(dtype=np.float64, na_value=np.nan)
    mask = s.isna().to_numpy()
    with np.errstate(invalid="ignore"):
        whole = (np.abs(values) <= 2.0**53) & (np.mod(values, 1) == 0)
    codes = np.zeros(len(values), dtype=np.int64)
    if numbers:
        known = np.array(sorted(numbers))
        found = np.minimum(np.searchsorted(known, values), len(known) - 1)
        hit = whole & (known[found] == values)
        codes[hit] = np.array([numbers[v] for v in known])[found[hit]]
    rest = ~whole & ~mask
    if rest.any():
        keys = _category_keys(s[rest])
        codes[rest] = pd.Index(vocab, dtype=object).get_indexer(keys).astype(np.int64) + 1
    return codes, (codes == 0) & ~mask


class Preprocessor:
    """Learns imputation, scaling and vocabularies on the training rows; transforms any table with the same columns.

    Numeric (and datetime parts): infinities and missing values → training median, plus a 0/1 missing indicator for
    columns that had gaps in training; then quantile→normal, standard or no scaling. Categorical and boolean: the
    ``max_categories`` most frequent training values get codes 1..m; missing and unseen values get 0.
    """

    def __init__(self, schema: Schema, *, scaling: str = "quantile", max_categories: int = 1000) -> None:
        self.schema = schema
        self.scaling = scaling
        self.max_categories = max_categories

    # ------------------------------------------------------------------------------------------------------------ fit
    def fit(self, df: pd.DataFrame, *, source: str = "the data", notify: Notify = no_notice) -> "Preprocessor":
        """Learn the statistics on ``df``, rows of the table the schema was inferred from: their values were judged
        then, so one that does not parse as its column's kind is simply missing here (no predict-time type check)."""
        counts = {col.name: category_counts(df[col.name]) for col in self.schema.features
                  if col.kind not in ("numeric", "datetime")}
        self._fit_inputs(df, counts, source=source, notify=notify)
        raw = self._numeric_matrix(df, source=source, notify=notify, check_types=False)
        self._fit_numbers(raw, np.isnan(raw).any(axis=0), n_rows=len(raw))
        self.y_mean, self.y_std = 0.0, 1.0
        if self.schema.task == "regression":
            y = self.encode_target(df[self.schema.target], source=source).astype(np.float64)
            self.y_mean, self.y_std = float(y.mean()), float(y.std()) or 1.0
        return self

    @classmethod
    def from_statistics(cls, schema: Schema, *, scaling: str, max_categories: int, sample: pd.DataFrame,
                        counts: dict[str, pd.Series], missing: dict[str, bool], n_rows: int, y_mean: float,
                        y_std: float, source: str = "the data", notify: Notify = no_notice) -> "Preprocessor":
        """A preprocessor fitted from statistics gathered elsewhere (a pass over a table too big for memory):
        category ``counts`` and ``missing`` (whether a feature column had gaps) over all ``n_rows`` training rows,
        the numeric statistics (medians, quantiles) from ``sample``, training rows drawn uniformly. With every
        training row in ``sample`` this is :meth:`fit` exactly."""
        self = cls(schema, scaling=scaling, max_categories=max_categories)
        self._fit_inputs(sample, counts, source=source, notify=notify)
        raw = self._numeric_matrix(sample, source=source, notify=notify, check_types=False)
        self._fit_numbers(raw, np.array([missing[c] for c, _ in self.numeric_inputs], dtype=bool), n_rows=n_rows)
        self.y_mean, self.y_std = float(y_mean), float(y_std) or 1.0
        return self

    def _fit_inputs(self, df: pd.DataFrame, counts: dict[str, pd.Series], *, source: str, notify: Notify) -> None:
        """The numeric inputs (a datetime column gives those of its parts that vary in ``df``) and the vocabularies,
        from each categorical column's value counts (see :func:`category_counts`)."""
        self.numeric_inputs: list[tuple[str, str | None]] = []  # (column, datetime part or None)
        self.vocabs: list[tuple[str, list[str]]] = []
        for col in self.schema.features:
            if col.kind == "numeric":
                self.numeric_inputs.append((col.name, None))
            elif col.kind == "datetime":
                parts = _datetime_parts(parse_datetimes(df[col.name], dayfirst=self.schema.dayfirst(col.name)))
                varying = [part for part, values in parts.items()
                           if np.nanmax(values, initial=-np.inf) > np.nanmin(values, initial=np.inf)]
                # a column whose dates do not vary in the training rows still gives one input (every feature does)
                for part in varying or ["epoch_days"]:
                    self.numeric_inputs.append((col.name, part))
            else:
                column_counts = counts[col.name]
                values = column_counts.index.to_numpy(dtype=object)
                # most frequent first, ties by value (vectorised: 10^5 categories sort in milliseconds)
                order = values[np.lexsort((values.astype(str), -column_counts.to_numpy()))].tolist() if len(values) else []
                if len(order) > self.max_categories:
                    notify(f"{source}: column {col.name!r} has {len(order)} categories; the {self.max_categories} most "
                           f"frequent are kept and the rest share the unknown slot ({option('max_categories')} sets how many)")
                    order = order[: self.max_categories]
                self.vocabs.append((col.name, list(order)))

    def _fit_numbers(self, raw: np.ndarray, missing_any: np.ndarray, *, n_rows: int) -> None:
        """Medians, missing indicators (the inputs flagged in ``missing_any``) and scaling statistics from ``raw``
        float64[n, d] (NaN where missing), rows of a training split of ``n_rows`` rows."""
        missing = np.isnan(raw)
        with warnings.catch_warnings():  # an all-missing column has no median: it gets 0 below
            warnings.simplefilter("ignore", RuntimeWarning)
            median = np.nanmedian(raw, axis=0) if raw.shape[1] else np.zeros(0)
        self.median = np.where(np.isfinite(median), median, 0.0)
        self.indicators = np.flatnonzero(missing_any).astype(np.int64)
        filled = np.where(missing, self.median, raw)
        d = filled.shape[1]
        # columns with values near float64's limit (1e308) are scaled down by a power of two for the statistics, whose
        # sums and interpolations would overflow to inf; other columns are computed exactly as before
        scale = _overflow_scale(filled)
        scaled = filled if np.all(scale == 1.0) else filled / scale  # no copy in the usual case
        if self.scaling == "quantile":
            n_quantiles = max(min(n_rows // 30, 1000), 10)
            refs = np.linspace(0, 100, n_quantiles)
            q = np.percentile(scaled, refs, axis=0) * scale if d else np.zeros((n_quantiles, 0))
            self.stats = {"quantiles": np.maximum.accumulate(q, axis=0)}
        elif self.scaling == "standard":
            std = scaled.std(axis=0) * scale if d else np.zeros(0)
            mean = scaled.mean(axis=0) * scale if d else np.zeros(0)
            self.stats = {"mean": mean, "std": np.where(std > 0, std, 1.0)}
        else:
            self.stats = {}

    # ------------------------------------------------------------------------------------------------- properties
    @property
    def n_num(self) -> int:
        return len(self.numeric_inputs) + len(self.indicators)

    @property
    def cat_cardinalities(self) -> list[int]:
        return [len(v) + 1 for _, v in self.vocabs]

    def input_names(self) -> list[str]:
        names = [c if p is None else f"{c}.{p}" for c, p in self.numeric_inputs]
        return names + [f"{names[i]}.missing" for i in self.indicators] + [c for c, _ in self.vocabs]

    # ------------------------------------------------------------------------------------------------- transform
    def transform(self, df: pd.DataFrame, *, source: str = "the data", notify: Notify = no_notice,
                  with_target: bool = False, check_types: bool = True) -> Batch:
        """Model inputs for every row of ``df``; checks that the training features are present and of the right type.

        ``check_types=False`` skips the type check (a column of numbers or dates that now mostly holds something else
        is a :class:`SchemaError`; a few such values are missing, with a notice) for rows of the table the schema was
        inferred from, as :func:`neuraltab.fit` transforms its own splits: their values were judged then.
        """
        expected = self.schema.feature_names()
        missing_cols = [c for c in expected if c not in df.columns]
        if missing_cols:
            shown = ", ".join(repr(c) for c in missing_cols[:5]) + (" ..." if len(missing_cols) > 5 else "")
            by_case = {str(c).casefold(): c for c in df.columns}
            cased = [(c, by_case[c.casefold()]) for c in missing_cols if c.casefold() in by_case]
            hint = ("; names must match in case: " + ", ".join(f"{have!r} should be {want!r}" for want, have in
                                                                cased[:5]) + ", rename them") if cased else ""
            raise SchemaError(f"{source}: missing {len(missing_cols)} feature column(s) the model was trained on: "
                              f"{shown}{hint or '; add them (values may be empty)'}")
        # each column taken out of the frame once: in pandas 3 that is most of a few rows' work
        columns = {c: df[c] for c in expected}
        if len(df) > 1:  # one row with a gap is common; a whole column of gaps is likely a mistake in the file
            empty = [c for c in expected if not columns[c].notna().any()]
            if empty:
                shown = ", ".join(repr(c) for c in empty[:5]) + (" ..." if len(empty) > 5 else "")
                notify(f"{source}: {len(empty)} feature column(s) are empty in every row: {shown}; each is filled in "
                       "as in training (the median, or the unknown category), so predictions ignore it")
        raw = self._numeric_rows(columns, source=source, notify=notify, check_types=check_types,
                                 n_rows=len(df))  # float64[d, n]
        missing = np.isnan(raw)
        # in place: memory touched for the first time is slow to come by (a page fault per 4 KiB)
        x = raw
        np.copyto(x, self.median[:, None], where=missing)
        limit = _INPUT_LIMITS.get(self.scaling, _INPUT_LIMITS["none"])
        if self.scaling == "quantile":  # finite (no value is missing now) and within about ±5.2 by itself
            x = quantile_normal_rows(x, self.stats["quantiles"], out=x)
        else:
            if self.scaling == "standard":
                with np.errstate(over="ignore", invalid="ignore"):  # x / std - mean / std: no inf from 1e308 - -1e308
                    np.divide(x, self.stats["std"][:, None], out=x)
                    np.subtract(x, (self.stats["mean"] / self.stats["std"])[:, None], out=x)
            # far-out values (a new 1e300 against a training spread of 1, or raw 1e308 with scaling="none") would be
            # inf as float32 and NaN in the network: clip them
            x = np.clip(np.nan_to_num(x, nan=0.0, copy=False), -limit, limit, out=x)
        x_num = np.empty((len(df), self.n_num), dtype=np.float32)
        x_num[:, : len(x)] = x.T
        x_num[:, len(x):] = missing[self.indicators].T

        x_cat = np.zeros((len(df), len(self.vocabs)), dtype=np.int64)
        for j, (col, vocab) in enumerate(self.vocabs):
            codes, unseen = _category_codes(columns[col], vocab)
            if unseen.any():
                examples = ", ".join(repr(v) for v in pd.unique(_category_keys(columns[col][unseen]))[:3])
                notify(f"{source}: column {col!r} has {int(unseen.sum())} value(s) not seen in training ({examples}); "
                       "they are treated as unknown")
            x_cat[:, j] = codes
        y = self.encode_target(df[self.schema.target], source=source) if with_target else None
        return Batch(x_num=x_num, x_cat=x_cat, y=y)

    def _numeric_matrix(self, df: pd.DataFrame, *, source: str, notify: Notify, check_types: bool) -> np.ndarray:
        """float64[n, d]: the numeric inputs, NaN where missing or not finite."""
        return np.ascontiguousarray(self._numeric_rows(df, source=source, notify=notify, check_types=check_types).T)

    def _numeric_rows(self, df: pd.DataFrame | dict[str, pd.Series], *, source: str, notify: Notify,
                      check_types: bool, n_rows: int | None = None) -> np.ndarray:
        """float64[d, n]: :meth:`_numeric_matrix` transposed, an input per row (contiguous). ``df``: the table, or
        its feature columns by name (with ``n_rows``, their length)."""
        out = np.empty((len(self.numeric_inputs), len(df) if n_rows is None else n_rows), dtype=np.float64)
        parsed: dict[str, dict[str, np.ndarray]] = {}
        for j, (col, part) in enumerate(self.numeric_inputs):
            s = df[col]
            if part is None and isinstance(s.dtype, np.dtype) and s.dtype.kind in "biuf":
                out[j] = s.to_numpy()  # cast as it is copied: no temporary
            elif part is None:
                out[j] = _to_float(s, col, source, notify, check_types=check_types)
            else:
                if col not in parsed:
                    stamps = parse_datetimes(s, dayfirst=self.schema.dayfirst(col))
                    if check_types:
                        _check_parsed(s, stamps.isna().to_numpy(), col, "dates", source, notify)
                    parsed[col] = _datetime_parts(stamps)
                out[j] = parsed[col][part]
        out[~np.isfinite(out)] = np.nan
        return out

    # ------------------------------------------------------------------------------------------------- target
    def encode_target(self, y: pd.Series, *, source: str = "the data") -> np.ndarray:
        name = self.schema.target
        if y.isna().any():
            raise SchemaError(f"{source}: target column {name!r} has {int(y.isna().sum())} missing value(s); "
                              "drop those rows first")
        if self.schema.task == "regression":
            values = pd.to_numeric(y, errors="coerce")
            if values.isna().any():
                bad = y[values.isna()].iloc[0]
                raise SchemaError(f"{source}: target column {name!r} must be numeric but has {bad!r}; fix those rows")
            array = values.to_numpy(dtype=np.float64)
            if not np.all(np.abs(array) <= _MAX_TARGET):
                bad = array[~(np.abs(array) <= _MAX_TARGET)][0]
                raise SchemaError(f"{source}: target column {name!r} has a value of {bad:g}; regression targets "
                                  f"must be finite and within ±{_MAX_TARGET:g}: rescale the column (divide by a power "
                                  "of ten)")
            return array.astype(np.float32)
        lookup = self.schema.class_codes()
        keys = _category_keys(y)
        codes = pd.Series(keys).map(lookup)
        if codes.isna().any():
            unknown = pd.unique(keys[codes.isna().to_numpy()])[:3]
            raise SchemaError(f"{source}: target column {name!r} has label(s) the model was not trained on: "
                              f"{', '.join(repr(v) for v in unknown)}; known labels: "
                              f"{', '.join(repr(c) for c in self.schema.classes[:10])}")
        return codes.to_numpy(dtype=np.int64)

    # ------------------------------------------------------------------------------------------------- state
    def to_state(self) -> tuple[dict[str, np.ndarray], dict[str, Any]]:
        tensors = {"median": self.median, "indicators": self.indicators, **self.stats}
        meta = {
            "scaling": self.scaling,
            "max_categories": self.max_categories,
            "numeric_inputs": [[c, p] for c, p in self.numeric_inputs],
            "vocabs": [[c, v] for c, v in self.vocabs],
            "y_mean": self.y_mean,
            "y_std": self.y_std,
        }
        return tensors, meta

    @classmethod
    def from_state(cls, schema: Schema, tensors: dict[str, np.ndarray], meta: dict[str, Any]) -> "Preprocessor":
        self = cls(schema, scaling=meta["scaling"], max_categories=meta["max_categories"])
        self.numeric_inputs = [(c, p) for c, p in meta["numeric_inputs"]]
        self.vocabs = [(c, list(v)) for c, v in meta["vocabs"]]
        self.median = np.asarray(tensors["median"], dtype=np.float64)
        self.indicators = np.asarray(tensors["indicators"], dtype=np.int64)
        names = {"quantile": ("quantiles",), "standard": ("mean", "std")}.get(self.scaling, ())
        self.stats = {k: np.asarray(tensors[k], dtype=np.float64) for k in names}
        self.y_mean, self.y_std = float(meta["y_mean"]), float(meta["y_std"])
        return self


def _overflow_scale(x: np.ndarray) -> np.ndarray:
    """Per column: 1, or for a column with values beyond ±1e150 the power of two just below its largest magnitude
    (dividing by a power of two is exact, and leaves magnitudes under 2, whose sums cannot overflow)."""
    if not x.size:
        return np.ones(x.shape[1])
    big = np.abs(x).max(axis=0)
    return np.where(big > 1e150, np.ldexp(1.0, np.frexp(big)[1] - 1), 1.0)  # frexp: exact, even for 1.8e308


def _to_float(s: pd.Series, col: str, source: str, notify: Notify, *, check_types: bool) -> np.ndarray:
    if pd.api.types.is_bool_dtype(s) or pd.api.types.is_numeric_dtype(s):
        return s.to_numpy(dtype=np.float64, na_value=np.nan)
    values = parse_numbers(s)
    if check_types:
        _check_parsed(s, values.isna().to_numpy(), col, "numbers", source, notify)
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def _present(s: pd.Series) -> np.ndarray:
    """Cells that hold a value: not NaN/None, and not a missing-value marker ("N/A", "?", "", ...) as text."""
    present = s.notna().to_numpy()
    if s.dtype == object or pd.api.types.is_string_dtype(s):
        text = s.astype("string").str.strip()
        present = present & ~text.isin(NULL_MARKERS).fillna(False).to_numpy(dtype=bool)
    return present


def _check_parsed(s: pd.Series, failed: np.ndarray, col: str, what: str, source: str, notify: Notify) -> None:
    present = _present(s)
    bad = failed & present
    n_bad = int(bad.sum())
    if not n_bad:
        return
    examples = ", ".join(repr(v) for v in pd.unique(s[bad].astype(str))[:3])
    n_present = int(present.sum())
    if n_bad >= _WRONG_TYPE_MIN and n_bad > _WRONG_TYPE_SHARE * n_present:
        hint = ""
        if what == "numbers" and s[bad].astype(str).str.contains(r"\d[,.\u00a0\u202f]\d").any():
            hint = f" (numbers written with another decimal mark than the training file's? pass {option('decimal')})"
        raise SchemaError(f"{source}: column {col!r} should hold {what} (as in training) but {n_bad} of {n_present} "
                          f"values are not ({examples}); fix the column or leave those cells empty{hint}")
    notify(f"{source}: column {col!r}: {n_bad} value(s) are not {what} ({examples}); treated as missing")


def _datetime_parts(stamps: pd.Series) -> dict[str, np.ndarray]:
    dt = stamps.dt

    def f(values: Any) -> np.ndarray:
        return pd.Series(values).to_numpy(dtype=np.float64, na_value=np.nan)

    epoch = (stamps - pd.Timestamp("1970-01-01")) / pd.Timedelta(days=1)
    return {
        "year": f(dt.year), "month": f(dt.month), "day": f(dt.day), "dayofweek": f(dt.day_of_week),
        "dayofyear": f(dt.day_of_year), "hour": f(dt.hour + dt.minute / 60.0), "epoch_days": f(epoch),
    }
