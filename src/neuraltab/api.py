"""The functions every front door calls: :func:`fit`, :func:`load`, and the :class:`Model` they return.

The CLI, the scikit-learn estimators and (later) the server and playground all go through here; none of them
re-implements a step of the data path.
"""

from __future__ import annotations

import contextlib
import dataclasses
import platform
import textwrap
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Iterator, Sequence

import numpy as np
import pandas as pd
import torch

from . import __version__
from .artifacts import FORMAT_VERSION, bundle_bytes, load_bundle, read_bundle_bytes, save_bundle
from .config import COLUMN_FIELDS, TrainConfig, column_names, describe_options, ignored_options, resolve
from .data.preprocess import Batch, Preprocessor
from .data.read import read_table, read_table_and_format, source_name
from .data.schema import Schema, drop_missing_target, infer_schema
from .data.split import fingerprint, split
from .data.summary import summarize
from .data.stream import should_stream
from .data.write import write_table
from .device import native_bf16, resolve_device, threads_for, to_tensors
from .errors import ArtifactError, ConfigError, DataError, Message, SchemaError, no_notice, option
from .metrics import compute
from .networks import Bag, bag_spec, build, network_for, predict_output, temper
from .system import compute_threads

if TYPE_CHECKING:  # training is imported where it runs: serving and exporting a model need none of it
    from .train import Callback, History

__all__ = ["Model", "Prepared", "fit", "fit_bagged", "fit_prepared", "load", "load_bytes", "prepare", "split_rows"]

# options that may differ between an interrupted run and its --resume (they do not change what is learned)
_RESUMABLE_CHANGES = ("threads", "device", "time_limit")
# how the training file wrote its numbers (reading.read_table_and_format); models saved before this was recorded read
# every file as if nothing was known, detecting the decimal mark per file
_NO_NUMBER_FORMAT = {"decimal": None, "decimal_from": None}



class _Notices:
    """Collects one-line notices and forwards them to the callbacks."""

    def __init__(self, callbacks: Sequence[Callback], *, into: list[str] | None = None) -> None:
        self.callbacks = list(callbacks)
        self.messages: list[str] = [] if into is None else into

    def __call__(self, message: str) -> None:
        message = Message(message)
        self.messages.append(message)
        for cb in self.callbacks:
            cb.on_notice(message)


def _notifier(notify: Any) -> Any:
    """A caller's notice sink, given each notice as a :class:`Message` (a ``str`` its front door can render)."""
    if notify is None:
        return no_notice
    return lambda message: notify(Message(message))


def _once(notify: Any) -> Any:
    """``notify`` saying each notice once, whatever its numbers (a streamed table repeats them chunk by chunk)."""
    import re

    said: set[str] = set()

    def say(message: str) -> None:
        key = re.sub(r"\d+", "#", str(message))
        if key not in said:
            said.add(key)
            notify(message)

    return say


def _versions() -> dict[str, str]:
    import safetensors

    return {"neuraltab": __version__, "torch": torch.__version__.split("+")[0], "numpy": np.__version__,
            "pandas": pd.__version__, "scikit-learn": _installed_version("scikit-learn"),
            "safetensors": safetensors.__version__, "python": platform.python_version()}


def _installed_version(package: str) -> str:
    """A package's version from its metadata, without importing it (scikit-learn's import is slow)."""
    from importlib import metadata

    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return "not installed"


# ======================================================================================================================
# Model
# ======================================================================================================================


