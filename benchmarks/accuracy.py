"""The "Accuracy" benchmark: neuraltab's default against LightGBM, CatBoost and scikit-learn's MLP, all untuned.

Every system sees the same folds of every table in ``../shared/data/public/`` (5 folds, seed 0: stratified for
classification, shuffled for regression), trains on 4/5 and predicts the held-out 1/5. Per table and system it
reports accuracy, ROC AUC and log-loss (classification) or RMSE and R² (regression), and the median train and predict
seconds over the folds. It prints markdown tables, ends with each system's mean rank and mean normalised score, and
writes everything (config, machine, per-fold numbers) as JSON.

    python benchmarks/accuracy.py                                  # the full suite: slow on a 2-core CPU
    python benchmarks/accuracy.py --datasets credit_g concrete --folds 2 --max-rows 600 \\
        --neuraltab-option epochs=5 k=2 d_block=32               # a smoke run (seconds)

The GBDT baselines are benchmark-only dependencies (``pip install -e .[bench]``); a system whose package is missing
is skipped with a message.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as _dt
import importlib
import json
import math
import os
import platform
import statistics
import sys
import time
import traceback
import warnings
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

HERE = Path(__file__).resolve().parent
REPO = HERE.parent
DEFAULT_DATA = REPO.parent / "shared" / "data" / "public"
DEFAULT_JSON = HERE / "results" / "accuracy.json"
SYSTEMS = ("neuraltab", "lightgbm", "catboost", "sklearn_mlp", "realmlp_td", "tabm_d")
PACKAGES = {"neuraltab": "neuraltab", "lightgbm": "lightgbm", "catboost": "catboost", "sklearn_mlp": "sklearn",
            "realmlp_td": "pytabkit", "tabm_d": "pytabkit"}
PEERS = ("realmlp_td", "tabm_d")  # the networks a user would otherwise pick; slow on a CPU, so --peer-folds
SEED = 0
EPS = 1e-15  # probabilities are clipped to [EPS, 1 - EPS] and renormalised before the log-loss
MISSING = "__nan__"  # what a missing categorical value becomes for CatBoost and the one-hot encoder


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def n_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


# ======================================================================================================================
# data
# ======================================================================================================================


class Table:
    """One manifest entry, read and prepared once; every system takes its view of the same rows."""

    def __init__(self, entry: dict[str, Any], data_dir: Path, max_rows: int | None) -> None:
        self.name: str = entry["name"]
        self.task: str = entry["task"]
        self.target: str = entry["target"]
        self.numeric: list[str] = list(entry.get("numeric_features", []))
        self.categorical: list[str] = list(entry.get("categorical_features", []))
        raw = pd.read_csv(data_dir / entry["file"])
        self.n_rows_file = len(raw)
        raw = raw[raw[self.target].notna()]
        self.n_missing_target = self.n_rows_file - len(raw)
        if self.task != "regression":
            y_str = raw[self.target].map(str)
            self.classes = sorted(y_str.unique())
            self.positive = None
            if self.task == "binary":
                self.positive = str(entry.get("positive_class"))
                if self.positive not in self.classes:
                    raise ValueError(f"{self.name}: positive_class {self.positive!r} is not a label of "
                                     f"{self.target!r} ({self.classes})")
        if max_rows and len(raw) > max_rows:
            from sklearn.model_selection import train_test_split

            strat = raw[self.target].map(str) if self.task != "regression" else None
            if strat is not None and strat.value_counts().min() < 2:
                strat = None
            raw, _ = train_test_split(raw, train_size=max_rows, random_state=SEED, stratify=strat)
            raw = raw.sort_index()
        self.raw = raw.reset_index(drop=True)  # the table as read by pandas: what neuraltab gets
        self.n_rows = len(self.raw)

        y = self.raw[self.target]
        if self.task == "regression":
            self.y = pd.to_numeric(y, errors="coerce").astype(float).to_numpy()
        else:
            self.y_str = y.map(str).to_numpy(dtype=object)
            index = {c: i for i, c in enumerate(self.classes)}
            self.y_code = np.array([index[v] for v in self.y_str], dtype=np.int64)

        # baseline views, built from the whole (sub)table so that every fold shares the same categories
        num = pd.DataFrame({c: pd.to_numeric(self.raw[c], errors="coerce").astype(float) for c in self.numeric},
                           index=self.raw.index)
        cat_str = {c: self._as_str(self.raw[c]) for c in self.categorical}
        self.x_lgbm = pd.concat([num, pd.DataFrame(
            {c: pd.Categorical(s, categories=sorted(s.dropna().unique())) for c, s in cat_str.items()},
            index=self.raw.index)], axis=1)
        self.x_filled = pd.concat([num, pd.DataFrame(
            {c: s.fillna(MISSING).astype(object) for c, s in cat_str.items()}, index=self.raw.index)], axis=1)
        self.x_sklearn = pd.concat([num, pd.DataFrame(cat_str, index=self.raw.index)], axis=1)

    @staticmethod
    def _as_str(col: pd.Series) -> pd.Series:
        """Categorical values as Python strings (object dtype), missing values as np.nan."""
        values = np.array([str(v) if pd.notna(v) else np.nan for v in col], dtype=object)
        return pd.Series(values, index=col.index, dtype=object)

    @property
    def primary(self) -> str:
        return "rmse" if self.task == "regression" else "accuracy"

    def folds(self, n_folds: int) -> list[tuple[np.ndarray, np.ndarray]]:
        from sklearn.model_selection import KFold, StratifiedKFold

        if self.task == "regression":
            splitter = KFold(n_splits=n_folds, shuffle=True, random_state=SEED)
            return list(splitter.split(np.zeros(self.n_rows)))
        splitter = StratifiedKFold(n_splits=n_folds, shuffle=True, random_state=SEED)
        with warnings.catch_warnings():  # "least populated class has only n members": fine on subsamples
            warnings.simplefilter("ignore", UserWarning)
            return list(splitter.split(np.zeros(self.n_rows), self.y_code))


# ======================================================================================================================
# metrics
# ======================================================================================================================


def align_proba(proba: np.ndarray, labels: list[Any], classes: list[str]) -> np.ndarray:
    """Reorder a system's probability columns (its own label order) into the table's string class order."""
    out = np.zeros((proba.shape[0], len(classes)), dtype=np.float64)
    index = {c: i for i, c in enumerate(classes)}
    for j, label in enumerate(labels):
        out[:, index[str(label)]] = proba[:, j]
    return out


def classification_metrics(table: Table, test: np.ndarray, pred: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    from sklearn.metrics import roc_auc_score

    y_str, y_code = table.y_str[test], table.y_code[test]
    accuracy = float(np.mean(np.array([str(p) for p in pred], dtype=object) == y_str))
    if table.task == "binary":
        pos = table.classes.index(table.positive)
        positives = y_code == pos
        auc = float(roc_auc_score(positives, proba[:, pos])) if 0 < positives.sum() < len(positives) else math.nan
    else:  # macro one-vs-rest over the classes present in this fold (all of them, except on tiny subsamples)
        aucs = [roc_auc_score(y_code == k, proba[:, k]) for k in range(len(table.classes))
                if 0 < (y_code == k).sum() < len(y_code)]
        auc = float(np.mean(aucs)) if aucs else math.nan
    p = np.clip(proba, EPS, 1 - EPS)
    p = p / p.sum(axis=1, keepdims=True)
    log_loss = float(-np.mean(np.log(p[np.arange(len(y_code)), y_code])))
    return {"accuracy": accuracy, "roc_auc": auc, "log_loss": log_loss}


def regression_metrics(table: Table, test: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    y = table.y[test]
    pred = np.asarray(pred, dtype=np.float64)
    rmse = float(np.sqrt(np.mean((y - pred) ** 2)))
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum((y - pred) ** 2)) / ss_tot if ss_tot > 0 else math.nan
    return {"rmse": rmse, "r2": r2}


METRICS = {"binary": ("accuracy", "roc_auc", "log_loss"), "multiclass": ("accuracy", "roc_auc", "log_loss"),
           "regression": ("rmse", "r2")}
HIGHER_IS_BETTER = {"accuracy": True, "roc_auc": True, "log_loss": False, "rmse": False, "r2": True}


# ======================================================================================================================
# systems: each returns (fit, predict) where predict gives (labels or values, probabilities in table order or None)
# ======================================================================================================================


def run_neuraltab(table: Table, train: np.ndarray, test: np.ndarray, threads: int, options: dict[str, Any]):
    import neuraltab

    kwargs = {"task": table.task, "test_size": 0, "seed": SEED, "threads": threads, **options}
    train_df = table.raw.iloc[train]
    test_df = table.raw.iloc[test].drop(columns=[table.target])
    holder: dict[str, Any] = {}

    def fit() -> None:
        holder["model"] = neuraltab.fit(train_df, target=table.target, **kwargs)

    def predict():
        model = holder["model"]
        pred = model.predict(test_df).to_numpy()
        if table.task == "regression":
            return pred, None
        proba = model.predict_proba(test_df)
        return pred, align_proba(proba.to_numpy(dtype=np.float64), list(model.classes), table.classes)

    def extras() -> dict[str, Any]:
        model = holder.get("model")
        if model is None:
            return {}
        hist = model.history
        cfg = model.config
        return {"internal_train_seconds": getattr(model, "train_seconds", None),
                "epochs_run": len(hist.get("epochs", [])), "best_epoch": hist.get("best_epoch"),
                "stop_reason": hist.get("stop_reason"), "notices": list(model.notices),
                "resolved": {k: getattr(cfg, k, None) for k in ("model", "k", "d_block", "n_blocks", "batch_size",
                                                                  "lr", "epochs", "scaling", "precision",
                                                                  "average_weights")}}

    return fit, predict, extras


def run_lightgbm(table: Table, train: np.ndarray, test: np.ndarray, threads: int, options: dict[str, Any]):
    import lightgbm

    # LightGBM refuses some characters in feature names (spambase has "C;", "C[" ...): positional names instead
    x = table.x_lgbm.set_axis([f"f{i}" for i in range(table.x_lgbm.shape[1])], axis=1)
    x_train, x_test = x.iloc[train], x.iloc[test]
    if table.task == "regression":
        model = lightgbm.LGBMRegressor(verbose=-1, random_state=SEED, n_jobs=threads)
        y_train = table.y[train]
    else:
        model = lightgbm.LGBMClassifier(verbose=-1, random_state=SEED, n_jobs=threads)
        y_train = table.y_str[train]
    return _estimator(model, table, x_train, y_train, x_test, fit_kwargs={})


def run_catboost(table: Table, train: np.ndarray, test: np.ndarray, threads: int, options: dict[str, Any]):
    import catboost

    x_train, x_test = table.x_filled.iloc[train], table.x_filled.iloc[test]
    # allow_writing_files=False only stops CatBoost writing a catboost_info/ folder into the working directory
    common = {"verbose": 0, "random_seed": SEED, "thread_count": threads, "allow_writing_files": False}
    if table.task == "regression":
        model = catboost.CatBoostRegressor(**common)
        y_train = table.y[train]
    else:
        model = catboost.CatBoostClassifier(**common)
        y_train = table.y_str[train]
    return _estimator(model, table, x_train, y_train, x_test, fit_kwargs={"cat_features": table.categorical})


def run_sklearn_mlp(table: Table, train: np.ndarray, test: np.ndarray, threads: int, options: dict[str, Any]):
    from sklearn.compose import ColumnTransformer
    from sklearn.impute import SimpleImputer
    from sklearn.neural_network import MLPClassifier, MLPRegressor
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    parts = []
    if table.numeric:
        parts.append(("num", Pipeline([("impute", SimpleImputer(strategy="median")), ("scale", StandardScaler())]),
                      table.numeric))
    if table.categorical:
        parts.append(("cat", Pipeline([("impute", SimpleImputer(strategy="constant", fill_value=MISSING)),
                                       ("onehot", OneHotEncoder(handle_unknown="ignore"))]), table.categorical))
    mlp_kwargs = {"random_state": SEED, "early_stopping": True, "max_iter": 200}
    if table.task == "regression":
        mlp, y_train = MLPRegressor(**mlp_kwargs), table.y[train]
    else:
        mlp, y_train = MLPClassifier(**mlp_kwargs), table.y_str[train]
    model = Pipeline([("prep", ColumnTransformer(parts)), ("mlp", mlp)])
    x_train, x_test = table.x_sklearn.iloc[train], table.x_sklearn.iloc[test]
    return _estimator(model, table, x_train, y_train, x_test, fit_kwargs={}, blas_threads=threads)


def run_pytabkit(kind: str):
    """pytabkit's RealMLP-TD or TabM-D with its defaults (on the CPU, seed 0), on the LightGBM view of the table:
    numeric floats (missing ones as the training fold's median) and pandas ``category`` columns, which pytabkit
    embeds as categories."""

    def runner(table: Table, train: np.ndarray, test: np.ndarray, threads: int, options: dict[str, Any]):
        import pytabkit

        x_train, x_test = table.x_lgbm.iloc[train], table.x_lgbm.iloc[test]
        # pytabkit refuses missing numbers ("NaN values in continuous columns are currently not allowed"): the
        # training fold's medians fill them
        medians = x_train[table.numeric].median()
        x_train = x_train.fillna(medians)
        x_test = x_test.fillna(medians)
        names = {("realmlp_td", False): "RealMLP_TD_Classifier", ("realmlp_td", True): "RealMLP_TD_Regressor",
                 ("tabm_d", False): "TabM_D_Classifier", ("tabm_d", True): "TabM_D_Regressor"}
        regression = table.task == "regression"
        model = getattr(pytabkit, names[kind, regression])(device="cpu", random_state=SEED, n_threads=threads,
                                                           verbosity=0)
        y_train = table.y[train] if regression else table.y_str[train]
        return _estimator(model, table, x_train, y_train, x_test, fit_kwargs={})

    return runner


def _estimator(model: Any, table: Table, x_train: pd.DataFrame, y_train: np.ndarray, x_test: pd.DataFrame, *,
               fit_kwargs: dict[str, Any], blas_threads: int | None = None):
    def limits():
        if blas_threads is None:
            return contextlib.nullcontext()
        from threadpoolctl import threadpool_limits

        return threadpool_limits(limits=blas_threads)

    def fit() -> None:
        with limits():
            model.fit(x_train, y_train, **fit_kwargs)

    def predict():
        with limits():
            pred = np.asarray(model.predict(x_test)).reshape(len(x_test), -1)
            pred = pred[:, 0]
            if table.task == "regression":
                return pred, None
            proba = np.asarray(model.predict_proba(x_test), dtype=np.float64)
        return pred, align_proba(proba, list(model.classes_), table.classes)

    return fit, predict, lambda: {}


RUNNERS: dict[str, Callable[..., Any]] = {"neuraltab": run_neuraltab, "lightgbm": run_lightgbm,
                                           "catboost": run_catboost, "sklearn_mlp": run_sklearn_mlp,
                                           "realmlp_td": run_pytabkit("realmlp_td"), "tabm_d": run_pytabkit("tabm_d")}


def run_cell(table: Table, system: str, folds: list[tuple[np.ndarray, np.ndarray]], threads: int,
             options: dict[str, Any]) -> dict[str, Any]:
    """All folds of one system on one table. An exception ends the cell with its error recorded."""
    cell: dict[str, Any] = {"folds": [], "error": None}
    for i, (train, test) in enumerate(folds):
        try:
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                fit, predict, extras = RUNNERS[system](table, train, test, threads, options)
                started, cpu_started = time.perf_counter(), time.process_time()
                fit()
                train_s, train_cpu_s = time.perf_counter() - started, time.process_time() - cpu_started
                started = time.perf_counter()
                pred, proba = predict()
                predict_s = time.perf_counter() - started
            if table.task == "regression":
                metrics = regression_metrics(table, test, pred)
            else:
                metrics = classification_metrics(table, test, pred, proba)
        except Exception as exc:  # noqa: BLE001  (one failing cell must not stop the benchmark)
            message = f"{type(exc).__name__}: {str(exc).strip().splitlines()[0][:300] if str(exc).strip() else ''}"
            cell["error"] = f"fold {i + 1}: {message}"
            cell["traceback"] = traceback.format_exc()
            log(f"[{table.name}] {system} fold {i + 1}/{len(folds)}: FAILED {message}")
            return cell
        warn = sorted({f"{w.category.__name__}: {str(w.message).splitlines()[0][:200]}" for w in caught})
        fold = {"fold": i + 1, "n_train": int(len(train)), "n_test": int(len(test)), **metrics,
                "train_s": train_s, "train_cpu_s": train_cpu_s, "predict_s": predict_s, **extras()}
        if warn:
            fold["warnings"] = warn
        cell["folds"].append(fold)
        for notice in fold.get("notices", []):
            log(f"[{table.name}] {system} fold {i + 1}/{len(folds)} notice: {notice}")
        shown = ", ".join(f"{k} {v:.4f}" for k, v in metrics.items())
        log(f"[{table.name}] {system} fold {i + 1}/{len(folds)}: {shown}, train {train_s:.1f}s, "
            f"predict {predict_s:.2f}s" + (f", {len(warn)} warning kind(s)" if warn else ""))
    cell["mean"] = {m: float(np.mean([f[m] for f in cell["folds"]])) for m in METRICS[table.task]}
    cell["train_s"] = float(statistics.median(f["train_s"] for f in cell["folds"]))
    cell["train_cpu_s"] = float(statistics.median(f["train_cpu_s"] for f in cell["folds"]))
    cell["predict_s"] = float(statistics.median(f["predict_s"] for f in cell["folds"]))
    return cell


# ======================================================================================================================
# summary and output
# ======================================================================================================================


def common_folds(res: dict[str, Any], systems: list[str]) -> list[int]:
    """The folds every system that finished this table ran (all of them, unless --peer-folds cut the peers short)."""
    sets = [{f["fold"] for f in res["systems"][s]["folds"]} for s in systems if res["systems"][s].get("mean")]
    return sorted(set.intersection(*sets)) if sets else []


def common_scores(res: dict[str, Any], systems: list[str], metric: str) -> dict[str, float]:
    """Each finished system's mean of ``metric`` over the folds all of them ran: the same rows for every system."""
    folds = common_folds(res, systems)
    out = {}
    for s in systems:
        cell = res["systems"][s]
        if cell.get("mean") and folds:
            value = float(np.mean([f[metric] for f in cell["folds"] if f["fold"] in folds]))
            if not math.isnan(value):
                out[s] = value
    return out


def summarise(results: list[dict[str, Any]], systems: list[str]) -> dict[str, Any]:
    """Mean rank and mean normalised score on each table's primary metric, over the folds every system ran; failed
    cells count as the worst."""
    ranks: dict[str, list[float]] = {s: [] for s in systems}
    norms: dict[str, list[float]] = {s: [] for s in systems}
    train: dict[str, dict[str, float]] = {s: {} for s in systems}
    for res in results:
        metric = res["primary"]
        higher = HIGHER_IS_BETTER[metric]
        scores = common_scores(res, systems, metric)
        for s in systems:
            if res["systems"][s].get("train_s") is not None:
                train[s][res["dataset"]] = res["systems"][s]["train_s"]
        if not scores:  # every system failed on this table: it says nothing about their order
            continue
        worst_fill = -math.inf if higher else math.inf
        series = pd.Series({s: scores.get(s, worst_fill) for s in systems}, dtype=float)
        for s, r in series.rank(method="average", ascending=not higher).items():
            ranks[s].append(float(r))
        best, worst = (max(scores.values()), min(scores.values())) if higher else \
            (min(scores.values()), max(scores.values()))
        for s in systems:
            if s not in scores:
                norms[s].append(0.0)
            elif best == worst:
                norms[s].append(1.0)
            else:  # (score - worst) / (best - worst) is 1 for the best whichever way the metric points
                norms[s].append((scores[s] - worst) / (best - worst))
    summary: dict[str, Any] = {}
    for s in systems:
        total = sum(train[s].values())
        ratio = None
        if "lightgbm" in systems and train["lightgbm"]:
            common = [d for d in train[s] if d in train["lightgbm"]]
            lgbm = sum(train["lightgbm"][d] for d in common)
            ratio = sum(train[s][d] for d in common) / lgbm if common and lgbm > 0 else None
        summary[s] = {"mean_rank": float(np.mean(ranks[s])) if ranks[s] else None,
                      "mean_normalised_score": float(np.mean(norms[s])) if norms[s] else None,
                      "total_train_s": total, "train_s_ratio_to_lightgbm": ratio,
                      "datasets_ok": len(train[s]), "datasets": len(results)}
    return summary


def fmt(value: Any, digits: int | None = None) -> str:
    """4 decimals for scores in [0, 1]-ish ranges, fewer as values grow (an RMSE in dollars needs no decimals)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    if digits is None:
        size = abs(value)
        digits = 0 if size >= 1000 else 1 if size >= 100 else 2 if size >= 10 else 4
    return f"{value:.{digits}f}"


def secs(value: float | None) -> str:
    if value is None:
        return "–"
    return f"{value:.2f}" if value < 10 else f"{value:.1f}"


def print_tables(results: list[dict[str, Any]], systems: list[str], summary: dict[str, Any]) -> None:
    print("| dataset | task | rows | metric | " + " | ".join(f"{s} | train s" for s in systems) + " |")
    print("|---|---|--:|---|" + "--:|--:|" * len(systems))
    for res in results:
        metric = res["primary"]
        higher = HIGHER_IS_BETTER[metric]
        ok = {s: c["mean"][metric] for s, c in res["systems"].items() if c.get("mean")}
        best = (max if higher else min)(ok.values()) if ok else None
        cells = []
        for s in systems:
            c = res["systems"][s]
            if c.get("error"):
                cells += ["error", "–"]
                continue
            score = fmt(c["mean"][metric])
            cells += [f"**{score}**" if best is not None and c["mean"][metric] == best else score, secs(c["train_s"])]
        print(f"| {res['dataset']} | {res['task']} | {res['rows']} | {metric} {'↑' if higher else '↓'} | "
              + " | ".join(cells) + " |")

    print()
    print("| dataset | metric | " + " | ".join(systems) + " |")
    print("|---|---|" + "--:|" * len(systems))
    for res in results:
        others = [m for m in METRICS[res["task"]] if m != res["primary"]] + ["predict_s"]
        for m in others:
            cells = []
            for s in systems:
                c = res["systems"][s]
                if c.get("error"):
                    cells.append("error")
                elif m == "predict_s":
                    cells.append(secs(c["predict_s"]))
                else:
                    cells.append(fmt(c["mean"][m]))
            arrow = "" if m == "predict_s" else (" ↑" if HIGHER_IS_BETTER[m] else " ↓")
            print(f"| {res['dataset']} | {m}{arrow} | " + " | ".join(cells) + " |")

    errors = [(r["dataset"], s, r["systems"][s]["error"]) for r in results for s in systems
              if r["systems"][s].get("error")]
    if errors:
        print()
        for d, s, e in errors:
            print(f"- error: {s} on {d}: {e}")

    print()
    if any(len(common_folds(r, systems)) < max(len(r["systems"][s]["folds"]) for s in systems) for r in results):
        print("| dataset | folds every system ran | " + " | ".join(systems) + " |")
        print("|---|--:|" + "--:|" * len(systems))
        for res in results:
            metric = res["primary"]
            scores = common_scores(res, systems, metric)
            print(f"| {res['dataset']} ({metric}) | {', '.join(map(str, common_folds(res, systems)))} | "
                  + " | ".join(fmt(scores.get(s)) for s in systems) + " |")
        print()
        print("| dataset | median train CPU s: " + " | ".join(systems) + " |")
        print("|---|" + "--:|" * len(systems))
        for res in results:
            print(f"| {res['dataset']} | " + " | ".join(secs(res["systems"][s].get("train_cpu_s")) for s in systems)
                  + " |")
        print()
    print("| system | mean rank ↓ | mean normalised score ↑ | total train s | × LightGBM | datasets ok |")
    print("|---|--:|--:|--:|--:|--:|")
    for s in systems:
        v = summary[s]
        ratio = v["train_s_ratio_to_lightgbm"]
        total = secs(v["total_train_s"]) if v["datasets_ok"] else "–"
        print(f"| {s} | {fmt(v['mean_rank'], 2)} | {fmt(v['mean_normalised_score'], 3)} | {total} | "
              f"{'–' if ratio is None else f'{ratio:.1f}×'} | {v['datasets_ok']}/{v['datasets']} |")
    print()
    print("Ranks and normalised scores use each table's primary metric (accuracy, or RMSE for regression; "
          "1 = best, failures count as worst), over the folds every system ran. Train s is the median over folds; the total "
          "sums those medians.")


def machine_info(threads: int) -> dict[str, Any]:
    versions: dict[str, str | None] = {}
    for name in ("neuraltab", "torch", "lightgbm", "catboost", "sklearn", "pytabkit", "numpy", "pandas"):
        try:
            versions[name] = str(getattr(importlib.import_module(name), "__version__", "?"))
        except ImportError:
            versions[name] = None
    return {"platform": platform.platform(), "machine": platform.machine(), "processor": platform.processor(),
            "python": platform.python_version(), "cpu_count": os.cpu_count(), "cpus_available": n_cores(),
            "threads": threads, "versions": versions}


def clean(value: Any) -> Any:
    """JSON-safe: numpy scalars to Python, NaN/inf to null."""
    if isinstance(value, dict):
        return {str(k): clean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [clean(v) for v in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def write_json(path: Path, payload: dict[str, Any]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(clean(payload), indent=1, allow_nan=False))
    tmp.replace(path)


# ======================================================================================================================
# main
# ======================================================================================================================


def parse_option(text: str) -> tuple[str, Any]:
    if "=" not in text:
        raise argparse.ArgumentTypeError(f"expected KEY=VALUE, got {text!r}")
    key, value = text.split("=", 1)
    try:
        return key.strip(), json.loads(value)
    except json.JSONDecodeError:
        return key.strip(), value


def report(paths: list[Path]) -> int:
    """Print the tables for the merged results of several runs (e.g. a slow system run on its own)."""
    merged: dict[str, dict[str, Any]] = {}
    for path in paths:
        for res in json.loads(path.read_text())["results"]:
            entry = merged.setdefault(res["dataset"], {**res, "systems": {}})
            entry["systems"].update(res["systems"])
    systems = [s for s in SYSTEMS if any(s in r["systems"] for r in merged.values())]
    complete = [r for r in merged.values() if all(s in r["systems"] for s in systems)]
    missing = sorted(set(merged) - {r["dataset"] for r in complete})
    print(f"merged {', '.join(str(p) for p in paths)}: {len(complete)} table(s) with results for every system"
          + (f"; left out (some system missing): {', '.join(missing)}" if missing else ""))
    print_tables(complete, systems, summarise(complete, systems))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA, help="folder with manifest.json (default: %(default)s)")
    parser.add_argument("--datasets", nargs="+", metavar="NAME", help="tables to run (default: all in the manifest)")
    parser.add_argument("--systems", nargs="+", default=list(SYSTEMS), choices=SYSTEMS, metavar="SYSTEM",
                        help=f"systems to run, from {', '.join(SYSTEMS)} (default: all)")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (default: 5)")
    parser.add_argument("--first-folds", type=int, default=None, metavar="N",
                        help="run every system on the first N of the --folds folds only (default: all): the same "
                             "rows as a full run's first folds, for a quicker look")
    parser.add_argument("--peer-folds", type=int, default=None, metavar="N",
                        help=f"run {' and '.join(PEERS)} on the first N folds only (default: all); ranks then use "
                             "the folds every system ran")
    parser.add_argument("--max-rows", type=int, default=None,
                        help="subsample each table to at most N rows (stratified, seed 0): for smoke tests")
    parser.add_argument("--json", type=Path, default=DEFAULT_JSON, help="where to write the results (default: %(default)s)")
    parser.add_argument("--neuraltab-option", nargs="+", action="extend", default=[], type=parse_option, metavar="KEY=VALUE",
                        help="options passed to neuraltab.fit, values parsed as JSON when possible (e.g. k=4 lr=0.001)")
    parser.add_argument("--threads", type=int, default=None, help="threads for every system (default: all cores)")
    parser.add_argument("--report", type=Path, nargs="+", metavar="JSON",
                        help="run nothing: merge the results of earlier runs (later files win per table and system) "
                             "and print the tables for the tables every system has results for")
    args = parser.parse_args(argv)
    if args.report:
        return report(args.report)

    if args.folds < 2:
        parser.error("--folds must be at least 2")
    if args.max_rows is not None and args.max_rows < args.folds * 2:
        parser.error("--max-rows is too small for that many folds")
    manifest_path = args.data_dir / "manifest.json"
    if not manifest_path.exists():
        parser.error(f"{manifest_path} not found: pass --data-dir")
    manifest = json.loads(manifest_path.read_text())
    entries = {d["name"]: d for d in manifest["datasets"]}
    names = args.datasets or list(entries)
    unknown = [n for n in names if n not in entries]
    if unknown:
        parser.error(f"unknown dataset(s) {', '.join(unknown)}; the manifest has {', '.join(entries)}")
    threads = args.threads or n_cores()
    options = dict(args.neuraltab_option)

    systems = []
    for s in dict.fromkeys(args.systems):
        try:
            importlib.import_module(PACKAGES[s])
            systems.append(s)
        except ImportError as exc:
            log(f"skipping {s}: cannot import {PACKAGES[s]} ({exc}); install the benchmark extras with "
                f"pip install -e '.[bench]'")
    if not systems:
        parser.error("no system left to run")

    import torch

    torch.set_num_threads(threads)  # neuraltab sets it for fit; this covers its predict too

    config = {"data_dir": str(args.data_dir.resolve()), "datasets": names, "systems": systems, "folds": args.folds,
              "seed": SEED, "max_rows": args.max_rows, "peer_folds": args.peer_folds,
              "first_folds": args.first_folds, "threads": threads,
              "neuraltab_options": options,
              "command": " ".join(["python", "benchmarks/accuracy.py", *(sys.argv[1:] if argv is None else argv)])}
    payload: dict[str, Any] = {"benchmark": "accuracy", "started": _dt.datetime.now().isoformat(timespec="seconds"),
                               "config": config, "machine": machine_info(threads), "results": []}
    log(f"accuracy benchmark: {len(names)} table(s) × {len(systems)} system(s) × {args.folds} folds, "
        f"{threads} thread(s); neuraltab options {options or '{}'}")

    results = payload["results"]
    for name in names:
        entry = entries[name]
        try:
            table = Table(entry, args.data_dir, args.max_rows)
        except Exception as exc:  # noqa: BLE001
            log(f"[{name}] cannot read: {type(exc).__name__}: {exc}")
            continue
        folds = table.folds(args.folds)[:args.first_folds]
        log(f"[{name}] {table.task}, {table.n_rows} rows"
            + (f" (of {table.n_rows_file})" if table.n_rows != table.n_rows_file else "")
            + f", {len(table.numeric)} numeric / {len(table.categorical)} categorical")
        res = {"dataset": name, "task": table.task, "target": table.target, "rows": table.n_rows,
               "rows_in_file": table.n_rows_file, "rows_missing_target": table.n_missing_target,
               "primary": table.primary, "systems": {}}
        for s in systems:
            res["systems"][s] = run_cell(table, s, folds[:args.peer_folds] if s in PEERS else folds, threads, options)
        results.append(res)
        write_json(args.json, payload)  # after every table, so a long run leaves its results so far

    summary = summarise(results, systems)
    payload["summary"] = summary
    payload["finished"] = _dt.datetime.now().isoformat(timespec="seconds")
    write_json(args.json, payload)
    print(f"accuracy benchmark: {args.folds} folds (seed {SEED})"
          + (f", the first {args.first_folds} run" if args.first_folds else "")
          + (f", peers on the first {args.peer_folds}" if args.peer_folds else "") + f", {threads} thread(s)"
          + (f", at most {args.max_rows} rows per table" if args.max_rows else "")
          + (f", neuraltab options {json.dumps(options)}" if options else "") + f"; {platform.platform()}")
    print()
    print_tables(results, systems, summary)
    log(f"wrote {args.json}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
