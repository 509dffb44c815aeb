"""The whole prediction path of a model as one ONNX graph: raw columns in, labels and probabilities (or values) out.

Inputs, one per feature column, named as the column, shape ``[N, 1]``: numeric and boolean columns float32, or
float64 when asked (NaN, or an infinity, is missing; a boolean is 1 or 0), categorical columns strings as :func:`~neuraltab.data.schema.label_key`
writes the training values (an empty string, or any value not seen in training, takes the missing/unknown slot).
Outputs: ``label`` [N] and ``probabilities`` float32[N, classes] (classification), ``value`` float64[N] (regression).

Each step reads the numbers the model file stores, in the order :class:`~neuraltab.data.preprocess.Preprocessor` and
the networks apply them: imputation, missing indicators, scaling, category codes, the network, averaging, the target's
inverse scaling.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import numpy as np
import torch
from onnx import TensorProto
from torch import nn

from .. import __version__
from ..data.preprocess import _INPUT_LIMITS, Preprocessor
from ..data.quantile import _BOUNDS, _CLIP, _SCORE_HIGH, _SCORE_LOW
from ..data.schema import Schema
from ..errors import ArtifactError, option
from ..networks.bag import Bag
from ..networks.mlp import MLP
from ..networks.tabm import TabM
from .graph import GraphBuilder, count_knots, knot_counts, ndtri

__all__ = ["bin_index", "build_graph", "snap_to_knots", "unsupported"]

_ACTIVATIONS = ("relu", "gelu", "silu", "tanh", "sigmoid", "selu")
_N = "N"  # the batch dimension's symbolic name
_NUMBERS = {"float32": TensorProto.FLOAT, "float64": TensorProto.DOUBLE}


def unsupported(schema: Schema, preprocessor: Preprocessor, spec: dict[str, Any], network: nn.Module) -> str | None:
    """What about this model the export cannot write as a graph (a phrase), or None when it covers everything."""
    dates = [c.name for c in schema.features if c.kind == "datetime"]
    if dates:
        return (f"datetime column {dates[0]!r} (the graph takes no dates yet; train without it, "
                f"{option('drop', dates[:5])}, or turn it into numbers first)")
    if preprocessor.scaling not in ("quantile", "standard", "none"):
        return f"numeric scaling {preprocessor.scaling!r}"
    return _network_unsupported(spec, network)


def _network_unsupported(spec: dict[str, Any], network: nn.Module) -> str | None:
    if spec.get("kind") == "bag" and isinstance(network, Bag) and len(spec.get("members", [])) == len(network.members):
        problems = [_network_unsupported(s, m) for s, m in zip(spec["members"], network.members)]
        return next((f"a fold model's {p}" for p in problems if p is not None), None)
    if spec.get("kind") == "mlp":
        if not isinstance(network, MLP) or spec.get("activation") not in _ACTIVATIONS:
            return f"the MLP's activation {spec.get('activation')!r}"
        return None
    if spec.get("kind") == "tabm" and isinstance(network, TabM):
        return None
    return f"model kind {spec.get('kind')!r}"


def build_graph(schema: Schema, preprocessor: Preprocessor, spec: dict[str, Any], network: nn.Module, *,
                model_sha256: str, numbers: str = "float32") -> Any:
    """The ``onnx.ModelProto`` of the model's whole prediction path (check :func:`unsupported` first); ``numbers``:
    the dtype of the numeric and boolean inputs, "float32" or "float64"."""
    g = GraphBuilder()
    x_num, x_cat = _preprocess(g, schema, preprocessor, numbers=numbers)
    if any(t.device.type != "cpu" for t in [*network.parameters(), *network.buffers()]):
        network = copy.deepcopy(network).to("cpu")  # a copy: moving the caller's model off its GPU would surprise
    with torch.no_grad():
        out = _network(g, network, x_num, x_cat)
    if schema.task == "regression":
        mean = g.op("ReduceMean", out, g.const([1, 2], "axes", np.int64), keepdims=0)  # [N, k, 1] → [N]
        value = g.op("Add", g.op("Mul", g.op("Cast", mean, to=TensorProto.DOUBLE),
                                 g.const(preprocessor.y_std, "y_std", np.float64)),
                     g.const(preprocessor.y_mean, "y_mean", np.float64))
        g.output(value, "value", TensorProto.DOUBLE, [_N])
    else:
        proba = g.op("ReduceMean", g.op("Softmax", out, axis=-1), g.const([1], "axes", np.int64), keepdims=0)
        temperature = spec.get("temperature", 1.0)
        if temperature != 1.0:  # softmax(log(p) / T), as networks.temper
            floored = g.op("Max", proba, g.const(np.array(1e-12, np.float32), "floor"))
            proba = g.op("Softmax", g.op("Mul", g.op("Log", floored),
                                         g.const(np.array(1.0 / temperature, np.float32), "inverse_temperature")),
                         axis=-1)
        labels, label_type = _label_tensor(schema.classes)
        best = g.op("ArgMax", proba, axis=1, keepdims=0)
        g.output(g.op("Gather", g.const(labels, "classes"), best, axis=0), "label", label_type, [_N])
        g.output(proba, "probabilities", TensorProto.FLOAT, [_N, len(schema.classes)])
    metadata = {
        "neuraltab_version": __version__,
        "model_sha256": model_sha256,
        "task": schema.task,
        "target": schema.target,
        "classes": json.dumps(list(schema.classes)),
        "schema": json.dumps(schema.to_dict()),
        "inputs": json.dumps([{"name": c.name, "kind": c.kind,
                               "type": "string" if c.kind == "categorical" else numbers} for c in schema.features]),
        "outputs": json.dumps(["value"] if schema.task == "regression" else ["label", "probabilities"]),
    }
    doc = (f"neuraltab {__version__} {spec['kind']} model of {schema.target!r} ({schema.task}): one [N, 1] input per "
           "feature column (float32 numbers and booleans, NaN missing; strings for categories, '' missing)")
    return g.model(doc=doc, metadata=metadata)


# ------------------------------------------------------------------------------------------------- preprocessing
def _preprocess(g: GraphBuilder, schema: Schema, pre: Preprocessor, *,
                numbers: str) -> tuple[str | None, str | None]:
    """The network's inputs from the raw columns: x_num float32[N, n_num] and x_cat int64[N, n_cat] (None if empty)."""
    kinds = {c.name: c.kind for c in schema.features}
    names = {}
    for col in schema.features:  # one input per feature column, in the schema's order
        elem = TensorProto.STRING if col.kind == "categorical" else _NUMBERS[numbers]
        names[col.name] = g.input(col.name, elem, [_N, 1])

    x_num = None
    if pre.numeric_inputs:
        given = g.op("Concat", *[names[c] for c, _ in pre.numeric_inputs], axis=1)  # [N, d]
        missing = g.op("Or", g.op("IsNaN", given), g.op("IsInf", given))
        if numbers == "float64":  # the numbers as they are: nothing to snap
            raw = given
        elif pre.scaling == "quantile":
            raw = snap_to_knots(g, given, pre.stats["quantiles"])
        else:
            raw = g.op("Cast", given, to=TensorProto.DOUBLE)
        x = g.op("Where", missing, g.const(pre.median, "median", np.float64), raw)
        x = _scale(g, x, pre)
        parts = [g.op("Cast", x, to=TensorProto.FLOAT)]
        if len(pre.indicators):
            picked = g.op("Gather", missing, g.const(pre.indicators, "indicators", np.int64), axis=1)
            parts.append(g.op("Cast", picked, to=TensorProto.FLOAT))
        x_num = parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=1)

    codes = []
    for col, vocab in pre.vocabs:
        if kinds[col] == "boolean":  # 1 and 0 are the keys "True" and "False"; anything else is unknown
            zero = g.const(0, "zero", np.int64)
            code = g.op("Where", g.op("IsNaN", names[col]), zero, zero)  # [N, 1] zeros
            for key, value in (("False", 0.0), ("True", 1.0)):
                if key in vocab:
                    hit = g.op("Equal", names[col], g.const(value, "bool", np.dtype(numbers)))
                    code = g.op("Where", hit, g.const(vocab.index(key) + 1, "code", np.int64), code)
            codes.append(code)
        else:
            keys = [k for k in vocab if k != ""] or [""]  # the empty string is always missing
            values = [vocab.index(k) + 1 if k else 0 for k in keys]
            codes.append(g.op("LabelEncoder", names[col], domain="ai.onnx.ml", keys_strings=keys,
                              values_int64s=values, default_int64=0))
    x_cat = None if not codes else codes[0] if len(codes) == 1 else g.op("Concat", *codes, axis=1)
    return x_num, x_cat


