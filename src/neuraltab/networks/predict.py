"""The inference path: the members' averaged probabilities or values for rows already turned into tensors."""

from __future__ import annotations

import weakref
from typing import Any

import torch
from torch import nn

from ..device import autocast

__all__ = ["predict_output", "temper"]


@torch.inference_mode()
def predict_output(model: nn.Module, x_num: torch.Tensor, x_cat: torch.Tensor, *, task: str,
                   batch_size: int = 4096, precision: str = "fp32", temperature: float = 1.0) -> torch.Tensor:
    """Mean over ensemble members of the probabilities float32[n, C] (classification) or values float32[n]; a
    ``temperature`` other than 1 then tempers the probabilities (:func:`temper`).

    Models with an ``inference_forward`` (TabM) predict through it: fused GEMMs on weights cast once; others through
    their ``forward``, under bf16 autocast when ``precision="bf16"``.
    """
    was_training = model.training
    # only when some module trains: switching modes walks every module, which a few rows' prediction notices
    switch = any(m.training for m in model.modules())
    if switch:
        model.eval()
    fast = getattr(model, "inference_forward", None)
    plan = _plan(model, torch.bfloat16 if precision == "bf16" else torch.float32) if fast else None
    outs = []
    for start in range(0, max(x_num.shape[0], 1), batch_size):  # at least once: an empty input gives [0, C]
        rows = slice(start, start + batch_size)
        if fast is not None:
            out = fast(x_num[rows], x_cat[rows], plan=plan)
        else:
            with autocast(x_num.device, precision):
                out = model(x_num[rows], x_cat[rows]).float()  # [b, k, n_out]
        outs.append(out.mean(1).squeeze(-1) if task == "regression" else _mean_probabilities(out))
    if switch:
        model.train(was_training)
    out = torch.cat(outs)
    return temper(out, temperature) if task != "regression" and temperature != 1.0 else out


def temper(proba: torch.Tensor, temperature: float) -> torch.Tensor:
    """``softmax(log(proba) / temperature)`` over the classes of float32[n, C] probabilities: below 1 sharper, above
    1 softer, and each row's order of classes unchanged (a power of each probability, renormalised)."""
    return (proba.clamp_min(1e-12).log() * (1.0 / temperature)).softmax(1)


def _mean_probabilities(logits: torch.Tensor) -> torch.Tensor:
    """float32[B, k, C] logits → the members' mean probabilities [B, C].

    PyTorch's CPU softmax over a short last dimension is slow, so up to 8 classes are laid out class-major
    ([B, C, k], contiguous) first; with many classes that layout is the slower one, hence the cut-off.
    """
    if logits.shape[-1] <= 8:
        return logits.transpose(1, 2).contiguous().softmax(1).mean(2)
    return logits.softmax(-1).mean(1)


# model -> (weights' identity, plan): for a few rows, building the plan (folding and casting every weight) would
# dominate the prediction, so it is rebuilt only when a weight has changed
_PLANS: "weakref.WeakKeyDictionary[nn.Module, tuple[Any, Any]]" = weakref.WeakKeyDictionary()


def _plan(model: nn.Module, dtype: torch.dtype) -> Any:
    """``model.inference_plan(dtype)``, reused while no parameter or buffer has been replaced or written to (each
    in-place write, an optimizer step or ``load_state_dict``'s copy, bumps a tensor's version counter)."""
    tensors = [*model.parameters(), *model.buffers()]
    if not all(hasattr(t, "_version") for t in tensors):  # a tensor type without version counters: no reuse
        return model.inference_plan(dtype)
    key = (dtype, tuple((t.data_ptr(), t._version) for t in tensors))
    cached = _PLANS.get(model)
    if cached is not None and cached[0] == key:
        return cached[1]
    plan = model.inference_plan(dtype)
    _PLANS[model] = (key, plan)
    return plan
