"""What a playground trains on and draws: a toy set or the user's table, made ready by :func:`neuraltab.api.prepare`
(the same reading, typing, splitting and preprocessing as ``neuraltab train``), plus the grid its maps are computed on.

A toy set's grid covers [-6, 6]² in its seven features. A table's grid is a slice through two of its columns (by
default the two that tell most about the target), the others held at their training median or mode, in the columns'
own units over their 5th-95th percentiles, turned into model inputs by the real preprocessing.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..api import Prepared, prepare
from ..errors import DataError
from . import toy

__all__ = ["GRID", "NODE_GRID", "Scene", "toy_scene", "table_scene", "MAX_EVAL_ROWS"]

GRID = 100  # the output map is GRID x GRID, as the Playground's
NODE_GRID = 25  # each neuron's map, a 4x4 block average of the grid
MAX_EVAL_ROWS = 2000  # losses and projections of a large table are computed on a fixed sample of this many rows
MAX_SHOWN = 16  # nodes drawn per layer of a wide network


@dataclasses.dataclass
class Scene:
    """A prepared data set and its grid. ``grid``: (x_num, x_cat) of GRID² rows, row-major from the top-left cell
    (y decreasing down the rows, x increasing along them); ``input_maps``: float32[n_shown, NODE_GRID, NODE_GRID] in
    [-1, 1], the shown inputs over the grid; ``shown_inputs``: their positions in the network's dense input."""

    kind: str  # "toy" or "table"
    prepared: Prepared
    grid: tuple[torch.Tensor, torch.Tensor]
    input_maps: np.ndarray
    shown_inputs: list[int]
    input_names: list[str]
    describe: dict[str, Any]  # what the page needs to draw the data: points, axes, names
    train: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    train_eval: tuple[torch.Tensor, torch.Tensor, torch.Tensor]  # the rows losses are measured on
    test_eval: tuple[torch.Tensor, torch.Tensor, torch.Tensor]
    value_range: tuple[float, float] = (-1.0, 1.0)  # regression: the target values mapped to the colour scale's ends
    stride: int = 1  # the network is evaluated on every stride-th cell each way, each value filling stride² cells

    def grid_inputs(self) -> tuple[torch.Tensor, torch.Tensor]:
        """The cells the network is evaluated on: all of them, or every ``stride``-th row and column."""
        if self.stride == 1:
            return self.grid
        cells = torch.arange(GRID * GRID).view(GRID, GRID)[::self.stride, ::self.stride].reshape(-1)
        return self.grid[0][cells], self.grid[1][cells]

    @property
    def task(self) -> str:
        return self.prepared.schema.task


def _pool(maps: np.ndarray) -> np.ndarray:
    """[n, GRID, GRID] → [n, NODE_GRID, NODE_GRID] block means."""
    f = GRID // NODE_GRID
    return maps.reshape(len(maps), NODE_GRID, f, NODE_GRID, f).mean(axis=(2, 4))


def _normalised(maps: np.ndarray) -> np.ndarray:
    scale = np.abs(maps).reshape(len(maps), -1).max(axis=1)
    return (maps / np.where(scale > 0, scale, 1)[:, None, None]).astype(np.float32)


def _sample(t: tuple[torch.Tensor, torch.Tensor, torch.Tensor], seed: int, size: int) -> tuple[torch.Tensor, ...]:
    n = len(t[0])
    if n <= size:
        return t
    idx = torch.from_numpy(np.sort(np.random.default_rng(seed).choice(n, size, replace=False)))
    return tuple(x[idx] for x in t)  # type: ignore[return-value]


