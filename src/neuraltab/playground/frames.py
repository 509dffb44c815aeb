"""Frames: what the page draws after each ``speed`` steps, computed on the grid by the network itself.

One forward pass over the GRID² cells, with forward hooks on the hidden layers' activations, gives the output map
and every shown neuron's map. A frame is one binary WebSocket message: a little-endian uint32 header length, the
JSON header, then the blobs it lists (uint8 maps with -1..1 as 0..255; float32 projections).
"""

from __future__ import annotations

import dataclasses
import json
import math
import struct
from typing import Any

import numpy as np
import torch
from torch import nn

from ..networks import MLP, TabM
from .scene import GRID, MAX_SHOWN, NODE_GRID, Scene

__all__ = ["render", "pack", "unpack", "layout", "Picture", "hidden_modules", "forward"]


@dataclasses.dataclass
class Picture:
    header: dict[str, Any]
    blobs: dict[str, np.ndarray]
    finite: bool


def hidden_modules(network: nn.Module) -> list[nn.Module]:
    """The modules whose outputs are the hidden layers' activations, in order."""
    if isinstance(network, MLP):
        mods = list(network.net)
        return [mods[i + 1] for i, m in enumerate(mods[:-1]) if isinstance(m, nn.Linear)]
    if isinstance(network, TabM):
        return [m for m in network.blocks if isinstance(m, nn.ReLU)]
    return []


def _shown(width: int) -> list[int]:
    return list(range(min(width, MAX_SHOWN)))


def layout(network: nn.Module, scene: Scene) -> list[dict[str, Any]]:
    """The drawn network: per layer its size, the nodes drawn and their labels."""
    n_in = scene.grid[0].shape[1] + (sum(network.cat_cardinalities) if isinstance(network, MLP) else 0)
    layers = [{"name": "inputs", "size": int(n_in), "shown": scene.shown_inputs, "labels": scene.input_names}]
    widths = _hidden_widths(network)
    for i, w in enumerate(widths):
        layers.append({"name": f"hidden {i + 1}", "size": w, "shown": _shown(w)})
    layers.append({"name": "output", "size": 1, "shown": [0]})
    return layers


def _hidden_widths(network: nn.Module) -> list[int]:
    if isinstance(network, MLP):
        return [m.out_features for m in network.net if isinstance(m, nn.Linear)][:-1]
    if isinstance(network, TabM):
        return [m.out_features for m in network.blocks if isinstance(m, nn.Linear)]
    return []


def _weights(network: nn.Module, scene: Scene) -> tuple[list[Any], list[Any]] | tuple[None, None]:
    """Per Linear layer, the drawn submatrix [to][from] of weights and the drawn nodes' biases (MLP only)."""
    if not isinstance(network, MLP):
        return None, None
    linears = [m for m in network.net if isinstance(m, nn.Linear)]
    shown_in = scene.shown_inputs
    weights, biases = [], []
    for i, layer in enumerate(linears):
        shown_out = _shown(layer.out_features) if i < len(linears) - 1 else [0]
        w = layer.weight.detach()
        b = layer.bias.detach()
        if i == len(linears) - 1 and w.shape[0] == 2:  # two logits: the drawn output is their difference
            w, b = (w[1] - w[0])[None], (b[1] - b[0])[None]
        elif i == len(linears) - 1:
            w, b = w[:1], b[:1]
        weights.append(w[shown_out][:, shown_in].round(decimals=4).tolist())
        biases.append(b[shown_out].round(decimals=4).tolist())
        shown_in = shown_out
    return weights, biases


def _code(values: np.ndarray) -> np.ndarray:
    """Values on the colour scale [-1, 1] as uint8 0..255 (NaN as 0; the frame says it is not finite)."""
    v = np.nan_to_num(np.clip(values, -1.0, 1.0), nan=-1.0)
    return np.rint((v + 1) * 127.5).astype(np.uint8)


