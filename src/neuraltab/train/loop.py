"""The training loop: tensors resident on the device, index shuffling, validation every epoch, checkpoints.

Library code never prints: progress goes to :class:`Callback` objects (the CLI's progress bar is one), and every
early end (patience, time limit, Ctrl-C, a callback's request) goes through the run's one stop flag
(:mod:`.callbacks`).
"""

from __future__ import annotations

import contextlib
import math
import time
from typing import Any, Sequence

import numpy as np
import torch
from torch import nn

from ..config import TrainConfig
from ..device import flush_denormals
from ..errors import ConfigError, Message, option
from ..networks.predict import predict_output
from .autograd import autograd_epoch, make_optimizer
from .average import WeightAverage
from .calibrate import calibrated_log_loss, is_tempered
from .callbacks import Callback, EarlyStopping, Run, StopOnSignal, TimeLimit, overrides_step
from .checkpoint import Checkpoint, Snapshot
from .fast import select
from .history import History
from .streamed import STREAMED_REASON, EpochSource, streamed_epoch

__all__ = ["Callback", "History", "train"]

_EXPLODED = 100.0  # times an untrained model's loss: a loss above it has diverged


def _score(task: str, pred: torch.Tensor, y: torch.Tensor, loss: str = "auto",
           calibrated: bool = False) -> tuple[float, float]:
    """(validation loss, validation score where higher is better) from averaged predictions."""
    if task == "regression":
        mse = float(((pred - y) ** 2).mean())
        return mse, -math.sqrt(mse)
    accuracy = float((pred.argmax(1) == y).float().mean())
    if loss == "squared_error":
        one_hot = torch.nn.functional.one_hot(y, pred.shape[1]).to(pred.dtype)
        return float(((pred - one_hot) ** 2).sum(1).mean()), accuracy
    if calibrated:  # the loss the probabilities will have once temperature-scaled (train/calibrate.py)
        return calibrated_log_loss(pred, y), accuracy
    # the log in numpy: torch's CPU log (MKL's vector math) gave another last bit on its first call in some processes
    chosen = pred.gather(1, y[:, None]).squeeze(1).to("cpu", torch.float64).numpy()
    return float(-np.log(np.maximum(chosen, 1e-12)).mean()), accuracy


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
    fast: bool = True,
    epoch_source: EpochSource | None = None,
    distributed: Any = None,
) -> History:
    """Train ``model`` in place on (x_num, x_cat, y) tensors already on the model's device; return the History.

    With a validation set and ``cfg.early_stopping``, training stops after ``cfg.patience`` epochs without a better
    validation loss and the best epoch's weights are restored. Without one, the last epoch's weights are kept.
    Ctrl-C, SIGTERM, ``cfg.time_limit`` and any callback's ``run.stop()`` end training early and keep the best
    weights found so far. With a ``checkpoint``, the full state is saved every ``checkpoint.every`` epochs and when a
    signal stops the run; ``resume=True`` continues from it. ``fast=False`` trains through autograd even where a
    hand-derived step covers the run (for callers that change weights between steps). With an ``epoch_source`` (a
    streamed table) each epoch's rows come from it, block by block, and ``train_data`` only shows their shapes.
    With ``distributed`` (a :class:`~.distributed.Context`; an ``epoch_source`` of this rank's shard), the model trains
    in DistributedDataParallel with the other ranks, and only rank 0 writes the checkpoint (see :mod:`.distributed`).
    """
    x_num, x_cat, y = train_data
    device = x_num.device
    n = x_num.shape[0] if epoch_source is None else epoch_source.n_rows
    plan = None
    if distributed is not None:
        from . import distributed as dist_train

        if epoch_source is None:
            raise ValueError("a distributed run trains on an epoch source of its rank's shard")
        plan = dist_train.plan(distributed, n, cfg.batch_size)
        n, batch_size, steps = plan.n_global, plan.local_batch * distributed.world_size, plan.steps
    else:
        batch_size = min(cfg.batch_size, n)
        steps = math.ceil(n / batch_size)
    # a hand-derived step where one covers this run exactly (CPU, Adam/AdamW), else autograd + torch.optim
    if distributed is not None:
        stepper, path, path_reason = None, "autograd", dist_train.DISTRIBUTED_REASON
    else:
        stepper, path, path_reason = select(model, task=task, cfg=cfg, x_num=x_num, x_cat=x_cat, y=y, allowed=fast)
    if epoch_source is not None and stepper is not None and not hasattr(stepper, "bind"):
        stepper, path, path_reason = None, "autograd", STREAMED_REASON  # a step that cannot take rows block by block
    optimizer = stepper.optimizer if stepper is not None else make_optimizer(model, cfg, device)
    generator = torch.Generator().manual_seed(cfg.seed + 1)
    use_valid = valid_data is not None and len(valid_data[0]) > 0 and cfg.early_stopping
    history = History(path=path, path_reason=path_reason)
    run = Run(model, optimizer)
    early = EarlyStopping(cfg.patience) if use_valid else None
    # the weights validated and kept: the last step's, or their moving average over about an epoch's steps
    average = WeightAverage(model, steps_per_epoch=steps, stepper=stepper) if cfg.average_weights else None
    # the loop's own callbacks first: the time limit's reason wins a tie, and early stopping fills in the logs' best
    callbacks = [*([TimeLimit(cfg.time_limit)] if cfg.time_limit else []), *([early] if early else []), *callbacks]
    first_epoch = 1
    writer = distributed is None or distributed.is_writer

    def load_snapshot() -> Snapshot | None:
        return checkpoint.load() if resume and checkpoint is not None and checkpoint.path.exists() else None

    # a distributed run resumes from rank 0's file, whatever the other ranks' machines can see
    snap = distributed.on_rank_zero(load_snapshot) if distributed is not None and resume else load_snapshot()
    if snap is not None:
        snap.restore(model=model, optimizer=optimizer, shuffle=generator)
        first_epoch = snap.epochs_done + 1
        c = snap.counters
        if early is not None:
            early.load_state(c, snap.best)
        history.best_epoch, history.best_score = c["best_epoch"], c["best_score"]
        history.epochs = list(c["epochs"])
        if average is not None and snap.average is not None:
            average.load_state(snap.average, c["average_steps"])
    # a training loss this far above an untrained model's (log of the class count, or predicting 0 for a standardised
    # target) has exploded: no run that is learning gets there, not even in its first epoch
    baseline = (max(1.0, float((y.double() ** 2).mean())) if task == "regression" else
                math.log(max(2, int(y.max()) + 1)) if len(y) else 1.0)
    exploded = _EXPLODED * baseline
    started = time.perf_counter()

    def snapshot(epochs_done: int) -> Snapshot:
        counters = early.state() if early is not None else {"best_key": None, "since_best": 0,
                                                            "best_epoch": history.best_epoch,
                                                            "best_score": history.best_score}
        averaged = average.state() if average is not None else (None, 0)
        return Snapshot.take(epochs_done=epochs_done, model=model, optimizer=optimizer, shuffle=generator,
                             best=early.best_state if early is not None else None, average=averaged[0],
                             counters={**counters, "epochs": history.epochs, "average_steps": averaged[1]})

    run.step = (first_epoch - 1) * steps
    for cb in callbacks:
        cb.run = run
        cb.on_train_begin({
            "max_epochs": cfg.epochs, "steps_per_epoch": steps, "n_train": n,
            "n_valid": len(valid_data[0]) if use_valid else 0, "device": str(device),
            "n_parameters": sum(p.numel() for p in model.parameters()),
            "monitor": ("-rmse" if task == "regression" else "squared_error" if cfg.loss == "squared_error" else
                        "log_loss") if use_valid else None,
            "patience": cfg.patience, "first_epoch": first_epoch, "path": path, "path_reason": path_reason,
        })
    model.train()
    if distributed is not None:
        net = dist_train.wrap(model, distributed)
        dropout = getattr(model, "dropout_generator", None)

        def run_epoch(perm: torch.Tensor | None, should_stop: Any) -> tuple[float, bool]:
            seed = dist_train.epoch_seed(cfg.seed, run.epoch, distributed.rank)
            if dropout is not None:  # each rank its own masks, each epoch from its own seed (exact on resume)
                dropout.manual_seed(seed)

            def agreed() -> bool:
                should_stop()
                return dist_train.agree_stop(distributed, run)

            return dist_train.distributed_epoch(distributed, epoch_source, net, optimizer, epoch=run.epoch, plan=plan,
                                                device=device, task=task, cfg=cfg, shapes=train_data,
                                                generator=torch.Generator().manual_seed(seed), should_stop=agreed)
    elif epoch_source is not None:
        def run_epoch(perm: torch.Tensor | None, should_stop: Any) -> tuple[float, bool]:
            return streamed_epoch(epoch_source, model, optimizer, epoch=run.epoch, generator=generator, device=device,
                                  batch_size=batch_size, task=task, grad_clip=cfg.grad_clip, precision=cfg.precision,
                                  should_stop=should_stop, stepper=stepper)
    elif stepper is not None:
        run_epoch = stepper.run_epoch
    else:
        def run_epoch(perm: torch.Tensor, should_stop: Any) -> tuple[float, bool]:
            return autograd_epoch(model, optimizer, train_data, perm, batch_size=batch_size, task=task,
                                  grad_clip=cfg.grad_clip, should_stop=should_stop, precision=cfg.precision,
                                  loss_kind=cfg.loss, l1=cfg.l1, l2=cfg.l2)
    step_hooks = [cb.on_step_end for cb in callbacks if overrides_step(cb)]

    def should_stop() -> bool:  # asked after every step
        run.step += 1
        if average is not None:
            average.update()
        for hook in step_hooks:
            hook(run.step)
        return run.stop_training

    with StopOnSignal(run), flush_denormals(device):
        at_epoch_start = snapshot(first_epoch - 1) if checkpoint is not None else None
        for epoch in range(first_epoch, cfg.epochs + 1):
            run.epoch = epoch
            perm = torch.randperm(n, generator=generator).to(device) if epoch_source is None else None
            train_loss, _complete = run_epoch(perm, should_stop)
            if run.stop_training and run.discard_epoch:  # a partial epoch cannot be replayed: keep its start
                if checkpoint is not None and at_epoch_start is not None and writer:
                    checkpoint.save(at_epoch_start)
                break
            if not math.isfinite(train_loss) or train_loss > exploded:
                # a model from here on would predict nonsense: no model, unless the caller asked for the best before it
                fix = (f"lower {option('lr')} (now {cfg.lr:g})" + ("" if cfg.scaling in ("quantile", "auto") else
                                                                  f" or scale the inputs with {option('scaling', 'quantile')}"))
                became = f"the loss became {train_loss:.3g}" + ("" if not math.isfinite(train_loss) else
                                                               f", {train_loss / baseline:.3g} times an untrained model's")
                kept = early.best_state is not None if early is not None else False
                if not cfg.keep_diverged or not (kept or math.isfinite(train_loss)):
                    keep = "" if cfg.keep_diverged else (f"; to keep the best epoch before it instead, pass "
                                                         f"{option('keep_diverged', True)}")
                    raise ConfigError(f"training diverged in epoch {epoch} ({became}); {fix}{keep}")
                run.stop_training, run.stop_reason = True, "diverged"  # whatever else asked to stop meanwhile
                what = f"epoch {history.best_epoch}, the best before it" if kept else "the last weights, as asked"
                for cb in callbacks:
                    cb.on_notice(Message(f"training diverged in epoch {epoch} ({became}); keeping {what}; {fix}"))
                break
            logs: dict[str, Any] = {"epoch": epoch, "train_loss": train_loss}
            # validation and the callbacks (early stopping's best state among them) see the averaged weights
            with average.swapped() if average is not None else contextlib.nullcontext():
                if use_valid:
                    if writer:
                        pred = predict_output(model, valid_data[0], valid_data[1], task=task, precision=cfg.precision)
                        logs["valid_loss"], logs["valid_score"] = _score(task, pred, valid_data[2], cfg.loss,
                                                                         calibrated=is_tempered(task, cfg))
                    if distributed is not None:  # rank 0's result on every rank, bit for bit: the same decisions
                        logs["valid_loss"], logs["valid_score"] = distributed.broadcast(
                            [logs.get("valid_loss", 0.0), logs.get("valid_score", 0.0)])
                else:
                    logs["best_epoch"], logs["best_score"] = epoch, None
                logs["seconds"] = time.perf_counter() - started
                history.epochs.append(logs)
                for cb in callbacks:
                    cb.on_epoch_end(epoch, logs)
            history.best_epoch, history.best_score = logs["best_epoch"], logs["best_score"]
            if distributed is not None:
                dist_train.agree_stop(distributed, run)
            if checkpoint is not None:
                at_epoch_start = snapshot(epoch)
                if writer and (epoch % checkpoint.every == 0 or (run.stop_training and run.discard_epoch)):
                    checkpoint.save(at_epoch_start)
            if run.stop_training:
                break
        history.stop_reason = run.stop_reason or "max_epochs"
        history.signal = run.signal
    if early is not None and early.best_state is not None:
        model.load_state_dict(early.best_state)
    elif average is not None and history.stop_reason != "diverged":  # no epoch was chosen: the average to the end
        average.load_into()
    model.eval()
    history.seconds = time.perf_counter() - started
    for cb in callbacks:
        cb.on_train_end(history)
    return history
