"""LightGBM's default classifier/regressor, trained on DATA, then timed CSV -> predictions CSV on a big file.

    python lightgbm_predict.py DATA TARGET BIG_CSV OUT_CSV     # prints one JSON line

Reading with pandas' pyarrow engine and writing with pyarrow: the fast way to do it with these libraries.
"""

from __future__ import annotations

import json
import resource
import sys
import time

import lightgbm as lgb
import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv


def _prepare(df: pd.DataFrame, categories: dict[str, pd.Index]) -> pd.DataFrame:
    for column, levels in categories.items():
        df[column] = pd.Categorical(df[column], categories=levels)
    return df


def main() -> None:
    data, target, big, out = sys.argv[1:5]
    train = pd.read_csv(data)
    y = train.pop(target)
    categories = {c: pd.Index(sorted(train[c].dropna().unique())) for c in train.columns
                  if not pd.api.types.is_numeric_dtype(train[c])}
    train = _prepare(train, categories)
    regression = y.dtype.kind == "f" and y.nunique() > 20
    model = (lgb.LGBMRegressor if regression else lgb.LGBMClassifier)(verbose=-1).fit(train, y)
    started = time.perf_counter()
    df = pd.read_csv(big, engine="pyarrow")
    read_s = time.perf_counter() - started
    features = _prepare(df[train.columns].copy(), categories)
    t = time.perf_counter()
    if regression:
        table = pa.table({"prediction": model.predict(features)})
    else:
        proba = model.predict_proba(features)
        columns = {"prediction": np.asarray(model.classes_)[proba.argmax(1)]}
        columns.update({f"proba_{label}": proba[:, j] for j, label in enumerate(model.classes_)})
        table = pa.table(columns)
    predict_s = time.perf_counter() - t
    t = time.perf_counter()
    pacsv.write_csv(table, out)
    write_s = time.perf_counter() - t
    total = time.perf_counter() - started
    print(json.dumps({"system": f"LightGBM {lgb.__version__} (defaults)", "rows": len(df), "seconds": total,
                      "rows_per_s": len(df) / total, "read_s": read_s, "predict_s": predict_s, "write_s": write_s,
                      "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))


if __name__ == "__main__":
    main()
