"""The ``neuraltab`` command: parse options, call :mod:`neuraltab.api`, render. No logic of its own.

Results go to stdout (a table, or JSON with ``--json``); progress, notices and errors go to stderr. A user error
prints one line, ``error: ...``, and exits with status 2.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any, Callable, Optional

import typer
from rich.console import Console
from rich.table import Table

from .. import api
from ..artifacts import atomic_write_bytes, check_writable
from ..errors import UserError
from ..serve.settings import Settings as ServeSettings
from .options import config_values, parameter, with_parameters
from .progress import Progress, cli_words

_SERVE = ServeSettings()  # the server's defaults, shown by `serve --help`

app = typer.Typer(add_completion=False, no_args_is_help=True, pretty_exceptions_enable=False,
                  help="Deep neural networks for tables: train, evaluate, predict and inspect models.")

MODEL_SUFFIX = ".ntab"


def _show_version(value: bool) -> None:
    if value:
        from .. import __version__

        print(f"neuraltab {__version__}")
        raise typer.Exit(0)


@app.callback()
def _main_options(version: bool = typer.Option(False, "--version", callback=_show_version, is_eager=True,
                                               help="Print neuraltab's version and exit.")) -> None:
    """Deep neural networks for tables: train, evaluate, predict and inspect models."""


def _stdout() -> Console:
    return Console(file=sys.stdout, highlight=False, soft_wrap=True)


def _stderr() -> Console:
    return Console(file=sys.stderr, highlight=False, soft_wrap=True)


def _run(fn: Callable[[], Any]) -> Any:
    """Run a command body; a UserError becomes one line on stderr and exit status 2."""
    try:
        return fn()
    except UserError as exc:
        print(f"error: {cli_words(exc.template)}", file=sys.stderr)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        raise typer.Exit(130) from None


# ======================================================================================================================
# Rendering
# ======================================================================================================================


def _metrics_table(title: str, metrics: dict[str, Any], classes: tuple[Any, ...]) -> Table:
    table = Table(title=title, show_header=True, title_justify="left")
    table.add_column("metric")
    table.add_column("value", justify="right")
    order = ["accuracy", "balanced_accuracy", "log_loss", "roc_auc", "f1_macro", "rmse", "mae", "r2", "n"]
    for name in sorted(metrics, key=lambda m: order.index(m) if m in order else len(order)):
        value = metrics[name]
        if name == "confusion_matrix":
            continue
        table.add_row(name, "n/a" if value is None else (f"{value:,}" if isinstance(value, int) else f"{value:.4f}"))
    return table


def _confusion_table(metrics: dict[str, Any], classes: tuple[Any, ...]) -> Table | None:
    matrix = metrics.get("confusion_matrix")
    if not matrix or len(classes) > 12:
        return None
    table = Table(title="confusion matrix (rows: true, columns: predicted)", title_justify="left")
    table.add_column("")
    for c in classes:
        table.add_column(str(c), justify="right")
    for c, row in zip(classes, matrix):
        table.add_row(str(c), *[f"{v:,}" for v in row])
    return table


def _print_metrics(console: Console, title: str, metrics: dict[str, Any], classes: tuple[Any, ...]) -> None:
    console.print(_metrics_table(title, metrics, classes))
    confusion = _confusion_table(metrics, classes)
    if confusion is not None:
        console.print(confusion)


def _path_words(training: dict[str, Any]) -> str:
    """How the training step is named for a person: the hand-derived steps, or autograd and why."""
    path = training.get("path")
    if not path:
        return "training path not recorded (a model file from before it was)"
    if path == "autograd":
        return f"trained through autograd ({training.get('path_reason')})"
    return f"trained through the hand-derived CPU step {path}"


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


# ======================================================================================================================
# Commands
# ======================================================================================================================


@app.command()
@with_parameters(
    before=[
        parameter("data", Path, typer.Argument(..., help="Table to learn from: CSV/TSV (delimiter sniffed), Parquet or "
                                                         "JSON lines.")),
        parameter("target", str, typer.Option(..., "--target", "-t", help="Column to predict.")),
        parameter("output", Optional[Path], typer.Option(None, "--output", "-o", help="Model file.",
                                                         show_default="next to DATA, as .ntab")),
        parameter("force", bool, typer.Option(False, "--force", help="Overwrite an existing model file.",
                                              show_default=True)),
    ],
    after=[
        parameter("encoding", Optional[str], typer.Option(None, help="Text encoding of DATA.", show_default="sniffed")),
        parameter("decimal", Optional[str], typer.Option(None, help="Decimal mark of numbers in DATA, '.' or ','.",
                                                         show_default="sniffed")),
        parameter("checkpoint_every", int, typer.Option(10, help="Save the training state every N epochs (next to "
                                                                 "the model file).")),
        parameter("resume", bool, typer.Option(False, "--resume", help="Continue an interrupted run from its "
                                                                       "checkpoint.", show_default=True)),
        parameter("as_json", bool, typer.Option(False, "--json", help="Print a machine-readable result on stdout.",
                                                show_default=True)),
        parameter("quiet", bool, typer.Option(False, "--quiet", "-q", help="No progress or notices.",
                                              show_default=True)),
    ])
def train(**given: Any) -> None:
    """Train a model on DATA to predict --target, report test metrics and save the model file.

    The training state is checkpointed to MODEL.ckpt; after a crash, a kill or Ctrl-C, rerun the same command with
    --resume to continue where it stopped (same result as an uninterrupted run)."""
    data, target, output, force = given["data"], given["target"], given["output"], given["force"]
    resume, as_json, quiet = given["resume"], given["as_json"], given["quiet"]

    def body() -> None:
        # a folder of table files (streamed) names its model beside it, as `neuraltab train .` does too
        out = output if output is not None else (data.resolve() if data.is_dir() else data).with_suffix(MODEL_SUFFIX)
        ckpt = out.with_name(out.name + ".ckpt")
        overwrite = force or (resume and ckpt.exists())  # resuming a run may replace its own interrupted result
        check_writable(out, force=overwrite)  # fail now, not after training
        progress = Progress(_stderr(), quiet=quiet)
        fitted = api.fit(str(data), target, callbacks=[progress], encoding=given["encoding"], decimal=given["decimal"],
                         checkpoint=ckpt, checkpoint_every=given["checkpoint_every"], resume=resume,
                         **config_values(given))
        fitted.save(out, force=overwrite)
        if fitted.history["stop_reason"] == "interrupted" and not quiet:
            _stderr().print(f"interrupted: saved the best model so far; continue with the same command and --resume "
                            f"(state in {ckpt})")
        result = {"model_file": str(out), "task": fitted.task, "target": target, "metrics": fitted.metrics,
                  "best_epoch": fitted.history["best_epoch"], "epochs_run": len(fitted.history["epochs"]),
                  "stop_reason": fitted.history["stop_reason"], "train_seconds": round(fitted.train_seconds, 3),
                  "path": fitted.history["path"], "path_reason": fitted.history["path_reason"],
                  "notices": [cli_words(n) for n in fitted.notices]}
        if as_json:
            _print_json(result)
            return
        console = _stdout()
        if "test" in fitted.metrics:
            _print_metrics(console, f"test metrics ({fitted.metrics['test']['n']:,} rows)", fitted.metrics["test"],
                           fitted.classes)
        elif "valid" in fitted.metrics:
            _print_metrics(console, "validation metrics", fitted.metrics["valid"], fitted.classes)
        console.print(f"model saved to {out}")

    _run(body)


@app.command()
def evaluate(
    model_file: Path = typer.Argument(..., metavar="MODEL", help="Model file written by `neuraltab train`."),
    data: Path = typer.Argument(..., help="Table with the target column."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON.", show_default=True),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No notices.", show_default=True),
    decimal: Optional[str] = typer.Option(None, help="Decimal mark of numbers in DATA, '.' or ','.",
                                          show_default="the training file's"),
) -> None:
    """Print MODEL's metrics on DATA (which must contain the target column)."""

    def body() -> None:
        progress = Progress(_stderr(), quiet=quiet)
        fitted = api.load(model_file)
        metrics = fitted.evaluate(str(data), decimal=decimal, notify=progress.on_notice)
        if as_json:
            _print_json(metrics)
        else:
            _print_metrics(_stdout(), f"metrics on {data} ({metrics['n']:,} rows)", metrics, fitted.classes)

    _run(body)