class Model:
    """A trained network with everything needed to use it: schema, preprocessing, weights, config and metrics."""

    def __init__(self, *, schema: Schema, preprocessor: Preprocessor, network: torch.nn.Module, spec: dict[str, Any],
                 config: TrainConfig, metrics: dict[str, Any], history: History | dict[str, Any],
                 data_fingerprint: dict[str, Any], versions: dict[str, str], notices: list[str] | None = None,
                 splits: dict[str, np.ndarray] | None = None, device: torch.device | None = None,
                 estimator: dict[str, Any] | None = None, reading: dict[str, Any] | None = None,
                 training_summary: dict[str, Any] | None = None) -> None:
        self.schema = schema
        self.preprocessor = preprocessor
        self.network = network
        self.spec = spec
        self.config = config
        self.metrics = metrics
        self.history = history if isinstance(history, dict) else history.to_dict()
        self.data_fingerprint = data_fingerprint
        self.versions = versions
        self.notices = notices or []
        self.splits = splits  # row labels of the training table per split; only after fit, not saved
        self.device = device or torch.device("cpu")
        # set by a scikit-learn estimator that trained this model (class, parameters, classes_, feature names), so
        # that NeuralTab*.load can rebuild it; saved with the model, JSON like the rest
        self.estimator = estimator
        # the training file's decimal mark, used to read the files this model predicts for (unless one is given)
        self.reading = dict(reading or _NO_NUMBER_FORMAT)
        # per-column counts of the training rows (data.summary), for drift checks; None in files saved before it was
        self.training_summary = training_summary

    # --------------------------------------------------------------------------------------------------- basics
    @property
    def task(self) -> str:
        return self.schema.task

    @property
    def classes(self) -> tuple[Any, ...]:
        return self.schema.classes

    def __repr__(self) -> str:
        head = f"{self.task} on {self.schema.target!r}"
        return f"<neuraltab.Model {self.spec['kind']} {head}, {len(self.schema.features)} features>"

    # --------------------------------------------------------------------------------------------------- predict
    def _read(self, data: Any, *, with_target: bool, notify: Any, decimal: str | None = None,
              id_column: str | None = None) -> pd.DataFrame:
        source = source_name(data)
        df = read_table(data, decimal=self.reading["decimal"] if decimal is None else decimal, notify=notify)
        if with_target:
            df = drop_missing_target(df, self.schema.target, source=source, notify=notify)
        else:
            expected = set(self.schema.feature_names()) | {self.schema.target, id_column}  # the ID is copied through
            extra = [c for c in df.columns if c not in expected]
            if extra:
                shown = ", ".join(repr(c) for c in extra[:5]) + (" ..." if len(extra) > 5 else "")
                notify(f"{source}: ignoring {len(extra)} column(s) the model does not use: {shown}")
        return df

    def _batch(self, data: Any, *, with_target: bool, notify: Any, decimal: str | None = None,
               id_column: str | None = None) -> tuple[pd.DataFrame, Batch]:
        df = self._read(data, with_target=with_target, notify=notify, decimal=decimal, id_column=id_column)
        return df, self.preprocessor.transform(df, source=source_name(data), notify=notify, with_target=with_target)

    def _output(self, batch: Batch) -> np.ndarray:
        x_num, x_cat, _ = to_tensors(batch, self.device, task=self.task)
        # bf16 where the model was trained in bf16 and this device does it natively; float32 otherwise
        precision = self.config.precision if native_bf16(self.device) else "fp32"
        out = predict_output(self.network, x_num, x_cat, task=self.task, precision=precision,
                             temperature=self.spec.get("temperature", 1.0)).to("cpu").numpy()
        if self.task == "regression":
            return out.astype(np.float64) * self.preprocessor.y_std + self.preprocessor.y_mean
        return out

    def _labels(self, proba: np.ndarray) -> pd.Series:
        classes = pd.Series(list(self.classes))
        return pd.Series(classes.to_numpy()[proba.argmax(axis=1)] if len(proba) else classes.iloc[:0].to_numpy(),
                         dtype=classes.dtype)

    def predict(self, data: Any, *, decimal: str | None = None, notify: Any = None) -> pd.Series:
        """Predicted labels as the user wrote them (classification) or values (regression), one per row, in order.

        A text file is read with the training file's decimal mark (see :meth:`info`) unless ``decimal`` ("." or
        ",") is given; the same holds for :meth:`predict_proba`, :meth:`predict_table` and :meth:`evaluate`.
        """
        df, batch = self._batch(data, with_target=False, notify=_notifier(notify), decimal=decimal)
        out = self._output(batch)
        labels = pd.Series(out, name="prediction") if self.task == "regression" else self._labels(out).rename("prediction")
        return labels.set_axis(_index_of(data, df))

    def predict_proba(self, data: Any, *, decimal: str | None = None, notify: Any = None) -> pd.DataFrame:
        """Class probabilities, one column per class label (classification only)."""
        if self.task == "regression":
            raise SchemaError("predict_proba is for classification models; this model does regression: use predict")
        df, batch = self._batch(data, with_target=False, notify=_notifier(notify), decimal=decimal)
        return pd.DataFrame(self._output(batch), columns=list(self.classes), index=_index_of(data, df))

    def predict_table(self, data: Any, *, id_column: str | None = None, decimal: str | None = None,
                      notify: Any = None) -> pd.DataFrame:
        """The table ``neuraltab predict`` writes: [id], prediction, and proba_<label> per class."""
        notify = _notifier(notify)
        df, batch = self._batch(data, with_target=False, notify=notify, decimal=decimal, id_column=id_column)
        table = self._prediction_table(df, self._output(batch), id_column=id_column, source=source_name(data))
        return table.set_axis(_index_of(data, df))

    def predict_file(self, data: Any, output: str | Path | None, *, id_column: str | None = None,
                     decimal: str | None = None, force: bool = False, notify: Any = None,
                     timings: dict[str, float] | None = None, stream: bool | None = None) -> int:
        """Predict every row of ``data`` and write :meth:`predict_table` to ``output`` (CSV/TSV/Parquet/JSON lines by
        extension, atomically; CSV on stdout when None); returns the number of rows. ``timings``, when given, gets
        the seconds spent reading, transforming, in the network and writing. A table too big for memory (or a
        folder of files, or ``stream=True``) is read, predicted and written a chunk at a time."""
        notify = _notifier(notify)
        if stream or (stream is None and should_stream(data, stream=False, memory_budget=None)):
            return self._predict_file_streamed(data, output, id_column=id_column, decimal=decimal, force=force,
                                               notify=notify)
        clock = time.perf_counter()
        stages = timings if timings is not None else {}
        df = self._read(data, with_target=False, notify=notify, decimal=decimal, id_column=id_column)
        stages["read_s"], clock = time.perf_counter() - clock, time.perf_counter()
        batch = self.preprocessor.transform(df, source=source_name(data), notify=notify)
        stages["transform_s"], clock = time.perf_counter() - clock, time.perf_counter()
        out = self._output(batch)
        stages["forward_s"], clock = time.perf_counter() - clock, time.perf_counter()
        table = self._prediction_table(df, out, id_column=id_column, source=source_name(data))
        write_table(table, None if output is None else Path(output), force=force)
        stages["write_s"] = time.perf_counter() - clock
        return len(table)

    def _prediction_table(self, df: pd.DataFrame, out: np.ndarray, *, id_column: str | None,
                          source: str) -> pd.DataFrame:
        columns: dict[str, Any] = {}
        outputs = ["prediction"] if self.task == "regression" else \
            ["prediction", *(f"proba_{label}" for label in self.classes)]
        if id_column is not None:
            if id_column not in df.columns:
                from .errors import closest_names

                raise SchemaError(f"{source}: the {option('id_column')} column {id_column!r} not found; "
                                  f"{closest_names(id_column, list(df.columns))}")
            if id_column in outputs:  # the predictions would replace it in the output
                raise SchemaError(f"{source}: the {option('id_column')} column {id_column!r} has the name of an "
                                  f"output column ({', '.join(repr(c) for c in outputs[:4])}"
                                  f"{' ...' if len(outputs) > 4 else ''}); rename that column in the file first")
            columns[id_column] = df[id_column].to_numpy()
        if self.task == "regression":
            columns["prediction"] = out
        else:
            columns["prediction"] = self._labels(out).to_numpy()
            for j, label in enumerate(self.classes):
                columns[f"proba_{label}"] = out[:, j]
        # one constructor, not a column insertion each: a few rows' table took most of its time in the insertions
        return pd.DataFrame(columns, index=pd.RangeIndex(len(df)))

    def evaluate(self, data: Any, *, decimal: str | None = None, notify: Any = None,
                 stream: bool | None = None) -> dict[str, Any]:
        """The metric table on a table that has the target column. A table too big for memory (or a folder, or
        ``stream=True``) is read a chunk at a time, and the metrics are those of a uniform sample of at most
        1,000,000 of its rows (``"n"``; ``"rows"`` counts them all)."""
        if stream or (stream is None and should_stream(data, stream=False, memory_budget=None)):
            return self._evaluate_streamed(data, decimal=decimal, notify=_notifier(notify))
        _, batch = self._batch(data, with_target=True, notify=_notifier(notify), decimal=decimal)
        return compute(self.task, batch.y, self._output(batch))

    def read(self, data: Any, *, decimal: str | None = None, notify: Any = None) -> pd.DataFrame:
        """``data`` (a path or a DataFrame) read as :meth:`predict` reads it, with a notice for the columns the model
        does not use; the target column, when present, is kept."""
        return self._read(data, with_target=False, notify=_notifier(notify), decimal=decimal)

    def outputs(self, df: pd.DataFrame, *, with_target: bool = False, source: str = "the data",
                notify: Any = None) -> tuple[np.ndarray, np.ndarray | None]:
        """The network's output for the rows of a table already read (:meth:`read`): probabilities float[n, C] or
        values float[n] in the target's units, and the target (class codes int64[n] or values float32[n]) when
        ``with_target``. What :meth:`predict` and :meth:`evaluate` compute, for callers that vary rows themselves."""
        batch = self.preprocessor.transform(df, source=source, notify=_notifier(notify), with_target=with_target)
        return self._output(batch), batch.y

    def report(self, data: Any, path: str | Path, *, force: bool = False, notify: Any = None) -> Path:
        """Write the one-file HTML report of this model to ``path`` (atomically; refuses to overwrite unless
        ``force``). ``data`` (a path or a DataFrame, or None for what the model file records) holds the target:
        the training table gives the test split's metrics and the baselines fitted on the same split."""
        from .report import write_report

        return write_report(self, data, path, force=force, notify=notify)

    # ------------------------------------------------------------------------------------------ streamed tables
    def _stream_table(self, data: Any, *, decimal: str | None, notify: Any) -> Any:
        from .data.stream import StreamTable

        table = StreamTable.open(data, decimal=self.reading["decimal"] if decimal is None else decimal, notify=notify)
        expected = set(self.schema.feature_names()) | {self.schema.target}
        extra = [c for c in table.columns if c not in expected]
        if extra:
            shown = ", ".join(repr(c) for c in extra[:5]) + (" ..." if len(extra) > 5 else "")
            notify(f"{table.name}: ignoring {len(extra)} column(s) the model does not use: {shown}")
        return table

    def _predict_file_streamed(self, data: Any, output: str | Path | None, *, id_column: str | None,
                               decimal: str | None, force: bool, notify: Any) -> int:
        from .data.stream import widening
        from .data.write_chunks import ChunkedTableWriter

        table = self._stream_table(data, decimal=decimal, notify=notify)
        once = _once(notify)
        features = self.schema.feature_names()
        wanted = features + ([id_column] if id_column and id_column not in features else [])

        def run() -> int:
            with ChunkedTableWriter(None if output is None else Path(output), force=force) as out:
                for _, df in table.frames(columns=wanted if id_column is None or id_column in table.columns else None):
                    batch = self.preprocessor.transform(df, source=table.name, notify=once)
                    out.write(self._prediction_table(df, self._output(batch), id_column=id_column, source=table.name))
                return out.n_written

        return run() if output is None else widening(table, run)

    def _evaluate_streamed(self, data: Any, *, decimal: str | None, notify: Any) -> dict[str, Any]:
        from .data.stream import EVALUATION, labelled_rows, row_keys, widening

        table = self._stream_table(data, decimal=decimal, notify=notify)
        once = _once(notify)
        cap = 1_000_000

        def run() -> tuple[list[np.ndarray], int, int]:
            keys, ys, outs = np.zeros(0), np.zeros(0, dtype=np.float64), None
            rows = dropped = 0
            for start, df in table.frames(columns=self.schema.feature_names() + [self.schema.target]):
                df, positions, n_left_out = labelled_rows(df, start, self.schema.target)
                dropped += n_left_out
                if not len(df):
                    continue
                rows += len(df)
                batch = self.preprocessor.transform(df, source=table.name, notify=once, with_target=True)
                out = self._output(batch)
                keys = np.concatenate([keys, row_keys(positions, seed=0, stream=EVALUATION)])
                ys = np.concatenate([ys, batch.y.astype(np.float64)])
                outs = out if outs is None else np.concatenate([outs, out])
                if len(keys) > 2 * cap:  # keep the cap rows of smallest key: a uniform sample of every row so far
                    keep = np.sort(np.argpartition(keys, cap - 1)[:cap])
                    keys, ys, outs = keys[keep], ys[keep], outs[keep]
            if len(keys) > cap:
                keep = np.sort(np.argpartition(keys, cap - 1)[:cap])
                ys, outs = ys[keep], outs[keep]
            return [ys, outs], rows, dropped

        (ys, outs), rows, dropped = widening(table, run)
        if not rows:
            raise SchemaError(f"{table.name}: every value of the target column {self.schema.target!r} is missing; "
                              "fill it in")
        if dropped:
            notify(f"{table.name}: dropped {dropped} row(s) whose target {self.schema.target!r} is missing")
        y = ys if self.task == "regression" else ys.astype(np.int64)
        return {**compute(self.task, y, outs), "rows": rows}

    # --------------------------------------------------------------------------------------------------- files
    def save(self, path: str | Path, *, force: bool = False) -> Path:
        """Write the model as one safetensors file (atomically; refuses to overwrite unless ``force``)."""
        return save_bundle(Path(path), *self._bundle(), force=force)

    def to_bytes(self) -> bytes:
        """The bytes :meth:`save` would write: safetensors + JSON, no pickle. :func:`load_bytes` reads them back."""
        return bundle_bytes(*self._bundle())

    def _bundle(self) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
        pre_tensors, pre_meta = self.preprocessor.to_state()
        tensors = {f"model.{k}": v for k, v in self.network.state_dict().items()}
        tensors.update({f"pre.{k}": torch.from_numpy(np.ascontiguousarray(v)) for k, v in pre_tensors.items()})
        meta = {
            "format_version": FORMAT_VERSION,
            "schema": self.schema.to_dict(),
            "preprocessing": pre_meta,
            "model": self.spec,
            "config": self.config.to_dict(),
            "metrics": self.metrics,
            "history": self.history,
            "data": self.data_fingerprint,
            "reading": self.reading,
            "versions": self.versions,
        }
        if self.estimator is not None:
            meta["estimator"] = self.estimator
        if self.training_summary is not None:
            meta["training_summary"] = self.training_summary
        return tensors, meta

    def to_onnx(self, path: str | Path, *, force: bool = False, numbers: str = "float32") -> Path:
        """Write the whole prediction path, preprocessing included, as one ONNX file (atomically; refuses to overwrite
        unless ``force``): one ``[N, 1]`` input per feature column, named as the column (float32 numbers and
        booleans, NaN missing; strings for categories, "" missing), outputs ``label`` and ``probabilities`` or
        ``value``. ``numbers="float64"`` makes the numeric inputs float64, which take numbers of more than about 7
        digits exactly. Its metadata records the SHA-256 of :meth:`to_bytes`, the bytes of the model's file. Needs
        the onnx extra (``pip install 'neuraltab[onnx]'``); see :mod:`neuraltab.export`."""
        from .export import write_onnx

        return write_onnx(self, path, force=force, numbers=numbers)

    def info(self) -> dict[str, Any]:
        """Everything the model file records, for `neuraltab info`."""
        return {
            "format_version": FORMAT_VERSION,
            "task": self.task,
            "target": self.schema.target,
            "classes": list(self.classes),
            "features": [{"name": c.name, "kind": c.kind} | ({"date_order": orders[c.name]} if c.name in orders else {})
                         for c in self.schema.features for orders in [dict(self.schema.date_orders)]],
            "dropped": [{"name": n, "reason": r} for n, r in self.schema.dropped],
            "model": {**self.spec, "n_parameters": sum(p.numel() for p in self.network.parameters())},
            "config": self.config.to_dict(),
            "metrics": self.metrics,
            "training": {k: v for k, v in self.history.items() if k != "epochs"} | {"epochs_run": len(self.history.get("epochs", []))},
            "data": self.data_fingerprint,
            "reading": self.reading,
            "versions": self.versions,
        } | ({"estimator": self.estimator} if self.estimator is not None else {})


