"""Which columns the network relies on: permutation importance and partial dependence, through ``Model.outputs``.

Permutation importance follows ``sklearn.inspection.permutation_importance``: one seed drawn from ``seed``, each column
shuffled ``n_repeats`` times in turn with a fresh ``RandomState`` of that seed, importance = score on the intact rows
minus score on the shuffled ones (tests/test_report.py checks it against scikit-learn's function).
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import pandas as pd

from ..data.summary import column_values
from ..metrics import compute

__all__ = ["permutation_importance", "partial_dependence", "score_function", "N_REPEATS", "MAX_ROWS"]

N_REPEATS = 5
MAX_ROWS = 2_000  # rows the explanations use at most (a seeded sample of the evaluation rows beyond that)
PD_ROWS = 500  # rows averaged over at each grid value
PD_GRID = 20  # grid values per numeric column


def score_function(task: str) -> tuple[str, Callable[[np.ndarray, np.ndarray], float]]:
    """The metric the explanations score by, higher better: accuracy, or minus the RMSE."""
    if task == "regression":
        return "RMSE", lambda y, out: -compute(task, y, out)["rmse"]
    return "accuracy", lambda y, out: compute(task, y, out)["accuracy"]


def permutation_importance(model: Any, df: pd.DataFrame, y: np.ndarray, *, seed: int,
                           n_repeats: int = N_REPEATS) -> dict[str, Any]:
    """Per feature of ``model``: the drop in :func:`score_function` when the column is shuffled, float[n_repeats]
    each (``importances``, ordered as ``model.schema.features``), with the intact score (``baseline``)."""
    _, score = score_function(model.task)
    baseline = score(y, model.outputs(df)[0])
    shuffle_seed = np.random.RandomState(seed).randint(np.iinfo(np.int32).max + 1)
    names = model.schema.feature_names()
    importances = np.zeros((len(names), n_repeats))
    for j, name in enumerate(names):
        rng = np.random.RandomState(shuffle_seed)
        order = np.arange(len(df))
        values = df[name].to_numpy(copy=True)
        frames = []
        for _ in range(n_repeats):  # as scikit-learn: each repeat shuffles the already shuffled column again
            rng.shuffle(order)
            values = values[order]
            frames.append(df.assign(**{name: values}))
        outputs = model.outputs(pd.concat(frames, ignore_index=True))[0]
        for r in range(n_repeats):
            importances[j, r] = baseline - score(y, outputs[r * len(df):(r + 1) * len(df)])
    return {"features": names, "baseline": baseline, "importances": importances}


def grid_for(s: pd.Series, kind: str) -> list[Any]:
    """Values to set a column to: up to 20 quantiles (5% to 95%) of its numbers, or its most frequent values."""
    values = column_values(s, kind)
    if kind in ("numeric",):
        present = values[~np.isnan(values)]
        return [float(v) for v in np.unique(np.quantile(present, np.linspace(0.05, 0.95, PD_GRID)))] if len(present) else []
    if kind == "datetime":
        return []  # a date set to one value changes several inputs at once; not shown
    keys = pd.Series(values, dtype=object).dropna()
    return list(keys.value_counts().index[:12])


def partial_dependence(model: Any, df: pd.DataFrame, features: list[str], *, seed: int) -> list[dict[str, Any]]:
    """For each feature: its grid and the mean output (class probabilities [grid, C], or values [grid]) over up to
    500 rows with the column set to each grid value."""
    rows = df if len(df) <= PD_ROWS else df.iloc[np.sort(np.random.default_rng(seed).choice(len(df), PD_ROWS,
                                                                                            replace=False))]
    kinds = {c.name: c.kind for c in model.schema.features}
    out = []
    for name in features:
        grid = grid_for(df[name], kinds[name])
        if len(grid) < 2:
            continue
        # categorical grid values are category keys: the column is set to them as text, which the model reads as is
        frames = [rows.assign(**{name: np.full(len(rows), value, dtype=object if isinstance(value, str) else float)})
                  for value in grid]
        outputs = model.outputs(pd.concat(frames, ignore_index=True))[0]
        means = np.stack([outputs[i * len(rows):(i + 1) * len(rows)].mean(0) for i in range(len(grid))])
        out.append({"feature": name, "kind": kinds[name], "grid": grid, "mean": means})
    return out
