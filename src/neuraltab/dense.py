"""A hand-derived training step for the plain MLP: no autograd graph, no per-step allocation of weights or grads.

The classic recipe (64-64, batch 32, Adam, 1000 epochs) takes ~330 tiny steps an epoch. Its arithmetic is ~1 MFLOP a
step, a few microseconds; an autograd step with an ``optimizer.step()`` costs ~300 µs of bookkeeping around it. This
module computes the same gradients by hand with ~16 tensor operations a step, all writing into preallocated buffers:

* each layer keeps its weight and bias together as one ``[in + 1, out]`` matrix, and each layer's input carries a
  constant column of ones, so a forward layer is one ``mm`` and a weight+bias gradient is one ``mm``;
* the data are gathered once an epoch in shuffled order (slices of that copy are the batches);
* the optimizer is :class:`FlatAdam`: PyTorch's own fused Adam/AdamW kernel on one flat buffer holding every layer.

Gradient scale: the batch-mean gradient is ``G / s`` with ``G = softmax - onehot`` (or ``out - y``) summed over the
batch and ``s = batch_size`` (``batch_size / 2`` for squared error). Adam's update is unchanged when the gradient and
``eps`` are both multiplied by the same constant (and L2 weight decay too), so the step feeds ``G`` with ``eps * s``
and skips a multiplication; a shorter last batch is rescaled to the same ``s`` (``FlatAdam``'s ``grad_scale``).

The result matches the autograd path up to float rounding (tests/test_dense.py checks weights after many steps).
``sync()`` writes the weights back to the model after every epoch; ``self.optimizer`` gives the moments in
``torch.optim``'s format for checkpoints.
Anything this module does not cover (dropout, gradient clipping, SGD, GELU/SiLU/SELU, bf16, a GPU) uses the autograd
path.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import nn

from .flat_adam import FlatAdam, covers
from .model.mlp import MLP

__all__ = ["DenseStepper", "make_dense_stepper"]

_threshold_backward = torch.ops.aten.threshold_backward.default

# activation module → backward op taking (grad, activation output): derivatives expressible from the output alone
_BACKWARD = {
    nn.ReLU: lambda g, y: _threshold_backward(g, y, 0),
    nn.Tanh: torch.ops.aten.tanh_backward.default,
    nn.Sigmoid: torch.ops.aten.sigmoid_backward.default,
}
_INPLACE = {nn.ReLU: torch.Tensor.relu_, nn.Tanh: torch.Tensor.tanh_, nn.Sigmoid: torch.Tensor.sigmoid_}


def make_dense_stepper(model: nn.Module, *, task: str, cfg, x_num: torch.Tensor, x_cat: torch.Tensor,
                       y: torch.Tensor) -> "DenseStepper | None":
    """A DenseStepper when this run is one it covers exactly, else None (the caller then uses autograd)."""
    if not isinstance(model, MLP) or not covers(cfg, x_num.device) or cfg.grad_clip or cfg.precision == "bf16":
        return None
    kinds = [type(m) for m in model.net if not isinstance(m, nn.Linear)]
    if any(kind not in _BACKWARD for kind in kinds):  # Dropout, GELU, SiLU, SELU
        return None
    return DenseStepper(model, task=task, lr=cfg.lr, weight_decay=cfg.weight_decay, decoupled=cfg.optimizer == "adamw",
                        batch_size=min(cfg.batch_size, max(len(y), 1)), x=model.inputs(x_num, x_cat), y=y)


def _matrices(flat: torch.Tensor, shapes: list[tuple[int, int]]) -> list[torch.Tensor]:
    """Consecutive [rows, cols] views of a flat buffer."""
    out, start = [], 0
    for rows, cols in shapes:
        out.append(flat[start:start + rows * cols].view(rows, cols))
        start += rows * cols
    return out


class _Buffers:
    """Activations of one batch size: ``aug[l]`` is layer l's output with a trailing column of ones."""

    def __init__(self, rows: int, widths: list[int]) -> None:
        self.aug = [torch.ones(rows, w + 1) for w in widths]
        self.act = [a[:, :-1] for a in self.aug]  # views: the layer writes here, the ones column stays
        self.aug_t = [a.t() for a in self.aug]


