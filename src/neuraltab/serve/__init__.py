"""Serving models over HTTP: ``neuraltab serve MODEL`` and :func:`create_app`, the ASGI app it runs.

Needs the ``serve`` extra (``pip install 'neuraltab[serve]'``: FastAPI, uvicorn, prometheus-client, orjson). This package
imports none of them until :func:`create_app` or :func:`run` is used, so ``neuraltab serve`` can say what to
install in one line when they are missing (:func:`missing_dependencies`).
"""

from __future__ import annotations

import importlib.util
from typing import Any

__all__ = ["create_app", "run", "Settings", "missing_dependencies", "INSTALL_HINT"]

REQUIRED = {"fastapi": "FastAPI", "uvicorn": "uvicorn", "prometheus_client": "prometheus-client", "orjson": "orjson"}
INSTALL_HINT = "pip install 'neuraltab[serve]'"


def missing_dependencies() -> list[str]:
    """The serve extra's packages that are not installed (their usual names)."""
    return [name for module, name in REQUIRED.items() if importlib.util.find_spec(module) is None]


def __getattr__(name: str) -> Any:
    if name in ("create_app", "run", "Settings"):
        missing = missing_dependencies()
        if missing:
            raise ImportError(f"neuraltab.serve needs {', '.join(missing)}: {INSTALL_HINT}")
        from importlib import import_module

        module = {"create_app": ".app", "run": ".server", "Settings": ".settings"}[name]
        return getattr(import_module(module, __name__), name)
    raise AttributeError(f"module 'neuraltab.serve' has no attribute {name!r}")
