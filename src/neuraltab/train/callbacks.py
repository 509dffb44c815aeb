"""Callbacks: hooks the training loop calls, and the one stop flag they share.

Every way a run ends early goes through :meth:`Run.stop`: :class:`EarlyStopping` (patience on the validation loss),
:class:`TimeLimit` (seconds), :class:`StopOnSignal` (Ctrl-C, SIGTERM) and any user callback (a server's cancel, a
page's stop button). The loop checks the flag after every optimizer step and after every epoch.
"""

from __future__ import annotations

import signal
import threading
import time
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

if TYPE_CHECKING:
    from .history import History

__all__ = ["Run", "Callback", "EarlyStopping", "TimeLimit", "StopOnSignal"]


class Run:
    """The run in progress, as callbacks see it (``callback.run``): the network being trained, its optimizer and the
    stop flag.

    ``step`` counts optimizer steps from the start of the run (a resumed run continues the count), ``epoch`` the
    epoch in progress. ``optimizer`` is the torch optimizer on the autograd path (a callback may change its learning
    rate between steps) and the hand-derived step's own optimizer otherwise.
    """

    def __init__(self, model: nn.Module, optimizer: Any = None) -> None:
        self.model = model
        self.optimizer = optimizer
        self.stop_training = False
        self.stop_reason = ""
        self.discard_epoch = False
        self.signal: int | None = None  # the signal that interrupted the run (SIGINT, SIGTERM), if one did
        self.step = 0
        self.epoch = 0

    def stop(self, reason: str = "stopped", *, discard_epoch: bool = False) -> None:
        """End training after the current step; the first reason given is the one recorded.

        ``discard_epoch``: the epoch in progress is not finished, evaluated or recorded, and a checkpoint keeps the
        state from its start, as after Ctrl-C (a part of an epoch cannot be replayed exactly on resume). Otherwise
        the part of the epoch done so far is evaluated and recorded like a whole one.
        """
        if not self.stop_training:
            self.stop_training, self.stop_reason, self.discard_epoch = True, reason, discard_epoch


class Callback:
    """No-op hooks; subclass and override what you need. ``self.run`` is set before :meth:`on_train_begin`."""

    run: Run | None = None

    def on_notice(self, message: str) -> None:
        """A one-line remark about the data or the run (a dropped column, an unseen category, ...)."""

    def on_train_begin(self, info: dict[str, Any]) -> None:
        """info: max_epochs, steps_per_epoch, n_train, n_valid, device, n_parameters, monitor, patience, first_epoch,
        path (the training step: "tabm-step", "mlp-step" or "autograd") and path_reason."""

    def on_step_end(self, step: int) -> None:
        """After each optimizer step (``step`` counts from 1 over the run). Called only for callbacks that override
        it, so the loop pays nothing for it otherwise."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        """logs: epoch, train_loss, valid_loss, valid_score, best_epoch, best_score, seconds."""

    def on_train_end(self, history: "History") -> None:
        """Called once, with the weights of the best epoch already restored."""


def overrides_step(callback: Callback) -> bool:
    return type(callback).on_step_end is not Callback.on_step_end


class EarlyStopping(Callback):
    """Stops when the validation loss has not improved for ``patience`` epochs, keeping the best epoch's weights.

    The loss, not the accuracy, decides: accuracy moves in steps of one validation row and plateaus, so on small
    validation sets it stops fold models too early and picks among epochs by noise (benchmarks/README.md). A tie on
    the loss goes to the higher score. For the default model's classification the loss is the log-loss after the
    temperature scaling the model will get (:func:`~.calibrate.calibrated_log_loss`), so an epoch is not charged
    for overconfidence that scaling removes; for regression it is the squared error, so the choice is the RMSE's. It
    writes ``best_epoch`` and ``best_score`` (the validation score of the epoch kept) into each epoch's logs, so it
    must run before callbacks that read them.
    """

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best_key: tuple[float, float] | None = None
        self.since_best = 0
        self.best_epoch = 0
        self.best_score: float | None = None
        self.best_state: dict[str, torch.Tensor] | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        key = (-logs["valid_loss"], logs["valid_score"])
        if self.best_key is None or key > self.best_key:
            self.best_key, self.best_epoch, self.best_score, self.since_best = key, epoch, logs["valid_score"], 0
            self.best_state = {k: v.detach().clone() for k, v in self.run.model.state_dict().items()}
        else:
            self.since_best += 1
        logs["best_epoch"], logs["best_score"] = self.best_epoch, self.best_score
        if self.since_best >= self.patience:
            self.run.stop("early_stopping")

    def state(self) -> dict[str, Any]:
        """The counters a checkpoint keeps (the best weights travel separately)."""
        return {"best_key": self.best_key, "since_best": self.since_best, "best_epoch": self.best_epoch,
                "best_score": self.best_score, "monitor": "loss"}

    def load_state(self, counters: dict[str, Any], best_state: dict[str, torch.Tensor] | None) -> None:
        key = counters["best_key"]
        if key is not None and counters.get("monitor") != "loss":  # a checkpoint from when the score came first
            key = (key[1], key[0])
        self.best_key = tuple(key) if key is not None else None  # type: ignore[assignment]
        self.since_best, self.best_epoch = counters["since_best"], counters["best_epoch"]
        self.best_score, self.best_state = counters["best_score"], best_state


class TimeLimit(Callback):
    """Stops ``seconds`` after training began, mid-epoch if need be; the part of the epoch done is still evaluated."""

    def __init__(self, seconds: float) -> None:
        self.seconds = seconds
        self.deadline = float("inf")

    def on_train_begin(self, info: dict[str, Any]) -> None:
        self.deadline = time.perf_counter() + self.seconds

    def on_step_end(self, step: int) -> None:
        if time.perf_counter() > self.deadline:
            self.run.stop("time_limit")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        self.on_step_end(0)


class StopOnSignal:
    """While training, the first Ctrl-C or SIGTERM stops ``run`` after the current step, discarding the unfinished
    epoch (the best model so far is kept); a second Ctrl-C interrupts at once. Handlers are only installed from the
    main thread; elsewhere (a server's or a page's worker thread) the caller stops the run itself."""

    def __init__(self, run: Run) -> None:
        self.run = run
        self.signalled = False
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.signalled and signum == signal.SIGINT:
            raise KeyboardInterrupt
        if not self.signalled:
            self.run.signal = signum
        self.signalled = True
        self.run.stop("interrupted", discard_epoch=True)

    def __enter__(self) -> "StopOnSignal":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
