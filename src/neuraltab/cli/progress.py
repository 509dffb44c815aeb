"""Live training progress on stderr: a rich bar on a terminal, otherwise a plain line every few seconds."""

from __future__ import annotations

import math
import time
from typing import Any

from rich.console import Console
from rich.markup import escape

from ..errors import FLAG_NAMES, cli_words
from ..train import Callback, History
from . import runtime

__all__ = ["FLAG_NAMES", "Progress", "cli_words"]

class Progress(Callback):
    """Live progress on stderr: a rich bar on a terminal, otherwise a plain line every few seconds."""

    def __init__(self, console: Console, *, quiet: bool = False) -> None:
        self.console = console
        self.quiet = quiet
        self.live = console.is_terminal and not quiet
        self.bar: Any = None
        self.last_line = 0.0

    def on_notice(self, message: str) -> None:
        if not self.quiet:
            self.console.print(f"[yellow]note:[/yellow] {escape(cli_words(message))}", markup=True)

    def on_train_begin(self, info: dict[str, Any]) -> None:
        self.info = info
        if self.quiet:
            return
        busy = "; other processes keep the CPU busy, so threads wait passively" if runtime.WAIT_POLICY else ""
        path = f"; autograd: {info['path_reason']}" if info.get("path") == "autograd" else ""
        self.console.print(f"training on {info['n_train']:,} rows (validation {info['n_valid']:,}), "
                           f"{info['n_parameters']:,} parameters, device {info['device']}{busy}{path}")
        if self.live:
            from rich.progress import BarColumn, Progress as Bar, TextColumn, TimeElapsedColumn

            self.bar = Bar(TextColumn("epoch {task.completed:>4.0f}/{task.total:.0f}"), BarColumn(),
                           TextColumn("{task.fields[status]}"), TimeElapsedColumn(), console=self.console,
                           transient=False)
            self.task_id = self.bar.add_task("train", total=info["max_epochs"], status="")
            self.bar.start()

    def status(self, logs: dict[str, Any]) -> str:
        parts = [f"loss {logs['train_loss']:.4f}"]
        if logs.get("valid_score") is not None:
            score, kept = abs(logs["valid_score"]), abs(logs["best_score"])
            if self.info["monitor"] == "-rmse":
                parts.append(f"valid rmse/std(y) {score:.4f} (best {kept:.4f} @ {logs['best_epoch']})")
            else:  # the loss chooses the epoch kept; the accuracy is what a reader follows
                parts.append(f"valid loss {logs['valid_loss']:.4f} acc {score:.4f} (kept epoch {logs['best_epoch']}, "
                             f"acc {kept:.4f})")
        per_epoch = logs["seconds"] / logs["epoch"]
        remaining = self.info["max_epochs"] - logs["epoch"]
        if self.info["monitor"] is not None:
            left = min(remaining, self.info["patience"] - (logs["epoch"] - logs["best_epoch"]))
            parts.append(f"ETA {_seconds(left * per_epoch)} unless it improves")
        else:
            parts.append(f"ETA {_seconds(remaining * per_epoch)}")
        return " · ".join(parts)

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        if self.quiet:
            return
        if self.live:
            self.bar.update(self.task_id, completed=epoch, status=self.status(logs))
        elif epoch == 1 or time.monotonic() - self.last_line >= 2.0:
            self.last_line = time.monotonic()
            self.console.print(f"epoch {epoch}/{self.info['max_epochs']} · {self.status(logs)}")

    def on_train_end(self, history: History) -> None:
        if self.bar is not None:
            self.bar.stop()
        if not self.quiet:
            reasons = {"early_stopping": "stopped early", "max_epochs": "reached the last epoch",
                       "time_limit": "hit the time limit", "interrupted": "interrupted"}
            best = f", best epoch {history.best_epoch}" if history.best_score is not None else ""
            self.console.print(f"{reasons.get(history.stop_reason, history.stop_reason)} after "
                               f"{len(history.epochs)} epoch(s) in {history.seconds:.1f}s{best}")


def _seconds(s: float) -> str:
    if not math.isfinite(s):
        return "?"
    return f"{s:.0f}s" if s < 120 else f"{s / 60:.1f}min"