def _index_of(data: Any, df: pd.DataFrame) -> pd.Index:
    """The index predictions for ``data`` carry: a DataFrame's own (so ``test["pred"] = model.predict(test)`` lines
    up row by row), 0..n-1 for a file."""
    return df.index if isinstance(data, pd.DataFrame) else pd.RangeIndex(len(df))


# ======================================================================================================================
# fit / load
# ======================================================================================================================


@dataclass
class Prepared:
    """A table made ready to train on: read, typed, split and preprocessed, with the config resolved for its size and
    the device. :func:`fit` is :func:`prepare` then :func:`fit_prepared`; other front doors (the playground, bagged
    presets) use the stages to train their own way on the same data path.

    ``batches``: model inputs of the ``"train"``, ``"valid"`` and ``"test"`` rows; ``splits``: those rows' labels in
    the table; ``notices``: what was said about the data so far.
    """

    cfg: TrainConfig
    target: str
    schema: Schema
    preprocessor: Preprocessor
    batches: dict[str, Batch]
    splits: dict[str, np.ndarray]
    device: torch.device
    data_fingerprint: dict[str, Any]
    number_format: dict[str, Any]
    notices: list[str]
    source: str
    training_summary: dict[str, Any] | None = None  # data.summary of the training rows, saved for drift checks
    epochs: Any = None  # a streamed table's EpochSource: its training rows, block by block (see train.streamed)
    distributed: Any = None  # the process group's Context when this process is one rank of several (train.distributed)

    @property
    def n_out(self) -> int:
        return 1 if self.schema.task == "regression" else self.schema.n_classes

    def tensors(self, split_name: str) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
        """A split's (x_num, x_cat, y) on the device; regression targets standardised with the training statistics."""
        pre = self.preprocessor
        return to_tensors(self.batches[split_name], self.device, task=self.schema.task, y_mean=pre.y_mean,
                          y_std=pre.y_std)

    def new_network(self) -> tuple[dict[str, Any], torch.nn.Module]:
        """A freshly initialised network for this data and config, on the device; its initial weights and the
        dropout masks of its training come from a generator seeded with ``cfg.seed`` (never the global RNG)."""
        generator = torch.Generator().manual_seed(self.cfg.seed)
        spec, network = network_for(self.cfg, x_num_train=torch.from_numpy(self.batches["train"].x_num),
                                    cat_cardinalities=self.preprocessor.cat_cardinalities, n_out=self.n_out,
                                    generator=generator)
        return spec, network.to(self.device)

    def threads(self, network: torch.nn.Module | None = None) -> int:
        """CPU threads to compute with: ``cfg.threads``, else :func:`~neuraltab.system.compute_threads` (the cores this
        process may use, or its share of them beside parallel siblings), or one for a network whose step is tiny."""
        if self.cfg.threads is not None:
            return self.cfg.threads
        if network is not None and self.device.type == "cpu":
            return threads_for(network, batch_size=self.cfg.batch_size, cores=compute_threads())
        return compute_threads()

    def model(self, network: torch.nn.Module, spec: dict[str, Any], history: History) -> "Model":
        """The :class:`Model` of a network trained on this data, with its validation and test metrics."""
        model = Model(schema=self.schema, preprocessor=self.preprocessor, network=network, spec=spec, config=self.cfg,
                      metrics={}, history=history, data_fingerprint=self.data_fingerprint, versions=_versions(),
                      notices=list(self.notices), device=self.device, reading=self.number_format,
                      splits=self.splits, training_summary=self.training_summary)
        for name in ("valid", "test"):
            if len(self.batches[name]):
                model.metrics[name] = compute(self.schema.task, self.batches[name].y, model._output(self.batches[name]))
        # timings are kept out of the saved history so that the same seed writes the same file bytes
        model.history = {**{k: v for k, v in model.history.items() if k != "signal"}, "seconds": None,
                         "device": str(self.device),
                         "epochs": [{k: v for k, v in e.items() if k != "seconds"} for e in history.epochs]}
        model.train_seconds = history.seconds
        model.stop_signal = history.signal  # what interrupted the run, for the CLI's exit status
        return model


