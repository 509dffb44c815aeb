"""A hand-derived training step for the plain MLP: no autograd graph, no per-step allocation of weights or grads.

The classic recipe (64-64, batch 32, Adam, 1000 epochs) takes ~330 tiny steps an epoch. Its arithmetic is ~1 MFLOP a
step, so an autograd step with an ``optimizer.step()`` is mostly bookkeeping around it. This module computes the same
gradients by hand with a few tensor operations a step, all writing into preallocated buffers:

* each layer keeps its weight and bias together as one matrix (``[in + 1, out]`` for a hidden layer, nn.Linear's
  ``[out, in + 1]`` for the output layer), and each layer's input carries a constant column of ones, so a forward
  layer is one ``mm`` and a weight+bias gradient is one ``mm``;
* the output layer works class-major: its outputs and their gradient are ``[out, rows]`` (see :class:`DenseStepper`);
* the data are gathered once an epoch in shuffled order (slices of that copy are the batches), the targets and
  outputs batch by batch, each batch a contiguous class-major block;
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

from ...networks.mlp import MLP
from .flat_adam import FlatAdam, optimizer_gap

__all__ = ["DenseStepper", "gap", "make_dense_stepper"]

_tanh_backward, _sigmoid_backward = torch.ops.aten.tanh_backward.default, torch.ops.aten.sigmoid_backward.default
_sign = torch.sign


def _relu_backward(g: torch.Tensor, y: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """ReLU's backward in place: ``g *= sign(y)``, with ``y >= 0`` the activation's output (cheaper on small batches
    than ``threshold_backward`` reached through ``torch.ops``). The same numbers unless ``g`` or ``y`` is already inf
    or NaN, where training has diverged either way."""
    return g.mul_(_sign(y, out=mask))


# activation module → backward (grad, activation output, scratch buffer) → grad: derivatives from the output alone
_BACKWARD = {
    nn.ReLU: _relu_backward,
    nn.Tanh: lambda g, y, _: _tanh_backward(g, y),
    nn.Sigmoid: lambda g, y, _: _sigmoid_backward(g, y),
}
_INPLACE = {nn.ReLU: torch.Tensor.relu_, nn.Tanh: torch.Tensor.tanh_, nn.Sigmoid: torch.Tensor.sigmoid_}


def gap(model: nn.Module, cfg, device: torch.device, n_rows: int) -> str | None:
    """Why this step does not cover the run exactly (the caller then uses autograd), or None when it does."""
    if not isinstance(model, MLP):
        return "the plain MLP's step trains the plain MLP only"
    why = optimizer_gap(cfg, device)
    if why is None and cfg.grad_clip:
        why = "the plain MLP's step has no gradient clipping"
    if why is None and cfg.precision == "bf16":
        why = "the plain MLP's step computes in float32 only"
    kinds = [type(m) for m in model.net if not isinstance(m, nn.Linear)]
    if why is None and not kinds:
        why = "the plain MLP's step needs a hidden layer"
    if why is None and any(kind not in _BACKWARD for kind in kinds):
        names = sorted({kind.__name__ for kind in kinds if kind not in _BACKWARD})
        why = f"the plain MLP's step covers ReLU, tanh and sigmoid without dropout, not {', '.join(names)}"
    return why


def make_dense_stepper(model: nn.Module, *, task: str, cfg, x_num: torch.Tensor, x_cat: torch.Tensor,
                       y: torch.Tensor) -> "DenseStepper | None":
    """A DenseStepper when this run is one it covers exactly (see :func:`gap`), else None."""
    if gap(model, cfg, x_num.device, len(y)) is not None:
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


class _Plan:
    """Everything a step needs for a batch of ``rows`` rows, made once per batch size.

    ``aug[l]``: hidden layer l's output with a trailing column of ones (``act[l]`` is the part the layer writes);
    ``grad_out`` [n_out, rows]: the output's gradient, class-major; ``masks``: the activations' backward scratch."""

    def __init__(self, stepper: "DenseStepper", rows: int) -> None:
        aug = [torch.ones(rows, w + 1) for w in stepper.widths]
        act = [a[:, :-1] for a in aug]
        masks = [torch.empty(rows, w) for w in stepper.widths]
        grads_in = [torch.empty(rows, w) for w in stepper.widths]  # the gradients into each hidden layer's output
        self.grad_out = torch.empty(stepper.n_out, rows)
        self.grad_out_t = self.grad_out.t()
        self.top_t, self.grad_top_in = aug[-1].t(), grads_in[-1]
        # forward through the hidden layers: (activation in place, weight [in + 1, out], output view, next input)
        self.forward = list(zip(stepper.forward_act, stepper.w[:-1], act, aug))
        # backward through hidden layers L-1 .. 1: (activation backward, its output, scratch, input transposed,
        # weight+bias gradient, weight [out, in], the gradient below); layer 0's input is the batch itself. Products
        # are written into buffers (out=): at these sizes an allocation shows
        self.backward = [(stepper.backward_act[layer], act[layer], masks[layer], aug[layer - 1].t(),
                          stepper.grads[layer], stepper.w_in_t[layer], grads_in[layer - 1])
                         for layer in range(len(act) - 1, 0, -1)]
        self.first = (stepper.backward_act[0], act[0], masks[0])


class DenseStepper:
    """Runs whole epochs of the plain MLP's training by hand; the model gets the weights after every epoch (``sync``),
    and ``self.optimizer`` (a :class:`FlatAdam`) holds the moments.

    Layouts (each chosen by timing MKL on 32-row batches): hidden layers keep their weight as ``[in + 1, out]``; the
    output layer keeps nn.Linear's ``[out, in + 1]`` and computes the batch's outputs class-major, ``[out, rows]``,
    because MKL's small GEMMs with 2 output columns and a softmax over a last dimension of 2 are slow."""

    def __init__(self, model: MLP, *, task: str, lr: float, weight_decay: float, decoupled: bool, batch_size: int,
                 x: torch.Tensor, y: torch.Tensor) -> None:
        self.model, self.task = model, task
        self.linears = [m for m in model.net if isinstance(m, nn.Linear)]
        acts = [type(m) for m in model.net if not isinstance(m, nn.Linear)]
        self.forward_act = [_INPLACE[a] for a in acts]
        self.backward_act = [_BACKWARD[a] for a in acts]
        self.batch_size = batch_size
        self.scale = batch_size / (2.0 if task == "regression" else 1.0)
        self.n = n = x.shape[0]
        self.n_out = n_out = self.linears[-1].out_features
        self.x = torch.cat([x, torch.ones(n, 1)], 1)
        if task == "regression":
            self.y = y.reshape(-1, 1).float()
        else:
            self.y = nn.functional.one_hot(y, n_out).float()
        # hidden layers: [in + 1, out]; the output layer: [out, in + 1] (the last column is the bias)
        shapes = [(lin.in_features + 1, lin.out_features) for lin in self.linears[:-1]]
        shapes.append((n_out, self.linears[-1].in_features + 1))

        def param_views(flat: torch.Tensor) -> list[torch.Tensor]:  # model.parameters() order: weight, bias, ...
            *hidden, top = _matrices(flat, shapes)
            return [view for mat in hidden for view in (mat[:-1].t(), mat[-1])] + [top[:, :-1], top[:, -1]]

        self.optimizer = FlatAdam(sum(r * c for r, c in shapes), param_views, lr=lr, weight_decay=weight_decay,
                                  decoupled=decoupled, grad_scale=self.scale)
        self.w, self.grads = (_matrices(self.optimizer.flat[name], shapes) for name in ("w", "grad"))
        self._read_weights()
        self.w_in_t = [w[:-1].t() for w in self.w[:-1]]  # hidden layers' [out, in] views for the backward pass
        self.w_top_in = self.w[-1][:, :-1]  # the output layer's [out, in]
        self.widths = [lin.out_features for lin in self.linears[:-1]]
        self.plans: dict[int, _Plan] = {}
        # an epoch gathers the rows in shuffled order into these, so the batches' views of them are made once, not
        # anew every epoch (a view costs about what a tiny step's operation does). Targets and outputs
        # are kept batch by batch, class-major: batch b is a contiguous [n_out, rows] block of a flat buffer
        self.x_epoch, self.y_rows = torch.empty_like(self.x), torch.empty_like(self.y)
        self.y_flat, self.out_flat = torch.empty(n * n_out), torch.empty(n * n_out)
        full, rest = divmod(n, batch_size)
        cut = full * batch_size
        sizes = [batch_size] * full + ([rest] if rest else [])
        starts = [b * batch_size * n_out for b in range(len(sizes))]
        y_blocks = [self.y_flat[s:s + r * n_out].view(n_out, r) for s, r in zip(starts, sizes)]
        out_blocks = [self.out_flat[s:s + r * n_out].view(n_out, r) for s, r in zip(starts, sizes)]
        # the blocks as [batches, n_out, rows] views (full batches, then the short one): (targets, outputs, the
        # gathered targets' rows seen the same way, index of the first batch); an epoch copies the targets in with one
        # copy each and computes the loss on the outputs where they are
        self.block_views = [(self.y_flat[:cut * n_out].view(full, n_out, batch_size),
                             self.out_flat[:cut * n_out].view(full, n_out, batch_size),
                             self.y_rows[:cut].view(full, batch_size, n_out).transpose(1, 2), 0)]
        if rest:
            self.block_views.append((y_blocks[-1][None], out_blocks[-1][None], self.y_rows[cut:].t()[None], full))
        self.batches = list(zip(self.x_epoch.split(batch_size), self.x_epoch.t().split(batch_size, 1),
                                y_blocks, out_blocks))
        # the step count the fused kernel reads: one tensor per step of the epoch, filled once an epoch, so a step does
        # not spend an operation counting
        self.counts = torch.empty(len(sizes))
        self.count_views = list(self.counts.unbind())
        self.count_base = torch.arange(1, len(sizes) + 1, dtype=torch.float32)

    @torch.no_grad()
    def _read_weights(self) -> None:
        """The model's weights into the matrices (the model is the truth between epochs)."""
        *hidden, top = self.w
        for w, lin in zip(hidden, self.linears):
            w[:-1].copy_(lin.weight.t())
            w[-1].copy_(lin.bias)
        top[:, :-1].copy_(self.linears[-1].weight)
        top[:, -1].copy_(self.linears[-1].bias)

    @torch.inference_mode()  # no autograd bookkeeping at all, views included (no_grad still tracks versions)
    def run_epoch(self, perm: torch.Tensor, should_stop: Callable[[], bool]) -> tuple[float, bool]:
        """One epoch in ``perm`` order → (mean training loss over the rows seen, whether the epoch finished)."""
        self._read_weights()  # a callback or a restore may have changed them since the last epoch
        B, n = self.batch_size, self.n
        torch.index_select(self.x, 0, perm, out=self.x_epoch)
        torch.index_select(self.y, 0, perm, out=self.y_rows)
        for y_block, _, y_rows, _ in self.block_views:
            y_block.copy_(y_rows)
        w_top, w_top_in, first_grad, top_grad = self.w[-1], self.w_top_in, self.grads[0], self.grads[-1]
        mm, softmax, sub = torch.mm, torch._softmax, torch.sub
        optimizer = self.optimizer
        update, step_slot, counts = optimizer.update, optimizer.step_slot, self.count_views
        torch.add(self.count_base, optimizer.steps, out=self.counts)
        classify = self.task != "regression"
        plan = self._plan(B)
        s = -1
        # the classic recipe's step is a few tiny operations on 32-row matrices, where Python around them shows. So
        # the loop body is bare calls, with each layer's arguments gathered once per batch size (the same weights bit
        # for bit as indexing them every step)
        try:
            for s, (xb, xtb, yb, ob) in enumerate(self.batches):
                nb = xb.shape[0]
                if nb != B:
                    plan = self._plan(nb)
                h = xb
                for act, weight, into, aug in plan.forward:
                    act(mm(h, weight, out=into))
                    h = aug
                mm(w_top, plan.top_t, out=ob)  # class-major outputs [n_out, rows]
                g_out = plan.grad_out
                if classify:
                    softmax(ob, 0, False, out=g_out).sub_(yb)
                else:
                    sub(ob, yb, out=g_out)
                if nb != B:
                    g_out.mul_(B / nb)
                mm(g_out, h, out=top_grad)
                g = mm(plan.grad_out_t, w_top_in, out=plan.grad_top_in)
                for act_backward, act_out, mask, below_t, grad, weight_t, grad_below in plan.backward:
                    g = act_backward(g, act_out, mask)
                    mm(below_t, g, out=grad)
                    g = mm(g, weight_t, out=grad_below)
                act_backward, act_out, mask = plan.first
                mm(xtb, act_backward(g, act_out, mask), out=first_grad)
                step_slot[0] = counts[s]
                update()
                if should_stop():
                    break
        finally:
            step_slot[0] = optimizer.steps
            if s >= 0:
                optimizer.steps.copy_(counts[s])
        self.sync()
        seen = min((s + 1) * B, n)
        return self._loss(s + 1) / seen, seen == n

    def _loss(self, batches: int) -> float:
        """The summed loss of the first ``batches`` batches' outputs, from the class-major blocks (cross-entropy as
        the one-hot targets' share of each column's log-softmax: cheaper than ``cross_entropy`` on gathered rows)."""
        loss = 0.0
        for y_block, out_block, _, first in self.block_views:
            if batches <= first:
                break
            y, out = y_block[:batches - first], out_block[:batches - first]
            if self.task == "regression":
                loss += float(torch.sub(out, y).square_().sum())
            else:
                loss -= float(torch.log_softmax(out, 1).mul_(y).sum())
        return loss

    def _plan(self, rows: int) -> _Plan:
        """The step's arguments and buffers for a batch of ``rows`` rows (made once per batch size)."""
        plan = self.plans.get(rows)
        if plan is None:
            plan = self.plans[rows] = _Plan(self, rows)
        return plan

    @torch.no_grad()
    def sync(self) -> None:
        """Write the weights into the model (every epoch: validation and the best state read them there)."""
        *hidden, top = self.w
        for lin, w in zip(self.linears, hidden):
            lin.weight.copy_(w[:-1].t())
            lin.bias.copy_(w[-1])
        self.linears[-1].weight.copy_(top[:, :-1])
        self.linears[-1].bias.copy_(top[:, -1])
