"""The ``neuraltab`` command: typer commands (:mod:`.commands`), live progress (:mod:`.progress`) and the process
set-up that runs from the entry point (:mod:`.runtime`).

Importing this package loads no torch: :func:`run` first decides how OpenMP's threads wait, then imports the commands.
"""

from __future__ import annotations

from typing import Any

__all__ = ["run", "main", "app"]


def run() -> None:
    """The console entry point (``neuraltab``, ``python -m neuraltab.cli``): set up the process, then run the command
    and exit without the interpreter's teardown. Library callers use :func:`main`, which does neither."""
    import sys

    try:
        from . import runtime

        runtime.keep_freed_memory()
        runtime.prepare(sys.argv)
        from .commands import main
    except KeyboardInterrupt:  # Ctrl-C while the command starts (torch and pandas load): one line, as in a command
        print("interrupted", file=sys.stderr)
        sys.exit(130)
    runtime.exit_after(main)


def __getattr__(name: str) -> Any:
    if name in ("app", "main"):  # the typer app, and main() for library callers: they import torch
        from . import commands

        return getattr(commands, name)
    raise AttributeError(f"module 'neuraltab.cli' has no attribute {name!r}")
