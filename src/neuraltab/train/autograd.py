"""The autograd training step: what trains every run a hand-derived step (:mod:`neuraltab.train.fast`) does not
cover, and the oracle those steps are tested against."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..config import TrainConfig
from ..device import autocast

__all__ = ["ensemble_loss", "make_optimizer", "autograd_epoch"]


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


def make_optimizer(model: nn.Module, cfg: TrainConfig, device: torch.device) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=0.9, weight_decay=cfg.weight_decay, foreach=True)
    cls = torch.optim.AdamW if cfg.optimizer == "adamw" else torch.optim.Adam
    try:
        return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    except (RuntimeError, TypeError):  # fused kernels are not built for every device
        return cls(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)


def autograd_epoch(model: nn.Module, optimizer: torch.optim.Optimizer,
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
