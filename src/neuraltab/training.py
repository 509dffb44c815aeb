"""The training loop: tensors resident on the device, index shuffling, early stopping with best-state restore.

Library code never prints: progress goes to :class:`Callback` objects (the CLI's progress bar is one).
"""

from __future__ import annotations

import contextlib
import math
import signal
import threading
import time
from dataclasses import asdict, dataclass, field
from typing import Any, Iterator, Sequence

import numpy as np
import torch
from torch import nn

from .checkpoint import Checkpoint, Snapshot
from .config import TrainConfig
from .dense import make_dense_stepper
from .errors import ConfigError
from .preprocessing import Batch
from .tabm_step import make_tabm_stepper

__all__ = ["Callback", "History", "resolve_device", "train", "predict_output", "to_tensors", "ensemble_loss", "threads_for", "native_bf16", "autocast"]


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


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA when available, else CPU; an explicit ``cuda`` that is not there is a user error."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if name.startswith("cuda"):
        if not torch.cuda.is_available():
            raise ConfigError(f"--device {name}: no CUDA GPU is available here; use --device cpu or auto")
        index = torch.device(name).index or 0
        if index >= torch.cuda.device_count():
            raise ConfigError(f"--device {name}: only {torch.cuda.device_count()} CUDA device(s) are present")
    if name == "mps" and not (hasattr(torch.backends, "mps") and torch.backends.mps.is_available()):
        raise ConfigError("--device mps: Apple's MPS backend is not available here; use --device cpu or auto")
    return torch.device(name)


