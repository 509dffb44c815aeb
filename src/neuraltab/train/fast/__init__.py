"""Hand-derived CPU training steps: a network's gradients computed without an autograd graph, and Adam/AdamW over
one flat buffer of weights (:class:`~.flat_adam.FlatAdam`). Each is checked against autograd by its tests.

=========  ==========================  =====================================================================
path       step                        covers exactly
=========  ==========================  =====================================================================
tabm-step  :mod:`.tabm_step`           the default model (TabM) on the CPU with Adam or AdamW, float32 or
                                       bf16, with its dropout, gradient clipping, embeddings and one-hot inputs
mlp-step   :mod:`.mlp_step`            the plain MLP on the CPU with Adam or AdamW in float32: ReLU, tanh or
                                       sigmoid layers, no dropout, no gradient clipping
autograd   :mod:`..autograd`           everything else (a GPU, SGD, GELU/SiLU/SELU, dropout in the MLP, ...)
=========  ==========================  =====================================================================

:func:`select` is the one place a run's path is chosen; the history records the path and, for autograd, why.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ...networks import MLP, TabM
from .mlp_step import gap as mlp_gap, make_dense_stepper
from .tabm_step import gap as tabm_gap, make_tabm_stepper

__all__ = ["select"]

# network class -> (path, why the step cannot run it, the step's maker)
_STEPS = {TabM: ("tabm-step", tabm_gap, make_tabm_stepper), MLP: ("mlp-step", mlp_gap, make_dense_stepper)}


def _objective_gap(cfg: Any, task: str) -> str | None:
    """Why no hand-derived step minimises this run's objective: they derive cross-entropy and squared error on
    values, without L1/L2 penalties."""
    if cfg.loss == "squared_error" and task != "regression":
        return "the hand-derived steps derive cross-entropy for classification, and the loss is squared_error"
    if cfg.l1 or cfg.l2:
        return "the hand-derived steps have no L1/L2 penalty"
    return None


def select(model: nn.Module, *, task: str, cfg: Any, x_num: torch.Tensor, x_cat: torch.Tensor, y: torch.Tensor,
           allowed: bool = True) -> tuple[Any, str, str | None]:
    """(the stepper or None, the path, why autograd or None) for training ``model`` on these tensors with ``cfg``.

    ``allowed=False`` (a caller that edits weights between steps, such as the playground) always gives autograd.
    """
    if not allowed:
        return None, "autograd", "the caller asked for autograd"
    if type(model) not in _STEPS:
        return None, "autograd", f"no hand-derived step trains a {type(model).__name__}"
    path, gap, make = _STEPS[type(model)]
    why = _objective_gap(cfg, task) or gap(model, cfg, x_num.device, len(y))
    if why is not None:
        return None, "autograd", why
    return make(model, task=task, cfg=cfg, x_num=x_num, x_cat=x_cat, y=y), path, None
