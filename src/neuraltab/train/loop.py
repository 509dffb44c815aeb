"""The training loop: tensors resident on the device, index shuffling, early stopping with best-state restore.

Library code never prints: progress goes to :class:`Callback` objects (the CLI's progress bar is one).
"""

from __future__ import annotations

import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..config import TrainConfig
from ..device import flush_denormals
from ..errors import ConfigError
from ..networks.predict import predict_output
from .autograd import autograd_epoch, make_optimizer
from .checkpoint import Checkpoint, Snapshot
from .fast.mlp_step import make_dense_stepper
from .fast.tabm_step import make_tabm_stepper

__all__ = ["Callback", "History", "train"]


class Callback:
    """No-op hooks; subclass and override what you need."""

    def on_notice(self, message: str) -> None:
        """A one-line remark about the data or the run (a dropped column, an unseen category, ...)."""

    def on_train_begin(self, info: dict[str, Any]) -> None:
        """info: max_epochs, steps_per_epoch, n_train, n_valid, device, n_parameters, monitor, patience."""

    def on_epoch_end(self, epoch: int, logs: dict[str, Any]) -> None:
        """logs: epoch, train_loss, valid_loss, valid_score, best_epoch, best_score, seconds."""

    def on_train_end(self, history: "History") -> None:
        """Called once, with the weights of the best epoch already restored."""


@dataclass
class History:
    epochs: list[dict[str, Any]] = field(default_factory=list)  # one dict per epoch, as given to on_epoch_end
    best_epoch: int = 0
    best_score: float | None = None
    stop_reason: str = ""  # early_stopping | max_epochs | time_limit | interrupted | diverged
    seconds: float = 0.0

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _score(task: str, pred: torch.Tensor, y: torch.Tensor) -> tuple[float, float]:
    """(validation loss, validation score where higher is better) from averaged predictions."""
    if task == "regression":
        mse = float(((pred - y) ** 2).mean())
        return mse, -math.sqrt(mse)
    # the log in numpy: torch's CPU log (MKL's vector math) gave another last bit on its first call in some processes
    chosen = pred.gather(1, y[:, None]).squeeze(1).to("cpu", torch.float64).numpy()
    loss = float(-np.log(np.maximum(chosen, 1e-12)).mean())
    accuracy = float((pred.argmax(1) == y).float().mean())
    return loss, accuracy


