"""What ``/openapi.json`` and ``/docs`` say: response models, and each model's request bodies built from its columns.

The request bodies are read by hand (:mod:`.codec`), for speed and for messages in neuraltab's words, so their
schemas are written here from the model's schema: every feature column with the JSON types it takes, required, and
an example row (medians and most frequent categories) that ``/docs`` can send as it is.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from .codec import OIP_TYPES, InputSpec

__all__ = ["ErrorResponse", "LiveResponse", "ReadyResponse", "ServerMetadata", "ModelMetadata", "ModelReady",
           "InferResponse", "PredictResponse", "errors", "predict_body", "infer_body", "example_row", "add_security"]


class ErrorResponse(BaseModel):
    error: str


class LiveResponse(BaseModel):
    live: bool


class ReadyResponse(BaseModel):
    ready: bool
    error: str | None = None


class ServerMetadata(BaseModel):
    name: str
    version: str
    extensions: list[str]
    models: list[str]


class TensorMetadata(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    parameters: dict[str, Any] | None = None


class ModelMetadata(BaseModel):
    name: str
    versions: list[str]
    platform: str
    inputs: list[TensorMetadata]
    outputs: list[TensorMetadata]
    parameters: dict[str, Any]


class ModelReady(BaseModel):
    name: str
    ready: bool


class OutputTensor(BaseModel):
    name: str
    datatype: str
    shape: list[int]
    data: list[Any]
    parameters: dict[str, Any] | None = None


class InferResponse(BaseModel):
    model_name: str
    id: str | None = None
    parameters: dict[str, Any] | None = None
    outputs: list[OutputTensor]


class PredictResponse(BaseModel):
    predictions: list[Any]
    probabilities: list[dict[str, float]] | None = None


_WHY = {400: "a bad request: the message names the column or field and the fix",
        401: "no API key, or the wrong one", 404: "no such model or endpoint",
        413: "a body over the size limit, or more rows than the row limit",
        503: "overloaded, or the models are still warming up", 504: "the request took longer than the timeout"}


def errors(*codes: int) -> dict[int | str, dict[str, Any]]:
    return {code: {"model": ErrorResponse, "description": _WHY[code]} for code in codes}


# ======================================================================================================================
# Request bodies of one model
# ======================================================================================================================


def _value_schema(kind: str) -> dict[str, Any]:
    types = {"numeric": ["number", "null"], "boolean": ["boolean", "null"], "datetime": ["string", "null"],
             "categorical": ["string", "number", "boolean", "null"]}[kind]
    return {"type": types}


def example_row(model: Any, spec: InputSpec) -> dict[str, Any]:
    """A row a person can send from /docs: each number its training median, each category its most frequent value."""
    pre = model.preprocessor
    medians = {col: float(pre.median[j]) for j, (col, part) in enumerate(pre.numeric_inputs) if part is None}
    vocabs = dict(pre.vocabs)
    row: dict[str, Any] = {}
    for name in spec.features:
        kind = spec.kinds[name]
        if kind == "numeric":
            row[name] = round(medians.get(name, 0.0), 6)
        elif kind == "boolean":
            row[name] = True
        elif kind == "datetime":
            row[name] = "2024-01-31"
        else:
            first = vocabs.get(name, [None])[0] if vocabs.get(name) else None
            row[name] = int(first) if first is not None and spec.datatypes[name] == "INT64" else first
    return row


def predict_body(spec: InputSpec, example: dict[str, Any], *, max_rows: int) -> dict[str, Any]:
    properties = {name: _value_schema(spec.kinds[name]) for name in spec.features}
    properties[spec.target] = {"description": "the target column, if present, is ignored"}
    instance = {"type": "object", "required": list(spec.features), "additionalProperties": False,
                "properties": properties}
    header = ",".join(_csv_cell(name) for name in spec.features)
    row = ",".join("" if example[name] is None else _csv_cell(str(example[name])) for name in spec.features)
    return {"required": True, "content": {
        "application/json": {"schema": {
            "type": "object", "required": ["instances"], "additionalProperties": False,
            "properties": {"instances": {"type": "array", "minItems": 1, "maxItems": max_rows, "items": instance}}},
            "example": {"instances": [example]}},
        "text/csv": {"schema": {"type": "string"}, "example": f"{header}\n{row}\n"}}}


def _csv_cell(text: str) -> str:
    return f'"{text}"' if any(ch in text for ch in ',"\n') else text


def infer_body(spec: InputSpec, example: dict[str, Any], *, max_rows: int) -> dict[str, Any]:
    item = {"type": "object", "required": ["name", "datatype", "shape", "data"], "properties": {
        "name": {"type": "string", "enum": [*spec.features, spec.target]},
        "datatype": {"type": "string", "enum": list(OIP_TYPES)},
        "shape": {"type": "array", "minItems": 1, "maxItems": 2, "items": {"type": "integer", "minimum": 0,
                                                                            "maximum": max_rows}},
        "data": {"type": "array", "maxItems": max_rows},
        "parameters": {"type": "object"}}}
    schema = {"type": "object", "required": ["inputs"], "properties": {
        "id": {"type": "string"},
        "parameters": {"type": "object", "properties": {"content_type": {"type": "string", "enum": ["pd"]}}},
        "inputs": {"type": "array", "minItems": 1, "items": item},
        "outputs": {"type": "array", "items": {"type": "object", "required": ["name"], "properties": {
            "name": {"type": "string", "enum": list(spec.output_names())}}}}}}
    inputs = [{"name": name, "datatype": spec.datatypes[name], "shape": [1], "data": [example[name]]}
              for name in spec.features]
    return {"required": True, "content": {"application/json": {
        "schema": schema, "example": {"parameters": {"content_type": "pd"}, "inputs": inputs}}}}


def add_security(openapi: dict[str, Any], open_paths: frozenset[str]) -> dict[str, Any]:
    """Say in the schema that every operation but the health probes needs the bearer key."""
    openapi.setdefault("components", {}).setdefault("securitySchemes", {})["bearer"] = {
        "type": "http", "scheme": "bearer", "description": "the key the server was started with (--api-key)"}
    for path, operations in openapi.get("paths", {}).items():
        if path not in open_paths:
            for operation in operations.values():
                operation["security"] = [{"bearer": []}]
    return openapi