def _finish(kind: str, prepared: Prepared, grid_batch: Any, input_maps: np.ndarray, shown: list[int],
            names: list[str], describe: dict[str, Any], value_range: tuple[float, float] = (-1.0, 1.0)) -> Scene:
    train, test = prepared.tensors("train"), prepared.tensors("test")
    grid = (torch.from_numpy(grid_batch.x_num), torch.from_numpy(grid_batch.x_cat))
    # the ensemble costs k times an MLP's forward pass: its maps are computed on a 50 x 50 grid, its losses on
    # fewer rows, so that it still draws several frames a second on a 2-core CPU
    ensemble = prepared.cfg.model == "default"
    rows = MAX_EVAL_ROWS // 2 if ensemble else MAX_EVAL_ROWS
    describe["gridComputed"] = GRID // (2 if ensemble else 1)
    return Scene(kind=kind, prepared=prepared, grid=grid, input_maps=input_maps, shown_inputs=shown,
                 input_names=names, describe=describe, train=train, test=test,
                 train_eval=_sample(train, prepared.cfg.seed, rows), test_eval=_sample(test, prepared.cfg.seed + 1, rows),
                 value_range=value_range, stride=2 if ensemble else 1)


# ======================================================================================================================
# toy sets
# ======================================================================================================================


def _grid_points() -> np.ndarray:
    """float64[GRID², 2] cell centres over [-EXTENT, EXTENT]², the top row first."""
    centres = (np.arange(GRID) + 0.5) / GRID * 2 * toy.EXTENT - toy.EXTENT
    xx, yy = np.meshgrid(centres, centres[::-1])
    return np.stack([xx.ravel(), yy.ravel()], axis=1)


def toy_scene(name: str, *, noise: float, train_share: float, seed: int, feature_names: tuple[str, ...],
              options: dict[str, Any]) -> Scene:
    """A toy set's scene: its points, split as the Playground splits them, with the chosen input features."""
    if name not in toy.DATASETS:
        raise DataError(f"data set {name!r} is not one of the playground's: {', '.join(toy.DATASETS)}")
    if not feature_names:
        raise DataError("no input feature is on: turn on at least one of x1, x2, ... (click its node)")
    points = toy.generate(name, noise=noise, seed=seed)
    train_rows, test_rows = toy.split(points, train_share=train_share, seed=seed)
    regression = name in toy.REGRESSION
    table = pd.DataFrame(toy.features(points[:, :2], feature_names), columns=list(feature_names))
    table["label"] = points[:, 2] if regression else np.where(points[:, 2] > 0, "positive", "negative")
    prepared = prepare(table, "label", rows={"train": train_rows, "valid": train_rows[:0], "test": test_rows},
                       task="regression" if regression else "binary", scaling="none", **options)
    grid_xy = _grid_points()
    grid_frame = pd.DataFrame(toy.features(grid_xy, feature_names), columns=list(feature_names))
    grid_batch = prepared.preprocessor.transform(grid_frame, check_types=False)
    maps = grid_frame.to_numpy(np.float32).T.reshape(-1, GRID, GRID)
    order = np.concatenate([train_rows, test_rows])
    describe = {
        "kind": "toy", "dataset": name, "task": prepared.schema.task, "extent": toy.EXTENT,
        "x": {"name": "x1", "min": -toy.EXTENT, "max": toy.EXTENT}, "y": {"name": "x2", "min": -toy.EXTENT,
                                                                         "max": toy.EXTENT},
        # x, y, label on the colour scale, 1 for a training point and 0 for a test one
        "points": np.column_stack([points[order, :2], points[order, 2],
                                   np.r_[np.ones(len(train_rows)), np.zeros(len(test_rows))]]).round(4).tolist(),
        "classes": [str(c) for c in prepared.schema.classes],
    }
    return _finish("toy", prepared, grid_batch, _normalised(_pool(maps)), list(range(len(feature_names))),
                   list(feature_names), describe)


# ======================================================================================================================
# tables
# ======================================================================================================================


def read_for_playground(data: Any, target: str, options: dict[str, Any], *, train_share: float) -> Prepared:
    """The user's table prepared as ``neuraltab train`` prepares it, every non-test row training (there is no early
    stopping to validate for)."""
    return prepare(data, target, **{**options, "test_size": round(min(max(1 - train_share, 0.0), 0.85), 2),
                                     "early_stopping": False})


