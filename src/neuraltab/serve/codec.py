"""Request bodies into the DataFrame that :class:`neuraltab.Model` predicts for, and its predictions into responses.

Three ways in, one way on: ``{"instances": [{column: value}, ...]}``, an Open Inference Protocol request (one input
per column, as MLServer's ``content_type: "pd"``) and a CSV body each become a DataFrame of the model's feature
columns, which goes through the model's own reading and preprocessing, exactly as ``neuraltab predict`` does. What is
checked here is only what HTTP adds: JSON types, shapes, unknown and missing columns, sizes. Every problem is a
:class:`RequestError` whose one line says what must hold, what came, and how to fix it.
"""

from __future__ import annotations

import json
import os
import re
import tempfile
from dataclasses import dataclass
from typing import Any, Callable

import numpy as np
import orjson
import pandas as pd

from ..data.read import NULL_MARKERS, read_table
from ..data.schema import parse_datetimes
from ..errors import UserError, closest_names

__all__ = ["RequestError", "PayloadTooLarge", "InputSpec", "decode_json", "instances_columns", "infer_columns",
           "csv_frame", "Predictions", "predict_payload", "infer_payload", "encode_json", "error_text",
           "OIP_NUMBER_TYPES"]

OIP_INT_TYPES = ("INT8", "INT16", "INT32", "INT64", "UINT8", "UINT16", "UINT32", "UINT64")
OIP_NUMBER_TYPES = OIP_INT_TYPES + ("FP16", "FP32", "FP64")
OIP_TYPES = OIP_NUMBER_TYPES + ("BOOL", "BYTES")
# the datatypes each column kind accepts in an infer request (the first is the one the metadata advertises)
KIND_DATATYPES = {"numeric": ("FP64",) + OIP_NUMBER_TYPES, "boolean": ("BOOL",), "datetime": ("BYTES",),
                  "categorical": ("BYTES",) + OIP_NUMBER_TYPES + ("BOOL",)}
_INTEGER_KEY = re.compile(r"-?\d+")
_MARKERS = frozenset(NULL_MARKERS)
_NONE = type(None)
INSTANCES_EXAMPLE = '{"instances": [{"column": value, ...}]}'


class RequestError(UserError):
    """A request the server cannot answer; ``status`` is the HTTP status it gets (400 unless a subclass says)."""

    status = 400


class PayloadTooLarge(RequestError):
    status = 413


def error_text(exc: UserError) -> str:
    """The message for an HTTP client: option references written as JSON fields where the error can say so."""
    render = getattr(exc, "render", None)
    return render("json") if callable(render) else str(exc)


def _reworded(exc: UserError, source: str, *, said_as: str = "the DataFrame") -> RequestError:
    """``exc`` as a RequestError whose message calls the data what the client sent (not a temporary file)."""
    error = RequestError(str(exc).replace(said_as, source))
    error.option = getattr(exc, "option", None)
    return error


# ======================================================================================================================
# What a model takes
# ======================================================================================================================


