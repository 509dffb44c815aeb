"""The report page: one HTML document with its style and figures inline, no script and no address to fetch."""

from __future__ import annotations

import html
from typing import Any

import numpy as np

from .. import __version__
from ..metrics import PRIMARY
from . import plots
from .collect import Facts, network_layers

__all__ = ["render"]

_CSS = """
body{font:14px/1.45 system-ui,-apple-system,"Segoe UI",Roboto,"DejaVu Sans",sans-serif;color:#1d2733;margin:0;
background:#f5f7fa}
main{max-width:1100px;margin:0 auto;padding:24px}
h1{font-size:22px;margin:0 0 4px}h2{font-size:18px;margin:28px 0 8px;border-bottom:1px solid #d5dce4;
padding-bottom:4px}h3{font-size:15px;margin:18px 0 6px}
nav{font-size:13px;margin:8px 0 16px}nav a{margin-right:12px;color:#1f5fa8;text-decoration:none}
.card{background:#fff;border:1px solid #d5dce4;border-radius:8px;padding:16px 20px;margin:12px 0}
.grid{display:grid;grid-template-columns:repeat(auto-fit,minmax(230px,1fr));gap:6px 24px}
.kv b{display:inline-block;min-width:110px;color:#566473;font-weight:600}
.verdict{font-size:16px;font-weight:600;padding:10px 14px;border-radius:6px;background:#e7f0fa;margin:12px 0}
.verdict.worse{background:#fde8e0}.verdict.level{background:#f1f3f5}
table{border-collapse:collapse;margin:6px 0;font-size:13px}
th,td{padding:3px 10px;border-bottom:1px solid #e3e8ee;text-align:left;vertical-align:top}
td.n,th.n{text-align:right;font-variant-numeric:tabular-nums}
.note{color:#566473;font-size:13px}.missing{color:#8a5a00;background:#fff8e6;padding:8px 12px;border-radius:6px}
.warn{color:#b02a00;font-weight:600}
svg.plot{max-width:100%;height:auto;display:block;margin:8px 0}
code{background:#eef1f4;padding:0 4px;border-radius:3px}
footer{color:#566473;font-size:12px;margin-top:32px}
"""


def _e(value: Any) -> str:
    return html.escape(str(value), quote=False).replace('"', "&quot;")  # ' stays readable in the source


def _num(value: Any, digits: int = 4) -> str:
    if value is None:
        return "n/a"
    if isinstance(value, (int, np.integer)):
        return f"{int(value):,}"
    return f"{float(value):.{digits}f}"