def to_tensors(batch: Batch, device: torch.device, *, task: str, y_mean: float = 0.0,
               y_std: float = 1.0) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor | None]:
    """Move a Batch to ``device``; regression targets are standardised with the training mean and std."""
    x_num = torch.from_numpy(batch.x_num).to(device)
    x_cat = torch.from_numpy(batch.x_cat).to(device)
    y = None
    if batch.y is not None:
        if task == "regression":
            y = torch.from_numpy(((batch.y - y_mean) / y_std).astype(np.float32)).to(device)
        else:
            y = torch.from_numpy(np.array(batch.y, dtype=np.int64)).to(device)
    return x_num, x_cat, y


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` multiplies bfloat16 matrices in hardware (else bf16 is emulated, slower than float32)."""
    try:
        if device.type == "cuda":
            return torch.cuda.is_bf16_supported(including_emulation=False)
        if device.type == "cpu":
            return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError, TypeError):  # older or partial builds
        pass
    return False


def autocast(device: torch.device, precision: str) -> contextlib.AbstractContextManager:
    """bf16 autocast for ``precision="bf16"`` on CPU or CUDA (matmuls in bf16, weights and losses float32)."""
    if precision == "bf16" and device.type in ("cpu", "cuda"):
        return torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext()


@torch.inference_mode()
def predict_output(model: nn.Module, x_num: torch.Tensor, x_cat: torch.Tensor, *, task: str,
                   batch_size: int = 4096, precision: str = "fp32") -> torch.Tensor:
    """Mean over ensemble members of the probabilities float32[n, C] (classification) or values float32[n].

    Models with an ``inference_forward`` (TabM) predict through it: fused GEMMs on weights cast once; others through
    their ``forward``, under bf16 autocast when ``precision="bf16"``.
    """
    was_training = model.training
    model.eval()
    fast = getattr(model, "inference_forward", None)
    plan = model.inference_plan(torch.bfloat16 if precision == "bf16" else torch.float32) if fast else None
    outs = []
    for start in range(0, max(x_num.shape[0], 1), batch_size):  # at least once: an empty input gives [0, C]
        rows = slice(start, start + batch_size)
        if fast is not None:
            out = fast(x_num[rows], x_cat[rows], plan=plan)
        else:
            with autocast(x_num.device, precision):
                out = model(x_num[rows], x_cat[rows]).float()  # [b, k, n_out]
        outs.append(out.mean(1).squeeze(-1) if task == "regression" else _mean_probabilities(out))
    model.train(was_training)
    return torch.cat(outs)


def _mean_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """float32[B, k, C] logits → the members' mean probabilities [B, C].

    PyTorch's CPU softmax over a short last dimension is slow: for 2 or 7 classes, a softmax over the classes laid
    out class-major ([B, C, k], contiguous) took a third of the time (2,100 rows: 0.15 vs 0.45 ms); for 26 classes it
    was 7x slower instead, hence the cut-off.
    """
    if logits.shape[-1] <= 8:
        return logits.transpose(1, 2).contiguous().softmax(1).mean(2)
    return logits.softmax(-1).mean(1)


def threads_for(model: nn.Module, *, batch_size: int, cores: int) -> int:
    """CPU threads for training: 1 when a step is too small to share out, else ``cores``.

    Below a few MFLOP a step, OpenMP's hand-offs cost more than the second core saves, and a busy neighbour process
    makes them far worse. Measured on 2 cores, 8 epochs of hr.csv: the 64-64 MLP at batch 32 (1.1 MFLOP a step)
    took 0.16 s on 1 thread vs 0.19 s on 2; at batch 256 (8.5 MFLOP) 0.076 vs 0.072. Deterministic: the choice
    depends only on the model's FLOP count, never on a timing, so a seed still gives the same result.
    """
    if cores <= 1:
        return max(cores, 1)
    step_flops = 3 * matmul_flops_per_row(model) * batch_size  # backward ≈ 2× forward
    return 1 if step_flops < 4e6 else cores


def matmul_flops_per_row(model: nn.Module) -> int:
    """Forward multiply-add FLOPs of one input row through the model's linear layers, counted from their shapes.

    A TabM's ``k`` members each run the backbone and their own head. (Counted by hand: torch's FLOP counter imports
    torch._dynamo, 1.6 s of start-up.)
    """
    macs = sum(m.in_features * m.out_features for m in model.modules() if isinstance(m, nn.Linear))
    head = getattr(model, "head_weight", None)
    members = getattr(model, "k", 1)
    return 2 * (macs * members + (head.numel() if head is not None else 0))


def ensemble_loss(out: torch.Tensor, y: torch.Tensor, *, task: str) -> torch.Tensor:
    """Mean over the k members of each member's loss (never the loss of the members' mean: each must learn alone).

    out: float32[B, k, n_out]; y: int64[B] class codes or float32[B] standardised targets. Returns a scalar.

    >>> out = torch.tensor([[[2.0, 0.0], [0.0, 2.0]]])  # one row, two members that disagree
    >>> round(float(ensemble_loss(out, torch.tensor([0]), task="binary")), 4)  # (0.1269 + 2.1269) / 2
    1.1269
    """
    k = out.shape[1]
    target = y.repeat_interleave(k)  # row-major [B, k] flattening: member j of row i sits at i * k + j
    if task == "regression":
        return nn.functional.mse_loss(out.reshape(-1), target)
    return nn.functional.cross_entropy(out.reshape(-1, out.shape[-1]), target)


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


def _make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, foreach=True)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    try:
        return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, TypeError):  # fused kernels are not built for every device
        return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)


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
    optimizer = stepper.optimizer if stepper is not None else _make_optimizer(model, cfg, device)
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
            return _autograd_epoch(model, optimizer, train_data, perm, batch_size=batch_size, task=task,
                                   grad_clip=cfg.grad_clip, should_stop=should_stop, precision=cfg.precision)
    with _StopOnSignal() as stop, _flush_denormals(device):
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


def _autograd_epoch(model: nn.Module, optimizer: torch.optim.Optimizer,
                    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor], perm: torch.Tensor, *, batch_size: int,
                    task: str, grad_clip: float | None, should_stop: Any,
                    precision: str = "fp32") -> tuple[float, bool]:
    """One epoch of minibatch steps in ``perm`` order → (mean training loss over the rows seen, whether it finished).

    ``should_stop()`` is asked after every step; when it says yes the epoch ends there."""
    x_num, x_cat, y = data
    total = torch.zeros((), device=x_num.device)
    seen = 0
    for start in range(0, len(perm), batch_size):
        idx = perm[start:start + batch_size]
        with autocast(x_num.device, precision):
            out = model(x_num[idx], x_cat[idx])
        loss = ensemble_loss(out.float(), y[idx], task=task)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip, foreach=True)
        optimizer.step()
        total += loss.detach() * len(idx)
        seen += len(idx)
        if should_stop():
            return float(total) / seen, seen == len(perm)
    return float(total) / max(seen, 1), True


@contextlib.contextmanager
def _flush_denormals(device: torch.device) -> Iterator[None]:
    """Weights that stop moving let Adam's second moments decay into subnormal floats, which x86 handles ~100×
    slower: the classic recipe on raw (unscaled) inputs slowed from 0.03 to 0.28 s an epoch. Flush them to zero."""
    flushing = device.type == "cpu" and torch.set_flush_denormal(True)
    try:
        yield
    finally:
        if flushing:
            torch.set_flush_denormal(False)


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