def importance(prepared: Prepared) -> list[str]:
    """The features, most telling about the target first: mutual information between each input and the target on
    up to 2,000 training rows (a column's score is its best input's)."""
    from sklearn.feature_selection import mutual_info_classif, mutual_info_regression

    batch = prepared.batches["train"]
    rng = np.random.default_rng(prepared.cfg.seed)
    rows = np.sort(rng.choice(len(batch), min(len(batch), 2000), replace=False))
    x = np.concatenate([batch.x_num[rows], batch.x_cat[rows].astype(np.float32)], axis=1)
    discrete = np.r_[np.zeros(batch.x_num.shape[1], bool), np.ones(batch.x_cat.shape[1], bool)]
    y = batch.y[rows]
    score = (mutual_info_regression if prepared.schema.task == "regression" else mutual_info_classif)(
        x, y, discrete_features=discrete, random_state=0, n_neighbors=3)
    columns = _input_columns(prepared)
    best: dict[str, float] = {}
    for col, s in zip(columns, score):
        best[col] = max(best.get(col, -1.0), float(s))
    return sorted(best, key=lambda c: (-best[c], prepared.schema.feature_names().index(c)))


def _input_columns(prepared: Prepared) -> list[str]:
    """The table column behind each of the preprocessor's inputs (x_num columns, then x_cat columns)."""
    pre = prepared.preprocessor
    nums = [c for c, _ in pre.numeric_inputs]
    return nums + [nums[i] for i in pre.indicators] + [c for c, _ in pre.vocabs]


def _axis(column: pd.Series, kind: str) -> dict[str, Any]:
    """An axis over a column: GRID values between its 5th and 95th percentiles, or its most frequent categories."""
    if kind in ("numeric", "boolean") and pd.api.types.is_numeric_dtype(column):
        values = pd.to_numeric(column, errors="coerce").dropna().to_numpy(np.float64)
        lo, hi = (np.percentile(values, [5, 95]) if len(values) else (0.0, 1.0))
        if hi <= lo:
            lo, hi = lo - 0.5, hi + 0.5
        return {"kind": "numeric", "min": float(lo), "max": float(hi),
                "values": list(lo + (np.arange(GRID) + 0.5) / GRID * (hi - lo))}
    counts = column.astype("string").value_counts()
    labels = [str(v) for v in counts.index[:GRID]]
    values = [labels[min(int(i * len(labels) / GRID), len(labels) - 1)] for i in range(GRID)]
    return {"kind": "categorical", "labels": labels, "values": values}