def _scale(g: GraphBuilder, x: str, pre: Preprocessor) -> str:
    """Scaled numeric inputs, float64[N, d], as :meth:`Preprocessor.transform` scales them."""
    if pre.scaling == "quantile":
        return _quantile_normal(g, x, pre.stats["quantiles"])
    limit = _INPUT_LIMITS.get(pre.scaling, _INPUT_LIMITS["none"])
    if pre.scaling == "standard":
        std, mean = pre.stats["std"], pre.stats["mean"]
        x = g.op("Sub", g.op("Div", x, g.const(std, "std", np.float64)), g.const(mean / std, "mean_std", np.float64))
    return g.op("Min", g.op("Max", x, g.const(-limit, "limit", np.float64)), g.const(limit, "limit", np.float64))


def snap_to_knots(g: GraphBuilder, x32: str, quantiles: np.ndarray) -> str:
    """float64[N, d]: each float32 value that is a knot rounded to float32 becomes that knot's float64 value; others
    are widened as they are.

    The quantile transform jumps at a run of equal knots (a value repeated in training, such as 0.38), and a float32
    input is seldom the float64 knot it stands for (0.38 is 0.3800000071525574 in float32): without this, every such
    value would fall just beside its knot and take another score than ``Model.predict`` gives the number as written.
    """
    knots = np.ascontiguousarray(np.asarray(quantiles, dtype=np.float64).T)  # [d, m]
    with np.errstate(over="ignore"):  # beyond float32's range: ±inf, which no finite input equals
        knots32 = knots.astype(np.float32)
    at_most, below = knot_counts(g, x32, knots32, hint="knots32")
    d, m = knots.shape
    last = g.op("Max", g.op("Sub", at_most, g.const(1, "one", np.int64)), g.const(0, "zero", np.int64))
    flat = g.op("Add", last, g.const(np.arange(d, dtype=np.int64) * m, "offsets"))
    knot = g.op("Gather", g.const(knots.ravel(), "knots"), flat, axis=0)
    return g.op("Where", g.op("Greater", at_most, below), knot, g.op("Cast", x32, to=TensorProto.DOUBLE))


