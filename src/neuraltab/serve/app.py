"""The HTTP server of one or more models: :func:`create_app` returns the FastAPI (ASGI) app.

Endpoints (each model under its name; ``/predict`` is the first model's):

- ``GET /v2/health/live``, ``GET /v2/health/ready`` (200 only once every model has made a warm-up prediction),
  ``GET /v2/models/{name}/ready``;
- ``GET /v2`` and ``GET /v2/models/{name}``: Open Inference Protocol metadata, the inputs being the model's columns;
- ``POST /v2/models/{name}/infer``: the Open Inference Protocol, one input per column (``content_type: "pd"``);
- ``POST /predict``, ``POST /v2/models/{name}/predict``: ``{"instances": [{column: value}, ...]}`` or a CSV body;
- ``GET /metrics`` (Prometheus), ``/docs`` and ``/openapi.json``.

Every prediction goes through :meth:`neuraltab.Model.predict_table`, the path of ``neuraltab predict``, on one
inference thread per process (:mod:`.batching`), so the event loop only moves bytes. Errors are JSON
``{"error": "..."}``: 4xx for anything the client can fix, 500 only for a bug in neuraltab.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Mapping, Sequence

import pandas as pd
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from starlette.exceptions import HTTPException

from .. import __version__
from ..errors import ConfigError, UserError, closest_names
from . import schemas
from .batching import Batcher, Job
from .codec import (INSTANCES_EXAMPLE, InputSpec, Predictions, RequestError, csv_frame, decode_json, encode_json,
                    error_text, infer_columns, infer_payload, instances_columns, predict_payload)
from .limits import OPEN_PATHS, Guard, read_body
from .metrics import CONTENT_TYPE_LATEST, Metrics
from .settings import Settings

__all__ = ["create_app", "Service", "model_names"]

log = logging.getLogger("neuraltab.serve")
_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]*")
_CSV_TYPES = ("text/csv", "application/csv", "text/plain")


class RequestTimeout(RequestError):
    status = 504


class NotReady(RequestError):
    status = 503


def model_names(paths: Sequence[str | Path], names: Sequence[str] | None = None) -> list[str]:
    """The name each model file is served under: its stem, or the ``--name`` given for it, checked for URLs."""
    if names:
        if len(names) != len(paths):
            raise ConfigError(f"--name was given {len(names)} time(s) for {len(paths)} model(s); give one --name per "
                              "model, in the same order, or none")
        chosen = list(names)
    else:
        chosen = [Path(p).stem for p in paths]
    for name, path in zip(chosen, paths):
        if not _NAME.fullmatch(name):
            raise ConfigError(f"{path}: {name!r} cannot be a model name in a URL; pass --name with letters, digits, "
                              "'_', '-' or '.'")
    duplicates = sorted({n for n in chosen if chosen.count(n) > 1})
    if duplicates:
        raise ConfigError(f"two models would be served as {duplicates[0]!r}; give each a name with --name")
    return chosen


# ======================================================================================================================
# The models being served
# ======================================================================================================================


class Served:
    """One model as the server sees it: its inputs, metadata, documentation and batcher."""

    def __init__(self, name: str, model: Any, executor: ThreadPoolExecutor, settings: Settings,
                 metrics: Metrics) -> None:
        self.name = name
        self.model = model
        self.spec = InputSpec.of(model)
        self.example = schemas.example_row(model, self.spec)
        self.settings = settings
        self.ready = False
        self.batcher = Batcher(self.predict, executor, max_rows=settings.batch_max_rows if settings.batching else 1,
                               max_wait=settings.batch_max_wait_ms / 1000,
                               on_batch=lambda rows: metrics.predicted(name, rows))

    def predict(self, frame: pd.DataFrame) -> Predictions:
        return Predictions.of(self.model.predict_table(frame, notify=self._notice), self.spec.task)

    def _notice(self, message: str) -> None:
        log.info("%s: %s", self.name, message.replace("the DataFrame", "a request"))

    def warm_up(self) -> None:
        """One prediction through the whole request path, on a row of missing values."""
        columns = instances_columns({"instances": [{c: None for c in self.spec.features}]}, self.spec, max_rows=1)
        predict_payload(self.predict(pd.DataFrame(columns)), self.spec)
        self.ready = True

    def metadata(self) -> dict[str, Any]:
        spec = self.spec
        inputs = [{"name": n, "datatype": spec.datatypes[n], "shape": [-1], "parameters": {"kind": spec.kinds[n]}}
                  for n in spec.features]
        if spec.task == "regression":
            outputs = [{"name": "value", "datatype": "FP64", "shape": [-1]}]
        else:
            outputs = [{"name": "label", "datatype": spec.label_datatype, "shape": [-1]},
                       {"name": "probabilities", "datatype": "FP32", "shape": [-1, len(spec.classes)],
                        "parameters": {"classes": list(spec.classes)}}]
        return {"name": self.name, "versions": [], "platform": "neuraltab", "inputs": inputs, "outputs": outputs,
                "parameters": {"task": spec.task, "target": spec.target, "content_type": "pd"}}


class Service:
    """Everything the endpoints share: the models, the inference thread, the settings and the metrics."""

    def __init__(self, models: Mapping[str, Any], settings: Settings) -> None:
        if not models:
            raise ConfigError("no model to serve; give at least one model file")
        self.settings = settings
        self.metrics = Metrics()
        # one inference thread: predictions hold the GIL for their Python parts anyway, and one thread lets queued
        # requests be batched
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="neuraltab-inference")
        self.models = {name: Served(name, model, self.executor, settings, self.metrics)
                       for name, model in models.items()}
        self.warm_error: str | None = None

    @property
    def ready(self) -> bool:
        return all(m.ready for m in self.models.values())

    def warm_up(self) -> None:
        """Warm every model up now (the CLI does this before it accepts connections)."""
        try:
            for served in self.models.values():
                if not served.ready:
                    served.warm_up()
        except Exception as exc:  # the model loaded but cannot predict: not ready, and say why
            self.warm_error = f"the warm-up prediction failed ({type(exc).__name__}: {exc})"
            log.error(self.warm_error)
            raise

    @contextlib.asynccontextmanager
    async def lifespan(self, app: FastAPI):
        if not self.ready:  # warm up on the inference thread, while the probes already answer
            asyncio.get_running_loop().run_in_executor(self.executor, self._warm_up_quietly)
        # The inference thread is kept: the server has drained its requests before this point, an idle thread costs
        # nothing, and an app may be started again (test clients run the lifespan once per session).
        yield

    def _warm_up_quietly(self) -> None:
        with contextlib.suppress(Exception):  # warm_up keeps the reason for /v2/health/ready
            self.warm_up()


# ======================================================================================================================
# Endpoints
# ======================================================================================================================


def _json(payload: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    return Response(encode_json(payload), status, headers, media_type="application/json")


def _error(status: int, message: str, headers: dict[str, str] | None = None) -> Response:
    return _json({"error": message}, status, headers)


async def _answer(service: Service, served: Served, request: Request, make_job: Any) -> Response:
    """Read the body, run the job on the inference thread, answer within the timeout; a UserError becomes its 4xx."""
    settings = service.settings
    started = time.monotonic()
    source = "the request"
    try:
        if not served.ready:
            raise NotReady(f"model {served.name!r} is warming up; retry when /v2/health/ready answers 200")
        body = await asyncio.wait_for(read_body(request.stream(), settings.max_body_bytes), settings.timeout)
        job = make_job(body, request.headers.get("content-type", ""))
        source = job.source
        remaining = settings.timeout - (time.monotonic() - started)
        try:
            content = await asyncio.wait_for(served.batcher.run(job), max(remaining, 0.0))
        except TimeoutError:
            raise RequestTimeout(f"the prediction took longer than the {settings.timeout:g} s a request may take "
                                 "(--timeout); send fewer rows per request, or retry when the server is less busy")\
                from None
        return Response(content, media_type="application/json")
    except TimeoutError:
        return _error(504, f"the request body took longer than {settings.timeout:g} s to arrive (--timeout)")
    except UserError as exc:
        status = getattr(exc, "status", 400)
        headers = {"Retry-After": "1"} if status == 503 else None
        return _error(status, error_text(exc).replace("the DataFrame", source), headers)
    except Exception as exc:  # a bug in neuraltab: say so, and log the traceback for the report
        log.exception("internal error answering %s %s", request.method, request.url.path)
        return _error(500, f"internal error ({type(exc).__name__}); this is a bug in neuraltab: please report it "
                      "with the request that caused it")


def _predict_job(served: Served) -> Any:
    spec, settings = served.spec, served.settings

    def make(body: bytes, content_type: str) -> Job:
        def finish(predictions: Predictions) -> bytes:
            return encode_json(predict_payload(predictions, spec))

        if content_type.split(";")[0].strip().lower() in _CSV_TYPES:
            decimal = served.model.reading.get("decimal")
            return Job(lambda: csv_frame(body, spec, decimal=decimal, max_rows=settings.max_rows), finish,
                       source="the CSV body", batchable=False)
        return Job(lambda: instances_columns(decode_json(body, expected=INSTANCES_EXAMPLE), spec,
                                             max_rows=settings.max_rows), finish)
    return make


def _infer_job(served: Served) -> Any:
    spec, settings = served.spec, served.settings

    def make(body: bytes, content_type: str) -> Job:
        asked: dict[str, Any] = {}

        def prepare() -> dict:
            payload = decode_json(body, expected='{"inputs": [{"name": column, "datatype", "shape", "data"}, ...]}')
            columns, asked["id"], asked["outputs"] = infer_columns(payload, spec, max_rows=settings.max_rows)
            return columns

        def finish(predictions: Predictions) -> bytes:
            return encode_json(infer_payload(predictions, spec, model_name=served.name, request_id=asked["id"],
                                             outputs=asked["outputs"]))
        return Job(prepare, finish)
    return make


def _add_model_routes(app: FastAPI, service: Service, served: Served, *, default: bool) -> None:
    name, settings = served.name, service.settings
    base = f"/v2/models/{name}"
    predict_job, infer_job = _predict_job(served), _infer_job(served)

    async def metadata() -> Response:
        return _json(served.metadata())

    async def model_ready() -> Response:
        return _json({"name": name, "ready": served.ready}, 200 if served.ready else 503)

    async def infer(request: Request) -> Response:
        return await _answer(service, served, request, infer_job)

    async def predict(request: Request) -> Response:
        return await _answer(service, served, request, predict_job)

    posting = schemas.errors(400, 401, 404, 413, 503, 504)
    app.add_api_route(base, metadata, methods=["GET"], tags=["metadata"], operation_id=f"metadata_{name}",
                      summary=f"{name}: inputs (one per column) and outputs",
                      responses={200: {"model": schemas.ModelMetadata}, **schemas.errors(401)})
    app.add_api_route(f"{base}/ready", model_ready, methods=["GET"], tags=["health"], operation_id=f"ready_{name}",
                      summary=f"{name}: 200 once it has made its warm-up prediction",
                      responses={200: {"model": schemas.ModelReady}, 503: {"model": schemas.ModelReady},
                                 **schemas.errors(401)})
    app.add_api_route(f"{base}/infer", infer, methods=["POST"], tags=["predict"], operation_id=f"infer_{name}",
                      summary=f"{name}: Open Inference Protocol, one input per column",
                      responses={200: {"model": schemas.InferResponse}, **posting},
                      openapi_extra={"requestBody": schemas.infer_body(served.spec, served.example,
                                                                       max_rows=settings.max_rows)})
    body = schemas.predict_body(served.spec, served.example, max_rows=settings.max_rows)
    app.add_api_route(f"{base}/predict", predict, methods=["POST"], tags=["predict"], operation_id=f"predict_{name}",
                      summary=f"{name}: rows as JSON instances or CSV → predictions",
                      responses={200: {"model": schemas.PredictResponse}, **posting},
                      openapi_extra={"requestBody": body})
    if default:
        app.add_api_route("/predict", predict, methods=["POST"], tags=["predict"], operation_id="predict",
                          summary=f"the first model ({name}): rows as JSON instances or CSV → predictions",
                          responses={200: {"model": schemas.PredictResponse}, **posting},
                          openapi_extra={"requestBody": body})


def _add_server_routes(app: FastAPI, service: Service) -> None:
    async def live() -> Response:
        return _json({"live": True})

    async def ready() -> Response:
        if service.ready:
            return _json({"ready": True})
        why = service.warm_error or "the models are warming up"
        return _json({"ready": False, "error": why}, 503, {"Retry-After": "1"})

    async def server_metadata() -> Response:
        return _json({"name": "neuraltab", "version": __version__, "extensions": [], "models": list(service.models)})

    async def metrics() -> Response:
        return Response(service.metrics.render(), media_type=CONTENT_TYPE_LATEST)

    app.add_api_route("/v2/health/live", live, methods=["GET"], tags=["health"], operation_id="live",
                      summary="200 while the process serves", responses={200: {"model": schemas.LiveResponse}})
    app.add_api_route("/v2/health/ready", ready, methods=["GET"], tags=["health"], operation_id="ready",
                      summary="200 once every model has made its warm-up prediction",
                      responses={200: {"model": schemas.ReadyResponse}, 503: {"model": schemas.ReadyResponse}})
    app.add_api_route("/v2", server_metadata, methods=["GET"], tags=["metadata"], operation_id="server_metadata",
                      summary="the server and the names of its models",
                      responses={200: {"model": schemas.ServerMetadata}, **schemas.errors(401)})
    app.add_api_route("/metrics", metrics, methods=["GET"], tags=["metrics"], operation_id="metrics",
                      summary="Prometheus metrics", responses={200: {"content": {"text/plain": {}}},
                                                              **schemas.errors(401)})


def _add_error_handlers(app: FastAPI, service: Service) -> None:
    async def http_error(request: Request, exc: HTTPException) -> Response:
        path = request.url.path
        if exc.status_code == 404 and path.startswith("/v2/models/"):
            name = path[len("/v2/models/"):].split("/")[0]
            if name not in service.models:
                return _error(404, f"model {name!r} is not served here; "
                              f"{closest_names(name, list(service.models), what='models')}")
        if exc.status_code == 404:
            return _error(404, f"no endpoint {request.method} {path}; /docs lists them")
        if exc.status_code == 405:
            return _error(405, f"{path} does not take {request.method}; /docs lists what it takes",
                          dict(exc.headers or {}))
        return _error(exc.status_code, str(exc.detail))

    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        first = exc.errors()[0] if exc.errors() else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        return _error(400, f"{where}: {first.get('msg', 'invalid request')}")

    app.add_exception_handler(HTTPException, http_error)
    app.add_exception_handler(RequestValidationError, invalid)


# ======================================================================================================================
# create_app
# ======================================================================================================================


def create_app(models: Mapping[str, Any] | Sequence[str | Path | Any], *, settings: Settings | None = None,
               warm_up: bool = False) -> FastAPI:
    """The ASGI app serving ``models``: a mapping of name → :class:`neuraltab.Model` (or model file path), or a list
    of model files (each served under its file's stem).

    The models are loaded here (a bad file raises :class:`neuraltab.ArtifactError`). Each makes one warm-up
    prediction when the app starts, on the inference thread, and ``/v2/health/ready`` answers 200 once all have;
    ``warm_up=True`` makes them now instead, so the app is ready before it accepts a connection.
    """
    from ..api import load

    settings = settings or Settings()
    if not isinstance(models, Mapping):
        paths = list(models)
        if any(not isinstance(p, (str, Path)) for p in paths):
            raise ConfigError("pass models as a list of model files or a mapping of name -> Model")
        models = dict(zip(model_names(paths), paths))
    loaded = {name: load(m) if isinstance(m, (str, Path)) else m for name, m in models.items()}
    for name in loaded:
        if not _NAME.fullmatch(name):
            raise ConfigError(f"{name!r} cannot be a model name in a URL; use letters, digits, '_', '-' or '.'")
    service = Service(loaded, settings)
    if warm_up:
        service.warm_up()

    app = FastAPI(title="neuraltab", version=__version__, lifespan=service.lifespan,
                  description="Predictions of neuraltab models: the Open Inference Protocol (v2) and a rows API.")
    app.state.service = service
    _add_server_routes(app, service)
    for i, served in enumerate(service.models.values()):
        _add_model_routes(app, service, served, default=i == 0)
    _add_error_handlers(app, service)
    paths = frozenset(route.path for route in app.routes)
    app.add_middleware(Guard, settings=settings, metrics=service.metrics, endpoints=lambda: paths)
    if settings.api_key:
        plain_openapi = app.openapi

        def openapi() -> dict[str, Any]:
            if app.openapi_schema is None:
                app.openapi_schema = schemas.add_security(plain_openapi(), OPEN_PATHS)
            return app.openapi_schema
        app.openapi = openapi
    return app
