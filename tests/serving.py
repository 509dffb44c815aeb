"""Shared by the server's tests: small trained models (each trained once per test run), their tables, requests.

Models are trained from CSV files, as ``neuraltab train`` does, so that ``neuraltab predict`` on the same file is
the reference every server answer is compared with.
"""

from __future__ import annotations

import functools
import json
import math
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import neuraltab
from conftest import FAST, make_table

_FOLDER = Path(tempfile.mkdtemp(prefix="neuraltab-serve-tests-"))


def mixed_table(n: int = 300, seed: int = 0) -> pd.DataFrame:
    """Every column kind: numbers with gaps, a boolean, dates, sparse integer codes (categorical), text; 3 classes."""
    rng = np.random.default_rng(seed)
    num = rng.normal(size=n)
    flag = rng.random(n) < 0.5
    when = pd.Timestamp("2024-01-01") + pd.to_timedelta(rng.integers(0, 365, n), unit="D")
    code = rng.choice([20, 30, 45, 190], n)
    city = rng.choice(["paris", "lyon", "nice", "köln"], n)
    signal = num + flag + (code == 45) + (when.month > 6)
    df = pd.DataFrame({"num": num, "flag": flag, "when": when.strftime("%Y-%m-%d"), "code": code, "city": city})
    df.loc[rng.choice(n, n // 10, replace=False), "num"] = np.nan
    df["label"] = np.digitize(signal, np.quantile(signal, [1 / 3, 2 / 3])).astype(np.int64)
    return df


TABLES = {"binary": lambda: make_table(300, task="binary"), "regression": lambda: make_table(300, task="regression"),
          "mixed": mixed_table}


@functools.cache
def trained(kind: str) -> tuple[Path, Path]:
    """(model file, the CSV it was trained on) for a table kind: "binary", "regression" or "mixed"."""
    csv = _FOLDER / f"{kind}.csv"
    TABLES[kind]().to_csv(csv, index=False)
    model = neuraltab.fit(str(csv), target="label", **FAST)
    path = _FOLDER / f"{kind}.ntab"
    model.save(path, force=True)
    return path, csv


def features(kind: str) -> list[str]:
    return [c for c in TABLES[kind]().columns if c != "label"]


def records(df: pd.DataFrame, columns: list[str]) -> list[dict[str, Any]]:
    """Rows as JSON objects: missing values as null, numbers and booleans as JSON numbers and booleans."""
    out = []
    for row in df[columns].to_dict(orient="records"):
        out.append({k: _plain(v) for k, v in row.items()})
    return out


def _plain(value: Any) -> Any:
    if value is None or (isinstance(value, float) and math.isnan(value)) or value is pd.NA:
        return None
    if isinstance(value, (np.bool_, bool)):
        return bool(value)
    if isinstance(value, np.integer):
        return int(value)
    if isinstance(value, np.floating):
        return float(value)
    if isinstance(value, pd.Timestamp):
        return value.strftime("%Y-%m-%d")
    return value


def infer_request(df: pd.DataFrame, columns: list[str], datatypes: dict[str, str]) -> dict[str, Any]:
    """An Open Inference Protocol request: one input per column, as the model's metadata advertises."""
    rows = records(df, columns)
    return {"parameters": {"content_type": "pd"},
            "inputs": [{"name": c, "datatype": datatypes[c], "shape": [len(rows)], "data": [r[c] for r in rows]}
                       for c in columns]}


def body(payload: Any) -> bytes:
    return json.dumps(payload).encode()
