"""The report: a model file (and, optionally, a table with the target) → one self-contained HTML file.

:func:`collect` (in :mod:`.collect`) gathers the numbers through :class:`neuraltab.Model`; :mod:`.plots` draws them as
inline SVG; :mod:`.html` writes the page. Nothing here imports the training code: a report is written from the model
file and the history it records, and the network is never trained again.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from ..artifacts import atomic_write_bytes, check_writable
from ..errors import Message, UserError, no_notice

__all__ = ["build_report", "write_report", "missing_dependencies", "INSTALL_HINT"]

INSTALL_HINT = "pip install 'neuraltab[report]'"


def missing_dependencies() -> list[str]:
    """The packages the report needs that are not installed."""
    import importlib.util

    return [name for name in ("matplotlib",) if importlib.util.find_spec(name) is None]


def _model(model: Any) -> Any:
    from ..api import Model, load

    return model if isinstance(model, Model) else load(model)


def build_report(model: Any, data: Any = None, *, notify: Any = None, with_baselines: bool = True,
                 timings: dict[str, float] | None = None) -> bytes:
    """The report's bytes for ``model`` (a :class:`~neuraltab.Model` or a model file's path) and ``data`` (a path, a
    DataFrame, or None for what the model file records). ``timings``, when given, gets seconds per stage."""
    missing = missing_dependencies()
    if missing:
        raise UserError(f"the report needs {', '.join(missing)}: {INSTALL_HINT}")
    from .collect import collect
    from .html import render

    import torch

    clock = time.perf_counter()
    if notify is None:
        notify = no_notice
    else:
        sink = notify
        notify = lambda message: sink(Message(message))  # noqa: E731
    # one thread: the same numbers whatever the machine's cores (so the same bytes), and no OpenMP threads spinning
    # against other processes (a report predicts small batches and fits small baselines)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        facts = collect(_model(model), data, notify=notify, with_baselines=with_baselines)
    finally:
        torch.set_num_threads(threads)
    collected = time.perf_counter()
    page = render(facts).encode("utf-8")
    if timings is not None:
        timings.update(facts.timings)
        timings.update({"collect_s": collected - clock, "render_s": time.perf_counter() - collected})
    return page


def write_report(model: Any, data: Any, path: str | Path, *, force: bool = False, notify: Any = None,
                 with_baselines: bool = True, timings: dict[str, float] | None = None) -> Path:
    """Write :func:`build_report` to ``path``, atomically (never half-written); refuses to overwrite unless
    ``force``. Returns the path."""
    path = Path(path)
    check_writable(path, force=force)  # before the work, not after it
    atomic_write_bytes(path, build_report(model, data, notify=notify, with_baselines=with_baselines,
                                          timings=timings), force=force)
    return path
