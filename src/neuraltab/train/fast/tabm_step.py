"""A hand-derived training step for TabM on the CPU: the default model's epochs without autograd or autocast.

Most of an autograd step of the default model on a CPU is not its matrix products but the dispatched operations
with an autograd graph around them, and ``torch.optim``'s bookkeeping. This module computes the same gradients with
fewer operations and no graph (``benchmarks/step.py`` times both; the figures are in ``benchmarks/README.md``):

* the training rows' bins (:meth:`PiecewiseLinearEmbeddings.locate`) are computed once; an epoch gathers the rows'
  bins, numbers, category codes and labels in shuffled order and each batch is a slice of that copy. A batch's input
  matrix (embeddings or raw numbers, then one-hot columns) is built in a buffer reused from step to step, so memory
  stays that of the input tensors, not rows × input width;
* a batch's numeric embeddings are one small batched GEMM per direction: per feature, ``[PLE(x), 1, x]`` (built from
  the bins) times ``[W; bias0; weight0]``, and the transposed encoding times the embeddings' gradient (a table
  lookup as in the model's forward, with an ``index_add_`` backward, was not faster);
* every weight is cast to the compute dtype once a step; each layer is one GEMM with its bias and ReLU fused
  (oneDNN), and the k members' heads are one block-diagonal GEMM whose outputs are class-major (``[B, classes,
  k]``: PyTorch's CPU softmax over a last dimension of 2 is slow);
* dropout masks are bit masks (:func:`dropout_mask`, the same draws as the model's own dropout) ANDed into the
  activations, their rescaling (:func:`dropout_scale`) is folded into the next layer's weights, and the
  ReLU+dropout backward is one ``threshold_backward`` on the dropped activations;
* weights, gradients and Adam's moments each live in one flat buffer (:class:`FlatAdam`): gradient clipping is
  one norm, and the optimizer is one call of PyTorch's fused Adam/AdamW kernel, which also divides the gradients
  by clipping's factor.

With ``precision="bf16"`` the matrix products run in bfloat16 as under autocast (activations bfloat16, weights,
gradients, embeddings and the loss float32); with ``"fp32"`` the step equals the autograd one up to rounding
(tests/test_tabm_step.py). ``sync()`` writes the weights to the model after every epoch; ``self.optimizer`` gives
the moments in ``torch.optim``'s format for checkpoints.
"""

from __future__ import annotations

from typing import Callable

import torch
from torch import Tensor, nn

from ...networks.tabm import TabM, _linear, dropout_mask, dropout_scale, stack_first_layer
from .flat_adam import FlatAdam, optimizer_gap

__all__ = ["TabMStepper", "gap", "make_tabm_stepper"]

_threshold_backward = torch.ops.aten.threshold_backward.default


def gap(model: nn.Module, cfg, device: torch.device, n_rows: int) -> str | None:
    """Why this step does not cover the run exactly (the caller then uses autograd), or None when it does."""
    if not isinstance(model, TabM):
        return "the default model's step trains the default model (TabM) only"
    why = optimizer_gap(cfg, device)
    if why is None and n_rows == 0:
        why = "there are no training rows"
    if why is None and cfg.precision == "auto":
        why = "the precision was not resolved to fp32 or bf16"
    return why


def make_tabm_stepper(model: nn.Module, *, task: str, cfg, x_num: Tensor, x_cat: Tensor,
                      y: Tensor) -> "TabMStepper | None":
    """A TabMStepper when this run is one it covers exactly (see :func:`gap`), else None."""
    if gap(model, cfg, x_num.device, len(y)) is not None:
        return None
    return TabMStepper(model, task=task, lr=cfg.lr, weight_decay=cfg.weight_decay, decoupled=cfg.optimizer == "adamw",
                       batch_size=min(cfg.batch_size, len(y)), grad_clip=cfg.grad_clip,
                       dtype=torch.bfloat16 if cfg.precision == "bf16" else torch.float32, x_num=x_num, x_cat=x_cat,
                       y=y)


