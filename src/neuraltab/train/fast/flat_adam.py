"""Adam/AdamW over weights kept in one flat buffer, for the hand-derived training steps (mlp_step.py, tabm_step.py).

Weights, gradients and both moments each live in one flat float32 buffer, so a step is one call of PyTorch's own
fused Adam/AdamW kernel (the one ``torch.optim.Adam(fused=True)`` calls). No ``torch.optim`` object is built: its
constructor imports torch._dynamo, a second of start-up on a small machine. :meth:`FlatAdam.state_dict` and
:meth:`FlatAdam.load_state_dict` use ``torch.optim.Adam``'s format, so a checkpoint written by one training path
resumes on the other.
"""

from __future__ import annotations

import functools
from typing import Any, Callable

import torch
from torch import Tensor

__all__ = ["FlatAdam", "optimizer_gap", "BETAS", "EPS"]

BETAS, EPS = (0.9, 0.999), 1e-8  # torch.optim.Adam's defaults, which the autograd path uses too


def optimizer_gap(cfg: Any, device: torch.device) -> str | None:
    """Why a hand-derived step with this optimizer cannot run ``cfg`` on ``device``, or None when it can: it needs the
    CPU, Adam or AdamW, and a PyTorch build that has the private fused kernels (checked, not assumed). Each step adds
    its own model's terms."""
    if device.type != "cpu":
        return f"the hand-derived steps run on the CPU, and this run is on {device.type}"
    if cfg.optimizer not in ("adam", "adamw"):
        return f"the hand-derived steps implement Adam and AdamW, and the optimizer is {cfg.optimizer}"
    if not (hasattr(torch, "_fused_adam_") and hasattr(torch, "_fused_adamw_")):
        return "this PyTorch build has no fused Adam kernels"
    return None


class FlatAdam:
    """Adam (``decoupled=False``, L2 penalty) or AdamW over ``numel`` weights in ``self.flat["w"]``.

    ``param_views(buffer)`` returns, for each model parameter in ``model.parameters()`` order, a view of ``buffer``
    shaped (and oriented) like that parameter: the checkpoint format is per parameter. ``grad_scale`` ``s``: the
    caller feeds gradients multiplied by ``s``; Adam's update is unchanged when the gradient, ``eps`` and an L2
    penalty are all multiplied by ``s``, so the moments are kept scaled by ``s`` and ``s**2`` and converted back in
    :meth:`state_dict`.
    """

    def __init__(self, numel: int, param_views: Callable[[Tensor], list[Tensor]], *, lr: float, weight_decay: float,
                 decoupled: bool, grad_scale: float = 1.0) -> None:
        self.flat = {name: torch.zeros(numel) for name in ("w", "grad", "m", "v")}
        self.param_views = param_views
        self.lr, self.weight_decay, self.decoupled, self.scale = lr, weight_decay, decoupled, grad_scale
        self.steps = torch.zeros((), dtype=torch.float32)
        self._one = torch.ones((), dtype=torch.float32)
        flat = self.flat
        kernel = torch._fused_adamw_ if decoupled else torch._fused_adam_
        # the kernel with its arguments bound once: :meth:`step` is ``steps.add_(1)`` then ``update()``.
        # ``step_slot[0]`` is the step-count tensor the kernel reads: ``self.steps``, except while a caller that knows
        # its steps' counts in advance puts one of them there. The classic recipe's loop (mlp_step.py: ~330 tiny steps
        # an epoch, where every operation and Python call shows) does that and calls ``update`` directly
        self.step_slot = [self.steps]
        self.update = functools.partial(
            kernel, [flat["w"]], [flat["grad"]], [flat["m"]], [flat["v"]], [], self.step_slot, amsgrad=False, lr=lr,
            beta1=BETAS[0], beta2=BETAS[1], eps=EPS * grad_scale, maximize=False,
            weight_decay=weight_decay * (1.0 if decoupled else grad_scale))

    def step(self, divide_by: Tensor | None = None) -> None:
        """One update of ``flat["w"]`` from ``flat["grad"]`` (the kernel counts the step as torch.optim does).

        ``divide_by``: a one-element tensor the kernel divides the gradients by first, in the same pass (gradient
        clipping's factor; the gradient buffer is left divided)."""
        self.steps.add_(self._one)
        if divide_by is None:
            self.update()
        else:
            self.update(grad_scale=divide_by, found_inf=None)

    def state_dict(self) -> dict[str, Any]:
        """``torch.optim.Adam(fused=True)``'s state_dict for the same parameters (no state before the first step)."""
        moments = zip(self.param_views(self.flat["m"]), self.param_views(self.flat["v"]))
        state = {} if float(self.steps) == 0 else {
            i: {"step": self.steps.clone(), "exp_avg": (m / self.scale).contiguous(),
                "exp_avg_sq": (v / self.scale**2).contiguous()} for i, (m, v) in enumerate(moments)}
        group = {"lr": self.lr, "betas": BETAS, "eps": EPS, "weight_decay": self.weight_decay, "amsgrad": False,
                 "maximize": False, "foreach": None, "capturable": False, "differentiable": False, "fused": True,
                 "decoupled_weight_decay": self.decoupled, "params": list(range(len(self.param_views(self.flat["w"]))))}
        return {"state": state, "param_groups": [group]}

    @torch.no_grad()
    def load_state_dict(self, saved: dict[str, Any]) -> None:
        """Moments and step count from a state_dict of either path (hyperparameters come from the config)."""
        m_views, v_views = self.param_views(self.flat["m"]), self.param_views(self.flat["v"])
        for buffer in (self.flat["m"], self.flat["v"]):
            buffer.zero_()
        self.steps.zero_()
        for i, state in saved["state"].items():
            m_views[int(i)].copy_(state["exp_avg"] * self.scale)
            v_views[int(i)].copy_(state["exp_avg_sq"] * self.scale**2)
            self.steps.fill_(float(state["step"]))
