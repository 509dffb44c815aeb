"""What the training rows looked like, column by column, in a few numbers: enough to tell later whether new data
drifted from them (the population stability index), without keeping a single row.

:func:`summarize` runs at fit time on the training split and its result is stored in the model file as JSON;
:func:`drift` compares a table with it. Numeric and datetime columns keep the counts of the training values in ten
quantile bins (their edges included); categorical and boolean columns the counts of their most frequent values.
Both keep the number of missing values, which counts as a bin of its own.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd

from .preprocess import _category_keys, _datetime_parts, _to_float
from .schema import Schema, parse_datetimes

__all__ = ["summarize", "drift", "column_values", "psi", "N_BINS", "MAX_CATEGORIES"]

N_BINS = 10  # quantile bins per numeric column
MAX_CATEGORIES = 50  # most frequent values kept per categorical column; the rest are counted as "other"
_FLOOR = 1e-4  # share given to an empty bin, so that PSI stays finite (the usual convention)


def column_values(s: pd.Series, kind: str) -> np.ndarray:
    """A column as the model reads it: float64[n] with NaN where missing (numeric; datetime as days since 1970), or
    object[n] keys with None where missing (categorical, boolean)."""
    if kind == "numeric":
        values = _to_float(s, str(s.name), "the data", lambda _: None, check_types=False)
        return np.where(np.isfinite(values), values, np.nan)
    if kind == "datetime":
        return _datetime_parts(parse_datetimes(s))["epoch_days"]
    return _category_keys(s)


def summarize(df: pd.DataFrame, schema: Schema) -> dict[str, Any]:
    """A JSON-able summary of every feature of ``df`` (the training rows): ``{"rows": n, "columns": {name: ...}}``.

    >>> from neuraltab.data.schema import Column
    >>> schema = Schema(target="y", task="binary", features=(Column("x", "numeric"), Column("c", "categorical")))
    >>> s = summarize(pd.DataFrame({"x": [1.0, 2.0, None, 4.0], "c": ["a", "b", "a", None]}), schema)
    >>> s["columns"]["c"]
    {'kind': 'categorical', 'categories': ['a', 'b'], 'counts': [2, 1], 'other': 0, 'missing': 1}
    """
    columns: dict[str, Any] = {}
    for col in schema.features:
        values = column_values(df[col.name], col.kind)
        if col.kind in ("numeric", "datetime"):
            present = values[~np.isnan(values)]
            edges = np.unique(np.quantile(present, np.arange(1, N_BINS) / N_BINS)) if len(present) else np.zeros(0)
            counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
            columns[col.name] = {"kind": "numeric", "edges": [float(e) for e in edges],
                                 "counts": [int(c) for c in counts], "missing": int(len(values) - len(present))}
        else:
            keys = pd.Series(values, dtype=object).dropna()
            counts = keys.value_counts(sort=False)
            names = counts.index.to_numpy(dtype=object)
            order = np.lexsort((names.astype(str), -counts.to_numpy())) if len(names) else np.zeros(0, dtype=int)
            kept = order[:MAX_CATEGORIES]
            columns[col.name] = {"kind": "categorical", "categories": [str(names[i]) for i in kept],
                                 "counts": [int(counts.iloc[i]) for i in kept],
                                 "other": int(counts.to_numpy()[order[MAX_CATEGORIES:]].sum()),
                                 "missing": int(len(values) - len(keys))}
    return {"rows": int(len(df)), "columns": columns}


def _shares(counts: np.ndarray) -> np.ndarray:
    total = counts.sum()
    return np.maximum(counts / total, _FLOOR) if total else np.full(len(counts), 1.0 / len(counts))


def psi(expected: np.ndarray, actual: np.ndarray) -> float:
    """The population stability index of two count vectors over the same bins: sum (a - e) * ln(a / e) of their
    shares, an empty bin counting as a share of 1e-4. Under 0.1 is read as stable, over 0.25 as a major shift.

    >>> psi(np.array([50, 50]), np.array([50, 50]))
    0.0
    >>> round(psi(np.array([50, 50]), np.array([90, 10])), 3)
    0.879
    """
    e, a = _shares(np.asarray(expected, dtype=np.float64)), _shares(np.asarray(actual, dtype=np.float64))
    return float(np.sum((a - e) * np.log(a / e)))


def binned(summary_column: dict[str, Any], values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(training counts, ``values``' counts) over the column's bins, the missing values' bin last."""
    missing = pd.isna(values)
    if summary_column["kind"] == "numeric":
        edges = np.asarray(summary_column["edges"], dtype=np.float64)
        present = values[~missing].astype(np.float64)
        counts = np.bincount(np.searchsorted(edges, present, side="right"), minlength=len(edges) + 1)
    else:
        categories = summary_column["categories"]
        codes = pd.Index(categories, dtype=object).get_indexer(values[~missing])
        counts = np.bincount(np.where(codes < 0, len(categories), codes), minlength=len(categories) + 1)
    train = np.array([*summary_column["counts"], *([summary_column["other"]] if "other" in summary_column else []),
                      summary_column["missing"]], dtype=np.int64)
    return train, np.append(counts, int(missing.sum())).astype(np.int64)


def drift(summary: dict[str, Any], df: pd.DataFrame, schema: Schema) -> list[dict[str, Any]]:
    """Per feature of ``schema`` that the summary covers: its kind, the training and ``df`` missing shares, and the
    PSI of ``df``'s values against the training rows' (over the summary's bins, missing values as a bin)."""
    out = []
    for col in schema.features:
        stored = summary.get("columns", {}).get(col.name)
        if stored is None:
            continue
        values = column_values(df[col.name], col.kind)
        train, data = binned(stored, values)
        out.append({"column": col.name, "kind": col.kind, "psi": psi(train, data),
                    "train_missing": float(train[-1] / max(train.sum(), 1)),
                    "data_missing": float(data[-1] / max(data.sum(), 1))})
    return out
