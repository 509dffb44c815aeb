"""A small ONNX graph builder and the numeric pieces the pipeline graph is made of: counting sorted knots at or below
a value (what ``searchsorted`` does, as comparisons and sums), and the standard normal's inverse CDF.

Only :mod:`onnx` is needed here; every constant is a numpy array.
"""

from __future__ import annotations

import math
from typing import Any, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["GraphBuilder", "OPSET", "ML_OPSET", "count_knots", "ndtri", "ndtri_reference"]

OPSET = 18  # Reduce* take their axes as an input from 18 on
ML_OPSET = 2  # LabelEncoder with string keys and int64 values


class GraphBuilder:
    """Nodes, initializers, inputs and outputs of one graph; every internal name starts with ``nt/`` so that it
    cannot collide with a column's name."""

    def __init__(self) -> None:
        self.nodes: list[onnx.NodeProto] = []
        self.initializers: list[onnx.TensorProto] = []
        self.inputs: list[onnx.ValueInfoProto] = []
        self.outputs: list[onnx.ValueInfoProto] = []
        self._count = 0

    def name(self, hint: str) -> str:
        """A fresh internal name."""
        self._count += 1
        return f"nt/{hint}/{self._count}"

    def input(self, name: str, elem_type: int, shape: Sequence[int | str]) -> str:
        self.inputs.append(helper.make_tensor_value_info(name, elem_type, list(shape)))
        return name

    def output(self, value: str, name: str, elem_type: int, shape: Sequence[int | str]) -> None:
        self.op("Identity", value, outputs=[name])
        self.outputs.append(helper.make_tensor_value_info(name, elem_type, list(shape)))

    def const(self, value: Any, hint: str = "const", dtype: Any = None) -> str:
        array = np.asarray(value, dtype=dtype)
        name = self.name(hint)
        if array.dtype.kind in "OU":
            tensor = helper.make_tensor(name, TensorProto.STRING, array.shape,
                                        [str(v).encode("utf-8") for v in array.ravel()])
        else:
            tensor = numpy_helper.from_array(np.array(array, order="C"), name)  # ascontiguousarray makes scalars 1-D
        self.initializers.append(tensor)
        return name

    def op(self, op_type: str, *inputs: str, outputs: list[str] | None = None, domain: str = "", **attrs: Any) -> str:
        """Add a node; returns its (first) output's name."""
        outputs = outputs or [self.name(op_type)]
        self.nodes.append(helper.make_node(op_type, list(inputs), outputs, name=outputs[0], domain=domain, **attrs))
        return outputs[0]

    def model(self, *, doc: str, metadata: dict[str, str]) -> onnx.ModelProto:
        graph = helper.make_graph(self.nodes, "neuraltab", self.inputs, self.outputs, self.initializers)
        model = helper.make_model(graph, producer_name="neuraltab", doc_string=doc,
                                  opset_imports=[helper.make_opsetid("", OPSET),
                                                 helper.make_opsetid("ai.onnx.ml", ML_OPSET)])
        model.ir_version = 9  # what ONNX Runtimes from 1.17 on read
        helper.set_model_props(model, metadata)
        return model


