"""Every number the report shows, gathered from the model file and DATA through ``Model`` (nothing is trained again
but the baselines, and no step of the data path is re-implemented).

DATA that is the table the model was trained on (its SHA-256 matches the model file's fingerprint) is split again
with the model's seed and sizes (``api.split_rows``): the evaluation uses its test rows and the baselines learn from
its other rows. Other DATA is evaluated whole, without baselines (there is no training split to fit them on).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
import torch

from ..api import Model, split_rows
from ..data.preprocess import _category_codes
from ..data.read import source_name
from ..data.schema import drop_missing_target
from ..data.split import fingerprint
from ..data.summary import column_values, drift
from ..errors import no_notice
from ..metrics import PRIMARY
from . import baselines as baseline_models
from . import curves, explain

__all__ = ["Facts", "collect", "network_layers"]

MAX_CURVES = 10  # classes drawn one-vs-rest at most (the most frequent)
_HIGHER_IS_BETTER = {"accuracy": True, "balanced_accuracy": True, "log_loss": False, "roc_auc": True,
                     "f1_macro": True, "rmse": False, "mae": False, "r2": True}


@dataclass
class Facts:
    """What the report shows; a section whose facts are None is left out, with ``missing[section]`` saying why."""

    model: Model
    source: str | None = None
    rows_read: int = 0
    evaluated_on: str = ""  # which rows the evaluation used, in words
    n_eval: int = 0
    metrics: dict[str, Any] | None = None  # the network's metrics on the evaluation rows
    intervals: dict[str, tuple[float, float] | None] = field(default_factory=dict)
    classification: dict[str, Any] | None = None
    regression: dict[str, Any] | None = None
    importance: dict[str, Any] | None = None
    dependence: list[dict[str, Any]] | None = None
    checks: list[dict[str, Any]] | None = None
    drift: list[dict[str, Any]] | None = None
    baselines: dict[str, Any] | None = None
    verdict: str | None = None
    missing: dict[str, str] = field(default_factory=dict)
    timings: dict[str, float] = field(default_factory=dict)  # seconds from the start at each stage's end (benchmarks)


def collect(model: Model, data: Any, *, notify: Any = no_notice, with_baselines: bool = True) -> Facts:
    """The report's facts for ``model`` and ``data`` (a path, a DataFrame or None)."""
    facts = Facts(model=model)
    clock = time.perf_counter()
    recorded = model.metrics.get("test") or model.metrics.get("valid")
    if data is None:
        why = "no DATA was given; pass the training table (or other rows with the target) to see this"
        for section in ("evaluation", "importance", "checks", "baselines"):
            facts.missing[section] = why
        if recorded is not None and model.task != "regression":
            facts.classification = {"confusion_only": True, **_confusion_facts(np.asarray(recorded["confusion_matrix"]))}
        return facts
    source = source_name(data)
    facts.source = source
    df = model.read(data, notify=notify)
    model.preprocessor.transform(df.iloc[:0], source=source)  # every feature column present, or predict's error
    facts.rows_read = len(df)
    facts.checks = _data_checks(model, df)
    if model.training_summary is None:
        facts.missing["drift"] = ("the model file records no summary of its training data (it was saved by an "
                                  "older neuraltab); retrain the model to see drift")
    else:
        facts.drift = drift(model.training_summary, df, model.schema)
    facts.timings["read_and_check_s"] = time.perf_counter() - clock
    target = model.schema.target
    if target not in df.columns:
        why = (f"{source} has no target column {target!r}, so this needs rows with it; the data checks above "
               "need no target")
        for section in ("evaluation", "importance", "baselines"):
            facts.missing[section] = why
        notify(f"{source}: no target column {target!r}: the report shows the model and the data checks only")
        return facts
    labelled = drop_missing_target(df, target, source=source, notify=notify)
    training_table = fingerprint(data, df)["sha256"] == model.data_fingerprint.get("sha256")
    rows = None
    if training_table:
        rows = split_rows(labelled, model.schema, model.config, source=source)
        held = "test" if len(rows["test"]) else "valid" if len(rows["valid"]) else None
        if held is None:
            eval_rows, facts.evaluated_on = np.arange(len(labelled)), "every row of the training table (the model held none out, so these numbers flatter it)"
        else:
            eval_rows = rows[held]
            facts.evaluated_on = f"the {'test' if held == 'test' else 'validation'} rows of the training table, as split when the model was trained"
        learn_rows = np.sort(np.concatenate([rows["train"], rows["valid"]])) if held == "test" else rows["train"]
    else:
        eval_rows, facts.evaluated_on = np.arange(len(labelled)), f"every labelled row of {source}"
    eval_df = labelled.iloc[eval_rows]
    output, y = model.outputs(eval_df, with_target=True, source=source, notify=notify)
    facts.n_eval = len(eval_df)
    facts.metrics = curves.summary_of(model.task, y, output)
    facts.timings["evaluate_s"] = time.perf_counter() - clock

    outputs = {"network": output}
    if not with_baselines:
        facts.missing["baselines"] = "baselines were turned off"
    elif not training_table:
        facts.missing["baselines"] = (f"{source} is not the table the model was trained on (its SHA-256 differs from "
                                      "the model file's), so there is no training split to fit baselines on; pass "
                                      "the training table to see them")
    else:
        pre = model.preprocessor
        learn = pre.transform(labelled.iloc[learn_rows], source=source, with_target=True, check_types=False)
        test = pre.transform(eval_df, source=source, with_target=True, check_types=False)
        fitted, skipped = baseline_models.fit_baselines(model.task, len(model.classes), pre.cat_cardinalities, learn,
                                                        test, seed=model.config.seed, threads=1)
        outputs.update(fitted)
        facts.baselines = {"metrics": {name: curves.summary_of(model.task, y, out) for name, out in fitted.items()},
                           "skipped": skipped, "n_learn": len(learn), "intervals": {}}
    facts.timings["baselines_s"] = time.perf_counter() - clock
    boot = curves.bootstrap(model.task, y, outputs, seed=model.config.seed)
    facts.intervals = {metric: curves.interval(values) for metric, values in boot["network"].items()}
    if facts.baselines is not None:
        primary = PRIMARY[model.task]
        facts.baselines["intervals"] = {name: curves.interval(boot[name][primary]) for name in fitted}
        facts.verdict = _verdict(primary, facts.metrics, facts.baselines["metrics"], boot)
    facts.timings["bootstrap_s"] = time.perf_counter() - clock

    if model.task == "regression":
        facts.regression = {"actual": y.astype(np.float64), "predicted": output.astype(np.float64)}
    else:
        facts.classification = _classification_facts(model, y, output)
    facts.timings["curves_s"] = time.perf_counter() - clock

    sample = np.arange(len(eval_df))
    if len(sample) > explain.MAX_ROWS:
        sample = np.sort(np.random.default_rng(model.config.seed).choice(len(sample), explain.MAX_ROWS, replace=False))
    explain_df = eval_df.iloc[sample].reset_index(drop=True)
    facts.importance = explain.permutation_importance(model, explain_df, y[sample], seed=model.config.seed)
    facts.importance["n_rows"] = len(sample)
    order = np.argsort(-facts.importance["importances"].mean(1), kind="stable")
    top = [facts.importance["features"][i] for i in order[:4]]
    facts.dependence = explain.partial_dependence(model, explain_df, top, seed=model.config.seed)
    facts.timings["explain_s"] = time.perf_counter() - clock
    return facts