def table_scene(prepared: Prepared, raw: pd.DataFrame, *, x: str | None, y: str | None, source: str) -> Scene:
    """A table's scene: the slice through columns ``x`` and ``y`` (default: the two most telling)."""
    schema = prepared.schema
    names = schema.feature_names()
    ranked = importance(prepared)
    for given, what in ((x, "x"), (y, "y")):
        if given is not None and given not in names:
            from ..errors import closest_names

            raise DataError(f"{source}: the {what} axis column {given!r} is not a feature of the table; "
                            f"{closest_names(given, names)}")
    x = x or ranked[0]
    y = y or next((c for c in ranked if c != x), x)
    kinds = {c.name: c.kind for c in schema.features}
    train_rows = raw.loc[prepared.splits["train"]]
    reference = {}
    for c in names:  # the held row: the training median of a numeric column, the mode of any other
        col = train_rows[c]
        numbers = pd.to_numeric(col, errors="coerce") if kinds[c] == "numeric" else None
        if numbers is not None and numbers.notna().any():
            reference[c] = float(numbers.median())
        else:
            mode = col.dropna().mode()
            reference[c] = mode.iloc[0] if len(mode) else None
    ax, ay = _axis(train_rows[x], kinds[x]), _axis(train_rows[y], kinds[y])
    grid = pd.DataFrame({c: [reference[c]] * GRID * GRID for c in names})
    grid = grid.astype({c: raw[c].dtype for c in names if raw[c].dtype.kind in "fiub" and kinds[c] == "numeric"},
                       errors="ignore")
    xs = np.tile(np.asarray(ax["values"], dtype=object), GRID)
    ys = np.repeat(np.asarray(ay["values"][::-1], dtype=object), GRID)  # the top row holds y's largest value
    grid[x] = pd.array(xs.tolist()) if ax["kind"] == "categorical" else xs.astype(np.float64)
    if y != x:
        grid[y] = pd.array(ys.tolist()) if ay["kind"] == "categorical" else ys.astype(np.float64)
    grid_batch = prepared.preprocessor.transform(grid, source=source, check_types=False)
    columns = _input_columns(prepared)
    n_num = grid_batch.x_num.shape[1]
    # the shown inputs: numeric inputs of the most telling columns, the axes first
    order = [x, y] + [c for c in ranked if c not in (x, y)]
    shown = [i for c in order for i in range(n_num) if columns[i] == c][:MAX_SHOWN]
    maps = grid_batch.x_num[:, shown].T.reshape(-1, GRID, GRID) if shown else np.zeros((0, GRID, GRID), np.float32)
    maps = maps - np.median(maps.reshape(len(maps), -1), axis=1)[:, None, None] if len(maps) else maps
    pre_names = prepared.preprocessor.input_names()
    value_range = (-1.0, 1.0)
    if schema.task == "regression":
        target = pd.to_numeric(raw.loc[prepared.splits["train"], prepared.target], errors="coerce").dropna()
        value_range = tuple(float(v) for v in np.percentile(target, [2, 98])) if len(target) else (0.0, 1.0)
    # the training points at their two coordinates, as far as the axes reach (a sample of a large table)
    rng = np.random.default_rng(prepared.cfg.seed)
    point_rows = {name: prepared.splits[name] for name in ("train", "test")}
    points = []
    for name, rows in point_rows.items():
        rows = rows if len(rows) <= 600 else np.sort(rng.choice(rows, 600, replace=False))
        labels = raw.loc[rows, prepared.target]
        codes = _label_values(prepared, labels)
        px, py = _positions(raw.loc[rows, x], ax), _positions(raw.loc[rows, y], ay)
        for a, b, c in zip(px, py, codes):
            if np.isfinite(a) and np.isfinite(b) and np.isfinite(c):
                points.append([round(float(a), 5), round(float(b), 5), round(float(c), 5), 1 if name == "train" else 0])
    describe = {
        "kind": "table", "dataset": "table", "source": source, "task": schema.task, "target": prepared.target,
        "classes": [str(c) for c in schema.classes], "features": names, "ranked": ranked,
        "x": {"name": x, **{k: v for k, v in ax.items() if k != "values"}},
        "y": {"name": y, **{k: v for k, v in ay.items() if k != "values"}},
        "reference": {c: (v if isinstance(v, (int, float, str, type(None))) else str(v)) for c, v in reference.items()},
        "points": points, "valueRange": list(value_range),
        "rows": {name: int(len(idx)) for name, idx in prepared.splits.items()},
    }
    return _finish("table", prepared, grid_batch, _normalised(_pool(maps)), shown, [pre_names[i] for i in shown],
                   describe, value_range)


def _positions(values: pd.Series, axis: dict[str, Any]) -> np.ndarray:
    """Coordinates on an axis in [0, 1] (NaN off it): numbers by value, categories by their band."""
    if axis["kind"] == "numeric":
        v = pd.to_numeric(values, errors="coerce").to_numpy(np.float64)
        pos = (v - axis["min"]) / (axis["max"] - axis["min"])
        return np.where((pos >= 0) & (pos <= 1), pos, np.nan)
    index = {label: i for i, label in enumerate(axis["labels"])}
    n = len(axis["labels"])
    return np.array([(index[str(v)] + 0.5) / n if str(v) in index else np.nan for v in values.astype("string")])


def _label_values(prepared: Prepared, labels: pd.Series) -> np.ndarray:
    """A label on the colour scale: ±1 for two classes, the class index for several, the value for regression."""
    schema = prepared.schema
    if schema.task == "regression":
        return pd.to_numeric(labels, errors="coerce").to_numpy(np.float64)
    codes = prepared.preprocessor.encode_target(labels).astype(np.float64)
    return codes * 2 - 1 if schema.task == "binary" else codes