@app.command()
def predict(
    model_file: Path = typer.Argument(..., metavar="MODEL", help="Model file written by `neuraltab train`."),
    data: Path = typer.Argument(..., help="Table with the feature columns (a target column is ignored)."),
    output: Optional[Path] = typer.Option(None, "--output", "-o",
                                          help="Predictions file (.csv, .tsv, .parquet, .jsonl).",
                                          show_default="CSV on stdout"),
    id_column: Optional[str] = typer.Option(None, "--id", help="Column of DATA to copy into the output.",
                                            show_default="none"),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output file.", show_default=True),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No notices.", show_default=True),
    decimal: Optional[str] = typer.Option(None, help="Decimal mark of numbers in DATA, '.' or ','.",
                                          show_default="the training file's"),
) -> None:
    """Write one prediction per row of DATA, in order: the label and one probability per class, or the value."""

    def body() -> None:
        if output is not None:
            check_writable(output, force=force)
        progress = Progress(_stderr(), quiet=quiet)
        fitted = api.load(model_file)
        rows = fitted.predict_file(str(data), output, id_column=id_column, decimal=decimal, force=force,
                                   notify=progress.on_notice)
        if output is not None and not quiet:
            _stderr().print(f"wrote {rows:,} predictions to {output}")

    _run(body)