def count_knots(g: GraphBuilder, x: str, knots: np.ndarray, *, strict: bool, hint: str) -> str:
    """int64[N, d]: per column j, how many of ``knots[j]`` (sorted, float[d, m]) are <= x (``strict``: < x).

    ``x``: float[N, d] of the knots' dtype, with no NaN. Long knot lists are searched in two steps, blocks of about
    sqrt(m) knots and then one block, so that a value costs about 2 sqrt(m) comparisons instead of m.
    """
    compare = "Less" if strict else "LessOrEqual"
    d, m = knots.shape
    x3 = g.op("Unsqueeze", x, g.const([2], "axis", np.int64))  # [N, d, 1]
    if m <= 64:
        hits = g.op("Cast", g.op(compare, g.const(knots[None], hint), x3), to=TensorProto.INT64)
        return g.op("ReduceSum", hits, g.const([2], "axis", np.int64), keepdims=0)
    size = math.isqrt(m - 1) + 1  # knots per block
    n_blocks = -(-m // size)
    padded = np.full((d, n_blocks * size), np.inf, dtype=knots.dtype)  # +inf is never at or below a finite value
    padded[:, :m] = knots
    blocks = padded.reshape(d, n_blocks, size)
    # blocks before the last one that starts at or below x lie wholly at or below it (the knots are sorted)
    heads = g.op("Cast", g.op(compare, g.const(blocks[None, :, :, 0], f"{hint}_heads"), x3), to=TensorProto.INT64)
    n_heads = g.op("ReduceSum", heads, g.const([2], "axis", np.int64), keepdims=0)  # [N, d]
    block = g.op("Max", g.op("Sub", n_heads, g.const(1, "one", np.int64)), g.const(0, "zero", np.int64))
    flat = g.op("Add", block, g.const(np.arange(d, dtype=np.int64) * n_blocks, "offsets"))
    rows = g.op("Gather", g.const(blocks.reshape(d * n_blocks, size), f"{hint}_blocks"), flat, axis=0)  # [N, d, size]
    inside = g.op("ReduceSum", g.op("Cast", g.op(compare, rows, x3), to=TensorProto.INT64),
                  g.const([2], "axis", np.int64), keepdims=0)
    return g.op("Add", g.op("Mul", block, g.const(size, "size", np.int64)), inside)


# The inverse normal CDF as P. J. Acklam's rational approximations (a central one and one for each tail), whose
# relative error is about 1e-9: far below the float32 rounding of the result.
_CENTRAL_NUM = (-3.969683028665376e01, 2.209460984245205e02, -2.759285104469687e02, 1.383577518672690e02,
                -3.066479806614716e01, 2.506628277459239e00)
_CENTRAL_DEN = (-5.447609879822406e01, 1.615858368580409e02, -1.556989798598866e02, 6.680131188771972e01,
                -1.328068155288572e01, 1.0)
_TAIL_NUM = (-7.784894002430293e-03, -3.223964580411365e-01, -2.400758277161838e00, -2.549732539343734e00,
             4.374664141464968e00, 2.938163982698783e00)
_TAIL_DEN = (7.784695709041462e-03, 3.224671290700398e-01, 2.445134137142996e00, 3.754408661907416e00, 1.0)
_LOW = 0.02425  # where the tails' approximation takes over


def ndtri_reference(p: np.ndarray) -> np.ndarray:
    """:func:`ndtri` in numpy (float64, p strictly inside (0, 1)): the formula the graph computes, for tests."""
    p = np.asarray(p, dtype=np.float64)
    q = p - 0.5
    r = q * q
    central = np.polyval(_CENTRAL_NUM, r) * q / np.polyval(_CENTRAL_DEN, r)
    t = np.sqrt(-2.0 * np.log(np.minimum(p, 1.0 - p)))
    tail = np.polyval(_TAIL_NUM, t) / np.polyval(_TAIL_DEN, t)
    return np.where(np.abs(q) <= 0.5 - _LOW, central, np.where(p < 0.5, tail, -tail))


def ndtri(g: GraphBuilder, p: str) -> str:
    """The standard normal's inverse CDF of ``p`` (float64, strictly inside (0, 1)), as :func:`ndtri_reference`."""

    def c(v: float) -> str:
        return g.const(v, "ndtri", np.float64)

    def poly(coefficients: tuple[float, ...], t: str) -> str:  # Horner's scheme, as np.polyval
        acc = c(coefficients[0])
        for a in coefficients[1:]:
            acc = g.op("Add", g.op("Mul", acc, t), c(a))
        return acc

    q = g.op("Sub", p, c(0.5))
    r = g.op("Mul", q, q)
    central = g.op("Div", g.op("Mul", poly(_CENTRAL_NUM, r), q), poly(_CENTRAL_DEN, r))
    t = g.op("Sqrt", g.op("Mul", c(-2.0), g.op("Log", g.op("Min", p, g.op("Sub", c(1.0), p)))))
    tail = g.op("Div", poly(_TAIL_NUM, t), poly(_TAIL_DEN, t))
    signed_tail = g.op("Where", g.op("Less", p, c(0.5)), tail, g.op("Neg", tail))
    return g.op("Where", g.op("LessOrEqual", g.op("Abs", q), c(0.5 - _LOW)), central, signed_tail)
