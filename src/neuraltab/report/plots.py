"""The report's figures: matplotlib drawn straight to SVG text, the same bytes for the same numbers.

No pyplot and no backend switch: each figure is a ``matplotlib.figure.Figure`` saved by the SVG canvas, under an
``rc_context`` (the caller's rcParams stay as they were). Text stays text (``svg.fonttype: none``: smaller, and no
glyph definitions whose ids would repeat across figures); each figure gets its own ``svg.hashsalt`` so that the ids
matplotlib derives from it are unique in the page and the same in every run; the date is left out.
"""

from __future__ import annotations

import contextlib
import io
import re
from typing import Any, Iterator

import numpy as np

__all__ = ["learning_curves", "network_diagram", "confusion", "roc_pr", "calibration", "thresholds",
           "regression", "importance", "dependence", "baselines"]

_STYLE = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8, "axes.spines.top": False,
          "axes.spines.right": False, "svg.fonttype": "none", "font.family": "sans-serif",
          "font.sans-serif": ["DejaVu Sans", "Helvetica", "Arial"], "axes.grid": True, "grid.alpha": 0.3,
          "figure.dpi": 100, "image.interpolation": "nearest",
          "text.parse_math": False}  # a column named "price $" is text, not mathtext
NETWORK, BASELINE, BEST = "#1f5fa8", "#9aa5b1", "#d9480f"
_PALETTE = ["#1f5fa8", "#d9480f", "#2b8a3e", "#862e9c", "#e67700", "#0b7285", "#c2255c", "#5c940d", "#364fc7",
            "#a61e4d"]


@contextlib.contextmanager
def _figure(name: str, width: float, height: float, out: list[str], **subplots: Any) -> Iterator[Any]:
    """A figure (and its axes) that is appended to ``out`` as inline SVG text once the block ends."""
    import matplotlib
    from matplotlib.backends.backend_svg import FigureCanvasSVG
    from matplotlib.figure import Figure

    with matplotlib.rc_context({**_STYLE, "svg.hashsalt": f"neuraltab-report-{name}"}):
        fig = Figure(figsize=(width, height), layout="constrained")
        FigureCanvasSVG(fig)
        axes = fig.subplots(**subplots) if subplots else fig.subplots()
        yield fig, axes
        buffer = io.StringIO()
        fig.savefig(buffer, format="svg", metadata={"Date": None, "Creator": None, "Format": None, "Type": None})
    out.append(_inline(buffer.getvalue(), name))


def _inline(svg: str, name: str) -> str:
    """The ``<svg>`` element alone, for an HTML page: no XML prolog, DOCTYPE, metadata or namespace declarations
    (the HTML parser knows SVG), so the page names no address at all."""
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"<metadata>.*?</metadata>\s*", "", svg, flags=re.DOTALL)
    svg = re.sub(r'\s+xmlns(:xlink)?="[^"]*"', "", svg)
    # matplotlib names groups axes_1, line2d_1, ... in every figure: prefix each id (and each reference to it) with
    # the figure's name, which is unique in the page
    ids = set(re.findall(r' id="([^"]+)"', svg))
    prefix = re.sub(r"\W+", "-", name)
    svg = re.sub(r' id="([^"]+)"', lambda m: f' id="{prefix}-{m.group(1)}"', svg)
    svg = re.sub(r"#([\w.-]+)", lambda m: f"#{prefix}-{m.group(1)}" if m.group(1) in ids else m.group(0), svg)
    return svg.replace("<svg", f'<svg role="img" aria-label="{name}" class="plot"', 1)


def learning_curves(history: dict[str, Any], *, task: str) -> str:
    """Train and validation loss, and the validation metric, per epoch; the best epoch marked."""
    out: list[str] = []
    epochs = history.get("epochs", [])
    x = [e["epoch"] for e in epochs]
    valid = [e for e in epochs if e.get("valid_loss") is not None]
    with _figure("learning curves", 9, 3, out, ncols=2) as (fig, (loss, score)):
        loss.plot(x, [e["train_loss"] for e in epochs], color=NETWORK, label="train loss")
        if valid:
            loss.plot([e["epoch"] for e in valid], [e["valid_loss"] for e in valid], color=BEST, label="validation loss")
            values = [abs(e["valid_score"]) for e in valid]
            score.plot([e["epoch"] for e in valid], values, color=BEST)
            score.set_ylabel("validation RMSE / std(y)" if task == "regression" else "validation accuracy")
        else:
            score.text(0.5, 0.5, "no validation rows: no validation metric", ha="center", va="center",
                       transform=score.transAxes)
        best = history.get("best_epoch")
        for ax in (loss, score):
            if best and valid:
                ax.axvline(best, color="#555", linestyle="--", linewidth=1, label=f"best epoch ({best})")
            ax.set_xlabel("epoch")
        loss.set_ylabel("loss (standardised MSE)" if task == "regression" else "loss (cross-entropy)")
        loss.legend(loc="upper right")
        if best and valid:
            score.legend(loc="lower right" if task != "regression" else "upper right")
    return out[0]