def _table(header: list[str], rows: list[list[Any]], numeric: set[int] = frozenset()) -> str:
    head = "".join(f'<th class="n">{_e(h)}</th>' if i in numeric else f"<th>{_e(h)}</th>" for i, h in enumerate(header))
    body = "".join("<tr>" + "".join(f'<td class="n">{c}</td>' if i in numeric else f"<td>{c}</td>"
                                    for i, c in enumerate(row)) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def _missing(facts: Facts, section: str) -> str:
    return f'<p class="missing">Not shown: {_e(facts.missing[section])}.</p>' if section in facts.missing else ""


_METRIC_ORDER = ["accuracy", "balanced_accuracy", "log_loss", "roc_auc", "f1_macro", "rmse", "mae", "r2"]


def _summary(facts: Facts) -> str:
    model = facts.model
    fp, history = model.data_fingerprint, model.history
    classes = f" ({', '.join(_e(c) for c in model.classes)})" if model.classes else ""
    seconds = getattr(model, "train_seconds", None)
    trained = (f"{seconds:.1f} s" if seconds is not None else
               "not recorded (kept out of the model file: one seed, one file)")
    items = [("task", _e(model.task) + classes), ("target", f"<code>{_e(model.schema.target)}</code>"),
             ("training data", f"{_e(fp.get('name') or fp.get('kind', '?'))}, {_num(fp.get('rows'))} rows × "
                               f"{_num(fp.get('columns'))} columns"),
             ("SHA-256", f"<code>{_e(str(fp.get('sha256', ''))[:16])}…</code>"),
             ("training time", _e(trained)), ("device", _e(history.get("device", "not recorded"))),
             ("epochs", f"{len(history.get('epochs', []))}, best {_e(history.get('best_epoch'))} "
                        f"({_e(history.get('stop_reason', ''))})"),
             ("training step", _e(history.get("path") or "not recorded"))]
    parts = ['<div class="card"><div class="grid kv">' + "".join(f"<div><b>{k}</b> {v}</div>" for k, v in items)
             + "</div>"]
    if facts.metrics is not None:
        parts.append(f'<p class="note">Evaluated on {_num(facts.n_eval)} rows: {_e(facts.evaluated_on)} '
                     f"(DATA: {_e(facts.source)}, {_num(facts.rows_read)} rows). Intervals: 95% bootstrap, "
                     f"resampling those rows.</p>")
        rows = [[_e(m), _num(facts.metrics[m]), _interval(facts.intervals.get(m))]
                for m in _METRIC_ORDER if m in facts.metrics]
        parts.append(_table(["test metric", "value", "95% interval"], rows, {1, 2}))
    else:
        recorded = model.metrics.get("test") or model.metrics.get("valid")
        if recorded:
            which = "test" if "test" in model.metrics else "validation"
            rows = [[_e(m), _num(recorded[m])] for m in _METRIC_ORDER if m in recorded]
            parts.append(f'<p class="note">The {which} metrics recorded in the model file ({_num(recorded.get("n"))} '
                         "rows); intervals need DATA.</p>" + _table([f"{which} metric", "value"], rows, {1}))
    if facts.verdict is not None:
        parts.append(_verdict(facts.verdict))
    else:
        parts.append(_missing(facts, "baselines"))
    parts.append("</div>")
    return "".join(parts)


def _verdict(verdict: str) -> str:
    kind = "better" if verdict.startswith("Deep learning helped") else \
        "worse" if verdict.startswith("Deep learning did not") else "level"
    return f'<p class="verdict {kind}">{_e(verdict)}</p>'


def _interval(interval: tuple[float, float] | None) -> str:
    return "n/a" if interval is None else f"{interval[0]:.4f} – {interval[1]:.4f}"


def _preprocessing(facts: Facts) -> str:
    model = facts.model
    pre = model.preprocessor
    inputs = {name: [] for name in model.schema.feature_names()}
    for j, (col, part) in enumerate(pre.numeric_inputs):
        inputs[col].append((j, part))
    indicated = {pre.numeric_inputs[i][0] for i in pre.indicators}
    vocabs = dict(pre.vocabs)
    scaling = {"quantile": "quantile-transformed to a normal shape", "standard": "standardised",
               "none": "not scaled"}[pre.scaling]
    rows = []
    for col in model.schema.features:
        if col.name in vocabs:
            what = f"{len(vocabs[col.name]):,} categories learned, coded 1..{len(vocabs[col.name])}; missing and " \
                   "unseen values share code 0"
        else:
            j = inputs[col.name][0][0]
            parts = [p for _, p in inputs[col.name] if p is not None]
            what = (f"expanded into {', '.join(parts)}; " if parts else "") + \
                   f"missing values → training median ({pre.median[j]:.4g}){' plus a missing indicator' if col.name in indicated else ''}; {scaling}"
        rows.append([f"<code>{_e(col.name)}</code>", _e(col.kind), _e(what)])
    for name, reason in model.schema.dropped:
        rows.append([f"<code>{_e(name)}</code>", "dropped", _e(reason)])
    return _table(["column", "kind", "preprocessing (learned on the training rows)"], rows)


def _model_section(facts: Facts) -> str:
    model = facts.model
    layers = network_layers(model)
    total = sum(p.numel() for p in model.network.parameters())
    config = model.config.to_dict()
    config_rows = [[f"<code>{_e(k)}</code>", _e(v)] for k, v in config.items()]
    versions = ", ".join(f"{_e(k)} {_e(v)}" for k, v in model.versions.items())
    return (f"<h3>schema and preprocessing</h3>{_preprocessing(facts)}"
            f"<h3>network: {_e(model.spec['kind'])}, {total:,} parameters</h3>{plots.network_diagram(layers)}"
            f"<h3>resolved config (seed {_e(model.config.seed)})</h3>"
            f"<details><summary>{len(config)} options</summary>{_table(['option', 'value'], config_rows)}</details>"
            f'<p class="note">Trained with {versions}.</p>')


def _classification(facts: Facts) -> str:
    c = facts.classification
    classes = [str(x) for x in facts.model.classes]
    parts = ["<h3>confusion matrix</h3>", plots.confusion(c["confusion"], c["confusion_normalised"], classes)]
    if c.get("confusion_only"):
        return "".join(parts) + '<p class="note">From the test metrics the model file records; the curves need DATA.</p>'
    binary = len(classes) == 2
    shown = "" if binary or c["n_classes_shown"] == len(classes) else \
        f" (the {c['n_classes_shown']} most frequent of {len(classes)} classes)"
    if c["roc"]:
        parts += [f"<h3>ROC and precision-recall{' (one-vs-rest' + shown + ')' if not binary else ''}</h3>",
                  plots.roc_pr(c["roc"], c["pr"], binary=binary)]
    else:
        parts.append('<p class="missing">Not shown: ROC and precision-recall curves need rows of more than one '
                     "class.</p>")
    parts += ["<h3>calibration</h3>",
              plots.calibration(**{k: c["calibration"][k] for k in ("observed", "predicted", "rows", "what")},
                                brier=c["brier"], ece=c["ece"]),
              f'<p class="note">Brier score {c["brier"]:.4f}; expected calibration error {c["ece"]:.4f} '
              f"(10 equal-width bins of the {_e(c['calibration']['what'])}).</p>"]
    if binary:
        parts += ["<h3>threshold against metric</h3>", plots.thresholds(c["thresholds"], positive=classes[1])]
    return "".join(parts)


def _importance(facts: Facts) -> str:
    imp = facts.importance
    metric = "RMSE" if facts.model.task == "regression" else "accuracy"
    parts = [f'<p class="note">Each column shuffled {imp["importances"].shape[1]} times on {imp["n_rows"]:,} '
             f"evaluation rows; the box shows the spread over those repeats (baseline {metric}: "
             f"{abs(imp['baseline']):.4f}).</p>",
             plots.importance(imp["features"], imp["importances"], metric=metric)]
    if facts.dependence:
        parts += ["<h3>partial dependence of the top columns</h3>",
                  plots.dependence(facts.dependence, task=facts.model.task, classes=[str(c) for c in facts.model.classes]),
                  '<p class="note">Mean prediction over up to 500 evaluation rows with the column set to each value.</p>']
    return "".join(parts)


def _psi_words(psi: float) -> str:
    if psi < 0.1:
        return "stable"
    return '<span class="warn">moderate shift</span>' if psi < 0.25 else '<span class="warn">major shift</span>'


def _checks(facts: Facts) -> str:
    drift = {d["column"]: d for d in facts.drift or []}
    rows = []
    for check in facts.checks:
        d = drift.get(check["column"])
        rows.append([f"<code>{_e(check['column'])}</code>", _e(check["kind"]), f"{check['missing']:.1%}",
                     "n/a" if check["train_missing"] is None else f"{check['train_missing']:.1%}",
                     "—" if check["unseen"] is None else f"{check['unseen']:.1%}",
                     "n/a" if d is None else f"{d['psi']:.3f}", "" if d is None else _psi_words(d["psi"])])
    note = (f'<p class="note">On every row of {_e(facts.source)} ({facts.rows_read:,}). Drift: the population '
            "stability index of DATA's values against the training rows', over ten quantile bins of the training "
            "numbers (or its 50 most frequent categories), missing values as a bin; under 0.1 reads as stable, "
            "over 0.25 as a major shift.</p>")
    return note + _missing(facts, "drift") + _table(
        ["column", "kind", "missing", "missing in training", "unseen categories", "PSI", "drift"], rows,
        {2, 3, 4, 5})


def _baselines(facts: Facts) -> str:
    b = facts.baselines
    primary = PRIMARY[facts.model.task]
    names = ["network", *b["metrics"]]
    metrics = {"network": facts.metrics, **b["metrics"]}
    shown = [m for m in _METRIC_ORDER if m in facts.metrics]
    rows = [[_e(name), *[_num(metrics[name][m]) for m in shown]] for name in names]
    intervals = [facts.intervals.get(primary), *[b["intervals"][n] for n in b["metrics"]]]
    skipped = "".join(f'<p class="note">{_e(name)}: {_e(why)}.</p>' for name, why in b["skipped"].items())
    return (_verdict(facts.verdict) +
            f'<p class="note">The baselines learned from the {b["n_learn"]:,} rows the network learned from '
            "(its training and validation rows), on the model's own preprocessing of them, and are scored on the "
            f"same {facts.n_eval:,} evaluation rows; the interval of a difference comes from the same resamples.</p>"
            + plots.baselines(names, [metrics[n][primary] for n in names], intervals, metric=primary)
            + _table(["model", *shown], rows, set(range(1, len(shown) + 1))) + skipped)


def render(facts: Facts) -> str:
    """The whole page for ``facts``."""
    model = facts.model
    sections: list[tuple[str, str, str]] = [
        ("summary", "Summary", _summary(facts)),
        ("model", "The model", _model_section(facts)),
        ("learning", "Learning curves", plots.learning_curves(model.history, task=model.task)
         if model.history.get("epochs") else '<p class="missing">Not shown: the model file records no epochs.</p>'),
    ]
    if model.task == "regression":
        body = plots.regression(**facts.regression) if facts.regression else _missing(facts, "evaluation")
        sections.append(("regression", "Regression", body))
    else:
        body = _classification(facts) if facts.classification else ""
        if facts.classification is None or facts.classification.get("confusion_only"):
            body += _missing(facts, "evaluation")
        sections.append(("classification", "Classification", body))
    sections.append(("importance", "Permutation importance and partial dependence",
                     _importance(facts) if facts.importance else _missing(facts, "importance")))
    sections.append(("checks", "Data checks", _checks(facts) if facts.checks is not None else _missing(facts, "checks")))
    sections.append(("baselines", "Baselines on the same split",
                     _baselines(facts) if facts.baselines else _missing(facts, "baselines")))
    title = f"neuraltab report: {model.task} model of {model.schema.target!r}"
    nav = "".join(f'<a href="#{key}">{_e(name)}</a>' for key, name, _ in sections)
    content = "".join(f'<section id="{key}"><h2>{_e(name)}</h2>{body}</section>' for key, name, body in sections)
    import matplotlib

    return (f'<!DOCTYPE html>\n<html lang="en"><head><meta charset="utf-8">'
            f'<meta name="viewport" content="width=device-width, initial-scale=1">'
            f"<title>{_e(title)}</title><style>{_CSS}</style></head><body><main>"
            f"<h1>{_e(title)}</h1><nav>{nav}</nav>{content}"
            f"<footer>Written by neuraltab {_e(__version__)} with matplotlib {_e(matplotlib.__version__)}. One file: "
            "no scripts, nothing fetched, no data rows.</footer></main></body></html>\n")
