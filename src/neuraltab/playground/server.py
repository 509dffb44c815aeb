"""Starting the playground: a uvicorn server on 127.0.0.1 and a free port, the URL printed, the browser opened."""

from __future__ import annotations

import secrets
import socket
import threading
import webbrowser
from pathlib import Path
from typing import Any, Callable

from ..errors import ConfigError, DataError, option
from .session import TableSource

__all__ = ["serve", "start", "exposure_warning", "LOOPBACK"]

LOOPBACK = ("127.0.0.1", "localhost", "::1")


def exposure_warning(host: str) -> str | None:
    if host in LOOPBACK or host.startswith("127."):
        return None
    return (f"the playground listens on {host}: anyone who can reach it and knows the token can train on the table "
            "and read its rows")


def _table(data: Any, target: str | None) -> TableSource | None:
    if data is None:
        if target is not None:
            raise ConfigError(f"{option('target')} was given without a table to train on")
        return None
    if target is None:
        raise ConfigError(f"a table needs {option('target')}: the column to predict")
    if isinstance(data, (str, Path)):
        path = Path(data)
        if not path.exists():
            raise DataError(f"{path}: no such file")
        from ..api import prepare

        prepare(str(path), target, model="mlp", epochs=1)  # a bad file or target fails here, in one line
        return TableSource(data=str(path), target=target, name=path.name)
    return TableSource(data=data, target=target, name="DataFrame")


def _free_port(host: str, port: int) -> int:
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError as exc:
            raise ConfigError(f"cannot listen on {host}:{port}: {exc.strerror or exc}; choose another "
                              f"{option('port')} (0 picks a free one)") from None
        return probe.getsockname()[1]


def _warm_up() -> None:
    """The first optimizer a process builds imports much of torch (seconds): do it before a tab waits on it."""
    import torch

    torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)


def start(data: Any = None, target: str | None = None, *, host: str = "127.0.0.1", port: int = 0,
          token: str | None = None) -> tuple[Any, threading.Thread, str]:
    """Start the server in a thread (for tests and notebooks): (uvicorn server, its thread, the page's URL)."""
    import uvicorn

    from .app import create_app

    if exposure_warning(host) and not token:
        raise ConfigError(f"the playground only listens beyond this machine with a secret: pass {option('token')}")
    table = _table(data, target)
    port = _free_port(host, port)
    _warm_up()
    config = uvicorn.Config(create_app(table, token=token), host=host, port=port, log_level="warning",
                            lifespan="off", ws="auto")
    server = uvicorn.Server(config)
    server.install_signal_handlers = lambda: None  # type: ignore[method-assign]
    thread = threading.Thread(target=server.run, name="neuraltab-playground-server", daemon=True)
    thread.start()
    while not server.started and thread.is_alive():
        threading.Event().wait(0.02)
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/" + (f"?token={token}" if token else "")
    return server, thread, url


def serve(data: Any = None, target: str | None = None, *, host: str = "127.0.0.1", port: int = 0,
          open_browser: bool = True, token: str | None = None,
          on_listen: Callable[[dict[str, Any]], None] | None = None) -> None:
    """Serve until Ctrl-C; ``on_listen`` gets the URL (and any warning) once the server listens."""
    server, thread, url = start(data, target, host=host, port=port, token=token)
    try:  # from the moment the URL is out, Ctrl-C is the way to stop: a quick one must stop as cleanly as a late one
        if on_listen is not None:
            on_listen({"url": url, "warning": exposure_warning(host)})
        if open_browser:
            webbrowser.open(url)
        while thread.is_alive():
            thread.join(0.25)
    except KeyboardInterrupt:
        pass
    finally:
        server.should_exit = True
        thread.join(10)


def new_token() -> str:
    return secrets.token_urlsafe(16)
