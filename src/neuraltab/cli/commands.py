"""The ``neuraltab`` command: parse options, call :mod:`neuraltab.api`, render. No logic of its own.

Results go to stdout (a table, or JSON with ``--json``); progress, notices and errors go to stderr. A user error
prints one line, ``error: ...``, and exits with status 2.
"""

from __future__ import annotations

import contextlib
import json
import shutil
import signal
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Iterator, Optional

import typer
from rich.console import Console
from rich.table import Table

from .. import api
from ..artifacts import atomic_write_bytes, check_model_path, check_writable
from ..errors import DataError, UserError, option
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


@contextlib.contextmanager
def _table_path(data: Path) -> Iterator[Path]:
    """DATA as a path: ``-`` is standard input, kept in a temporary file (named ``stdin``) while the command reads it
    (a table is read twice: its delimiter and encoding are sniffed first), then removed."""
    if str(data) != "-":
        yield data
        return
    with tempfile.TemporaryDirectory(prefix="neuraltab-") as folder:
        path = Path(folder) / "stdin"
        with open(path, "wb") as fh:
            shutil.copyfileobj(sys.stdin.buffer, fh)
        yield path


def _run(fn: Callable[[], Any]) -> Any:
    """Run a command body; a UserError becomes one line on stderr and exit status 2."""
    try:
        return fn()
    except UserError as exc:
        if not getattr(exc, "from_rank_zero", False):  # a distributed run's other ranks leave it to rank 0
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


def _members_table(members: list[dict[str, Any]], folds: Any, task: str) -> Table:
    """The fold models of a bag (the best preset), one row each."""
    table = Table(title=f"{len(members)} fold models of {folds} folds, predictions averaged", title_justify="left")
    for column in ("fold", "train rows", "valid rows", "epochs", "best epoch",
                   "valid rmse/std(y)" if task == "regression" else "valid accuracy", "stopped"):
        table.add_column(column)
    for m in members:
        score = m.get("best_score")
        table.add_row(*(str(m.get(key)) for key in ("fold", "train_rows", "valid_rows", "epochs_run", "best_epoch")),
                      "" if not isinstance(score, (int, float)) else f"{abs(score):.4f}", str(m.get("stop_reason")))
    return table


def _print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, indent=2, default=str) + "\n")


# ======================================================================================================================
# Commands
# ======================================================================================================================


@app.command()
@with_parameters(
    before=[
        parameter("data", Path, typer.Argument(..., help="Table to learn from: CSV/TSV (delimiter sniffed), Parquet or "
                                                         "JSON lines; - reads a CSV from standard input.")),
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
        parameter("dayfirst", Optional[bool], typer.Option(None, "--dayfirst/--monthfirst",
                                                           help="Dates such as 01/02/2019 in DATA put the day (or "
                                                           "the month) first.", show_default="detected per column")),
        parameter("checkpoint_every", int, typer.Option(10, help="Save the training state every N epochs (next to "
                                                                 "the model file).")),
        parameter("resume", bool, typer.Option(False, "--resume", help="Continue an interrupted run from its "
                                                                       "checkpoint.", show_default=True)),
        parameter("nproc", int, typer.Option(1, "--nproc", min=1, help="Train in N processes on this machine "
                                             "(DistributedDataParallel, started through torchrun; for several "
                                             "machines run torchrun yourself, see the README).")),
        parameter("as_json", bool, typer.Option(False, "--json", help="Print a machine-readable result on stdout.",
                                                show_default=True)),
        parameter("quiet", bool, typer.Option(False, "--quiet", "-q", help="No progress or notices.",
                                              show_default=True)),
        parameter("report", Optional[Path], typer.Option(None, "--report", help="Also write the HTML report (see "
                                                         "`neuraltab report`) to this file; --force overwrites it.",
                                                         show_default="none")),
    ])