def _spread(values: np.ndarray, stride: int) -> np.ndarray:
    """Values of every stride-th cell, [..., (GRID / stride)²], each filling its stride x stride block: [..., GRID²]."""
    n = GRID // stride
    blocks = values.reshape(*values.shape[:-1], n, 1, n, 1)
    return np.broadcast_to(blocks, (*values.shape[:-1], n, stride, n, stride)).reshape(*values.shape[:-1], GRID * GRID)


def _pool(maps: np.ndarray) -> np.ndarray:
    f = GRID // NODE_GRID
    return maps.reshape(len(maps), NODE_GRID, f, NODE_GRID, f).mean(axis=(2, 4))


@torch.no_grad()
def forward(network: nn.Module, x_num: torch.Tensor, x_cat: torch.Tensor, *,
            hidden: bool = True) -> tuple[torch.Tensor, list[torch.Tensor]]:
    """The network's output [n, k, C] in eval mode and each hidden layer's activations [n, width] (TabM: members'
    mean), through forward hooks."""
    captured: list[torch.Tensor] = []
    hooks = [m.register_forward_hook(lambda mod, inp, out: captured.append(out.detach()))
             for m in (hidden_modules(network) if hidden else [])]
    was = network.training
    network.eval()
    try:
        out = network(x_num, x_cat).float()
    finally:
        for h in hooks:
            h.remove()
        network.train(was)
    if isinstance(network, TabM):
        captured = [a.view(len(x_num), network.k, -1).mean(1) if a.ndim == 2 else a.mean(0) for a in captured]
    return out, captured


def output_values(out: torch.Tensor, scene: Scene) -> tuple[np.ndarray, np.ndarray | None]:
    """The output on the colour scale, float[n] in [-1, 1], and for several classes the class index (the value is
    then the confidence)."""
    task = scene.task
    if task == "regression":
        pre = scene.prepared.preprocessor
        value = out.mean(1).squeeze(-1).numpy().astype(np.float64) * pre.y_std + pre.y_mean
        lo, hi = scene.value_range
        return (2 * (value - lo) / (hi - lo) - 1) if hi > lo else value * 0, None
    p = out.softmax(-1).mean(1).numpy()
    if task == "binary":
        return p[:, 1] - p[:, 0], None
    return p.max(1) * 2 - 1, p.argmax(1)


def render(network: nn.Module, scene: Scene, *, focus: int | None = None,
           test_pass: tuple[torch.Tensor, list[torch.Tensor]] | None = None) -> Picture:
    """The frame's maps, weights and (for a table) projections; ``test_pass``: :func:`forward` on the scene's test
    rows, when the caller has already made it."""
    out, hidden = forward(network, *scene.grid_inputs())
    value, classes = output_values(out, scene)
    if scene.stride > 1:
        value, classes = _spread(value, scene.stride), None if classes is None else _spread(classes, scene.stride)
        hidden = [torch.from_numpy(_spread(a.numpy().T, scene.stride).T.copy()) for a in hidden]
    blobs: dict[str, np.ndarray] = {"output": _code(value)}
    if classes is not None:
        blobs["classes"] = classes.astype(np.uint8)
    node_maps = [scene.input_maps]
    full_maps = []
    for acts in hidden:
        shown = acts[:, _shown(acts.shape[1])].T.numpy().reshape(-1, GRID, GRID)
        full_maps.append(shown)
        node_maps.append(_pool(shown))
    node_maps.append(_pool(value.reshape(1, GRID, GRID)))
    nodes = np.concatenate(node_maps) if node_maps else np.zeros((0, NODE_GRID, NODE_GRID))
    blobs["nodes"] = _code(nodes)
    finite = bool(np.isfinite(value).all() and np.isfinite(nodes).all())
    if focus is not None and 0 <= focus < len(nodes):
        n_in = len(scene.input_maps)
        if focus < n_in:
            column = scene.grid[0][:, scene.shown_inputs[focus]].numpy().reshape(GRID, GRID)
            column = column - (np.median(column) if scene.kind == "table" else 0)
            scale = np.abs(column).max() or 1.0
            full = column / scale
        elif focus < len(nodes) - 1:
            flat = np.concatenate(full_maps) if full_maps else np.zeros((0, GRID, GRID))
            full = flat[focus - n_in]
        else:
            full = value.reshape(GRID, GRID)
        blobs["focus"] = _code(np.asarray(full).reshape(-1))
    weights, biases = _weights(network, scene)
    header: dict[str, Any] = {"nodeCount": int(len(nodes)), "weights": weights, "biases": biases}
    if scene.kind == "table":
        blobs.update(_projections(network, scene, test_pass))
    return Picture(header=header, blobs=blobs, finite=finite)