@app.command()
def info(
    model_file: Path = typer.Argument(..., metavar="MODEL", help="Model file written by `neuraltab train`."),
    as_json: bool = typer.Option(False, "--json", help="Print everything as JSON.", show_default=True),
) -> None:
    """Show MODEL's schema, config, metrics, training data fingerprint and library versions."""

    def body() -> None:
        details = api.load(model_file).info()
        if as_json:
            _print_json(details)
            return
        console = _stdout()
        classes = f" (classes: {', '.join(map(str, details['classes']))})" if details["classes"] else ""
        console.print(f"[bold]{model_file}[/bold]: {details['task']} model of {details['target']!r}{classes}")
        console.print(f"model: {details['model']['kind']}, {details['model']['n_parameters']:,} parameters; "
                      f"trained {details['training'].get('epochs_run')} epochs, best "
                      f"{details['training'].get('best_epoch')} ({details['training'].get('stop_reason')}), "
                      f"{_path_words(details['training'])}")
        features = Table(title="features", title_justify="left")
        features.add_column("column")
        features.add_column("kind")
        for f in details["features"]:
            features.add_row(f["name"], f["kind"])
        for d in details["dropped"]:
            features.add_row(d["name"], f"dropped: {d['reason']}")
        console.print(features)
        for split_name, metrics in details["metrics"].items():
            console.print(_metrics_table(f"{split_name} metrics", metrics, tuple(details["classes"])))
        config = Table(title="config", title_justify="left")
        config.add_column("option")
        config.add_column("value")
        for key, value in details["config"].items():
            config.add_row(key, str(value))
        console.print(config)
        data_fp = details["data"]
        console.print(f"training data: {data_fp.get('name') or data_fp.get('kind')}, {data_fp.get('rows'):,} rows × "
                      f"{data_fp.get('columns')} columns, sha256 {data_fp.get('sha256')}")
        reading = details["reading"]
        if reading["decimal"] is not None:
            console.print(f"decimal mark: {reading['decimal']!r} ({reading['decimal_from']} in the training file; "
                          "files to evaluate or predict are read with it unless --decimal says otherwise)")
        console.print("versions: " + ", ".join(f"{k} {v}" for k, v in details["versions"].items()))

    _run(body)


