"""TabM-mini: a parameter-efficient ensemble MLP for tables, with piecewise-linear numeric embeddings.

Follows Gorishniy et al., "TabM: Advancing Tabular Deep Learning with Parameter-Efficient Ensembling" (ICLR 2025)
and "On Embeddings for Numerical Features in Tabular Deep Learning" (NeurIPS 2022). The ``k`` members share every
MLP weight; they differ only by one non-shared elementwise scaling of the input and by their own output heads.

Shapes: ``B`` batch rows, ``k`` members, ``n_num`` numeric and ``n_cat`` categorical features, ``T`` bins.
Categorical codes are int64 in ``[0, cardinality)``; code 0 is the missing/unknown slot and gets its own one-hot
column. The model returns one prediction per member, ``[B, k, n_out]``: train on the mean of the members' losses,
predict by averaging the members' probabilities.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor, nn

from .layers import Dropout, linear

__all__ = ["bin_index", "compute_bins", "piecewise_linear_encoding", "PiecewiseLinearEmbeddings", "TabM"]


# --- bins and the encoding -------------------------------------------------------------------------------------
def compute_bins(x_num: Tensor, n_bins: int) -> list[Tensor]:
    """Quantile bin edges per numeric column of the *training* split: sorted, unique, 2 to ``n_bins + 1`` each.

    ``n_bins`` is capped at ``N - 1``; a constant column ``v`` gets the single bin ``[v, v + 1]``.

    >>> [e.tolist() for e in compute_bins(torch.tensor([[0.0, 5.0], [1.0, 5.0], [2.0, 5.0]]), n_bins=4)]
    [[0.0, 1.0, 2.0], [5.0, 6.0]]
    """
    if isinstance(n_bins, bool) or not isinstance(n_bins, int) or n_bins < 2:
        raise ValueError(f"n_bins must be an integer >= 2, got {n_bins!r}")
    if not isinstance(x_num, Tensor) or x_num.ndim != 2:
        shape = tuple(x_num.shape) if isinstance(x_num, Tensor) else type(x_num).__name__
        raise ValueError(f"x_num must be a 2-D tensor [N, n_num], got {shape}")
    if x_num.numel() == 0:
        raise ValueError(f"x_num must be non-empty to compute bins, got shape {tuple(x_num.shape)}")
    x = x_num.detach().to("cpu", torch.float64)
    if not torch.isfinite(x).all():
        raise ValueError("x_num must contain only finite values to compute bins (found NaN or inf)")
    n = x.shape[0]
    n_bins = max(1, min(n_bins, n - 1))
    # Linear-interpolated quantiles of all columns at once.
    xs = x.sort(dim=0).values
    pos = torch.linspace(0.0, 1.0, n_bins + 1, dtype=torch.float64) * (n - 1)
    lo = pos.floor().long()
    hi = pos.ceil().long()
    edges = xs[lo] + (pos - lo)[:, None] * (xs[hi] - xs[lo])  # [n_bins + 1, n_num]
    bins = []
    for column in edges.to(torch.float32).T:
        e = torch.unique(column)  # sorted and strictly increasing
        bins.append(e if len(e) >= 2 else torch.stack([e[0], e[0] + 1.0]))
    return bins


def _pad_edges(bins: list[Tensor]) -> Tensor:
    """Stack ragged edge vectors into ``[n, T_max + 1]``, repeating each last edge (padded bins are masked)."""
    width = max(len(e) for e in bins)
    return torch.stack([torch.cat([e, e[-1:].expand(width - len(e))]) for e in bins])


def _bin_bounds(n_bins: list[int]) -> tuple[Tensor, Tensor]:
    """Clamp bounds ``[n, T_max]``: first bin open below, last bin open above, padded bins pinned to 0."""
    t = torch.arange(max(n_bins))
    counts = torch.tensor(n_bins)[:, None]
    lower = torch.where(t == 0, -math.inf, 0.0).expand(len(n_bins), -1)
    upper = torch.where(t == counts - 1, math.inf, 1.0)
    padded = t >= counts
    return lower.masked_fill(padded, 0.0), upper.masked_fill(padded, 0.0)


def _encode(x: Tensor, edges: Tensor, lower: Tensor, upper: Tensor) -> Tensor:
    left = edges[:, :-1]
    width = edges[:, 1:] - left
    width = torch.where(width > 0, width, torch.ones_like(width))  # padded bins and unset (all-zero) edges
    return torch.clamp((x[..., None] - left) / width, min=lower, max=upper)


def piecewise_linear_encoding(x_num: Tensor, bins: list[Tensor]) -> Tensor:
    """Piecewise-linear encoding ``[..., n_num] -> [..., n_num, T_max]`` (zeros past each feature's bin count).

    Component ``t`` is 0 left of bin ``t``, 1 right of it and linear inside; the first bin extends linearly
    below the first edge (negative values) and the last bin above the last edge (values > 1).

    >>> piecewise_linear_encoding(torch.tensor([[-1.0], [0.5], [1.5], [3.0]]), [torch.tensor([0.0, 1.0, 2.0])])
    tensor([[[-1.0000,  0.0000]],
    <BLANKLINE>
            [[ 0.5000,  0.0000]],
    <BLANKLINE>
            [[ 1.0000,  0.5000]],
    <BLANKLINE>
            [[ 1.0000,  2.0000]]])
    """
    if len(bins) != x_num.shape[-1]:
        raise ValueError(f"got {len(bins)} edge vectors for {x_num.shape[-1]} numeric features")
    lower, upper = _bin_bounds([len(e) - 1 for e in bins])
    return _encode(x_num, _pad_edges(bins).to(x_num), lower.to(x_num), upper.to(x_num))


def bin_index(x: Tensor, edges: Tensor, last_bin: Tensor) -> Tensor:
    """Each value's bin, int64[B, n], for x float32[B, n] (no NaN) and edges [n, T + 1] (each row sorted, padded
    with its last edge): the number of edges at or below the value, less one, clamped to ``[0, last_bin]`` (int64[n]).

    The one definition of the bins. Here it is ``searchsorted`` (far faster on a CPU than comparing every edge); the
    ONNX graph, which has no such op, counts the same edges with a grid lookup and a few comparisons
    (:func:`neuraltab.export.pipeline.bin_index`), tested equal to this on edges, between and outside them.

    >>> bin_index(torch.tensor([[-1.0], [0.0], [0.5], [2.0], [9.0]]), torch.tensor([[0.0, 1.0, 2.0]]), torch.tensor([1]))
    tensor([[0],
            [0],
            [0],
            [1],
            [1]])
    """
    bins = torch.searchsorted(edges, x.t().contiguous(), right=True).t() - 1  # [B, n]
    return torch.minimum(bins.clamp_(min=0), last_bin)  # below the first edge: bin 0; past the last: last bin


# --- numeric embeddings ----------------------------------------------------------------------------------------
class PiecewiseLinearEmbeddings(nn.Module):
    """Per-feature embedding ``float32[B, n_num] -> float32[B, n_num, d_embedding]`` ("version B", no activation).

    ``embedding = w0 * x + b0 + PLE(x) @ W``: a linear term of the raw value plus a per-feature linear layer on the
    piecewise-linear encoding (``W`` starts at zero). The edges are a persistent buffer ``[n_num, T_max + 1]``
    filled by :meth:`set_bins` or :meth:`load_state_dict`.

    >>> emb = PiecewiseLinearEmbeddings(n_bins_per_feature=[3, 1], d_embedding=4)
    >>> emb.set_bins([torch.tensor([0.0, 1.0, 2.0, 3.0]), torch.tensor([-1.0, 1.0])])
    >>> emb(torch.randn(5, 2)).shape
    torch.Size([5, 2, 4])
    """

    def __init__(self, *, n_bins_per_feature: list[int], d_embedding: int,
                 generator: torch.Generator | None = None) -> None:
        super().__init__()
        n_bins = [int(n) for n in n_bins_per_feature]
        if not n_bins or min(n_bins) < 1:
            raise ValueError(f"n_bins_per_feature must be a non-empty list of ints >= 1, got {n_bins_per_feature!r}")
        if d_embedding < 1:
            raise ValueError(f"d_embedding must be >= 1, got {d_embedding!r}")
        self.n_bins_per_feature = n_bins
        n, t = len(n_bins), max(n_bins)
        self.register_buffer("edges", torch.zeros(n, t + 1))
        self.register_buffer("last_bin", torch.tensor(n_bins) - 1, persistent=False)
        self.register_buffer("offsets", torch.arange(n) * t, persistent=False)
        bound = d_embedding**-0.5
        self.weight0 = nn.Parameter(torch.empty(n, d_embedding).uniform_(-bound, bound, generator=generator))
        self.bias0 = nn.Parameter(torch.empty(n, d_embedding).uniform_(-bound, bound, generator=generator))
        self.weight = nn.Parameter(torch.zeros(n, t, d_embedding))

    def set_bins(self, bins: list[Tensor]) -> None:
        """Copy edges (e.g. from :func:`compute_bins`) into the buffer; counts must match ``n_bins_per_feature``."""
        counts = [len(e) - 1 for e in bins]
        if counts != self.n_bins_per_feature:
            raise ValueError(f"bins give {counts} bins per feature, the module expects {self.n_bins_per_feature}")
        if any(bool((e[1:] <= e[:-1]).any()) for e in bins):
            raise ValueError("bin edges must be strictly increasing for every feature")
        with torch.no_grad():
            self.edges.copy_(_pad_edges([e.detach().to(self.edges) for e in bins]))

    def forward(self, x_num: Tensor) -> Tensor:
        # PLE(x) @ W without the [B, n, T] encoding: components left of x's bin are 1, right of it 0, so the product
        # is the sum of W's rows before that bin plus the fraction of the way through it times its own row.
        # O(d) per feature and row instead of O(T * d); equal to piecewise_linear_encoding(x) @ W up to rounding.
        lead, n = x_num.shape[:-1], x_num.shape[-1]
        x = x_num.reshape(-1, n)
        flat, frac = self.locate(x)
        d = self.weight.shape[-1]
        before = torch.cumsum(self.weight, 1) - self.weight + self.bias0[:, None, :]
        table = torch.cat([before, self.weight], -1).reshape(-1, 2 * d)  # per (feature, bin): [before, own row]
        rows = nn.functional.embedding(flat, table)  # [B, n, 2d]
        out = torch.addcmul(rows[..., :d], frac[..., None], rows[..., d:])
        out = torch.addcmul(out, self.weight0, x[..., None])  # [B, n, d]
        return out.reshape(*lead, n, -1)

    def locate(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``x`` float32[B, n] → (each value's bin as an index into the ``[n * T]`` flattening of (feature, bin),
        int64[B, n]; how far through that bin it lies, float32[B, n]). Depends on the edges only, not on weights."""
        flat = bin_index(x, self.edges, self.last_bin) + self.offsets
        left = self.edges[:, :-1]
        width = self.edges[:, 1:] - left
        width = torch.where(width > 0, width, torch.ones_like(width))
        # one lookup per (row, feature) into [left edge, 1 / width]
        bounds = nn.functional.embedding(flat, torch.stack([left, 1.0 / width], -1).reshape(-1, 2))  # [B, n, 2]
        return flat, (x - bounds[..., 0]).mul_(bounds[..., 1])