class DenseStepper:
    """Runs whole epochs of the plain MLP's training by hand; the model gets the weights after every epoch (``sync``),
    and ``self.optimizer`` (a :class:`FlatAdam`) holds the moments."""

    def __init__(self, model: MLP, *, task: str, lr: float, weight_decay: float, decoupled: bool, batch_size: int,
                 x: torch.Tensor, y: torch.Tensor) -> None:
        self.model, self.task = model, task
        self.linears = [m for m in model.net if isinstance(m, nn.Linear)]
        acts = [type(m) for m in model.net if not isinstance(m, nn.Linear)]
        self.forward_act = [_INPLACE[a] for a in acts]
        self.backward_act = [_BACKWARD[a] for a in acts]
        self.batch_size = batch_size
        self.scale = batch_size / (2.0 if task == "regression" else 1.0)
        self.n = x.shape[0]
        self.x = torch.cat([x, torch.ones(self.n, 1)], 1)
        if task == "regression":
            self.y = y.reshape(-1, 1).float()
        else:
            self.y = nn.functional.one_hot(y, self.linears[-1].out_features).float()
        self.labels = y
        # each layer's weight and bias are one [in + 1, out] view into the optimizer's flat buffers
        shapes = [(lin.in_features + 1, lin.out_features) for lin in self.linears]

        def param_views(flat: torch.Tensor) -> list[torch.Tensor]:  # model.parameters() order: weight, bias, ...
            return [view for mat in _matrices(flat, shapes) for view in (mat[:-1].t(), mat[-1])]

        self.optimizer = FlatAdam(sum(r * c for r, c in shapes), param_views, lr=lr, weight_decay=weight_decay,
                                  decoupled=decoupled, grad_scale=self.scale)
        self.w, self.grads = (_matrices(self.optimizer.flat[name], shapes) for name in ("w", "grad"))
        self._read_weights()
        self.w_in_t = [w[:-1].t() for w in self.w]  # [out, in] views for the backward pass
        self.widths = [lin.out_features for lin in self.linears[:-1]]
        self.plans: dict[int, tuple[list[tuple], list[tuple]]] = {}  # per batch size: see _plan
        # an epoch gathers the rows in shuffled order into these, so the batches' views of them are made once: making
        # them anew every epoch (~1,300 views for hr.csv) was ~3.5% of a classic-recipe epoch
        self.x_epoch, self.y_epoch = torch.empty_like(self.x), torch.empty_like(self.y)
        self.out_epoch = torch.empty(self.n, self.y.shape[1])
        self.batches = list(zip(self.x_epoch.split(batch_size), self.x_epoch.t().split(batch_size, 1),
                                self.y_epoch.split(batch_size), self.out_epoch.split(batch_size)))

    @torch.no_grad()
    def _read_weights(self) -> None:
        """The model's weights into the [in + 1, out] matrices (the model is the truth between epochs)."""
        for w, lin in zip(self.w, self.linears):
            w[:-1].copy_(lin.weight.t())
            w[-1].copy_(lin.bias)

    @torch.inference_mode()  # no autograd bookkeeping, views included: epochs 4-10% shorter than under no_grad
    def run_epoch(self, perm: torch.Tensor, should_stop: Callable[[], bool]) -> tuple[float, bool]:
        """One epoch in ``perm`` order → (mean training loss over the rows seen, whether the epoch finished)."""
        self._read_weights()  # a callback or a restore may have changed them since the last epoch
        B, n = self.batch_size, self.n
        y, out = self.y_epoch, self.out_epoch
        torch.index_select(self.x, 0, perm, out=self.x_epoch)
        torch.index_select(self.y, 0, perm, out=y)
        w_last, first_grad = self.w[-1], self.grads[0]
        mm, softmax, sub = torch.mm, torch.softmax, torch.sub
        count, one, update = self.optimizer.steps, self.optimizer.one, self.optimizer.update  # FlatAdam.step, inlined
        classify = self.task != "regression"
        forward, backward = self._plan(B)
        s = -1
        # the classic recipe's step is ~46 µs: 17 operations on 32-row matrices at 1-4 µs each, and Python around
        # them. So the loop body is bare calls, with each layer's arguments gathered once per batch size (~4% faster
        # than indexing them every step, the same weights bit for bit)
        for s, (xb, xtb, yb, ob) in enumerate(self.batches):
            nb = xb.shape[0]
            if nb != B:
                forward, backward = self._plan(nb)
            h = xb
            for act, weight, into, aug in forward:
                act(mm(h, weight, out=into))
                h = aug
            mm(h, w_last, out=ob)
            g = softmax(ob, 1).sub_(yb) if classify else sub(ob, yb)
            if nb != B:
                g.mul_(B / nb)
            for below_t, grad, weight_t, act_backward, below in backward:
                mm(below_t, g, out=grad)  # the weight+bias gradient, then the gradient into the layer below
                g = act_backward(mm(g, weight_t), below)
            mm(xtb, g, out=first_grad)
            count.add_(one)
            update()
            if should_stop():
                break
        self.sync()
        seen = min((s + 1) * B, n)
        out, y = out[:seen], y[:seen]
        if classify:
            loss = nn.functional.cross_entropy(out, self.labels[perm[:seen]], reduction="sum")
        else:
            loss = ((out - y) ** 2).sum()
        return float(loss) / seen, seen == n

    def _plan(self, rows: int) -> tuple[list[tuple], list[tuple]]:
        """The per-layer arguments of a batch of ``rows`` (made once per batch size, with its activation buffers):
        forward (activation, weight, output view, next input) and backward from the top (input transposed, weight
        gradient, weight [out, in], activation backward, input)."""
        plan = self.plans.get(rows)
        if plan is None:
            bufs, last = _Buffers(rows, self.widths), len(self.w) - 1
            forward = list(zip(self.forward_act, self.w, bufs.act, bufs.aug))
            backward = [(bufs.aug_t[layer - 1], self.grads[layer], self.w_in_t[layer], self.backward_act[layer - 1],
                         bufs.act[layer - 1]) for layer in range(last, 0, -1)]
            plan = self.plans[rows] = (forward, backward)
        return plan

    @torch.no_grad()
    def sync(self) -> None:
        """Write the weights into the model (every epoch: validation and the best state read them there)."""
        for lin, w in zip(self.linears, self.w):
            lin.weight.copy_(w[:-1].t())
            lin.bias.copy_(w[-1])
