"""Teaching mode: "adjustment = error x slope x input x learning rate", shown for one weight and checked against the
step the optimizer actually took.

Hooks on the chosen weight's layer record, during the training step itself, the input ``a_i`` that reaches the
weight, the error at the neuron ``dL/da_j`` (its activation's output) and the pre-activation ``z_j``; the slope is
the activation's derivative at ``z_j``. Plain SGD on one example then changes the weight by exactly
``-lr x dL/da_j x slope x a_i`` (plus the penalty's term when there is one); under Adam the plain-SGD change is shown
beside the actual one.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from ..networks import MLP

__all__ = ["Teacher"]


class Teacher:
    """Explains the next step's change of one weight of a plain MLP (``choose`` names it: layer, to, from)."""

    def __init__(self) -> None:
        self.weight: dict[str, int] | None = None
        self.network: nn.Module | None = None
        self.cfg: Any = None
        self.hooks: list[Any] = []
        self.captured: dict[str, torch.Tensor] = {}
        self.before: float | None = None
        self.report: dict[str, Any] | None = None

    def choose(self, weight: dict[str, int] | None) -> None:
        self.weight = {k: int(weight[k]) for k in ("layer", "to", "from")} if weight else None

    def attach(self, network: nn.Module, cfg: Any) -> None:
        self.network, self.cfg = network, cfg
        self.arm()

    def detach(self) -> None:
        self._unhook()
        self.network = None

    def _unhook(self) -> None:
        for h in self.hooks:
            h.remove()
        self.hooks, self.captured = [], {}

    def _target(self) -> tuple[nn.Linear, nn.Module | None] | None:
        if self.weight is None or not isinstance(self.network, MLP):
            return None
        mods = list(self.network.net)
        linears = [i for i, m in enumerate(mods) if isinstance(m, nn.Linear)]
        layer = self.weight["layer"]
        if not 0 <= layer < len(linears):
            return None
        at = linears[layer]
        act = mods[at + 1] if layer < len(linears) - 1 else None
        w = mods[at].weight
        if not (0 <= self.weight["to"] < w.shape[0] and 0 <= self.weight["from"] < w.shape[1]):
            return None
        return mods[at], act

    def arm(self) -> None:
        """Hook the chosen weight's layer for the next training step (frames, in eval mode, are not recorded)."""
        self._unhook()
        target = self._target()
        if target is None:
            return
        linear, act = target
        j, i = self.weight["to"], self.weight["from"]
        self.before = float(linear.weight.detach()[j, i])

        def on_model(module: nn.Module, args: Any) -> None:
            if module.training:
                self.captured["x_num"] = args[0].detach().clone()

        def on_linear(module: nn.Module, args: Any, out: torch.Tensor) -> None:
            if module.training and out.requires_grad:
                self.captured["input"] = args[0][:, i].detach().clone()
                self.captured["z"] = out[:, j].detach().clone()
                out.register_hook(lambda g: self.captured.__setitem__("delta", g[:, j].detach().clone()))

        def on_act(module: nn.Module, args: Any, out: torch.Tensor) -> None:
            if module.training and out.requires_grad:
                out.register_hook(lambda g: self.captured.__setitem__("error", g[:, j].detach().clone()))

        self.hooks = [self.network.register_forward_pre_hook(on_model), linear.register_forward_hook(on_linear)]
        if act is not None:
            self.hooks.append(act.register_forward_hook(on_act))
        self.activation = act

    def after_step(self, network: nn.Module, optimizer: Any, settings: dict[str, Any]) -> None:
        """After a step: the report of the chosen weight's change, when the step was recorded."""
        c = self.captured
        target = self._target()
        if target is None or not {"input", "z", "delta"} <= set(c):
            return
        linear, act = target
        j, i = self.weight["to"], self.weight["from"]
        after = float(linear.weight.detach()[j, i])
        z = c["z"].clone().requires_grad_(True)
        if act is not None:
            act.forward(z).sum().backward()  # the activation's slope at z, by autograd (forward: no hooks)
            slope = z.grad.detach()
            error = c.get("error", c["delta"] / torch.where(slope == 0, torch.ones_like(slope), slope))
        else:  # the output layer's logit: the loss's derivative is the error, no activation follows
            slope = torch.ones_like(c["z"])
            error = c["delta"]
        lr = float(optimizer.param_groups[0]["lr"])
        gradient = float((error * slope * c["input"]).sum())
        w = self.before
        cfg = self.cfg
        penalty = (cfg.l1 * (1.0 if w > 0 else -1.0 if w < 0 else 0.0) + cfg.l2 * w) if cfg is not None else 0.0
        sgd_change = -lr * (gradient + penalty)
        actual = after - w
        plain = cfg is not None and cfg.optimizer == "sgd" and cfg.momentum == 0 and len(c["input"]) == 1
        self.report = {
            "weight": dict(self.weight), "optimizer": getattr(cfg, "optimizer", None), "batch": int(len(c["input"])),
            "example": c["x_num"][0].tolist() if "x_num" in c else None,
            "error": float(error[0]), "slope": float(slope[0]), "input": float(c["input"][0]), "lr": lr,
            "product": -lr * float(error[0] * slope[0] * c["input"][0]), "penalty": -lr * penalty,
            "gradient": gradient, "sgdChange": sgd_change, "actualChange": actual, "before": w, "after": after,
            "exact": plain,
            "agrees": abs(sgd_change - actual) <= 1e-6 * max(1.0, abs(w)),  # float32 rounding of w, no more
        }
        self.before = after
