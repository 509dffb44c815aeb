"""Exporting a model's whole prediction path, preprocessing included, as one ONNX file.

Needs the ``onnx`` extra (``pip install 'neuraltab[onnx]'``: onnx and onnxruntime). This package imports
none of them until :func:`onnx_bytes` or :func:`write_onnx` runs, so a front door can say what to install in one line
when they are missing (:func:`missing_dependencies`). It needs ``data``, ``networks`` and ``artifacts``, never
training. The graph's inputs and outputs are described in :mod:`neuraltab.export.pipeline`.
"""

from __future__ import annotations

import hashlib
import importlib.util
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ArtifactError, ConfigError, UserError

if TYPE_CHECKING:
    from ..api import Model

__all__ = ["onnx_bytes", "write_onnx", "missing_dependencies", "INSTALL_HINT"]

REQUIRED = {"onnx": "onnx", "onnxruntime": "onnxruntime"}
INSTALL_HINT = "pip install 'neuraltab[onnx]'"


def missing_dependencies() -> list[str]:
    """The onnx extra's packages the export needs that are not installed."""
    return [name for module, name in REQUIRED.items() if importlib.util.find_spec(module) is None]


def onnx_bytes(model: "Model", *, numbers: str = "float32", model_sha256: str | None = None,
               source: str = "the model") -> bytes:
    """The serialized ONNX graph of ``model``'s prediction path, checked by ``onnx.checker`` (full check).

    ``numbers``: the dtype of the numeric and boolean inputs. "float32" (the default) is what most runtimes and
    callers hold; its 24 bits round numbers of more than about 7 digits (coordinates such as -93.619754), which can
    move a prediction. "float64" takes the numbers exactly as neuraltab reads them.

    ``model_sha256``: the SHA-256 of the model file it was read from, stored in the graph's metadata (by default that
    of :meth:`Model.to_bytes`, which is the file :meth:`Model.save` writes). A model the graph cannot cover is an
    :class:`~neuraltab.errors.ArtifactError` naming what is unsupported; nothing is written then.
    """
    if numbers not in ("float32", "float64"):
        raise ConfigError(f"the numeric inputs' dtype must be 'float32' or 'float64', got {numbers!r}")
    missing = missing_dependencies()
    if missing:
        raise UserError(f"exporting to ONNX needs {', '.join(missing)}: {INSTALL_HINT}")
    import onnx

    from .pipeline import build_graph, unsupported

    problem = unsupported(model.schema, model.preprocessor, model.spec, model.network)
    if problem is not None:
        raise ArtifactError(f"{source}: cannot export to ONNX: {problem}")
    sha = model_sha256 or hashlib.sha256(model.to_bytes()).hexdigest()
    graph = build_graph(model.schema, model.preprocessor, model.spec, model.network, model_sha256=sha,
                        numbers=numbers)
    try:
        onnx.checker.check_model(graph, full_check=True)
    except (onnx.checker.ValidationError, onnx.shape_inference.InferenceError) as exc:  # a bug, never the user's
        raise AssertionError(f"the exported ONNX graph is invalid, please report a bug: {exc}") from exc
    return graph.SerializeToString()


def write_onnx(model: "Model", path: str | Path, *, force: bool = False, numbers: str = "float32",
               model_sha256: str | None = None, source: str = "the model") -> Path:
    """Write :func:`onnx_bytes` to ``path`` atomically (refusing to overwrite unless ``force``); returns the path."""
    from ..artifacts import atomic_write_bytes, check_writable

    path = Path(path)
    check_writable(path, force=force)  # before the work, as every command that writes does
    atomic_write_bytes(path, onnx_bytes(model, numbers=numbers, model_sha256=model_sha256, source=source), force=force)
    return path
