"""The autograd training step: what trains every run a hand-derived step (:mod:`neuraltab.train.fast`) does not
cover, and the oracle those steps are tested against."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..config import TrainConfig
from ..device import autocast

__all__ = ["ensemble_loss", "penalty", "make_optimizer", "autograd_epoch"]


def ensemble_loss(out: torch.Tensor, y: torch.Tensor, *, task: str, loss: str = "auto") -> torch.Tensor:
    """Mean over the k members of each member's loss (never the loss of the members' mean: each must learn alone).

    out: float32[B, k, n_out]; y: int64[B] class codes or float32[B] standardised targets. Returns a scalar.

    >>> out = torch.tensor([[[2.0, 0.0], [0.0, 2.0]]])  # one row, two members that disagree
    >>> round(float(ensemble_loss(out, torch.tensor([0]), task="binary")), 4)  # (0.1269 + 2.1269) / 2
    1.1269

    ``loss="squared_error"`` for classification is the sum over classes of (probability - one-hot)²; for two classes
    that is ½(o - t)² with o = p₁ - p₀ = tanh of half the logit gap and t = ±1, the TensorFlow Playground's loss.

    >>> round(float(ensemble_loss(out[:, :1], torch.tensor([0]), task="binary", loss="squared_error")), 4)
    0.0284
    """
    k = out.shape[1]
    target = y.repeat_interleave(k)  # row-major [B, k] flattening: member j of row i sits at i * k + j
    if task == "regression":
        return nn.functional.mse_loss(out.reshape(-1), target)
    logits = out.reshape(-1, out.shape[-1])
    if loss == "squared_error":
        one_hot = nn.functional.one_hot(target, logits.shape[-1]).to(logits.dtype)
        return ((logits.softmax(-1) - one_hot) ** 2).sum(-1).mean()
    return nn.functional.cross_entropy(logits, target)


def penalty(model: nn.Module, *, l1: float, l2: float) -> torch.Tensor | None:
    """l1·Σ|w| + l2·Σw²/2 over the weight matrices (parameters of two or more dimensions, so no biases), or None
    when both rates are 0."""
    if not (l1 or l2):
        return None
    weights = [p for p in model.parameters() if p.requires_grad and p.ndim >= 2]
    total = weights[0].new_zeros(())
    for w in weights:
        total = total + (l1 * w.abs().sum() if l1 else 0) + (0.5 * l2 * (w * w).sum() if l2 else 0)
    return total


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, foreach=True)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    try:
        return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, TypeError):  # fused kernels are not built for every device
        return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)


def autograd_epoch(model: nn.Module, optimizer: torch.optim.Optimizer,
                    data: tuple[torch.Tensor, torch.Tensor, torch.Tensor], perm: torch.Tensor, *, batch_size: int,
                    task: str, grad_clip: float | None, should_stop: Any,
                    precision: str = "fp32", loss_kind: str = "auto", l1: float = 0.0,
                    l2: float = 0.0) -> tuple[float, bool]:
    """One epoch of minibatch steps in ``perm`` order → (mean training loss over the rows seen, whether it finished).

    The L1/L2 penalty is added to what is minimised, not to the loss reported. ``should_stop()`` is asked after every
    step; when it says yes the epoch ends there."""
    x_num, x_cat, y = data
    total = torch.zeros((), device=x_num.device)
    seen = 0
    for start in range(0, len(perm), batch_size):
        idx = perm[start:start + batch_size]
        with autocast(x_num.device, precision):
            out = model(x_num[idx], x_cat[idx])
        loss = ensemble_loss(out.float(), y[idx], task=task, loss=loss_kind)
        extra = penalty(model, l1=l1, l2=l2)
        optimizer.zero_grad(set_to_none=True)
        (loss if extra is None else loss + extra).backward()
        if grad_clip:
            nn.utils.clip_grad_norm_(model.parameters(), grad_clip, foreach=True)
        optimizer.step()
        total += loss.detach() * len(idx)
        seen += len(idx)
        if should_stop():
            return float(total) / seen, seen == len(perm)
    return float(total) / max(seen, 1), True