def train(**given: Any) -> None:
    """Train a model on DATA to predict --target, report test metrics and save the model file.

    The training state is checkpointed to MODEL.ckpt; after a crash, a kill or Ctrl-C, rerun the same command with
    --resume to continue where it stopped (same result as an uninterrupted run)."""
    data, target, output, force = given["data"], given["target"], given["output"], given["force"]
    resume, as_json, quiet = given["resume"], given["as_json"], given["quiet"]
    from ..train import distributed

    def body() -> None:
        if given["nproc"] > 1:
            if distributed.requested():
                raise UserError(f"{option('nproc')} starts its own processes, but this one is already one of "
                                f"several (torchrun's WORLD_SIZE); leave {option('nproc')} out under torchrun")
            if str(data) == "-":
                raise DataError(f"DATA - (standard input) can be read by one process only; save it to a file for "
                                f"{option('nproc')}")
            from .launch import launch_local

            raise typer.Exit(launch_local(given["nproc"], sys.argv[1:]))
        if str(data) == "-" and output is None:
            raise DataError(f"DATA - (standard input) has no name to put the model next to; pass {option('output')}")
        # a folder of table files (streamed) names its model beside it, as `neuraltab train .` does too
        out = output if output is not None else (data.resolve() if data.is_dir() else data).with_suffix(MODEL_SUFFIX)
        ckpt = out.with_name(out.name + ".ckpt")
        overwrite = force or (resume and ckpt.exists())  # resuming a run may replace its own interrupted result
        check_model_path(out, force=overwrite)  # fail now, not after training
        report_file = given["report"]
        if report_file is not None:
            if report_file.resolve() == out.resolve():
                raise UserError(f"{report_file}: is also the model file; give the report another name (.html)")
            _check_report_dependencies()
            check_writable(report_file, force=force)
        progress = Progress(_stderr(), quiet=quiet)
        with _table_path(data) as path:
            fitted = api.fit(str(path), target, callbacks=[progress], encoding=given["encoding"],
                             decimal=given["decimal"], dayfirst=given["dayfirst"], checkpoint=ckpt,
                             checkpoint_every=given["checkpoint_every"], resume=resume, **config_values(given))
            ctx = distributed.current()
            if ctx is not None and not ctx.is_writer:  # rank 0 writes the model and says what it did
                distributed.leave()
                return
            fitted.save(out, force=overwrite)
            if report_file is not None:  # while standard input's copy still exists
                fitted.report(str(path), report_file, force=force, notify=progress.on_notice)
        if fitted.history["stop_reason"] == "interrupted" and not quiet:
            if "members" in fitted.history:  # fold models are not checkpointed
                _stderr().print(f"interrupted: saved the {len(fitted.history['members'])} fold model(s) finished "
                                "so far (the best preset cannot resume)")
            else:
                _stderr().print(f"interrupted: saved the best model so far; continue with the same command and "
                                f"--resume (state in {ckpt})")
        result = {"model_file": str(out), "task": fitted.task, "target": target, "metrics": fitted.metrics,
                  "best_epoch": fitted.history["best_epoch"], "epochs_run": len(fitted.history["epochs"]),
                  "stop_reason": fitted.history["stop_reason"], "train_seconds": round(fitted.train_seconds, 3),
                  "path": fitted.history["path"], "path_reason": fitted.history["path_reason"],
                  "notices": [cli_words(n) for n in fitted.notices],
                  **({"members": fitted.history["members"]} if "members" in fitted.history else {}),
                  **({"report_file": str(report_file)} if report_file is not None else {})}
        if as_json:
            _print_json(result)
        else:
            _print_train_result(_stdout(), fitted, out)
            if report_file is not None:
                _stdout().print(f"report written to {report_file}")
        distributed.leave()
        if fitted.history["stop_reason"] == "interrupted":  # as shells report a process a signal ended: 128 + N
            raise typer.Exit(128 + (getattr(fitted, "stop_signal", None) or signal.SIGINT))

    _run(body)


def _check_report_dependencies() -> None:
    from .. import report as reporting

    missing = reporting.missing_dependencies()
    if missing:
        raise UserError(f"the report needs {', '.join(missing)}: {reporting.INSTALL_HINT}")