class TabMStepper:
    """Runs whole epochs of TabM's training by hand; the model gets the weights after every epoch (``sync``)."""

    def __init__(self, model: TabM, *, task: str, lr: float, weight_decay: float, decoupled: bool, batch_size: int,
                 grad_clip: float | None, dtype: torch.dtype, x_num: Tensor, x_cat: Tensor, y: Tensor) -> None:
        self.model, self.task = model, task
        self.batch_size, self.grad_clip, self.dtype = batch_size, grad_clip, dtype
        drops = [m.p for m in model.blocks if isinstance(m, nn.Dropout)]
        self.p = drops[0] if drops else 0.0
        self.inv_keep = dropout_scale(self.p) if self.p else 1.0
        self.k, self.d, self.n_out = model.k, model.blocks[0].out_features, model.n_out
        self.block_heads = model.block_diagonal_heads
        # weights, gradients and both moments each live in one flat buffer with the model's parameter shapes
        self.params = list(model.parameters())
        self.optimizer = FlatAdam(sum(p.numel() for p in self.params), lambda flat: list(self._views(flat).values()),
                                  lr=lr, weight_decay=weight_decay, decoupled=decoupled)
        self.flat = self.optimizer.flat
        self.w, self.g = self._views(self.flat["w"]), self._views(self.flat["grad"])

        # the training rows as tensors [rows, ...]: numbers (and their bins), category codes (shifted to their one-hot
        # columns in the input matrix), labels; an epoch gathers them in shuffled order
        emb = model.num_embeddings
        self.embedded = emb is not None
        self.n_num = model.n_num
        self.n_numeric_inputs = model.n_num * emb.weight0.shape[1] if emb is not None else model.n_num
        if self.embedded:
            self.d_emb, self.n_bins = emb.weight0.shape[1], emb.weight.shape[1]
            self.bin_range = torch.arange(self.n_bins)
            self.encodings: dict[int, Tensor] = {}  # per batch size: [n_num, B, T + 2], ones in column T
        self.bind(x_num, x_cat, y)
        d_in = self.n_numeric_inputs + sum(model.cat_cardinalities)
        self.inputs: dict[int, Tensor] = {}  # per batch size: [B, d_in], the batch's input matrix
        self.minus_ones: dict[int, Tensor] = {}
        # the weights in the compute dtype, rewritten every step (the members' first layers stacked, the later layers
        # and heads with the previous dropout's rescaling folded in; off its diagonal blocks the head grid stays 0)
        k, d = self.k, self.d
        self.names = [name for name, m in model.blocks.named_children() if isinstance(m, nn.Linear)]
        self.first_c = torch.empty(k * d, d_in, dtype=dtype)
        self.first_bias_c = torch.empty(k * d, dtype=dtype)
        self.later_c = [(torch.empty(d, d, dtype=dtype), torch.empty(d, dtype=dtype)) for _ in self.names[1:]]
        self.head_c = torch.zeros(self.n_out * k, k * d, dtype=dtype) if self.block_heads else \
            torch.empty(k, d, self.n_out, dtype=dtype)
        self.head_bias_c = torch.empty(self.n_out, k, dtype=dtype)

    def bind(self, x_num: Tensor, x_cat: Tensor, y: Tensor) -> None:
        """Train on these rows from the next epoch on (a streamed table's next block); weights and the optimizer's
        state stay as they are."""
        model, emb = self.model, self.model.num_embeddings
        self.n = len(y)
        columns = {"numbers": x_num, "codes": x_cat + model.cat_offsets + self.n_numeric_inputs,
                   "y": y.reshape(-1, 1).float() if self.task == "regression" else y.reshape(-1, 1)}
        if self.embedded:
            with torch.no_grad():
                flat, columns["frac"] = emb.locate(x_num)
            columns["bins"] = flat - emb.offsets  # each value's bin within its feature
        self.columns = columns

    def _views(self, flat: Tensor) -> dict[str, Tensor]:
        out, start = {}, 0
        for name, p in self.model.named_parameters():
            out[name] = flat[start:start + p.numel()].view(p.shape)
            start += p.numel()
        return out

    @torch.no_grad()
    def _read_weights(self) -> None:
        """The model's weights into the flat buffer (the model is the truth between epochs)."""
        for view, p in zip(self.w.values(), self.params):
            view.copy_(p)

    @torch.no_grad()
    def sync(self) -> None:
        """Write the weights into the model (every epoch: validation and the best state read them there)."""
        for view, p in zip(self.w.values(), self.params):
            p.copy_(view)

    @torch.inference_mode()  # no autograd bookkeeping at all, views included (no_grad still tracks versions)
    def run_epoch(self, perm: Tensor, should_stop: Callable[[], bool]) -> tuple[float, bool]:
        """One epoch in ``perm`` order → (mean training loss over the rows seen, whether the epoch finished)."""
        self._read_weights()  # a callback or a restore may have changed them since the last epoch
        B, n = self.batch_size, self.n
        # the embeddings' inputs feature-major ([n_num, rows]) for their batched GEMMs, the rest row-major
        feature_major = {"numbers", "frac", "bins"} if self.embedded else set()
        rows_of = {name: t.index_select(0, perm).t() if name in feature_major else t.index_select(0, perm)
                   for name, t in self.columns.items()}
        out = torch.empty(n, self.n_out * self.k)  # logits, class-major
        adam = self.optimizer.step
        seen = 0
        for start in range(0, n, B):
            rows = slice(start, start + B)
            batch = {name: t[:, rows] if name in feature_major else t[rows] for name, t in rows_of.items()}
            adam(self._step(batch, out[rows]))
            seen = min(start + B, n)
            if should_stop():
                break
        self.sync()
        logits = out[:seen].view(seen, self.n_out, self.k)
        y = rows_of["y"][:seen]
        if self.task == "regression":
            loss = (logits - y[:, :, None]).pow_(2).sum() / self.k
        else:
            loss = -torch.log_softmax(logits, 1).gather(1, y[:, :, None].expand(-1, 1, self.k)).sum() / self.k
        return float(loss) / seen, seen == n

    def _step(self, batch: dict[str, Tensor], out: Tensor) -> Tensor | None:
        """Forward and backward of one batch: gradients into ``self.flat["grad"]``, logits into ``out``. Returns
        what the gradients must be divided by to clip their norm (None without clipping): the optimizer's kernel
        divides them in its own pass."""
        w, g, dt = self.w, self.g, self.dtype
        k, d, n_out, B = self.k, self.d, self.n_out, len(batch["y"])
        p, inv_keep = self.p, self.inv_keep
        y = batch["y"]
        # --- forward: the input matrix [numbers or their embeddings, one-hot categories]
        x = self.inputs.get(B)
        if x is None:
            x = self.inputs.setdefault(B, torch.empty(B, self.first_c.shape[1]))
        numeric = x[:, :self.n_numeric_inputs]
        if self.embedded:
            encoding = self._encode(batch["bins"], batch["frac"], batch["numbers"])  # [n_num, B, T + 2]
            weights = torch.cat([w["num_embeddings.weight"], w["num_embeddings.bias0"][:, None],
                                 w["num_embeddings.weight0"][:, None]], 1)  # [n_num, T + 2, d_emb]
            numeric.view(B, self.n_num, self.d_emb).copy_(torch.bmm(encoding, weights).transpose(0, 1))
        else:
            numeric.copy_(batch["numbers"])
        if self.model.cat_cardinalities:
            x[:, self.n_numeric_inputs:].zero_()
            x.scatter_(1, batch["codes"], 1.0)
        xc = x.to(dt)
        w1, scaling = w["blocks.0.weight"], w["scaling"]
        w_first = stack_first_layer(w1, scaling, out=self.first_c)  # the members' first layers as one
        later = self.later_c
        self.first_bias_c.view(k, d).copy_(w["blocks.0.bias"])
        h = _linear(xc, w_first, self.first_bias_c, relu=True)  # [B, k * d]
        if p:
            _drop(h, p, self.model.dropout_generator)
        acts = [h.view(B * k, d)]
        for name, (weight, bias) in zip(self.names[1:], later):
            torch.mul(w[f"blocks.{name}.weight"], inv_keep, out=weight)  # the previous dropout's rescaling
            bias.copy_(w[f"blocks.{name}.bias"])
            h = _linear(acts[-1], weight, bias, relu=True)
            if p:
                _drop(h, p, self.model.dropout_generator)
            acts.append(h)
        head_w, head_c, head_bias_c = w["head_weight"], self.head_c, self.head_bias_c  # [k, d, n_out]
        head_bias_c.copy_(w["head_bias"].t())
        if self.block_heads:
            torch.mul(head_w.permute(2, 1, 0), inv_keep, out=_diagonal_blocks(head_c, k, n_out, d))
            out.copy_(_linear(acts[-1].view(B, k * d), head_c, head_bias_c.view(-1)))  # [B, n_out * k]
        else:
            members = acts[-1].view(B, k, d).transpose(0, 1)  # [k, B, d]
            torch.mul(head_w, inv_keep, out=head_c)
            logits = torch.baddbmm(head_bias_c.t()[:, None, :], members, head_c)  # [k, B, n_out]
            out.view(B, n_out, k).copy_(logits.permute(1, 2, 0))
        # --- loss gradient: mean over rows and members
        z = out.view(B, n_out, k)
        if self.task == "regression":
            grad = (z - y[:, :, None]).mul_(2.0 / (B * k))
        else:  # softmax minus the one-hot label, for every member
            grad = torch.softmax(z, 1)
            grad.scatter_add_(1, y[:, :, None].expand(-1, 1, k), self._minus_ones(B))
            grad.mul_(1.0 / (B * k))
        g["head_bias"].copy_(grad.sum(0).t())
        grad_c = grad.to(dt)
        # --- backward
        last = acts[-1]
        if self.block_heads:
            flat_grad = grad_c.view(B, n_out * k)
            d_act = torch.mm(flat_grad, head_c)  # [B, k * d]
            d_grid = torch.mm(flat_grad.t(), last.view(B, k * d))  # [n_out * k, k * d]: the diagonal blocks count
            torch.mul(_diagonal_blocks(d_grid, k, n_out, d).permute(2, 1, 0), inv_keep, out=g["head_weight"])
            d_act = d_act.view(B * k, d)
        else:
            members_grad = grad_c.permute(2, 0, 1)  # [k, B, n_out]
            d_act = torch.bmm(members_grad, head_c.transpose(1, 2)).transpose(0, 1).reshape(B * k, d)
            torch.mul(torch.bmm(members.transpose(1, 2), members_grad), inv_keep, out=g["head_weight"])
        names = self.names
        for i in range(len(later), 0, -1):
            d_pre = _threshold_backward(d_act, acts[i], 0)  # ReLU and dropout: zero where the output is zero
            torch.mul(torch.mm(d_pre.t(), acts[i - 1]), inv_keep, out=g[f"blocks.{names[i]}.weight"])
            g[f"blocks.{names[i]}.bias"].copy_(d_pre.sum(0))  # accumulated in float32, rounded to dt (autocast too)
            d_act = torch.mm(d_pre, later[i - 1][0])
        d_pre = _threshold_backward(d_act, acts[0], 0).view(B, k * d)
        d_first = torch.mm(d_pre.t(), xc).view(k, d, -1)  # [k, d, d_in], in dt: the products below are float32
        g["blocks.0.bias"].copy_(d_pre.view(B * k, d).sum(0))  # (sum(dtype=float32) would copy d_pre first)
        torch.sum(d_first * scaling[:, None, :], 0, out=g["blocks.0.weight"])
        torch.sum(d_first * w1[None], 1, out=g["scaling"])
        if self.embedded:
            n_num, d_emb = self.n_num, self.d_emb
            d_x = torch.mm(d_pre, w_first)[:, :n_num * d_emb].view(B, n_num, d_emb).transpose(0, 1).float()
            d_weights = torch.bmm(encoding.transpose(1, 2), d_x)  # [n_num, T + 2, d_emb]; padded bins get 0
            T = self.n_bins
            g["num_embeddings.weight"].copy_(d_weights[:, :T])
            g["num_embeddings.bias0"].copy_(d_weights[:, T])
            g["num_embeddings.weight0"].copy_(d_weights[:, T + 1])
        if not self.grad_clip:
            return None
        # clip_grad_norm_ multiplies by min(clip / (norm + 1e-6), 1): the same, as a divisor
        norm = torch.linalg.vector_norm(self.flat["grad"])
        return norm.add_(1e-6).div_(self.grad_clip).clamp_min_(1.0)

    def _minus_ones(self, batch: int) -> Tensor:
        """[B, 1, k] of -1: what the label's logit gradient gets added (per batch size, made once)."""
        ones = self.minus_ones.get(batch)
        if ones is None:
            ones = self.minus_ones.setdefault(batch, torch.full((batch, 1, self.k), -1.0))
        return ones

    def _encode(self, bins: Tensor, frac: Tensor, raw: Tensor) -> Tensor:
        """``[n_num, B, T + 2]``: the piecewise-linear encoding of a batch (1 in bins left of the value's, ``frac``
        in its own, 0 right of it: what :meth:`PiecewiseLinearEmbeddings.forward` sums), then 1, then the value."""
        batch, T = bins.shape[1], self.n_bins
        encoding = self.encodings.get(batch)
        if encoding is None:
            encoding = self.encodings.setdefault(batch, torch.ones(self.n_num, batch, T + 2))
        ple = encoding[..., :T]
        torch.gt(bins[..., None], self.bin_range, out=ple)  # straight into the floats: no bool temporary to copy
        ple.scatter_(2, bins[..., None], frac[..., None])
        encoding[..., T + 1].copy_(raw)
        return encoding


def _drop(h: Tensor, p: float, generator: torch.Generator | None) -> None:
    """Dropout without the rescaling, in place: AND the activations' bits with a :func:`dropout_mask`."""
    mask = dropout_mask(h.shape, p, generator=generator)
    if h.dtype == torch.bfloat16:
        h.view(torch.int16).bitwise_and_(mask)
    else:
        h.view(torch.int32).bitwise_and_(mask.to(torch.int32))


def _diagonal_blocks(grid: Tensor, k: int, n_out: int, d: int) -> Tensor:
    """The k diagonal blocks of a class-major [n_out * k, k * d] matrix (row ``o * k + i`` is member i's class o),
    as a view [n_out, d, k]."""
    return grid.view(n_out, k, k, d).diagonal(dim1=1, dim2=2)