@dataclass(frozen=True)
class InputSpec:
    """A model's inputs as HTTP sees them: each feature's name, kind and advertised datatype; the target; outputs."""

    features: tuple[str, ...]
    kinds: dict[str, str]
    datatypes: dict[str, str]
    target: str
    task: str
    classes: tuple[Any, ...]

    @classmethod
    def of(cls, model: Any) -> "InputSpec":
        vocabs = dict(model.preprocessor.vocabs)
        kinds = {c.name: c.kind for c in model.schema.features}
        datatypes = {}
        for name, kind in kinds.items():
            numbered = kind == "categorical" and vocabs.get(name) and all(
                isinstance(v, str) and _INTEGER_KEY.fullmatch(v) for v in vocabs[name])
            datatypes[name] = "INT64" if numbered else KIND_DATATYPES[kind][0]
        return cls(features=tuple(kinds), kinds=kinds, datatypes=datatypes, target=model.schema.target,
                   task=model.task, classes=tuple(model.classes))

    @property
    def label_datatype(self) -> str:
        if all(isinstance(c, bool) for c in self.classes):
            return "BOOL"
        if all(isinstance(c, int) and not isinstance(c, bool) for c in self.classes):
            return "INT64"
        if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in self.classes):
            return "FP64"
        return "BYTES"

    def output_names(self) -> tuple[str, ...]:
        return ("value",) if self.task == "regression" else ("label", "probabilities")

    def unknown(self, names: list[str], where: str) -> None:
        """Raise for names that are neither a feature nor the target (which is ignored, as ``neuraltab predict`` does)."""
        allowed = set(self.features) | {self.target}
        extra = [n for n in names if n not in allowed]
        if extra:
            hint = closest_names(str(extra[0]), list(self.features))
            shown = ", ".join(repr(n) for n in extra[:5]) + (" ..." if len(extra) > 5 else "")
            raise RequestError(f"{where}: {len(extra)} column(s) the model does not use: {shown} ({hint}); "
                               "remove them")

    def missing(self, names: Any, where: str, how: str = "null where a value is missing") -> None:
        absent = [c for c in self.features if c not in names]
        if absent:
            shown = ", ".join(repr(c) for c in absent[:5]) + (" ..." if len(absent) > 5 else "")
            raise RequestError(f"{where}: missing {len(absent)} feature column(s) the model was trained on: {shown}; "
                               f"add them ({how})")


def _check_rows(n: int, max_rows: int, where: str) -> None:
    if n == 0:
        raise RequestError(f"{where}: no rows; send at least one")
    if n > max_rows:
        raise PayloadTooLarge(f"{where}: {n:,} rows, more than the {max_rows:,} a request may have (--max-rows); "
                              "split the rows over several requests")


# ======================================================================================================================
# JSON values → typed columns
# ======================================================================================================================


def decode_json(body: bytes, *, expected: str) -> Any:
    if not body.strip():
        raise RequestError(f"the request body is empty; send {expected}")
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError as exc:
        if "UTF-8" in exc.msg:
            raise RequestError(f"the request body is not UTF-8 text; send {expected} as UTF-8 JSON") from None
        raise RequestError(f"the request body is not valid JSON ({exc.msg}: line {exc.lineno} column {exc.colno}); "
                           f"send {expected} (a CSV table needs Content-Type: text/csv)") from None


def encode_json(payload: Any) -> bytes:
    """JSON bytes; numpy arrays and scalars written directly, float32 ones at their shortest round-tripping text."""
    return orjson.dumps(payload, option=orjson.OPT_SERIALIZE_NUMPY)


def _first(values: list, ok: Callable[[Any], bool]) -> int:
    return next(i for i, v in enumerate(values) if not ok(v))


def _column(spec: InputSpec, name: str, values: list, at: Callable[[int], str]) -> np.ndarray:
    """The column's values as an array of its kind, or a RequestError naming the first wrong one (``at(i)`` says where
    value i came from)."""
    kind = spec.kinds[name]
    types = set(map(type, values))
    if kind == "numeric":
        if types <= {int, float, _NONE}:  # orjson reads integers beyond 64 bits as floats: they all fit
            return np.array(values, dtype=np.float64)
        i = _first(values, lambda v: type(v) in (int, float, _NONE))
        raise RequestError(f"{at(i)}: column {name!r} should hold numbers (as in training) but has {values[i]!r}; "
                           "send a JSON number, or null where the value is missing")
    if kind == "boolean":
        if not types <= {bool, _NONE}:
            i = _first(values, lambda v: type(v) in (bool, _NONE))
            raise RequestError(f"{at(i)}: column {name!r} should hold true or false (as in training) but has "
                               f"{values[i]!r}; send true, false, or null where the value is missing")
        return np.array(values, dtype=bool if _NONE not in types else object)
    allowed = {str, _NONE} if kind == "datetime" else {str, int, float, bool, _NONE}
    if not types <= allowed:
        i = _first(values, lambda v: type(v) in allowed)
        what = "dates as text such as \"2024-01-31\"" if kind == "datetime" else "one value (text, a number or a boolean)"
        raise RequestError(f"{at(i)}: column {name!r} should hold {what} but has {json.dumps(values[i])[:60]}; "
                           "send that, or null where the value is missing")
    if kind == "datetime":
        _check_dates(name, values, at)
    return np.array(values, dtype=object)