def network_diagram(layers: list[dict[str, Any]]) -> str:
    """The network as a stack of boxes, input at the top, each with its description and parameter count."""
    out: list[str] = []
    height = 0.62 * len(layers)
    with _figure("network diagram", 8, height, out) as (fig, ax):
        ax.set_xlim(0, 1)
        ax.set_ylim(-len(layers) + 0.5, 0.5)
        ax.axis("off")
        for i, layer in enumerate(layers):
            y = -i
            color = "#e7f0fa" if layer.get("params") else "#f4f4f4"
            ax.add_patch(_box(0.01, y - 0.36, 0.78, 0.72, color))
            ax.text(0.03, y + 0.14, layer["name"], fontsize=9, fontweight="bold", va="center")
            ax.text(0.03, y - 0.16, layer["detail"], fontsize=8, va="center", color="#333")
            if layer.get("params"):
                ax.text(0.99, y, f"{layer['params']:,} parameters", fontsize=8, ha="right", va="center")
            if i < len(layers) - 1:
                ax.annotate("", xy=(0.4, y - 0.64), xytext=(0.4, y - 0.36),
                            arrowprops={"arrowstyle": "->", "color": "#666", "lw": 1})
    return out[0]


def _box(x: float, y: float, w: float, h: float, color: str) -> Any:
    from matplotlib.patches import FancyBboxPatch

    return FancyBboxPatch((x, y), w, h, boxstyle="round,pad=0.005,rounding_size=0.05", facecolor=color,
                          edgecolor="#7a8ea6", linewidth=0.8)


def confusion(counts: np.ndarray, normalised: np.ndarray, classes: list[str]) -> str:
    """The confusion matrix as counts and with each true class's row normalised."""
    out: list[str] = []
    n = len(classes)
    size = min(3.2 + 0.25 * n, 8)
    annotate = n <= 12
    with _figure("confusion matrix", 2 * size + 1, size, out, ncols=2) as (fig, axes):
        for ax, matrix, title, fmt in ((axes[0], counts, "counts", "{:,.0f}"),
                                       (axes[1], normalised, "share of each true class", "{:.2f}")):
            ax.imshow(matrix / max(matrix.max(), 1), cmap="Blues", vmin=0, vmax=1)
            ax.grid(False)
            ax.set_title(title)
            ax.set_xticks(range(n), classes, rotation=45 if n > 4 else 0, ha="right" if n > 4 else "center")
            ax.set_yticks(range(n), classes)
            ax.set_xlabel("predicted")
            ax.set_ylabel("true")
            if annotate:
                for i in range(n):
                    for j in range(n):
                        ax.text(j, i, fmt.format(matrix[i, j]), ha="center", va="center", fontsize=8,
                                color="white" if matrix[i, j] / max(matrix.max(), 1) > 0.6 else "black")
    return out[0]


def _thin(*arrays: np.ndarray, limit: int = 600) -> tuple[np.ndarray, ...]:
    """Curves with at most ``limit`` points (evenly chosen, the ends kept): the plot looks the same, the file is
    smaller."""
    n = len(arrays[0])
    if n <= limit:
        return arrays
    keep = np.unique(np.r_[np.linspace(0, n - 1, limit).astype(int), n - 1])
    return tuple(a[keep] for a in arrays)