def _quantile_normal(g: GraphBuilder, x: str, quantiles: np.ndarray) -> str:
    """:func:`~neuraltab.data.quantile.quantile_normal_transform` of x float64[N, d] (no NaN): the uniform value is
    the mean of a forward and a backward linear interpolation between the knots (ties get the middle of their
    ranks), then the inverse normal CDF."""
    q = np.ascontiguousarray(np.asarray(quantiles, dtype=np.float64).T)  # [d, m]
    d, m = q.shape
    refs = np.linspace(0.0, 1.0, m)
    at_most, below = knot_counts(g, x, q, hint="quantiles")  # [N, d] each
    # on a knot (or a run of equal knots): the mean of the first and last ranks it holds
    first = g.op("Gather", g.const(refs, "refs"), g.op("Min", below, g.const(m - 1, "last", np.int64)), axis=0)
    last = g.op("Gather", g.const(refs, "refs"), g.op("Max", g.op("Sub", at_most, g.const(1, "one", np.int64)),
                                                      g.const(0, "zero", np.int64)), axis=0)
    on = g.op("Mul", g.op("Add", first, last), g.const(0.5, "half", np.float64))
    # strictly between knots below - 1 and below: the same operations np.interp does, forwards and backwards
    tables = np.zeros((5, d, m + 1))
    with np.errstate(divide="ignore", invalid="ignore", over="ignore"):
        slope = (refs[1:] - refs[:-1]) / (q[:, 1:] - q[:, :-1])
    tables[:, :, 1:m] = np.stack(np.broadcast_arrays(q[:, :-1], q[:, 1:], np.where(np.isfinite(slope), slope, 0.0),
                                                     refs[:-1], refs[1:]))
    flat = g.op("Add", below, g.const(np.arange(d, dtype=np.int64) * (m + 1), "offsets"))
    lo, hi, s, r_lo, r_hi = (g.op("Gather", g.const(t.ravel(), "interp"), flat, axis=0) for t in tables)
    forward = g.op("Add", g.op("Mul", s, g.op("Sub", x, lo)), r_lo)
    backward = g.op("Add", g.op("Mul", s, g.op("Sub", x, hi)), r_hi)
    between = g.op("Mul", g.op("Add", forward, backward), g.const(0.5, "half", np.float64))
    u = g.op("Where", g.op("Greater", at_most, below), on, between)
    bound = g.const(_BOUNDS, "bounds", np.float64)
    u = g.op("Where", g.op("Greater", g.op("Add", x, bound), g.const(q[:, -1], "q_last")), g.const(1.0, "one"), u)
    u = g.op("Where", g.op("Less", g.op("Sub", x, bound), g.const(q[:, 0], "q_first")), g.const(0.0, "zero"), u)
    u = g.op("Min", g.op("Max", u, g.const(_CLIP, "clip")), g.const(1 - _CLIP, "clip"))
    scores = ndtri(g, u)
    return g.op("Min", g.op("Max", scores, g.const(_SCORE_LOW, "score")), g.const(_SCORE_HIGH, "score"))