@app.command()
def report(
    model_file: Path = typer.Argument(..., metavar="MODEL", help="Model file written by `neuraltab train`."),
    data: Optional[Path] = typer.Argument(None, help="Table with the target column: the training table gives the "
                                          "test split's metrics and the baselines; other rows are evaluated whole.",
                                          show_default="none: what MODEL records"),
    output: Optional[Path] = typer.Option(None, "--output", "-o", help="HTML file to write.",
                                          show_default="next to MODEL, as .html"),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing report.", show_default=True),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No notices.", show_default=True),
) -> None:
    """Write one self-contained HTML file about MODEL: summary, network, learning curves, diagnostics, importance,
    data checks and baselines on the same split (no scripts, nothing fetched, no data rows)."""

    def body() -> None:
        out = output if output is not None else model_file.with_suffix(".html")
        _check_report_dependencies()
        check_writable(out, force=force)
        progress = Progress(_stderr(), quiet=quiet)
        fitted = api.load(model_file)
        fitted.report(None if data is None else str(data), out, force=force, notify=progress.on_notice)
        if not quiet:
            _stderr().print(f"wrote the report to {out} ({out.stat().st_size / 1e6:.2f} MB)")

    _run(body)


def _print_train_result(console: Console, fitted: Any, out: Path) -> None:
    members = fitted.history.get("members")
    if members and "valid" in fitted.metrics:  # a bag's validation is its out-of-fold predictions: worth showing
        _print_metrics(console, f"out-of-fold validation metrics ({len(members)} fold models, "
                       f"{fitted.metrics['valid']['n']:,} rows)", fitted.metrics["valid"], fitted.classes)
    if "test" in fitted.metrics:
        _print_metrics(console, f"test metrics ({fitted.metrics['test']['n']:,} rows)", fitted.metrics["test"],
                       fitted.classes)
    elif "valid" in fitted.metrics:
        _print_metrics(console, "validation metrics", fitted.metrics["valid"], fitted.classes)
    console.print(f"model saved to {out}")


@app.command()
def evaluate(
    model_file: Path = typer.Argument(..., metavar="MODEL", help="Model file written by `neuraltab train`."),
    data: Path = typer.Argument(..., help="Table with the target column (- : standard input)."),
    as_json: bool = typer.Option(False, "--json", help="Print the metrics as JSON.", show_default=True),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No notices.", show_default=True),
    decimal: Optional[str] = typer.Option(None, help="Decimal mark of numbers in DATA, '.' or ','.",
                                          show_default="the training file's"),
) -> None:
    """Print MODEL's metrics on DATA (which must contain the target column)."""

    def body() -> None:
        progress = Progress(_stderr(), quiet=quiet)
        fitted = api.load(model_file)
        with _table_path(data) as path:
            metrics = fitted.evaluate(str(path), decimal=decimal, notify=progress.on_notice)
        if as_json:
            _print_json(metrics)
        else:
            _print_metrics(_stdout(), f"metrics on {data} ({metrics['n']:,} rows)", metrics, fitted.classes)

    _run(body)