def kept_levels(p: float) -> int:
    """Of the 256 values of an element's 8-bit uniform, how many keep it: ``round((1 - p) * 256)``, at least 1."""
    return max(1, round((1.0 - p) * 256))


def dropout_scale(p: float) -> float:
    """What kept elements are multiplied by: 1 over the share kept, ``256 / kept_levels(p)``."""
    return 256 / kept_levels(p)


def dropout_mask(shape: torch.Size | tuple[int, ...], p: float, *, generator: torch.Generator | None = None) -> Tensor:
    """A dropout mask int16[shape]: -1 (all bits set) keeps an element, 0 drops it.

    Each element gets an 8-bit uniform and is kept when it is below :func:`kept_levels`, so the rate is ``p``
    rounded to a multiple of 1/256 (0.1 drops 26/256 = 0.1016) and :func:`dropout_scale` rescales by the share
    actually kept. The bits come from numpy's SFC64 generator, eight elements per 64-bit word (half the draws of
    15-bit uniforms), seeded for each mask with one draw from ``generator`` (torch's global generator when None): its
    seed and a checkpoint's saved generator state decide every mask. As bits, the mask can be ANDed into bfloat16
    values (``x.view(torch.int16) &= mask``) or, widened, into float32.
    """
    n = math.prod(shape)
    seed = int(torch.randint(0, 2**63 - 1, (), dtype=torch.int64, generator=generator))
    words = np.random.SFC64(seed).random_raw((n + 7) // 8)
    # widened, offset and shifted in numpy: torch's uint8 → int16 copy was slower
    mask = words.view(np.uint8)[:n].astype(np.int16)
    mask -= kept_levels(p)
    mask >>= 15  # u - K < 0 → -1
    return torch.from_numpy(mask).view(shape)


class _Dropout(Dropout):
    """Dropout drawing its CPU mask with :func:`dropout_mask` from ``generator`` (the hand-derived training step draws
    the same masks from the same generator); on other devices this is :class:`~.layers.Dropout`."""

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0 or x.device.type != "cpu":
            return super().forward(x)
        keep = dropout_mask(x.shape, self.p, generator=self.generator).to(x.dtype).neg_()  # 1.0 kept, 0.0 dropped
        return x * keep.mul_(dropout_scale(self.p))


# --- the ensemble ----------------------------------------------------------------------------------------------
class TabM(nn.Module):
    """TabM-mini: ``(x_num float32[B, n_num], x_cat int64[B, n_cat]) -> float32[B, k, n_out]``.

    Input = flattened numeric embeddings (or raw numbers) ++ one one-hot block per categorical feature; member ``i``
    scales it by ``scaling[i]`` (``[k, d_in]``), then ``n_blocks`` shared Linear-ReLU-Dropout blocks and member
    ``i``'s own linear head. Inputs may also be ``[B, k, ...]`` (a different batch per member). ``x_num`` or
    ``x_cat`` may be ``None`` when there are no such features.

    >>> model = TabM(n_num=3, cat_cardinalities=[4], n_out=2, k=8, d_block=32)
    >>> model(torch.randn(5, 3), torch.randint(0, 4, (5, 1))).shape
    torch.Size([5, 8, 2])
    >>> model = TabM.from_training_data(x_num_train=torch.randn(100, 3), n_bins=8, cat_cardinalities=[], n_out=1, k=4)
    >>> model(torch.randn(1, 3), None).shape
    torch.Size([1, 4, 1])
    """

    def __init__(
        self,
        *,
        n_num: int,
        cat_cardinalities: list[int],
        n_out: int,
        k: int = 32,
        d_block: int = 512,
        n_blocks: int = 2,
        dropout: float = 0.1,
        d_embedding: int = 16,
        n_bins_per_feature: list[int] | None = None,
        generator: torch.Generator | None = None,
    ) -> None:
        super().__init__()
        cards = [int(c) for c in cat_cardinalities]
        if n_num < 0 or (n_num == 0 and not cards):
            raise ValueError(f"need at least one feature, got n_num={n_num} and cat_cardinalities={cards}")
        if cards and min(cards) < 1:
            raise ValueError(f"every categorical cardinality must be >= 1, got {cards}")
        for name, value in [("n_out", n_out), ("k", k), ("d_block", d_block), ("n_blocks", n_blocks)]:
            if value < 1:
                raise ValueError(f"{name} must be >= 1, got {value!r}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), got {dropout!r}")
        if n_bins_per_feature is not None and len(n_bins_per_feature) != n_num:
            raise ValueError(f"n_bins_per_feature has {len(n_bins_per_feature)} entries for n_num={n_num}")
        self.n_num, self.cat_cardinalities, self.n_out, self.k = n_num, cards, n_out, k
        embed = n_bins_per_feature is not None and n_num > 0
        self.num_embeddings = (
            PiecewiseLinearEmbeddings(n_bins_per_feature=n_bins_per_feature, d_embedding=d_embedding,
                                      generator=generator)
            if embed
            else None
        )
        self.register_buffer("cat_offsets", torch.tensor([0, *cards[:-1]]).cumsum(0)[: len(cards)], persistent=False)
        self.register_buffer("cat_limits", torch.tensor(cards, dtype=torch.long), persistent=False)
        # TabM-mini: one random scalar per member and per feature chunk, broadcast over the chunk.
        chunks = [d_embedding if embed else 1] * n_num + cards
        d_in = sum(chunks)
        if embed:
            scalars = torch.randn(k, len(chunks), generator=generator)
        else:
            scalars = torch.randint(0, 2, (k, len(chunks)), generator=generator).float() * 2.0 - 1.0
        self.scaling = nn.Parameter(scalars.repeat_interleave(torch.tensor(chunks), dim=1))
        layers: list[nn.Module] = []
        for i in range(n_blocks):
            layers += [linear(d_in if i == 0 else d_block, d_block, generator=generator), nn.ReLU(),
                       _Dropout(dropout, generator=generator)]
        self.blocks = nn.Sequential(*layers)
        bound = d_block**-0.5
        self.head_weight = nn.Parameter(torch.empty(k, d_block, n_out).uniform_(-bound, bound, generator=generator))
        self.head_bias = nn.Parameter(torch.empty(k, n_out).uniform_(-bound, bound, generator=generator))
        self.dropout_generator = generator  # what training's dropout draws from (None: torch's global generator)

    @classmethod
    def from_training_data(cls, *, x_num_train: Tensor, n_bins: int | None, **kwargs) -> TabM:
        """Build a model whose embedding bins come from the training numerics (``n_bins=None``: raw numbers)."""
        n_num = int(x_num_train.shape[1])
        if kwargs.setdefault("n_num", n_num) != n_num:
            raise ValueError(f"n_num={kwargs['n_num']} but x_num_train has {n_num} columns")
        if "n_bins_per_feature" in kwargs:
            raise TypeError("from_training_data computes n_bins_per_feature itself; pass n_bins instead")
        if n_bins is None or n_num == 0:
            return cls(**kwargs)
        bins = compute_bins(x_num_train, n_bins)
        model = cls(n_bins_per_feature=[len(e) - 1 for e in bins], **kwargs)
        model.set_bins(bins)
        return model

    def set_bins(self, bins: list[Tensor]) -> None:
        """Fill the numeric embeddings' edges (see :func:`compute_bins`)."""
        if self.num_embeddings is None:
            raise ValueError("this TabM has no numeric embeddings (built with n_bins_per_feature=None)")
        self.num_embeddings.set_bins(bins)

    def _features(self, x_num: Tensor | None, x_cat: Tensor | None) -> Tensor:
        parts = []
        if self.n_num:
            if x_num is None or x_num.shape[-1] != self.n_num:
                got = None if x_num is None else tuple(x_num.shape)
                raise ValueError(f"expected x_num [..., {self.n_num}], got {got}")
            parts.append(x_num if self.num_embeddings is None else self.num_embeddings(x_num).flatten(-2))
        if self.cat_cardinalities:
            n_cat = len(self.cat_cardinalities)
            if x_cat is None or x_cat.shape[-1] != n_cat or x_cat.dtype != torch.long:
                got = None if x_cat is None else f"{x_cat.dtype} {tuple(x_cat.shape)}"
                raise ValueError(f"expected x_cat int64 [..., {n_cat}], got {got}")
            if bool(((x_cat < 0) | (x_cat >= self.cat_limits)).any()):
                raise ValueError(f"categorical codes must lie in [0, cardinality) for {self.cat_cardinalities}")
            one_hot = self.scaling.new_zeros(*x_cat.shape[:-1], sum(self.cat_cardinalities))
            parts.append(one_hot.scatter_(-1, x_cat + self.cat_offsets, 1.0))
        return parts[0] if len(parts) == 1 else torch.cat(parts, dim=-1)

    def forward(self, x_num: Tensor | None, x_cat: Tensor | None) -> Tensor:
        x = self._features(x_num, x_cat)  # [B, d_in] or [B, k, d_in]
        if x.ndim == 2:
            # One batch for all members: the k members' first layers are one GEMM with no [k, B, d_in] copy of x.
            d = self.blocks[0].out_features
            x = nn.functional.linear(x, *self._first_layer()).view(-1, d)  # [B * k, d]: member i of row b at b*k+i
            x = self.blocks[1:](x).view(-1, self.k, d).transpose(0, 1)  # [k, B, d] (a view, no copy)
        elif x.ndim == 3 and x.shape[1] == self.k:
            x = self.blocks((x.transpose(0, 1) * self.scaling[:, None, :]).contiguous())  # [k, B, d]
        else:
            raise ValueError(f"inputs must be [B, n] or [B, k={self.k}, n], got features of shape {tuple(x.shape)}")
        return torch.baddbmm(self.head_bias[:, None, :], x, self.head_weight).transpose(0, 1)  # [B, k, n_out]

    def _first_layer(self) -> tuple[Tensor, Tensor]:
        """Weight [k * d, d_in] and bias [k * d] of the members' first layers stacked as one layer."""
        first = self.blocks[0]
        return stack_first_layer(first.weight, self.scaling), first.bias.repeat(self.k)

    @property
    def block_diagonal_heads(self) -> bool:
        """Whether the k heads run as one block-diagonal GEMM: k*d x k*n_out multiply-adds a row instead of d x n_out
        per member, but no reordering of [B, k, d]; worth it while k * n_out is small next to the d x d blocks."""
        return self.k * self.n_out <= 64

    @torch.inference_mode()
    def inference_forward(self, x_num: Tensor | None, x_cat: Tensor | None, *, dtype: torch.dtype = torch.float32,
                          plan: "_InferencePlan | None" = None) -> Tensor:
        """``forward`` for prediction (eval mode, no autograd): ``float32[B, k, n_out]``, equal up to rounding.

        Each layer is one GEMM with its bias and ReLU fused in where the CPU library offers it (oneDNN post-ops),
        on weights cast to ``dtype`` once per plan; the heads are one block-diagonal GEMM when that is cheaper than
        moving the activations into members-first order. ``plan``: from :meth:`inference_plan`, to reuse across
        batches (it must be rebuilt after the weights change).
        """
        plan = plan or self.inference_plan(dtype)
        x = self._features(x_num, x_cat).to(plan.dtype)
        if x.ndim != 2:
            raise ValueError(f"inference_forward takes one batch for all members, got features {tuple(x.shape)}")
        batch = x.shape[0]
        h = _linear(x, plan.first_weight, plan.first_bias, relu=True).view(batch * self.k, -1)  # [B * k, d]
        for weight, bias in plan.blocks:
            h = _linear(h, weight, bias, relu=True)
        if plan.head_block_diagonal is not None:
            out = _linear(h.view(batch, -1), plan.head_block_diagonal, plan.head_bias_flat)
            return out.view(batch, self.k, self.n_out).float()
        h = h.view(batch, self.k, -1).transpose(0, 1)
        return torch.baddbmm(plan.head_bias[:, None, :], h, plan.head_weight).transpose(0, 1).float()

    @torch.no_grad()
    def inference_plan(self, dtype: torch.dtype = torch.float32) -> "_InferencePlan":
        """The weights :meth:`inference_forward` multiplies by, folded and cast once (see there)."""
        first_weight, first_bias = self._first_layer()
        linears = [m for m in self.blocks if isinstance(m, nn.Linear)][1:]
        block = self.block_diagonal_heads
        return _InferencePlan(
            dtype=dtype,
            first_weight=first_weight.to(dtype).contiguous(), first_bias=first_bias.to(dtype),
            blocks=[(m.weight.to(dtype).contiguous(), m.bias.to(dtype)) for m in linears],
            head_block_diagonal=torch.block_diag(*self.head_weight.transpose(1, 2)).to(dtype) if block else None,
            head_bias_flat=self.head_bias.reshape(-1).to(dtype), head_weight=self.head_weight.to(dtype),
            head_bias=self.head_bias.to(dtype))


@dataclass
class _InferencePlan:
    dtype: torch.dtype
    first_weight: Tensor  # [k * d, d_in]
    first_bias: Tensor  # [k * d]
    blocks: list[tuple[Tensor, Tensor]]  # ([d, d], [d]) for blocks after the first
    head_block_diagonal: Tensor | None  # [k * n_out, k * d]
    head_bias_flat: Tensor  # [k * n_out]
    head_weight: Tensor  # [k, d, n_out]
    head_bias: Tensor  # [k, n_out]


def stack_first_layer(weight: Tensor, scaling: Tensor, *, out: Tensor | None = None) -> Tensor:
    """The k members' first-layer weights [k * d, d_in] stacked as one: member i computes x @ (diag(scaling[i]) W^T),
    so its rows are ``weight`` [d, d_in] with each column scaled by ``scaling[i]`` ([k, d_in]). ``out``: a buffer
    to write into (of any dtype, as a [k * d, d_in] tensor)."""
    k, (d, d_in) = scaling.shape[0], weight.shape
    if out is None:
        return (weight[None] * scaling[:, None, :]).reshape(k * d, d_in)
    torch.mul(weight[None], scaling[:, None, :], out=out.view(k, d, d_in))
    return out


def _linear(x: Tensor, weight: Tensor, bias: Tensor, *, relu: bool = False) -> Tensor:
    """x @ weight.T + bias (then ReLU): one oneDNN call with the bias and ReLU fused on CPUs that have it."""
    if x.device.type == "cpu" and _FUSED_LINEAR is not None:
        try:
            return _FUSED_LINEAR(x, weight, bias, "relu" if relu else "none", [], "")
        except (RuntimeError, NotImplementedError):  # a dtype, shape or platform this build does not take
            pass
    out = nn.functional.linear(x, weight, bias)
    return out.relu_() if relu else out


_FUSED_LINEAR = getattr(getattr(torch.ops, "mkldnn", None), "_linear_pointwise", None) \
    if torch.backends.mkldnn.is_available() else None