@contextlib.contextmanager
def _torch_threads(n: int) -> Iterator[None]:
    previous = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(previous)


def prepare(data: Any, target: str, *, callbacks: Sequence[Callback] = (), encoding: str | None = None,
            decimal: str | None = None, dayfirst: bool | None = None, rows: dict[str, np.ndarray] | None = None,
            **options: Any) -> Prepared:
    """Read ``data`` (a path or a DataFrame), infer its schema, split it and learn the preprocessing on the training
    rows, as :func:`fit` does; ``options`` are :class:`TrainConfig` fields. Notices go to the callbacks.

    ``rows`` (positions of the ``"train"``, ``"valid"`` and ``"test"`` rows) replaces the seeded split, for a caller
    whose data comes with its own (the playground's toy sets split as the TensorFlow Playground does)."""
    cfg = TrainConfig.from_dict(options)
    notify = _Notices(callbacks)
    ignored = ignored_options(cfg)
    if ignored:
        other = "mlp" if cfg.model == "default" else "default"
        notify(f"{', '.join(option(name) for name in ignored)} set but not used: they are options of "
               f"{option('model', other)}, and this run trains {option('model', cfg.model)}")
    if cfg.folds != 5 and cfg.preset != "best":
        notify(f"{option('folds', cfg.folds)} set but not used: only {option('preset', 'best')} trains fold models")
    if cfg.preset == "best" and cfg.valid_size != TrainConfig().valid_size:
        notify(f"{option('valid_size', cfg.valid_size)} set but not used: {option('preset', 'best')} validates each "
               f"fold model on its own fold ({option('folds')} sets how many)")
    source = source_name(data)
    from .train import distributed  # the process group, when torchrun (or Ray, Spark) started this process

    if distributed.requested():
        if not isinstance(data, (str, Path)) or rows is not None:
            raise ConfigError("a distributed run reads a table file (CSV or Parquet, one file or a folder), each rank "
                              "its own shard of the rows; write the DataFrame to Parquet and pass its path")
        ctx, device = distributed.join(resolve_device(cfg.device))
        with distributed.failures(ctx):
            return _prepare_streamed(data, target, cfg, notify=notify, encoding=encoding, decimal=decimal,
                                     distributed=ctx, device=device)
    if should_stream(data, stream=cfg.stream, memory_budget=cfg.memory_budget):
        if cfg.preset == "best":
            raise ConfigError(f"{source}: {option('preset', 'best')} needs the table in memory, and this one is "
                              f"streamed from disk; use {option('preset', 'default')} or a sample of its rows")
        return _prepare_streamed(data, target, cfg, notify=notify, encoding=encoding, decimal=decimal)
    raw, number_format = read_table_and_format(data, encoding=encoding, decimal=decimal, notify=notify)
    data_fingerprint = fingerprint(data, raw)  # hashes the whole file: once per fit
    df = drop_missing_target(raw, target, source=source, notify=notify)
    # entries of the column options are names or comma lists of names; the config records the names
    cfg = cfg.replace(**{name: column_names(getattr(cfg, name), list(raw.columns)) for name in COLUMN_FIELDS})
    schema = infer_schema(raw, target, task=cfg.task, categorical=cfg.categorical, numeric=cfg.numeric, drop=cfg.drop,
                          dayfirst=dayfirst, source=source, notify=notify)
    if rows is None:
        rows = split_rows(df, schema, cfg, source=source, notify=notify)
    else:  # the caller's own split (the playground's train:test ratio)
        rows = {name: np.asarray(rows[name], dtype=np.int64) for name in ("train", "valid", "test")}
    device = resolve_device(cfg.device)
    cfg = resolve(cfg, n_train=_rows_per_model(cfg, len(rows["train"])), device_type=device.type,
                  native_bf16=native_bf16(device), task=schema.task)
    with _torch_threads(cfg.threads or compute_threads()):
        pre = Preprocessor(schema, scaling=cfg.scaling, max_categories=cfg.max_categories)
        pre.fit(df.iloc[rows["train"]], source=source, notify=notify)
        # the splits are rows of the table the schema was inferred from: the predict-time type check has nothing to add
        batches = {name: pre.transform(df.iloc[idx], source=source, notify=no_notice, with_target=True,
                                       check_types=False) for name, idx in rows.items()}
        summary = summarize(df.iloc[rows["train"]], schema)
    return Prepared(cfg=cfg, target=target, schema=schema, preprocessor=pre, batches=batches,
                    splits={name: df.index[idx].to_numpy() for name, idx in rows.items()}, device=device,
                    data_fingerprint=data_fingerprint, number_format=number_format, notices=notify.messages,
                    source=source, training_summary=summary)


