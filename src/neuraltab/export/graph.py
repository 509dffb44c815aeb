"""A small ONNX graph builder and the numeric pieces the pipeline graph is made of: counting sorted knots at or below
a value (what ``searchsorted`` does, as a lookup on a grid and a few comparisons), and the standard normal's inverse CDF.

Only :mod:`onnx` is needed here; every constant is a numpy array.
"""

from __future__ import annotations

from typing import Any, Sequence

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

__all__ = ["GraphBuilder", "OPSET", "ML_OPSET", "count_knots", "grid_cells", "knot_counts", "ndtri", "ndtri_reference"]

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

    ``x``: float[N, d] of the knots' dtype; where it is NaN the count is some valid count. See :func:`knot_counts`.
    """
    at_most, below = knot_counts(g, x, knots, hint=hint, below=strict)
    return below if strict else at_most


_CELL_KNOTS = 2  # distinct knots per grid cell aimed at: each one is a Gather and a comparison per value
_MAX_CELLS = 1 << 16  # per column, so that a skewed column's table stays small; its cells then hold more knots


def knot_counts(g: GraphBuilder, x: str, knots: np.ndarray, *, hint: str, below: bool = True) -> tuple[str, str | None]:
    """(knots <= x, knots < x), int64[N, d] each, for sorted ``knots`` float[d, m] (ties and infinities allowed, no
    NaN) and x float[N, d] of their dtype; the second is None unless ``below``.

    A searchsorted without a loop over the knots: each column's distinct knots lie on a uniform grid over their
    finite range, where a value's cell is ``floor(clip((x - lo) * scale, 0, cells - 1))``. That is monotone in x,
    and the graph's Sub, Mul, Max, Min and Floor round as numpy's do, so the cells of the knots themselves are
    computed here: every knot in an earlier cell is below x, every one in a later cell above it, and the few in x's
    own cell are compared one by one (padded with NaN, which is never at or below anything).
    """
    knots = np.asarray(knots)
    if knots.dtype not in (np.float32, np.float64) or np.isnan(knots).any():
        raise ValueError("knot_counts takes float32 or float64 knots without NaN")
    dtype = knots.dtype.type
    plans = [_grid(column, dtype) for column in knots]
    width = max(len(p["window"][0]) for p in plans)  # knots per cell, the most of any column
    cell_offsets = np.cumsum([0] + [len(p["base"]) for p in plans[:-1]]).astype(np.int64)
    slot_offsets = np.cumsum([0] + [len(p["at_most"]) for p in plans[:-1]]).astype(np.int64)

    t = g.op("Mul", g.op("Sub", x, g.const([p["lo"] for p in plans], f"{hint}_lo", dtype)),
             g.const([p["scale"] for p in plans], f"{hint}_scale", dtype))
    t = g.op("Min", g.op("Max", t, g.const(0, "zero", dtype)), g.const([p["top"] for p in plans], f"{hint}_top", dtype))
    cell = g.op("Cast", g.op("Floor", t), to=TensorProto.INT64)
    # NaN casts to some integer: clamped into the column's cells so that every Gather below stays in range
    cell = g.op("Min", g.op("Max", cell, g.const(0, "zero", np.int64)),
                g.const([len(p["base"]) - 1 for p in plans], f"{hint}_last_cell", np.int64))
    cell = g.op("Add", cell, g.const(cell_offsets, f"{hint}_cell_offsets"))  # [N, d] into the columns' cells, flat
    slot = g.op("Gather", g.const(np.concatenate([p["base"] + o for p, o in zip(plans, slot_offsets)]),
                                  f"{hint}_base"), cell, axis=0)
    for k in range(width):  # the distinct knots in x's cell at or below it
        column = [p["window"][:, k] if k < p["window"].shape[1] else np.full(len(p["base"]), np.nan) for p in plans]
        knot = g.op("Gather", g.const(np.concatenate(column).astype(dtype), f"{hint}_window"), cell, axis=0)
        slot = g.op("Add", slot, g.op("Cast", g.op("LessOrEqual", knot, x), to=TensorProto.INT64))
    # slot (within its column): how many distinct knots are <= x; the tables turn it into counts with ties
    at_most = g.op("Gather", g.const(np.concatenate([p["at_most"] for p in plans]), f"{hint}_at_most"), slot, axis=0)
    if not below:
        return at_most, None
    previous = g.op("Gather", g.const(np.concatenate([p["previous"] for p in plans]).astype(dtype), f"{hint}_previous"),
                    slot, axis=0)
    first = g.op("Gather", g.const(np.concatenate([p["first"] for p in plans]), f"{hint}_first"), slot, axis=0)
    return at_most, g.op("Where", g.op("Equal", previous, x), first, at_most)


def grid_cells(values: np.ndarray, lo: Any, scale: Any, top: Any) -> np.ndarray:
    """The cells :func:`knot_counts`'s graph puts ``values`` in, computed with the same operations in their dtype."""
    with np.errstate(over="ignore", invalid="ignore"):
        t = (values - lo) * scale
        return np.floor(np.minimum(np.maximum(t, values.dtype.type(0)), top)).astype(np.int64)


def _grid(knots: np.ndarray, dtype: type) -> dict[str, Any]:
    """One column's grid for :func:`knot_counts`: its range, scale and per-cell tables."""
    distinct = np.unique(knots)  # sorted
    finite = distinct[np.isfinite(distinct)]
    lo = dtype(finite[0]) if len(finite) else dtype(0)
    span = float(finite[-1]) - float(lo) if len(finite) else 0.0
    cells = 1 << max(len(distinct) - 1, 1).bit_length()
    while True:
        # a finite scale: an infinite one would make (lo - lo) * scale NaN
        scale = dtype(min(cells / span, float(np.finfo(dtype).max) / 4)) if span > 0 else dtype(0)
        top = dtype(cells - 1)
        at = grid_cells(distinct, lo, scale, top)
        per_cell = np.bincount(at, minlength=cells)
        if per_cell.max() <= _CELL_KNOTS or cells >= min(_MAX_CELLS, 64 * len(distinct)):
            break
        cells *= 2
    base = np.searchsorted(at, np.arange(cells), side="left").astype(np.int64)  # distinct knots in earlier cells
    window = np.full((cells, per_cell.max()), np.nan)
    for c in np.flatnonzero(per_cell):
        window[c, :per_cell[c]] = distinct[base[c]:base[c] + per_cell[c]]
    slots = np.arange(len(distinct) + 1)  # how many distinct knots are <= x
    return {
        "lo": lo, "scale": scale, "top": top, "base": base, "window": window,
        "at_most": np.searchsorted(knots, distinct, side="right")[slots - 1] * (slots > 0),
        "first": np.searchsorted(knots, distinct, side="left")[slots - 1] * (slots > 0),
        "previous": np.concatenate([[np.nan], distinct]),
    }


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