@app.command()
def predict(
    model_file: Path = typer.Argument(..., metavar="MODEL", help="Model file written by `neuraltab train`."),
    data: Path = typer.Argument(..., help="Table with the feature columns (a target column is ignored; - : "
                                                    "standard input)."),
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
        with _table_path(data) as path:
            rows = fitted.predict_file(str(path), output, id_column=id_column, decimal=decimal, force=force,
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
        members = details["training"].get("members")
        if members:
            kinds = sorted({str(m.get("kind")) for m in details["model"].get("members", [])})
            console.print(f"model: bag of {len(members)} {'/'.join(kinds)} fold models, "
                          f"{details['model']['n_parameters']:,} parameters in all "
                          f"({details['training'].get('stop_reason')}), {_path_words(details['training'])}")
        else:
            console.print(f"model: {details['model']['kind']}, {details['model']['n_parameters']:,} parameters; "
                          f"trained {details['training'].get('epochs_run')} epochs, best "
                          f"{details['training'].get('best_epoch')} ({details['training'].get('stop_reason')}), "
                          f"{_path_words(details['training'])}")
        if members:
            console.print(_members_table(members, details["training"].get("folds"), details["task"]))
        features = Table(title="features", title_justify="left")
        features.add_column("column")
        features.add_column("kind")
        for f in details["features"]:
            order = {"dayfirst": " (day first)", "monthfirst": " (month first)"}.get(f.get("date_order"), "")
            features.add_row(f["name"], f["kind"] + order)
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


@app.command()
def export(
    model_file: Path = typer.Argument(..., metavar="MODEL", help="Model file written by `neuraltab train`."),
    output: Path = typer.Option(..., "--output", "-o", help="ONNX file to write, e.g. model.onnx."),
    force: bool = typer.Option(False, "--force", help="Overwrite an existing output file.", show_default=True),
    float64: bool = typer.Option(False, "--float64", help="Numeric inputs in float64 (exact for numbers of more "
                                 "than about 7 digits) instead of float32.", show_default=True),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="No summary line.", show_default=True),
) -> None:
    """Write MODEL's whole prediction path, preprocessing included, as one ONNX file (raw columns in, labels and
    probabilities or values out) for ONNX Runtime and other runtimes. Needs the onnx extra (pip install neuraltab\\[onnx])."""

    def body() -> None:
        import hashlib

        from .. import export as exporting

        missing = exporting.missing_dependencies()
        if missing:
            raise UserError(f"neuraltab export needs {', '.join(missing)}: {exporting.INSTALL_HINT}")
        check_writable(output, force=force)
        fitted = api.load(model_file)
        sha = hashlib.sha256(model_file.read_bytes()).hexdigest()
        exporting.write_onnx(fitted, output, force=force, numbers="float64" if float64 else "float32",
                             model_sha256=sha, source=str(model_file))
        if not quiet:
            inputs = len(fitted.schema.features)
            outputs = "value" if fitted.task == "regression" else "label, probabilities"
            _stderr().print(f"wrote {output}: {inputs} input column(s) -> {outputs}")

    _run(body)


@app.command()
def playground(
    data: Optional[Path] = typer.Argument(None, help="A table to train on (CSV/TSV, Parquet, JSON lines); without "
                                          "one, the TensorFlow Playground's toy sets.", show_default="none"),
    target: Optional[str] = typer.Option(None, "--target", "-t", help="Column of DATA to predict.",
                                         show_default="none"),
    host: str = typer.Option("127.0.0.1", help="Address to listen on (beyond this machine only with --token)."),
    port: int = typer.Option(0, help="Port to listen on (0: a free one)."),
    no_browser: bool = typer.Option(False, "--no-browser", help="Print the URL without opening a browser.",
                                    show_default=True),
    token: Optional[str] = typer.Option(None, "--token", help="A secret every request must carry in its URL; "
                                        "required off 127.0.0.1.", show_default="none"),
) -> None:
    """Watch a network learn, live in the browser: the TensorFlow Playground's sets, or DATA (with --target).

    Stops on Ctrl-C."""

    def body() -> None:
        try:
            import fastapi  # noqa: F401
            import uvicorn  # noqa: F401
        except ImportError:
            raise UserError("neuraltab playground needs fastapi and uvicorn: pip install 'neuraltab[playground]'") \
                from None
        from ..playground.server import exposure_warning, serve as serve_playground

        if data is not None and data.is_dir():
            raise DataError(f"{data}: is a folder, not a table file; pass a CSV, Parquet or JSON-lines file")

        def listening(info: dict[str, Any]) -> None:
            if info["warning"]:
                _stderr().print(f"warning: {info['warning']}")
            _stderr().print(f"playground at {info['url']} (Ctrl-C stops)")
            print(info["url"], flush=True)

        if exposure_warning(host) and not token:
            raise UserError(f"listening on {host} needs a secret: pass --token SECRET (the page's URL carries it)")
        serve_playground(str(data) if data is not None else None, target, host=host, port=port,
                         open_browser=not no_browser, token=token, on_listen=listening)

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