def _confusion_facts(counts: np.ndarray) -> dict[str, Any]:
    totals = counts.sum(1, keepdims=True)
    return {"confusion": counts, "confusion_normalised": np.divide(counts, totals, out=np.zeros(counts.shape),
                                                                   where=totals > 0)}


def _classification_facts(model: Model, y: np.ndarray, proba: np.ndarray) -> dict[str, Any]:
    n_classes = len(model.classes)
    counts, normalised = curves.confusion(y, proba.argmax(1), n_classes)
    present = np.bincount(y, minlength=n_classes)
    if n_classes == 2:
        shown = [1]
    else:
        shown = [int(c) for c in np.argsort(-present, kind="stable")[:MAX_CURVES] if present[c] and present[c] < len(y)]
    roc, pr = [], []
    for c in shown:
        positive = y == c
        if positive.all() or not positive.any():
            continue
        fpr, tpr, _ = curves.roc(positive, proba[:, c])
        precision, recall, _ = curves.precision_recall(positive, proba[:, c])
        roc.append({"class": model.classes[c], "fpr": fpr, "tpr": tpr, "auc": float(np.trapezoid(tpr, fpr))})
        pr.append({"class": model.classes[c], "precision": precision, "recall": recall,
                   "ap": float(-np.sum(np.diff(recall) * precision[:-1])), "prevalence": float(positive.mean())})
    if n_classes == 2:
        positive, prob, what = y == 1, proba[:, 1], f"probability of {model.classes[1]!r}"
    else:
        positive, prob, what = proba.argmax(1) == y, proba.max(1), "top class's probability (correct or not)"
    observed, predicted, rows = curves.calibration(positive, prob)
    facts = {"confusion": counts, "confusion_normalised": normalised, "roc": roc, "pr": pr,
             "n_classes_shown": len(shown), "calibration": {"observed": observed, "predicted": predicted,
                                                            "rows": rows, "what": what},
             "brier": curves.brier(y, proba), "ece": curves.expected_calibration_error(positive, prob)}
    if n_classes == 2:
        facts["thresholds"] = curves.threshold_table(y == 1, proba[:, 1], np.round(np.linspace(0.01, 0.99, 99), 2))
    return facts