def _check_dates(name: str, values: list, at: Callable[[int], str]) -> None:
    """Dates that do not parse are an error here, where a file with a stray one gets a notice: JSON has no excuse."""
    text = pd.Series([None if v is None or v.strip() in _MARKERS else v for v in values], dtype=object)
    bad = (parse_datetimes(text).isna() & text.notna()).to_numpy()
    if bad.any():
        i = int(np.flatnonzero(bad)[0])
        raise RequestError(f"{at(i)}: column {name!r} should hold dates (as in training) but has {values[i]!r}; "
                           "send dates such as \"2024-01-31\" or \"2024-01-31T12:00:00\", or null where missing")


def _ordered(spec: InputSpec, columns: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    return {name: columns[name] for name in spec.features}


# ======================================================================================================================
# The three request formats
# ======================================================================================================================


def instances_columns(payload: Any, spec: InputSpec, *, max_rows: int) -> dict[str, np.ndarray]:
    """``{"instances": [{column: value, ...}, ...]}`` (as :func:`decode_json` reads it: valid Unicode, finite numbers)
    → the feature columns, an array each (the target is ignored); ``pd.DataFrame`` of them is what to predict for."""
    if not isinstance(payload, dict) or "instances" not in payload:
        got = f"an object with {', '.join(repr(k) for k in list(payload)[:3])}" if isinstance(payload, dict) else \
            f"a JSON {_json_type(payload)}"
        raise RequestError(f"the request body is {got}; send {INSTANCES_EXAMPLE}")
    unknown = [k for k in payload if k != "instances"]
    if unknown:
        raise RequestError(f"the request body has {unknown[0]!r} beside 'instances'; send {INSTANCES_EXAMPLE} alone")
    records = payload["instances"]
    if not isinstance(records, list):
        raise RequestError(f"'instances' is a JSON {_json_type(records)}; send a list of objects, {INSTANCES_EXAMPLE}")
    _check_rows(len(records), max_rows, "'instances'")
    expected = set(spec.features)
    for i, record in enumerate(records):
        if type(record) is not dict:
            raise RequestError(f"instance {i} is a JSON {_json_type(record)}; each instance is an object "
                               "{column: value, ...} with every feature column")
        if record.keys() != expected:
            spec.unknown(list(record), f"instance {i}")
            spec.missing(record, f"instance {i}")

    def at(i: int) -> str:
        return f"instance {i}"

    return {name: _column(spec, name, [r[name] for r in records], at) for name in spec.features}


def infer_columns(payload: Any, spec: InputSpec, *,
                  max_rows: int) -> tuple[dict[str, np.ndarray], Any, tuple[str, ...]]:
    """An Open Inference Protocol request, one input per column → (the feature columns as in
    :func:`instances_columns`, the request's id, the outputs asked for)."""
    if not isinstance(payload, dict) or not isinstance(payload.get("inputs"), list) or not payload["inputs"]:
        raise RequestError('the request needs "inputs": a list with one input per column, each {"name": column, '
                           '"datatype": "FP64" | "INT64" | "BOOL" | "BYTES", "shape": [n], "data": [...]}')
    parameters = payload.get("parameters") or {}
    content_type = parameters.get("content_type") if isinstance(parameters, dict) else None
    if content_type not in (None, "pd"):
        raise RequestError(f'"content_type": {json.dumps(content_type)[:40]} is not supported; send one input per '
                           'column with "parameters": {"content_type": "pd"} (or no content_type)')
    request_id = payload.get("id")
    if request_id is not None and not isinstance(request_id, str):
        raise RequestError(f'"id" is a JSON {_json_type(request_id)}; send text, or leave it out')
    columns: dict[str, np.ndarray] = {}
    rows: int | None = None
    for k, item in enumerate(payload["inputs"]):
        name, values = _infer_input(item, k, spec, max_rows)
        if name in columns:
            raise RequestError(f"input {name!r} is given twice; send one input per column")
        if rows is not None and len(values) != rows:
            raise RequestError(f"input {name!r} has {len(values)} rows but the inputs before it have {rows}; "
                               "every column needs one value per row")
        rows = len(values)
        if name != spec.target:
            columns[name] = _column(spec, name, values, lambda i, name=name: f"input {name!r} item {i}")
    spec.missing(columns, "the request", 'one input per column, with null where a value is missing')
    return _ordered(spec, columns), request_id, _outputs_asked(payload.get("outputs"), spec)


def _infer_input(item: Any, k: int, spec: InputSpec, max_rows: int) -> tuple[str, list]:
    if not isinstance(item, dict):
        raise RequestError(f"input {k} is a JSON {_json_type(item)}; each input is an object "
                           '{"name", "datatype", "shape", "data"}')
    name = item.get("name")
    if not isinstance(name, str):
        raise RequestError(f'input {k} has no "name" (text): name the column it holds')
    spec.unknown([name], f"input {k}")
    datatype, shape, data = item.get("datatype"), item.get("shape"), item.get("data")
    if datatype not in OIP_TYPES:
        raise RequestError(f'input {name!r}: "datatype" is {json.dumps(datatype)[:40]}; use one of '
                           f"{', '.join(OIP_TYPES)}")
    if name != spec.target and datatype not in KIND_DATATYPES[spec.kinds[name]]:
        kind = spec.kinds[name]
        raise RequestError(f"input {name!r} is a {kind} column, so its datatype cannot be {datatype}; send it as "
                           f"{spec.datatypes[name]}")
    if not (isinstance(shape, list) and 1 <= len(shape) <= 2 and all(type(d) is int and d >= 0 for d in shape)
            and (len(shape) == 1 or shape[1] == 1)):
        raise RequestError(f'input {name!r}: "shape" is {json.dumps(shape)[:40]}; a column has shape [n] or [n, 1] '
                           "for n rows")
    _check_rows(shape[0], max_rows, f"input {name!r}")
    if not isinstance(data, list):
        raise RequestError(f'input {name!r}: "data" is a JSON {_json_type(data)}; send a list of the column\'s values')
    if data and all(type(v) is list and len(v) == 1 for v in data):  # [[v], [v], ...] for shape [n, 1]
        data = [v[0] for v in data]
    if len(data) != shape[0]:
        raise RequestError(f"input {name!r}: shape {shape} says {shape[0]} rows but \"data\" has {len(data)} values; "
                           "make them agree")
    _check_datatype(name, datatype, data)
    return name, data


def _check_datatype(name: str, datatype: str, data: list) -> None:
    """The values fit the datatype the client declared (null stands for a missing value in any)."""
    if datatype == "BYTES":
        allowed, what = {str}, "text"
    elif datatype == "BOOL":
        allowed, what = {bool}, "true or false"
    elif datatype in OIP_INT_TYPES:
        allowed, what = {int}, "whole numbers"
    else:
        allowed, what = {int, float}, "numbers"
    if not set(map(type, data)) <= allowed | {_NONE}:
        i = _first(data, lambda v: v is None or type(v) in allowed)
        raise RequestError(f"input {name!r} ({datatype}): item {i} is {json.dumps(data[i])[:60]}, not {what}; send "
                           f"{what} (or null where a value is missing), or declare another datatype")


def _outputs_asked(outputs: Any, spec: InputSpec) -> tuple[str, ...]:
    available = spec.output_names()
    if outputs is None:
        return available
    if not isinstance(outputs, list) or not all(isinstance(o, dict) and isinstance(o.get("name"), str)
                                                for o in outputs):
        raise RequestError('"outputs" must be a list of {"name": output}; leave it out for all outputs')
    names = [o["name"] for o in outputs]
    for n in names:
        if n not in available:
            raise RequestError(f"output {n!r} is not one of this model's: {', '.join(map(repr, available))}; "
                               f"{closest_names(n, list(available), what='outputs')}")
    return tuple(dict.fromkeys(names))


def csv_frame(body: bytes, spec: InputSpec, *, decimal: str | None, max_rows: int) -> pd.DataFrame:
    """A CSV body (any delimiter or encoding ``neuraltab predict`` reads) → its DataFrame, read by the same reader."""
    if not body.strip():
        raise RequestError("the request body is empty; send a CSV table with a header row and one row per prediction")
    fd, path = tempfile.mkstemp(prefix="neuraltab-serve-", suffix=".csv")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(body)
        df = read_table(path, decimal=decimal)
    except UserError as exc:
        raise _reworded(exc, "the CSV body", said_as=path) from None
    finally:
        os.unlink(path)
    _check_rows(len(df), max_rows, "the CSV body")
    spec.unknown([str(c) for c in df.columns], "the CSV body")
    spec.missing(set(df.columns), "the CSV body", "values may be empty")
    return df


def _json_type(value: Any) -> str:
    return {dict: "object", list: "list", str: "text", bool: "boolean", int: "number", float: "number",
            _NONE: "null"}.get(type(value), type(value).__name__)


# ======================================================================================================================
# Predictions → responses
# ======================================================================================================================


@dataclass(frozen=True)
class Predictions:
    """:meth:`Model.predict_table`'s table as arrays, sliceable by rows: the labels (as the user wrote them) and the
    probabilities [n, classes] of a classifier, or a regressor's values [n]."""

    labels: list | None = None
    proba: np.ndarray | None = None
    values: np.ndarray | None = None

    @classmethod
    def of(cls, table: pd.DataFrame, task: str) -> "Predictions":
        if task == "regression":
            return cls(values=table["prediction"].to_numpy())
        return cls(labels=table["prediction"].tolist(), proba=table.iloc[:, 1:].to_numpy())

    def __len__(self) -> int:
        return len(self.values if self.values is not None else self.labels)

    def __getitem__(self, rows: slice) -> "Predictions":
        if self.values is not None:
            return Predictions(values=self.values[rows])
        return Predictions(labels=self.labels[rows], proba=self.proba[rows])


def predict_payload(predictions: Predictions, spec: InputSpec) -> dict[str, Any]:
    """``{"predictions": [...], "probabilities": [{label: p}, ...]}`` (regression: the values alone)."""
    if spec.task == "regression":
        return {"predictions": predictions.values}
    keys = [str(c) for c in spec.classes]
    return {"predictions": predictions.labels,
            "probabilities": [dict(zip(keys, row)) for row in predictions.proba]}


def infer_payload(predictions: Predictions, spec: InputSpec, *, model_name: str, request_id: Any,
                  outputs: tuple[str, ...]) -> dict[str, Any]:
    """The Open Inference Protocol response: ``label`` and ``probabilities`` (classes in its parameters), or ``value``."""
    n = len(predictions)
    made = []
    for name in outputs:
        if name == "value":
            made.append({"name": "value", "datatype": "FP64", "shape": [n], "data": predictions.values})
        elif name == "label":
            labels = predictions.labels
            if spec.label_datatype == "BYTES":
                labels = [str(v) for v in labels]
            made.append({"name": "label", "datatype": spec.label_datatype, "shape": [n], "data": labels})
        else:
            made.append({"name": "probabilities", "datatype": "FP32", "shape": [n, len(spec.classes)],
                         "data": predictions.proba.reshape(-1), "parameters": {"classes": list(spec.classes)}})
    response = {"model_name": model_name, "outputs": made, "parameters": {"content_type": "pd"}}
    if request_id is not None:
        response["id"] = request_id
    return response