# ------------------------------------------------------------------------------------------------- networks
def _f32(t: torch.Tensor) -> np.ndarray:
    return t.detach().to(torch.float32).contiguous().numpy()


def _one_hot(g: GraphBuilder, x_cat: str, cardinalities: list[int]) -> str:
    """float32[N, sum(cardinalities)]: one 1 per categorical feature, as the networks' scatter makes it."""
    offsets = np.cumsum([0, *cardinalities[:-1]]).astype(np.int64)
    index = g.op("Add", x_cat, g.const(offsets, "cat_offsets"))
    shape = g.op("Concat", g.op("Slice", g.op("Shape", x_cat), g.const([0], "s", np.int64), g.const([1], "e", np.int64)),
                 g.const([sum(cardinalities)], "width", np.int64), axis=0)
    zeros = g.op("ConstantOfShape", shape, value=_float_tensor(0.0))
    ones = g.op("ConstantOfShape", g.op("Shape", x_cat), value=_float_tensor(1.0))
    return g.op("ScatterElements", zeros, index, ones, axis=1)


def _float_tensor(value: float) -> Any:
    from onnx import helper

    return helper.make_tensor("value", TensorProto.FLOAT, [1], [value])


def _linear(g: GraphBuilder, x: str, weight: torch.Tensor, bias: torch.Tensor, hint: str) -> str:
    """x @ weight.T + bias for x float32[M, d_in]."""
    return g.op("Gemm", x, g.const(_f32(weight), f"{hint}_weight"), g.const(_f32(bias), f"{hint}_bias"), transB=1)


def _network(g: GraphBuilder, net: nn.Module, x_num: str | None, x_cat: str | None) -> str:
    """float32[N, k, n_out]; a bag's fold models side by side, [N, n * k, n_out], as :meth:`Bag.forward`."""
    if isinstance(net, Bag):
        return g.op("Concat", *(_network(g, member, x_num, x_cat) for member in net.members), axis=1)
    return _tabm(g, net, x_num, x_cat) if isinstance(net, TabM) else _mlp(g, net, x_num, x_cat)