def roc_pr(roc: list[dict[str, Any]], pr: list[dict[str, Any]], *, binary: bool) -> str:
    """ROC and precision-recall curves (one per class, one-vs-rest, when there are more than two)."""
    out: list[str] = []
    with _figure("ROC and precision-recall curves", 9, 3.8, out, ncols=2) as (fig, (ax_roc, ax_pr)):
        for i, (r, p) in enumerate(zip(roc, pr)):
            color = NETWORK if binary else _PALETTE[i % len(_PALETTE)]
            label = f"AUC {r['auc']:.3f}" if binary else f"{r['class']} (AUC {r['auc']:.3f})"
            ax_roc.plot(*_thin(r["fpr"], r["tpr"]), color=color, label=label, linewidth=1.4)
            label = f"AP {p['ap']:.3f}" if binary else f"{p['class']} (AP {p['ap']:.3f})"
            ax_pr.plot(*_thin(p["recall"], p["precision"]), color=color, label=label, linewidth=1.4,
                       drawstyle="steps-post")
            if binary:
                ax_pr.axhline(p["prevalence"], color="#999", linestyle=":", linewidth=1, label="chance")
        ax_roc.plot([0, 1], [0, 1], color="#999", linestyle=":", linewidth=1)
        ax_roc.set(xlabel="false positive rate", ylabel="true positive rate", title="ROC", xlim=(0, 1), ylim=(0, 1.01))
        ax_pr.set(xlabel="recall", ylabel="precision", title="precision-recall", xlim=(0, 1), ylim=(0, 1.01))
        ax_roc.legend(loc="lower right")
        ax_pr.legend(loc="lower left")
    return out[0]


def calibration(observed: np.ndarray, predicted: np.ndarray, rows: np.ndarray, *, what: str, brier: float,
                ece: float) -> str:
    """The reliability diagram, with the rows per bin beneath it."""
    out: list[str] = []
    with _figure("calibration", 4.8, 4.6, out, nrows=2, sharex=True,
                 gridspec_kw={"height_ratios": [3, 1]}) as (fig, (ax, counts)):
        ax.plot([0, 1], [0, 1], color="#999", linestyle=":", linewidth=1, label="perfectly calibrated")
        ax.plot(predicted, observed, marker="o", color=NETWORK, label="network")
        ax.set(ylabel="observed frequency", xlim=(0, 1), ylim=(0, 1),
               title=f"Brier score {brier:.4f} · ECE {ece:.4f}")
        ax.legend(loc="upper left")
        counts.bar(predicted, rows, width=0.06, color=NETWORK)
        counts.set(xlabel=f"predicted: {what}", ylabel="rows")
    return out[0]


def thresholds(table: dict[str, np.ndarray], *, positive: str) -> str:
    """Precision, recall, F1 and accuracy against the decision threshold (binary)."""
    out: list[str] = []
    with _figure("threshold against metric", 6, 3.4, out) as (fig, ax):
        t = table["threshold"]
        for i, metric in enumerate(("precision", "recall", "f1", "accuracy")):
            ax.plot(t, table[metric], color=_PALETTE[i], label=metric)
        best = int(np.argmax(table["f1"]))
        ax.axvline(0.5, color="#555", linestyle="--", linewidth=1, label="0.5 (what predict uses)")
        ax.axvline(t[best], color=BEST, linestyle=":", linewidth=1.2, label=f"best F1 at {t[best]:.2f}")
        ax.set(xlabel=f"threshold on the probability of {positive!r}", ylabel="metric", xlim=(0, 1), ylim=(0, 1.01))
        ax.legend(loc="lower center", ncols=3)
    return out[0]


def _density(ax: Any, x: np.ndarray, y: np.ndarray) -> None:
    """A 2-D histogram drawn as one image: thousands of points in a few kilobytes, and no single row shown."""
    from matplotlib.colors import LogNorm

    counts, xe, ye = np.histogram2d(x, y, bins=int(np.clip(np.sqrt(len(x)), 10, 60)))
    masked = np.ma.masked_equal(counts.T, 0)
    ax.imshow(masked, origin="lower", aspect="auto", extent=(xe[0], xe[-1], ye[0], ye[-1]), cmap="viridis",
              norm=LogNorm(vmin=1, vmax=max(counts.max(), 1)))
    ax.grid(False)