def split_rows(df: pd.DataFrame, schema: Schema, cfg: TrainConfig, *, source: str = "the data",
               notify: Any = no_notice) -> dict[str, np.ndarray]:
    """Positions in ``df`` (the training table's labelled rows) of the ``"train"``, ``"valid"`` and ``"test"``
    rows, as :func:`prepare` splits them with ``cfg``'s seed and sizes; the report recovers a model's test split
    with it."""
    codes = None if schema.task == "regression" else Preprocessor(schema).encode_target(df[schema.target],
                                                                                         source=source)
    train_idx, valid_idx, test_idx = split(len(df), y=codes, test_size=cfg.test_size, valid_size=cfg.valid_size,
                                           seed=cfg.seed, notify=notify, source=source)
    # nothing to validate against: train on every non-test row, as the classic recipe; or the best preset, which
    # cuts the non-test rows into its own folds (fit_bagged)
    if not cfg.early_stopping or cfg.preset == "best":
        train_idx, valid_idx = np.sort(np.concatenate([train_idx, valid_idx])), valid_idx[:0]
    return {"train": train_idx, "valid": valid_idx, "test": test_idx}


def _rows_per_model(cfg: TrainConfig, n_train: int) -> int:
    """The training rows each network of the run learns from: all of them, or a bag's all-but-one fold."""
    return n_train - -(-n_train // cfg.folds) if cfg.preset == "best" else n_train


def _prepare_streamed(data: Any, target: str, cfg: TrainConfig, *, notify: _Notices, encoding: str | None,
                      decimal: str | None, distributed: Any = None, device: torch.device | None = None) -> Prepared:
    """:func:`prepare` for a table read in record batches (see :mod:`neuraltab.data.stream`): the schema from a
    uniform sample of its rows, the preprocessing from one pass of statistics, validation and test rows held in memory
    (samples when capped), and the training rows left on disk for the epochs to stream.

    With ``distributed`` (this process is one rank of several), rank 0 infers the schema and hands it to the others;
    each rank gathers the statistics of its shard of the rows, and every rank merges all the ranks' into the same
    preprocessing (that of one process reading the whole table); each rank's epochs stream its own shard."""
    from .data import stream
    from .train.distributed import DISTRIBUTED_REASON
    from .train.streamed import EpochSource

    source = source_name(data)
    budget = stream.budget_bytes(cfg.memory_budget)
    if distributed is not None:
        budget = distributed.on_rank_zero(lambda: budget)  # the same caps, so the same samples, on every rank
        if not distributed.is_writer:
            notify = _Notices([])  # rank 0 says what there is to say about the data

    def open_table() -> stream.StreamTable:
        return stream.StreamTable.open(data, encoding=encoding, decimal=decimal, notify=notify, budget=budget)

    # rank 0 sniffs the file and says what is wrong with it, once
    table = open_table() if distributed is None else distributed.on_rank_zero(open_table)
    guess = stream.limits_for(budget, raw_row_bytes=64.0 * len(table.columns), input_row_bytes=8.0 * len(table.columns))

    def schema_pass() -> tuple[Schema, int, dict[str, Any]]:
        schema, n_rows, _ = stream.infer_streamed_schema(table, target, cfg, sample_rows=guess.sample_rows,
                                                         notify=notify)
        return schema, n_rows, table.types  # the types: the columns the pass found must be read as text

    if distributed is None:
        schema, n_rows, _ = schema_pass()
    else:
        schema, n_rows, table.types = distributed.on_rank_zero(schema_pass)
    test_size = cfg.test_size
    valid_size = cfg.valid_size if cfg.early_stopping else 0.0  # without early stopping, validation rows train
    stats = stream.gather_statistics(table, schema, cfg, guess, test_size=test_size, valid_size=valid_size,
                                     shard=None if distributed is None else distributed.shard)
    n_local = stats.n_train
    if distributed is not None:
        stats.sample = stats.valid = stats.test = None  # the samples' own parts travel, once
        stats = stream.merge_statistics(distributed.gather_objects(stats), max_categories=cfg.max_categories)
    if stats.n_unlabelled:
        notify(f"{source}: dropped {stats.n_unlabelled} row(s) whose target {target!r} is missing")
    device = device if device is not None else resolve_device(cfg.device)
    cfg = resolve(cfg, n_train=stats.n_train, device_type=device.type, native_bf16=native_bf16(device),
                  task=schema.task)
    cfg = cfg.replace(stream=True)
    with _torch_threads(cfg.threads or compute_threads()):
        pre = stream.fit_preprocessor(schema, stats, scaling=cfg.scaling, max_categories=cfg.max_categories,
                                      source=source, notify=notify)
        frames = {"train": stats.sample, "valid": stats.valid, "test": stats.test}
        batches = {name: pre.transform(df, source=source, notify=no_notice, with_target=True, check_types=False)
                   if len(df) else pre.transform(stats.sample.iloc[:0], with_target=True, check_types=False)
                   for name, df in frames.items()}
    for name, held, n_part in (("validation", stats.valid, stats.n_split[1]), ("test", stats.test, stats.n_split[2])):
        if len(held) < n_part:
            notify(f"{source}: {name} uses a uniform sample of {len(held):,} of its {n_part:,} rows (the memory "
                   f"budget's share; {option('memory_budget')} sets it)")
    input_bytes = 4 * pre.n_num + 8 * len(pre.vocabs) + 8
    limits = stream.limits_for(budget, raw_row_bytes=64.0 * len(table.columns), input_row_bytes=input_bytes)
    buffer_rows = max(min(limits.buffer_rows, stats.n_train), 1)

    shard = None if distributed is None else distributed.shard

    def blocks(epoch: int) -> Iterator[Batch]:
        return stream.training_blocks(table, pre, seed=cfg.seed, epoch=epoch, test_size=test_size,
                                      valid_size=valid_size, buffer_rows=buffer_rows, shard=shard)

    epochs = EpochSource(blocks=blocks, n_rows=n_local, task=schema.task, y_mean=pre.y_mean, y_std=pre.y_std)
    number_format = {"decimal": decimal, "decimal_from": "given" if decimal else None}
    if distributed is None:
        data_fingerprint = stream.fingerprint(table, n_rows=n_rows)
    else:  # one rank reads the whole file for its hash
        data_fingerprint = distributed.on_rank_zero(lambda: stream.fingerprint(table, n_rows=n_rows))
        notify(f"distributed over {distributed.world_size} processes ({distributed.backend}), a global batch of "
               f"{cfg.batch_size} rows, each rank its own shard of the rows; {DISTRIBUTED_REASON}")
    return Prepared(cfg=cfg, target=target, schema=schema, preprocessor=pre, batches=batches,
                    splits={name: np.zeros(0, dtype=np.int64) for name in frames}, device=device,
                    data_fingerprint=data_fingerprint, number_format=number_format,
                    notices=notify.messages, source=source, epochs=epochs, distributed=distributed)


def fit_prepared(prepared: Prepared, *, callbacks: Sequence[Callback] = (), checkpoint: str | Path | None = None,
                 checkpoint_every: int = 10, resume: bool = False, fast: bool = True) -> Model:
    """Train a fresh network on prepared data and return the :class:`Model` (see :func:`fit` for the checkpoint;
    ``fast=False`` trains through autograd even where a hand-derived CPU step covers the run)."""
    from .train import distributed

    ctx = prepared.distributed
    if ctx is not None and not ctx.is_writer:
        callbacks = [cb for cb in callbacks if getattr(cb, "every_rank", False)]  # rank 0 renders the run
    with distributed.failures(ctx):
        return _fit_prepared(prepared, callbacks=callbacks, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                             resume=resume, fast=fast)


def _fit_prepared(prepared: Prepared, *, callbacks: Sequence[Callback], checkpoint: str | Path | None,
                  checkpoint_every: int, resume: bool, fast: bool) -> Model:
    from .train import train
    from .train.calibrate import temperature_for
    from .train.checkpoint import Checkpoint

    cfg = prepared.cfg
    ctx = prepared.distributed
    writer = ctx is None or ctx.is_writer
    with _torch_threads(cfg.threads or compute_threads()):
        spec, network = prepared.new_network()
        torch.set_num_threads(prepared.threads(network))
        ckpt = None
        if checkpoint is not None:
            identity = {"data": prepared.data_fingerprint["sha256"], "target": prepared.target,
                        "config": {k: v for k, v in cfg.to_dict().items() if k not in _RESUMABLE_CHANGES}}
            if ctx is not None:  # another number of ranks shards and batches the rows otherwise
                identity["processes"] = ctx.world_size
            ckpt = Checkpoint(checkpoint, every=checkpoint_every, identity=identity)
            if resume and writer and not ckpt.path.exists():
                _Notices(callbacks, into=prepared.notices)(f"{ckpt.path}: no checkpoint to resume from; training "
                                                           "from the start")
        try:
            history = train(network, prepared.tensors("train"), prepared.tensors("valid"), task=prepared.schema.task,
                            cfg=cfg, callbacks=callbacks, checkpoint=ckpt, resume=resume, fast=fast,
                            epoch_source=prepared.epochs, distributed=ctx)
        except ConfigError:  # a diverged run: its checkpoint would only diverge again, so none is left behind
            if ckpt is not None and writer:
                ckpt.path.unlink(missing_ok=True)
            raise
        if ckpt is not None and writer and history.stop_reason != "interrupted":
            ckpt.path.unlink(missing_ok=True)
        temperature = temperature_for(network, prepared.tensors("valid"), task=prepared.schema.task, cfg=cfg)
        if temperature is not None:  # in the spec, so that a file without one (written before) predicts as it did
            spec = {**spec, "temperature": temperature}
        return prepared.model(network, spec, history)


def fit_bagged(prepared: Prepared, *, callbacks: Sequence[Callback] = ()) -> Model:
    """Cross-validated bagging on data prepared with ``preset="best"``: the training rows are cut into ``cfg.folds``
    folds (stratified by class, seeded); fold model i trains on the others and early-stops on fold i, and the
    :class:`Model` averages the fold models' probabilities (or values). Its ``metrics["valid"]`` are those of the
    out-of-fold predictions, each row predicted by the one fold model that never trained on it.

    The preprocessing is the one :func:`prepare` fitted on all the training rows: its statistics (quantiles,
    category lists) barely move between folds of the same rows, and one preprocessor is what lets one model file and
    one ONNX graph serve every fold model. ``cfg.time_limit`` bounds the whole run: a fold model the limit cuts short
    is left out, unless it is the first, which is kept as far as it got (so there is always one)."""
    from .train import History

    cfg = prepared.cfg
    if prepared.epochs is not None:
        raise ConfigError(f"{option('preset', 'best')} needs the table in memory; this one is streamed")
    pool = prepared.batches["train"]
    folds = _fold_ids(pool.y, cfg.folds, seed=cfg.seed, classes=prepared.schema.task != "regression")
    notify = _Notices(callbacks, into=[])  # progress only: the saved notices are the data's
    deadline = None if cfg.time_limit is None else time.perf_counter() + cfg.time_limit
    started = time.perf_counter()
    members: list[tuple[int, Model]] = []
    reason, signal_number = None, None
    for i in range(cfg.folds):
        left = None if deadline is None else deadline - time.perf_counter()
        if left is not None and left <= 0:
            reason = "time_limit"
            break
        notify(f"fold model {i + 1} of {cfg.folds}: trains on {int((folds != i).sum()):,} rows, early-stops on "
               f"{int((folds == i).sum()):,}")
        rows = {"train": np.flatnonzero(folds != i), "valid": np.flatnonzero(folds == i)}
        member = dataclasses.replace(
            prepared, cfg=cfg.replace(seed=_member_seed(cfg.seed, i), time_limit=left),
            batches={**{name: _rows(pool, idx) for name, idx in rows.items()},
                     "test": _rows(pool, np.zeros(0, dtype=np.int64))},
            notices=[])
        model = fit_prepared(member, callbacks=callbacks)
        stop = model.history["stop_reason"]
        if stop in ("time_limit", "interrupted"):
            reason, signal_number = stop, model.stop_signal
            if not members:  # the first fold model is kept as far as it got: a bag has at least one
                members.append((i, model))
            break
        members.append((i, model))
    seconds = time.perf_counter() - started
    first = members[0][1]
    history = History(epochs=list(first.history["epochs"]), best_epoch=first.history["best_epoch"],
                      best_score=first.history["best_score"], stop_reason=reason or first.history["stop_reason"],
                      seconds=seconds, path=first.history["path"], path_reason=first.history["path_reason"],
                      signal=signal_number)
    for _, model in members:  # the bag's temperature, fitted below, replaces each fold model's own
        model.spec = {k: v for k, v in model.spec.items() if k != "temperature"}
    network = Bag([model.network for _, model in members])
    spec = bag_spec([model.spec for _, model in members])
    # each row predicted by the fold model that early-stopped on it: an honest validation score for the bag
    held = [(np.flatnonzero(folds == i), model) for i, model in members]
    out = None
    if all(len(idx) for idx, _ in held):
        idx = np.concatenate([idx for idx, _ in held])
        out = np.concatenate([model._output(_rows(pool, rows)) for rows, model in held])
        from .train.calibrate import fit_temperature, is_tempered

        if is_tempered(prepared.schema.task, cfg):  # as fit_prepared's, on the held rows

            spec["temperature"] = fit_temperature(out, pool.y[idx])
            out = temper(torch.from_numpy(out), spec["temperature"]).numpy()
    bag = prepared.model(network, spec, history)
    if out is not None:
        bag.metrics["valid"] = compute(prepared.schema.task, pool.y[idx], out)
    bag.history["folds"] = cfg.folds
    bag.history["members"] = [
        {"fold": i + 1, "seed": model.config.seed, "train_rows": int((folds != i).sum()),
         "valid_rows": int((folds == i).sum()), "epochs_run": len(model.history["epochs"]),
         "best_epoch": model.history["best_epoch"], "best_score": model.history["best_score"],
         "stop_reason": model.history["stop_reason"]} for i, model in members]
    return bag


def _fold_ids(y: np.ndarray | None, n_folds: int, *, seed: int, classes: bool) -> np.ndarray:
    """The fold (0..n_folds-1) of each training row: seeded, and for classes dealt out class by class, so that each
    fold holds each class's share of the rows (within one row).

    >>> _fold_ids(np.array([0, 0, 0, 0, 1, 1]), 2, seed=0, classes=True).tolist()
    [0, 1, 1, 0, 0, 1]
    """
    n = len(y) if y is not None else 0
    if n < n_folds:
        raise DataError(f"{option('preset', 'best')} cuts the training rows into {option('folds', n_folds)} folds, "
                        f"and there are only {n}: add rows or lower {option('folds')}")
    order = np.random.default_rng([seed, 0x0F01D5]).permutation(n)
    if classes:
        order = order[np.argsort(y[order], kind="stable")]  # class by class, each class's rows in shuffled order
    folds = np.empty(n, dtype=np.int64)
    folds[order] = np.arange(n) % n_folds
    return folds


def _member_seed(seed: int, i: int) -> int:
    """Fold model i's seed (its initial weights, dropout and batch order), drawn from the run's seed."""
    return int(np.random.SeedSequence([seed, i]).generate_state(1)[0])


def _rows(batch: Batch, idx: np.ndarray) -> Batch:
    return Batch(batch.x_num[idx], batch.x_cat[idx], None if batch.y is None else batch.y[idx])


def fit(data: Any, target: str, *, callbacks: Sequence[Callback] = (), encoding: str | None = None,
        decimal: str | None = None, dayfirst: bool | None = None, checkpoint: str | Path | None = None, checkpoint_every: int = 10, resume: bool = False,
        **options: Any) -> Model:
    """Train a model on a table (a path or a DataFrame) to predict column ``target``.

    ``options`` are :class:`TrainConfig` fields (``model``, ``epochs``, ``seed``, ...). The table is split into
    train/valid/test (``test_size``, ``valid_size``); ``model.metrics["test"]`` holds the held-out test metrics.

    ``decimal`` ("." or ",") is the decimal mark of a text file's numbers, detected when None. Either way the choice
    is saved with the model, which reads the files it predicts for and evaluates on with it (``model.reading``), so an
    ambiguous "1,234" in them means what it meant in the training file.

    ``dayfirst`` says whether text dates such as "01/02/2019" put the day first (True) or the month (False); None
    detects it per column ("13/02/2019" decides it). The model records each column's order and reads its dates so.

    With ``checkpoint`` (a file path), the whole training state is saved there every ``checkpoint_every`` epochs and
    when Ctrl-C or SIGTERM stops the run; ``resume=True`` continues from it, giving the same model as an
    uninterrupted run. The file is removed once training finishes (kept when it was interrupted).

    ``preset="best"`` trains :func:`fit_bagged`'s fold models instead (no checkpoint, no ``resume``).
    """
    if resume and options.get("preset") == "best":  # before reading the data: it would only fail later
        raise ConfigError(f"{option('resume')} does not work with {option('preset', 'best')}: its fold models are "
                          "not checkpointed; train again without it")
    prepared = prepare(data, target, callbacks=callbacks, encoding=encoding, decimal=decimal, dayfirst=dayfirst,
                       **options)
    if prepared.cfg.preset == "best":
        return fit_bagged(prepared, callbacks=callbacks)
    return fit_prepared(prepared, callbacks=callbacks, checkpoint=checkpoint, checkpoint_every=checkpoint_every,
                        resume=resume)


fit.__doc__ = f"{fit.__doc__}\n    Options (the flags of ``neuraltab train``, the estimators' parameters):\n\n" \
              + textwrap.indent(describe_options(), "    ") + "\n"


def load(path: str | Path, *, device: str = "cpu") -> Model:
    """Load a model file written by :meth:`Model.save`. Never runs code from the file."""
    return _from_bundle(*load_bundle(Path(path)), name=str(path), device=device)


def load_bytes(data: bytes, *, device: str = "cpu") -> Model:
    """Load a model from the bytes :meth:`Model.to_bytes` returned (the same format as the file, no pickle)."""
    return _from_bundle(*read_bundle_bytes(data), name="the model bytes", device=device)


def _from_bundle(tensors: dict[str, torch.Tensor], meta: dict[str, Any], *, name: str, device: str) -> Model:
    try:
        schema = Schema.from_dict(meta["schema"])
        pre_tensors = {k[4:]: v.numpy() for k, v in tensors.items() if k.startswith("pre.")}
        pre = Preprocessor.from_state(schema, pre_tensors, meta["preprocessing"])
        spec = meta["model"]
        network = build(spec)
        network.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
        config = TrainConfig.from_dict(meta["config"])
        extras = {key: meta.get(key, {}) for key in ("metrics", "history", "data", "versions")}
        reading = meta.get("reading", _NO_NUMBER_FORMAT)
        if not isinstance(reading, dict) or set(reading) != set(_NO_NUMBER_FORMAT) \
                or reading["decimal"] not in (None, ".", ",") \
                or reading["decimal_from"] not in (None, "given", "detected"):
            raise ValueError(f"unreadable reading section {str(reading)[:100]}")
        bad = [key for key, value in extras.items() if not isinstance(value, dict)]
        n_out = 1 if schema.task == "regression" else len(schema.classes)
        if bad or spec["n_num"] != pre.n_num or list(spec["cat_cardinalities"]) != pre.cat_cardinalities \
                or spec["n_out"] != n_out:
            raise ValueError("the preprocessing state, the schema and the network do not fit together")
        members = extras["history"].get("members")
        if spec["kind"] == "bag" and not (isinstance(members, list) and len(members) == len(spec["members"])
                                          and all(isinstance(m, dict) for m in members)):
            raise ValueError("the fold models' records do not match the bag's networks")
        summary = meta.get("training_summary")
        if summary is not None and not (isinstance(summary, dict) and isinstance(summary.get("columns"), dict)):
            raise ValueError(f"unreadable training summary {str(summary)[:100]}")
        model = Model(schema=schema, preprocessor=pre, network=network.eval(), spec=spec, config=config,
                      metrics=extras["metrics"], history=extras["history"], data_fingerprint=extras["data"],
                      versions=extras["versions"], estimator=meta.get("estimator"), reading=reading,
                      training_summary=summary)
        # a smoke run on one all-missing row exercises every stored array before a user's data does
        model._output(pre.transform(pd.DataFrame({c: [None] for c in schema.feature_names()}, dtype=object)))
    except Exception as exc:  # anything a consistent, checksummed-but-wrong file can trigger
        raise ArtifactError(f"{name}: the model file is incomplete or inconsistent ({type(exc).__name__}: "
                            f"{str(exc).splitlines()[0][:200] if str(exc) else ''}); retrain the model") from None
    model.device = resolve_device(device)
    network.to(model.device)
    return model