def _tabm(g: GraphBuilder, net: TabM, x_num: str | None, x_cat: str | None) -> str:
    """float32[N, k, n_out]: :meth:`TabM.inference_forward` in float32."""
    parts = []
    if net.n_num:
        parts.append(_numeric_embeddings(g, net, x_num) if net.num_embeddings is not None else x_num)
    if net.cat_cardinalities:
        parts.append(_one_hot(g, x_cat, net.cat_cardinalities))
    features = parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=1)  # [N, d_in]
    plan = net.inference_plan(torch.float32)
    d = plan.first_bias.shape[0] // net.k
    h = g.op("Relu", _linear(g, features, plan.first_weight, plan.first_bias, "first"))  # [N, k * d]
    h = g.op("Reshape", h, g.const([-1, d], "shape", np.int64))  # [N * k, d]: member i of row b at b * k + i
    for i, (weight, bias) in enumerate(plan.blocks):
        h = g.op("Relu", _linear(g, h, weight, bias, f"block{i + 1}"))
    if plan.head_block_diagonal is not None:
        flat = g.op("Reshape", h, g.const([-1, net.k * d], "shape", np.int64))
        out = _linear(g, flat, plan.head_block_diagonal, plan.head_bias_flat, "heads")
    else:
        members = g.op("Transpose", g.op("Reshape", h, g.const([-1, net.k, d], "shape", np.int64)), perm=[1, 0, 2])
        out = g.op("Add", g.op("MatMul", members, g.const(_f32(plan.head_weight), "head_weight")),
                   g.const(_f32(plan.head_bias)[:, None, :], "head_bias"))  # [k, N, n_out]
        out = g.op("Transpose", out, perm=[1, 0, 2])
    return g.op("Reshape", out, g.const([-1, net.k, net.n_out], "shape", np.int64))


def _numeric_embeddings(g: GraphBuilder, net: TabM, x: str) -> str:
    """float32[N, n_num * d_embedding]: the piecewise-linear embeddings, flattened as the network flattens them.

    A value's bin is :func:`bin_index`'s, the network's own definition; the embedding is the sum of the
    weight rows of the bins below it, plus the fraction of the way through its own bin times that bin's row, plus the
    linear term, as :meth:`PiecewiseLinearEmbeddings.forward` computes it.
    """
    emb = net.num_embeddings
    edges = emb.edges.detach().to(torch.float32)  # [n, T + 1], each row padded with its last edge
    n, t = edges.shape[0], edges.shape[1] - 1
    d = emb.weight.shape[-1]
    left = edges[:, :-1]
    width = edges[:, 1:] - left
    width = torch.where(width > 0, width, torch.ones_like(width))
    inverse = 1.0 / width  # computed as the network computes it, so that the two multiply by the same numbers
    before = torch.cumsum(emb.weight, 1) - emb.weight + emb.bias0[:, None, :]

    x3 = g.op("Unsqueeze", x, g.const([2], "axis", np.int64))  # [N, n, 1]
    bins = bin_index(g, x, _f32(edges), emb.last_bin.numpy())
    flat = g.op("Add", bins, g.const(np.arange(n, dtype=np.int64) * t, "offsets"))  # [N, n]
    # one Gather per table: a Gather of [left, inverse] (or [before, own]) then a Split costs more than both
    start = g.op("Gather", g.const(_f32(left).ravel(), "left"), flat, axis=0)
    scale = g.op("Gather", g.const(_f32(inverse).ravel(), "inverse"), flat, axis=0)
    frac = g.op("Unsqueeze", g.op("Mul", g.op("Sub", x, start), scale), g.const([2], "axis", np.int64))  # [N, n, 1]
    row_before = g.op("Gather", g.const(_f32(before).reshape(-1, d), "before"), flat, axis=0)  # [N, n, d]
    row_own = g.op("Gather", g.const(_f32(emb.weight).reshape(-1, d), "own"), flat, axis=0)
    out = g.op("Add", row_before, g.op("Mul", frac, row_own))
    out = g.op("Add", out, g.op("Mul", g.const(_f32(emb.weight0), "weight0"), x3))  # [N, n, d]
    return g.op("Reshape", out, g.const([-1, n * d], "shape", np.int64))