def regression(actual: np.ndarray, predicted: np.ndarray) -> str:
    """Predicted against actual, residuals against predicted, and the residuals' distribution."""
    out: list[str] = []
    residual = actual - predicted
    with _figure("regression diagnostics", 11, 3.4, out, ncols=3) as (fig, (a, b, c)):
        _density(a, actual, predicted)
        low, high = float(min(actual.min(), predicted.min())), float(max(actual.max(), predicted.max()))
        a.plot([low, high], [low, high], color=BEST, linewidth=1, label="predicted = actual")
        a.set(xlabel="actual", ylabel="predicted", title="predicted against actual")
        a.legend(loc="upper left")
        _density(b, predicted, residual)
        b.axhline(0, color=BEST, linewidth=1)
        b.set(xlabel="predicted", ylabel="residual (actual − predicted)", title="residuals against predicted")
        c.hist(residual, bins=int(np.clip(np.sqrt(len(residual)), 10, 50)), color=NETWORK, histtype="stepfilled")
        c.axvline(0, color=BEST, linewidth=1)
        c.set(xlabel="residual", ylabel="rows", title="residual distribution")
    return out[0]


def importance(features: list[str], importances: np.ndarray, *, metric: str, limit: int = 20) -> str:
    """The drop in the metric when each column is shuffled, one box per column over the repeats, largest first."""
    out: list[str] = []
    order = np.argsort(-importances.mean(1), kind="stable")[:limit][::-1]
    with _figure("permutation importance", 7, 0.35 * len(order) + 1.0, out) as (fig, ax):
        ax.boxplot([importances[i] for i in order], orientation="horizontal", widths=0.6, patch_artist=True,
                   boxprops={"facecolor": "#e7f0fa", "edgecolor": NETWORK}, medianprops={"color": BEST},
                   whiskerprops={"color": NETWORK}, capprops={"color": NETWORK}, flierprops={"markersize": 3})
        ax.set_yticks(range(1, len(order) + 1), [features[i] for i in order])
        ax.axvline(0, color="#555", linewidth=0.8)
        ax.set_xlabel(f"drop in {metric} when the column is shuffled")
    return out[0]


def dependence(curves: list[dict[str, Any]], *, task: str, classes: list[str]) -> str:
    """Partial dependence of the output on each top column: lines for numbers, bars for categories."""
    out: list[str] = []
    n = len(curves)
    with _figure("partial dependence", 3.2 * n, 3, out, ncols=n, squeeze=False) as (fig, axes):
        for ax, curve in zip(axes[0], curves):
            mean = curve["mean"]
            if task == "regression":
                series, labels = [mean], ["prediction"]
            elif mean.shape[1] == 2:
                series, labels = [mean[:, 1]], [f"P({classes[1]})"]
            else:
                series, labels = [mean[:, c] for c in range(min(mean.shape[1], 6))], [f"P({c})" for c in classes[:6]]
            if curve["kind"] == "numeric":
                for i, (values, label) in enumerate(zip(series, labels)):
                    ax.plot(curve["grid"], values, color=_PALETTE[i], label=label, marker=".")
            else:
                positions = np.arange(len(curve["grid"]))  # points, not bars: a bar from 0 hides small effects
                for i, (values, label) in enumerate(zip(series, labels)):
                    ax.plot(positions, values, color=_PALETTE[i], label=label, marker="o", linestyle="none")
                ax.set_xticks(positions, [str(g) for g in curve["grid"]], rotation=45, ha="right")
                ax.margins(x=0.15)
            ax.set(xlabel=curve["feature"], title=curve["feature"])
            if len(series) > 1 or ax is axes[0][0]:
                ax.legend(loc="best")
        axes[0][0].set_ylabel("mean prediction" if task == "regression" else "mean probability")
    return out[0]


def baselines(names: list[str], values: list[float], intervals: list[tuple[float, float] | None], *,
              metric: str) -> str:
    """The primary metric of the network and each baseline, with 95% bootstrap intervals."""
    out: list[str] = []
    with _figure("baselines", 6, 0.45 * len(names) + 0.9, out) as (fig, ax):
        y = np.arange(len(names))[::-1]
        colors = [NETWORK if name == "network" else BASELINE for name in names]
        ax.barh(y, values, color=colors, height=0.6)
        for yi, value, interval in zip(y, values, intervals):
            if interval is not None:
                ax.errorbar(value, yi, xerr=[[value - interval[0]], [interval[1] - value]], color="#222",
                            capsize=3, linewidth=1)
        ax.set_yticks(y, names)
        ax.set_xlabel(f"{metric} on the evaluation rows (95% bootstrap interval)")
        low = min(v for v in values)
        ax.set_xlim(max(0.0, low - 0.1 * abs(low)) if metric != "rmse" else 0, None)
    return out[0]
