"""``neuraltab playground``: watch a network learn, live in the browser, on the TensorFlow Playground's six toy sets
or on your own table, trained by neuraltab's own preprocessing, networks, optimizer, loss and training loop.

``neuraltab.playground(df_or_path, target=...)`` starts it from Python or Jupyter (this module is callable).
"""

from __future__ import annotations

import sys
import types
from typing import Any

__all__ = ["run", "serve"]


def run(data: Any = None, target: str | None = None, *, host: str = "127.0.0.1", port: int = 0,
        open_browser: bool = True, token: str | None = None, on_listen: Any = None) -> None:
    """Serve the playground until Ctrl-C (see :func:`neuraltab.playground.server.serve`)."""
    from .server import serve

    serve(data, target, host=host, port=port, open_browser=open_browser, token=token, on_listen=on_listen)


serve = run


class _CallableModule(types.ModuleType):
    """``neuraltab.playground(...)`` is :func:`run`, and ``neuraltab.playground`` is still this package."""

    def __call__(self, data: Any = None, target: str | None = None, **kwargs: Any) -> None:
        return run(data, target, **kwargs)


sys.modules[__name__].__class__ = _CallableModule