def bin_index(g: GraphBuilder, x: str, edges: np.ndarray, last_bin: np.ndarray) -> str:
    """int64[N, n]: :func:`neuraltab.networks.tabm.bin_index` (the network's own definition) of x float32[N, n]:
    the edges at or below each value, counted (:func:`~neuraltab.export.graph.count_knots`), less one, clamped to
    ``[0, last_bin]``."""
    count = count_knots(g, x, np.asarray(edges, dtype=np.float32), strict=False, hint="edges")
    return g.op("Min", g.op("Max", g.op("Sub", count, g.const(1, "one", np.int64)), g.const(0, "zero", np.int64)),
                g.const(np.asarray(last_bin, dtype=np.int64), "last_bin"))


def _mlp(g: GraphBuilder, net: MLP, x_num: str | None, x_cat: str | None) -> str:
    """float32[N, 1, n_out]: :meth:`MLP.forward` in float32."""
    parts = [p for p in (x_num,) if p is not None]
    if net.cat_cardinalities:
        parts.append(_one_hot(g, x_cat, net.cat_cardinalities))
    h = parts[0] if len(parts) == 1 else g.op("Concat", *parts, axis=1)
    for i, layer in enumerate(net.net):
        if isinstance(layer, nn.Linear):
            h = _linear(g, h, layer.weight, layer.bias, f"layer{i}")
        elif isinstance(layer, nn.ReLU):
            h = g.op("Relu", h)
        elif isinstance(layer, nn.GELU):
            h = _gelu(g, h, tanh=layer.approximate == "tanh")
        elif isinstance(layer, nn.SiLU):
            h = g.op("Mul", h, g.op("Sigmoid", h))
        elif isinstance(layer, nn.Tanh):
            h = g.op("Tanh", h)
        elif isinstance(layer, nn.Sigmoid):
            h = g.op("Sigmoid", h)
        elif isinstance(layer, nn.SELU):
            h = g.op("Selu", h)
        elif isinstance(layer, nn.Dropout):  # the identity at inference
            continue
        else:
            raise ArtifactError(f"cannot export the MLP's layer {type(layer).__name__}")
    return g.op("Unsqueeze", h, g.const([1], "axis", np.int64))


def _gelu(g: GraphBuilder, x: str, *, tanh: bool) -> str:
    """GELU from Erf (or Tanh): the Gelu op itself needs opset 20, which fewer runtimes read."""
    def c(v: float) -> str:
        return g.const(v, "gelu", np.float32)

    if tanh:
        inner = g.op("Mul", c(math.sqrt(2 / math.pi)), g.op("Add", x, g.op("Mul", c(0.044715), g.op("Mul", x, g.op("Mul", x, x)))))
        gate = g.op("Tanh", inner)
    else:
        gate = g.op("Erf", g.op("Mul", x, c(1 / math.sqrt(2))))
    return g.op("Mul", g.op("Mul", x, c(0.5)), g.op("Add", gate, c(1.0)))


def _label_tensor(classes: tuple[Any, ...]) -> tuple[np.ndarray, int]:
    """The class labels as a constant of their own type: int64, bool, float64 or (otherwise) strings."""
    if all(isinstance(c, bool) for c in classes):
        return np.array(classes, dtype=bool), TensorProto.BOOL
    if all(isinstance(c, int) and not isinstance(c, bool) for c in classes):
        return np.array(classes, dtype=np.int64), TensorProto.INT64
    if all(isinstance(c, (int, float)) and not isinstance(c, bool) for c in classes):
        return np.array(classes, dtype=np.float64), TensorProto.DOUBLE
    return np.array([str(c) for c in classes], dtype=object), TensorProto.STRING
