"""Running the app under uvicorn: one process, or several workers sharing the port.

Every model file is loaded once here first, so a bad file is one line before anything listens. With one worker
that process serves; with ``workers`` > 1, uvicorn starts that many processes, each loading the models itself (a
model per worker) and warming them up before it takes its first connection, so any worker that answers is ready.
SIGTERM (or Ctrl-C) stops accepting connections, lets the requests in progress finish (up to the request timeout),
then exits with status 0.
"""

from __future__ import annotations

import dataclasses
import errno
import json
import logging
import os
import shutil
import signal
import socket
import sys
import tempfile
from pathlib import Path
from typing import Any, Callable, Sequence

from ..errors import ConfigError
from .settings import LOOPBACK_HOSTS, Settings

__all__ = ["run", "exposure_warning", "worker_app"]

_CONFIG_VARIABLE = "NEURALTAB_SERVE_WORKER"  # how the parent tells each worker what to serve (JSON)


def exposure_warning(host: str, settings: Settings) -> str | None:
    """A warning when the server listens beyond this machine without an API key."""
    if host in LOOPBACK_HOSTS or host.startswith("127.") or settings.api_key:
        return None
    return (f"serving on {host} without an API key: anyone who can reach this address can use the models; pass "
            "--api-key (or set NEURALTAB_API_KEY), or serve on 127.0.0.1 behind a proxy that checks callers")


def _check_port(host: str, port: int) -> None:
    """Fail with one line when the address cannot be listened on (uvicorn would log a traceback-like error)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            probe.bind((host, port))
    except socket.gaierror:
        raise ConfigError(f"--host {host}: not an address of this machine; use 127.0.0.1, 0.0.0.0 or one of its "
                          "addresses") from None
    except OSError as exc:
        why = "it is already in use" if exc.errno == errno.EADDRINUSE else exc.strerror or str(exc)
        raise ConfigError(f"cannot listen on {host}:{port}: {why}; pass another --port, or stop what uses it") \
            from None


def _configure_logging(level: str) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(name)s: %(message)s"))
    logger = logging.getLogger("neuraltab.serve")
    logger.handlers[:] = [handler]
    logger.setLevel(level.upper())
    logger.propagate = False


def run(paths: Sequence[str | Path], *, names: Sequence[str] | None = None, host: str = "127.0.0.1",
        port: int = 8000, workers: int = 1, threads: int | None = None, settings: Settings | None = None,
        log_level: str = "warning", access_log: bool = False,
        on_listen: Callable[[dict[str, Any]], None] = lambda info: None) -> None:
    """Serve the model files until SIGTERM or Ctrl-C. ``on_listen`` gets what is served where, just before the
    server starts listening (for the CLI to say so)."""
    import torch
    import uvicorn

    from ..api import load
    from ..system import available_cores
    from .app import create_app, model_names

    settings = settings or Settings()
    if workers < 1:
        raise ConfigError(f"--workers must be 1 or more, got {workers}")
    if not 1 <= port <= 65535:
        raise ConfigError(f"--port must be between 1 and 65535, got {port}")
    threads = threads or max(1, available_cores() // workers)
    chosen = model_names(paths, names)
    models = {name: load(path) for name, path in zip(chosen, paths)}  # fails here, in one line, on a bad file
    _check_port(host, port)
    _configure_logging(log_level)
    common = dict(host=host, port=port, log_level=log_level, access_log=access_log, lifespan="on",
                  timeout_graceful_shutdown=int(settings.timeout) + 5, server_header=False)
    info = {"models": {n: m.task for n, m in models.items()}, "url": f"http://{host}:{port}", "workers": workers,
            "threads": threads}
    # uvicorn re-raises the signal that stopped it once it has drained; a no-op handler makes that a clean exit
    previous = signal.signal(signal.SIGTERM, lambda *_: None)
    metrics_dir = None
    try:
        if workers == 1:
            torch.set_num_threads(threads)
            app = create_app(models, settings=settings, warm_up=True)
            on_listen(info)
            uvicorn.run(app, **common)
            return
        if not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
            metrics_dir = tempfile.mkdtemp(prefix="neuraltab-metrics-")
            os.environ["PROMETHEUS_MULTIPROC_DIR"] = metrics_dir  # every worker's metrics in one place
        os.environ[_CONFIG_VARIABLE] = json.dumps({
            "models": {name: str(Path(path).resolve()) for name, path in zip(chosen, paths)},
            "settings": dataclasses.asdict(settings), "threads": threads, "log_level": log_level})
        del models  # each worker loads its own
        on_listen(info)
        uvicorn.run("neuraltab.serve.server:worker_app", factory=True, workers=workers, **common)
    finally:
        signal.signal(signal.SIGTERM, previous)
        if metrics_dir is not None:
            os.environ.pop("PROMETHEUS_MULTIPROC_DIR", None)
            shutil.rmtree(metrics_dir, ignore_errors=True)
        os.environ.pop(_CONFIG_VARIABLE, None)


def worker_app() -> Any:
    """The app of one worker process (uvicorn's factory): the models the parent named, warmed up before it listens."""
    import torch

    from .app import create_app

    config = json.loads(os.environ[_CONFIG_VARIABLE])
    torch.set_num_threads(config["threads"])
    _configure_logging(config["log_level"])
    return create_app(config["models"], settings=Settings(**config["settings"]), warm_up=True)