def train(
    model: nn.Module,
    train_data: tuple[torch.Tensor, torch.Tensor, torch.Tensor],
    valid_data: tuple[torch.Tensor, torch.Tensor, torch.Tensor] | None,
    *,
    task: str,
    cfg: TrainConfig,
    callbacks: Sequence[Callback] = (),
    checkpoint: Checkpoint | None = None,
    resume: bool = False,
) -> History:
    """Train ``model`` in place on (x_num, x_cat, y) tensors already on the model's device; return the History.

    With a validation set and ``cfg.early_stopping``, training stops after ``cfg.patience`` epochs without a better
    validation score and the best epoch's weights are restored. Without one, the last epoch's weights are kept.
    Ctrl-C, SIGTERM and ``cfg.time_limit`` end training early and keep the best weights found so far. With a
    ``checkpoint``, the full state is saved every ``checkpoint.every`` epochs and when a signal stops the run;
    ``resume=True`` continues from it.
    """
    x_num, x_cat, y = train_data
    device = x_num.device
    n = x_num.shape[0]
    batch_size = min(cfg.batch_size, n)
    steps = math.ceil(n / batch_size)
    # a hand-derived step where one covers this run exactly (CPU, Adam/AdamW), else autograd + torch.optim
    stepper = (make_dense_stepper(model, task=task, cfg=cfg, x_num=x_num, x_cat=x_cat, y=y)
               or make_tabm_stepper(model, task=task, cfg=cfg, x_num=x_num, x_cat=x_cat, y=y))
    optimizer = stepper.optimizer if stepper is not None else make_optimizer(model, cfg, device)
    generator = torch.Generator().manual_seed(cfg.seed + 1)
    use_valid = valid_data is not None and len(valid_data[0]) > 0 and cfg.early_stopping
    history = History()
    best_state: dict[str, torch.Tensor] | None = None
    best_key: tuple[float, float] | None = None
    since_best = 0
    first_epoch = 1
    if resume and checkpoint is not None and checkpoint.path.exists():
        snap = checkpoint.load()
        snap.restore(model=model, optimizer=optimizer, shuffle=generator)
        best_state, first_epoch = snap.best, snap.epochs_done + 1
        c = snap.counters
        best_key = tuple(c["best_key"]) if c["best_key"] is not None else None  # type: ignore[assignment]
        since_best, history.best_epoch, history.best_score = c["since_best"], c["best_epoch"], c["best_score"]
        history.epochs = list(c["epochs"])
    started = time.perf_counter()
    deadline = started + cfg.time_limit if cfg.time_limit else math.inf

    def snapshot(epochs_done: int) -> Snapshot:
        return Snapshot.take(epochs_done=epochs_done, model=model, optimizer=optimizer, shuffle=generator,
                             best=best_state, counters={"best_key": best_key, "since_best": since_best,
                                                        "best_epoch": history.best_epoch,
                                                        "best_score": history.best_score, "epochs": history.epochs})

    for cb in callbacks:
        cb.on_train_begin({
            "max_epochs": cfg.epochs, "steps_per_epoch": steps, "n_train": n,
            "n_valid": len(valid_data[0]) if use_valid else 0, "device": str(device),
            "n_parameters": sum(p.numel() for p in model.parameters()),
            "monitor": ("-rmse" if task == "regression" else "accuracy") if use_valid else None,
            "patience": cfg.patience, "first_epoch": first_epoch,
        })
    model.train()
    if stepper is not None:
        run_epoch = stepper.run_epoch
    else:
        def run_epoch(perm: torch.Tensor, should_stop: Any) -> tuple[float, bool]:
            return autograd_epoch(model, optimizer, train_data, perm, batch_size=batch_size, task=task,
                                   grad_clip=cfg.grad_clip, should_stop=should_stop, precision=cfg.precision)
    with _StopOnSignal() as stop, flush_denormals(device):
        def should_stop() -> bool:
            return stop.requested or time.perf_counter() > deadline

        at_epoch_start = snapshot(first_epoch - 1) if checkpoint is not None else None
        for epoch in range(first_epoch, cfg.epochs + 1):
            perm = torch.randperm(n, generator=generator).to(device)
            train_loss, _complete = run_epoch(perm, should_stop)
            if stop.requested:  # a partial epoch cannot be replayed exactly: keep the state from its start
                history.stop_reason = "interrupted"
                if checkpoint is not None and at_epoch_start is not None:
                    checkpoint.save(at_epoch_start)
                break
            if not math.isfinite(train_loss):
                # the weights are now NaN/inf: keep the best epoch if validation found one, else there is no model
                fix = (f"lower --lr (now {cfg.lr:g})" + ("" if cfg.scaling in ("quantile", "auto") else
                                                        " or scale the inputs with --scaling quantile"))
                if best_state is None:
                    raise ConfigError(f"training diverged in epoch {epoch} (the loss became {train_loss}); {fix}")
                history.stop_reason = "diverged"
                for cb in callbacks:
                    cb.on_notice(f"training diverged in epoch {epoch} (the loss became {train_loss}); keeping epoch "
                                 f"{history.best_epoch}, the best before it; {fix}")
                break
            logs: dict[str, Any] = {"epoch": epoch, "train_loss": train_loss}
            if use_valid:
                pred = predict_output(model, valid_data[0], valid_data[1], task=task, precision=cfg.precision)
                logs["valid_loss"], logs["valid_score"] = _score(task, pred, valid_data[2])
                # a tie on the score (accuracy often plateaus, e.g. at the majority class) goes to the lower loss
                key = (logs["valid_score"], -logs["valid_loss"])
                if best_key is None or key > best_key:
                    best_key = key
                    history.best_epoch, history.best_score = epoch, logs["valid_score"]
                    best_state = {k: v.detach().clone() for k, v in model.state_dict().items()}
                    since_best = 0
                else:
                    since_best += 1
            else:
                history.best_epoch = epoch
            logs["best_epoch"], logs["best_score"] = history.best_epoch, history.best_score
            logs["seconds"] = time.perf_counter() - started
            history.epochs.append(logs)
            for cb in callbacks:
                cb.on_epoch_end(epoch, logs)
            if checkpoint is not None:
                at_epoch_start = snapshot(epoch)
                if epoch % checkpoint.every == 0:
                    checkpoint.save(at_epoch_start)
            if time.perf_counter() > deadline:
                history.stop_reason = "time_limit"
                break
            if use_valid and since_best >= cfg.patience:
                history.stop_reason = "early_stopping"
                break
        else:
            history.stop_reason = "max_epochs"
    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    history.seconds = time.perf_counter() - started
    for cb in callbacks:
        cb.on_train_end(history)
    return history


class _StopOnSignal:
    """While training, the first Ctrl-C or SIGTERM asks the loop to stop after the current step (keeping the best
    model so far); a second Ctrl-C interrupts at once. Handlers are only installed from the main thread."""

    def __init__(self) -> None:
        self.requested = False
        self.previous: dict[int, Any] = {}

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt
        self.requested = True

    def __enter__(self) -> "_StopOnSignal":
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self.previous[sig] = signal.signal(sig, self._handle)
        return self

    def __exit__(self, *exc: Any) -> None:
        for sig, handler in self.previous.items():
            signal.signal(sig, handler)