def _projections(network: nn.Module, scene: Scene,
                 test_pass: tuple[torch.Tensor, list[torch.Tensor]] | None) -> dict[str, np.ndarray]:
    """The test rows in the plane of the inputs' first two principal components (fixed) and of the last hidden
    layer's (moving as it learns), with the prediction as colour."""
    x_num, x_cat, _ = scene.test_eval
    out, hidden = test_pass if test_pass is not None else forward(network, x_num, x_cat)
    value, classes = output_values(out, scene)
    cache = scene.describe.setdefault("_pca", {})
    if "inputs" not in cache:
        dense = torch.cat([x_num, nn.functional.one_hot(x_cat, int(x_cat.max()) + 1).flatten(1).float()], 1) \
            if x_cat.shape[1] else x_num
        cache["inputs"] = _pca(dense.numpy())
    blobs = {"pcaInputs": cache["inputs"], "pred": _code(value)}
    if classes is not None:
        blobs["predClass"] = classes.astype(np.uint8)
    if hidden:
        coords = _pca(hidden[-1].numpy())
        previous = cache.get("hidden")
        if previous is not None and len(previous) == len(coords):  # keep each axis's sign from frame to frame
            signs = np.sign((coords * previous).sum(0))
            coords = coords * np.where(signs == 0, 1, signs)
        cache["hidden"] = coords
        blobs["pcaHidden"] = coords
    return blobs


def _pca(x: np.ndarray) -> np.ndarray:
    """float32[n, 2]: rows of ``x`` on its first two principal components, scaled to about [-1, 1]."""
    x = x.astype(np.float64) - x.mean(0)
    if x.shape[1] < 2 or not np.isfinite(x).all():
        return np.zeros((len(x), 2), np.float32)
    try:  # the covariance's eigenvectors (a d x d problem), in torch: on torch's one thread, not BLAS's many
        t = torch.from_numpy(x)
        _, vectors = torch.linalg.eigh(t.T @ t)
    except RuntimeError:
        return np.zeros((len(x), 2), np.float32)
    coords = (t @ vectors.flip(1)[:, :2]).numpy()
    scale = np.abs(coords).max() or 1.0
    return (coords / scale).astype(np.float32)


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, np.generic):
        return _plain(value.item())
    return value


def pack(header: dict[str, Any], blobs: dict[str, np.ndarray]) -> bytes:
    """One binary message: uint32 header length n, n bytes of JSON header (listing each blob's name, dtype, offset
    and length; offsets count from the first 4-byte boundary after the header), then the blobs, each 4-byte
    aligned."""
    specs, offset, parts = [], 0, []
    for name, blob in blobs.items():
        raw = np.ascontiguousarray(blob).tobytes()
        specs.append({"name": name, "dtype": str(blob.dtype), "offset": offset, "length": int(blob.size)})
        pad = (len(raw) + 3) // 4 * 4 - len(raw)
        parts += [raw, b"\0" * pad]
        offset += len(raw) + pad
    head = json.dumps(_plain({**header, "blobs": specs}), allow_nan=False, separators=(",", ":")).encode()
    gap = (4 + len(head) + 3) // 4 * 4 - 4 - len(head)
    return b"".join([struct.pack("<I", len(head)), head, b" " * gap, *parts])


def unpack(message: bytes) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The header and the blobs of a message made by :func:`pack` (for tests and the benchmark's client)."""
    (n,) = struct.unpack_from("<I", message)
    header = json.loads(message[4:4 + n])
    start = (4 + n + 3) // 4 * 4
    blobs = {s["name"]: np.frombuffer(message, dtype=s["dtype"], count=s["length"], offset=start + s["offset"])
             for s in header["blobs"]}
    return header, blobs