@app.command()
def demo(
    output: Path = typer.Option(Path("neuraltab-demo"), "--output", "-o", help="Folder for the demo's files."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No progress.", show_default=True),
) -> None:
    """Train on scikit-learn's bundled breast-cancer table: writes the CSV, the model and predictions to a folder."""

    def body() -> None:
        from sklearn.datasets import load_breast_cancer

        output.mkdir(parents=True, exist_ok=True)
        frame = load_breast_cancer(as_frame=True).frame
        frame["diagnosis"] = frame.pop("target").map({0: "malignant", 1: "benign"})
        csv_path, model_path, pred_path = output / "breast_cancer.csv", output / "breast_cancer.ntab", output / "predictions.csv"
        atomic_write_bytes(csv_path, frame.to_csv(index=False).encode(), force=True)
        console = _stdout()
        console.print(f"demo: {len(frame)} tumours, {frame.shape[1] - 1} measurements, target 'diagnosis' -> {csv_path}")
        fitted = api.fit(str(csv_path), "diagnosis", callbacks=[Progress(_stderr(), quiet=quiet)])
        fitted.save(model_path, force=True)
        _print_metrics(console, f"test metrics ({fitted.metrics['test']['n']} rows)", fitted.metrics["test"],
                       fitted.classes)
        api.load(model_path).predict_file(str(csv_path), pred_path, force=True)
        console.print(f"model: {model_path}\npredictions: {pred_path}\n"
                      f"next: neuraltab info {model_path}  ·  neuraltab predict {model_path} {csv_path} -o out.csv")

    _run(body)


@app.command()
def serve(
    model_files: list[Path] = typer.Argument(..., metavar="MODEL...", help="Model files written by `neuraltab train`."),
    name: Optional[list[str]] = typer.Option(None, "--name", help="Name to serve a model under, once per MODEL, in "
                                             "order (default: each file's stem)."),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (0.0.0.0: every interface; then use --api-key)."),
    port: int = typer.Option(8000, help="Port to listen on."),
    workers: int = typer.Option(1, help="Worker processes, each with its own copy of the models."),
    api_key: Optional[str] = typer.Option(None, "--api-key", envvar="NEURALTAB_API_KEY", show_envvar=True,
                                          help="Require 'Authorization: Bearer KEY' on every endpoint but the "
                                          "health probes."),
    threads: Optional[int] = typer.Option(None, help="CPU threads per worker for predictions (default: cores / "
                                          "workers)."),
    max_body_bytes: int = typer.Option(_SERVE.max_body_bytes, help="Largest request body; larger ones get 413."),
    max_rows: int = typer.Option(_SERVE.max_rows, help="Most rows in one request; more get 413."),
    timeout: float = typer.Option(_SERVE.timeout, help="Seconds a request may take; slower ones get 504."),
    max_concurrency: int = typer.Option(_SERVE.max_concurrency, help="Requests in progress at once per worker; more get 503."),
    batch_max_rows: int = typer.Option(_SERVE.batch_max_rows, help="Gather concurrent requests into predictions of up to this many "
                                       "rows (0: off)."),
    batch_max_wait_ms: float = typer.Option(_SERVE.batch_max_wait_ms, help="How long queued requests may wait for more to batch with; "
                                            "a lone request never waits."),
    access_log: bool = typer.Option(False, "--access-log", help="Log every request on stderr."),
) -> None:
    """Serve MODEL(s) over HTTP: the Open Inference Protocol (/v2/models/NAME/infer), /predict, /metrics, /docs.

    Stops on Ctrl-C or SIGTERM after the requests in progress have been answered."""

    def body() -> None:
        from .. import serve as serving

        missing = serving.missing_dependencies()
        if missing:
            raise UserError(f"neuraltab serve needs {', '.join(missing)}: {serving.INSTALL_HINT}")
        settings = serving.Settings(max_body_bytes=max_body_bytes, max_rows=max_rows, timeout=timeout,
                                    max_concurrency=max_concurrency, batch_max_rows=batch_max_rows,
                                    batch_max_wait_ms=batch_max_wait_ms, api_key=api_key)
        from ..serve.server import exposure_warning

        warning = exposure_warning(host, settings)
        if warning:
            _stderr().print(f"warning: {warning}")

        def listening(info: dict[str, Any]) -> None:
            served = ", ".join(f"{n} ({task})" for n, task in info["models"].items())
            _stderr().print(f"serving {served} at {info['url']} ({info['workers']} worker(s), {info['threads']} "
                            f"thread(s) each); docs at {info['url']}/docs; Ctrl-C or SIGTERM stops")

        serving.run([str(p) for p in model_files], names=name, host=host, port=port, workers=workers,
                    threads=threads, settings=settings, access_log=access_log, on_listen=listening)

    _run(body)


def main() -> None:
    """Console entry point: like ``app()``, but option-parsing errors are one ``error:`` line too (exit 2)."""
    try:
        code = app(standalone_mode=False)
    except Exception as exc:  # typer vendors click, so its exception classes are matched by name, not imported
        kind = type(exc).__name__
        if kind == "NoArgsIsHelpError":
            ctx = getattr(exc, "ctx", None)
            print(ctx.get_help() if ctx is not None else str(exc))
            code = 0
        elif kind == "Abort":
            print("interrupted", file=sys.stderr)
            code = 130
        elif getattr(exc, "exit_code", None) == 2 and hasattr(exc, "format_message"):
            ctx = getattr(exc, "ctx", None)
            name = getattr(ctx, "command_path", "neuraltab") or "neuraltab"
            print(f"error: {exc.format_message()} (see `{name} --help`)", file=sys.stderr)
            code = 2
        else:
            raise
    sys.exit(code if isinstance(code, int) else 0)