def _data_checks(model: Model, df: pd.DataFrame) -> list[dict[str, Any]]:
    """Per feature: the share of missing values in ``df`` and in training, and for categories the share of present
    values that training never saw (which the model treats as unknown)."""
    vocabs = dict(model.preprocessor.vocabs)
    stored = (model.training_summary or {}).get("columns", {})
    out = []
    for col in model.schema.features:
        values = column_values(df[col.name], col.kind)
        missing = pd.isna(values)
        row: dict[str, Any] = {"column": col.name, "kind": col.kind,
                               "missing": float(missing.mean()) if len(values) else 0.0, "train_missing": None,
                               "unseen": None}
        if col.name in stored:
            total = sum(stored[col.name]["counts"]) + stored[col.name].get("other", 0) + stored[col.name]["missing"]
            row["train_missing"] = stored[col.name]["missing"] / total if total else 0.0
        if col.name in vocabs:
            _, unseen = _category_codes(df[col.name], vocabs[col.name])
            n_present = int((~missing).sum())
            row["unseen"] = float(unseen.sum() / n_present) if n_present else 0.0
        out.append(row)
    return out


def _verdict(primary: str, network: dict[str, Any], baselines: dict[str, dict[str, Any]],
             boot: dict[str, dict[str, np.ndarray]]) -> str:
    """One line: the network against the best baseline on the primary metric, with the paired bootstrap interval
    of their difference."""
    higher = _HIGHER_IS_BETTER[primary]
    best = max(baselines, key=lambda name: baselines[name][primary] * (1 if higher else -1))
    sign = 1.0 if higher else -1.0
    gain = sign * (network[primary] - baselines[best][primary])
    interval = curves.interval(sign * (boot["network"][primary] - boot[best][primary]))
    words = f"{primary} {network[primary]:.4f} against {baselines[best][primary]:.4f} for {best}, the best baseline"
    spread = "" if interval is None else f" (the network's advantage: {gain:+.4f}, 95% interval {interval[0]:+.4f} to {interval[1]:+.4f})"
    if interval is not None and interval[0] > 0:
        return f"Deep learning helped: the network beats every baseline, {words}{spread}."
    if interval is not None and interval[1] < 0:
        return f"Deep learning did not help: {best} beats the network, {words}{spread}."
    return f"No clear winner: the network and {best} are level within the noise of these rows, {words}{spread}."


def network_layers(model: Model) -> list[dict[str, Any]]:
    """The network as a list of layers, input first: name, detail and parameter count, from the module itself."""
    net, spec = model.network, model.spec
    bag = spec["kind"] == "bag"
    if bag:  # its fold models share one architecture: the first one stands for them all
        net, spec = net.members[0], spec["members"][0]
    n_num, cards = spec["n_num"], list(spec["cat_cardinalities"])
    inputs = {"name": "inputs", "params": 0,
              "detail": f"{n_num} numeric input(s) (with missing indicators), {len(cards)} categorical column(s) "
                        f"with {sum(cards)} slots"}
    layers = [inputs]
    count = lambda module: sum(p.numel() for p in module.parameters())  # noqa: E731
    if spec["kind"] == "tabm":
        k, d_block = spec["k"], spec["d_block"]
        if getattr(net, "num_embeddings", None) is not None:
            bins = spec["n_bins_per_feature"] or []
            layers.append({"name": "piecewise-linear embeddings", "params": count(net.num_embeddings),
                           "detail": f"each numeric input → {spec['d_embedding']} values, from up to "
                                     f"{max(bins, default=0)} quantile bins"})
        if cards:
            layers.append({"name": "one-hot categories", "params": 0, "detail": f"{sum(cards)} slots, one per "
                           "category and one per column for missing or unseen"})
        layers.append({"name": f"member scaling (k = {k})", "params": int(net.scaling.numel()),
                       "detail": f"each of the {k} ensemble members scales the {net.scaling.shape[1]} inputs its own way"})
        linears = [m for m in net.blocks if isinstance(m, torch.nn.Linear)]
        for i, linear in enumerate(linears, 1):
            layers.append({"name": f"block {i}", "params": count(linear),
                           "detail": f"Linear {linear.in_features} → {linear.out_features}, ReLU, dropout "
                                     f"{spec['dropout']:g} (shared by the members)"})
        layers.append({"name": f"{k} heads", "params": int(net.head_weight.numel() + net.head_bias.numel()),
                       "detail": f"one Linear {d_block} → {spec['n_out']} per member"})
    else:
        for i, layer in enumerate(net.net):
            if isinstance(layer, torch.nn.Linear):
                layers.append({"name": f"Linear {i // 2 + 1}" if i < len(net.net) - 1 else "output layer",
                               "params": count(layer), "detail": f"{layer.in_features} → {layer.out_features}"})
            else:
                layers[-1]["detail"] += f", {type(layer).__name__}"
    what = "values" if model.task == "regression" else "softmax probabilities"
    layers.append({"name": "output", "params": 0,
                   "detail": f"mean of the members' {what}" if spec["kind"] == "tabm" else what})
    if bag:
        n = len(model.spec["members"])
        layers.append({"name": f"{n} fold models", "params": sum(p.numel() for p in model.network.parameters()),
                       "detail": f"the layers above, trained {n} times on different folds; the mean of their {what}"})
    return layers
