"""The one factory for networks: a JSON-able spec (stored in the model file) and the module built from it."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .mlp import MLP
from .tabm import TabM, compute_bins

__all__ = ["build", "spec_for", "network_for"]


def network_for(cfg: Any, *, x_num_train: torch.Tensor, cat_cardinalities: list[int], n_out: int,
                generator: torch.Generator | None = None) -> tuple[dict[str, Any], nn.Module]:
    """The spec and a freshly initialised network for the resolved config ``cfg`` and the training inputs: the default
    model's embedding bins come from the training numbers ``x_num_train`` float32[n, n_num]; the initial weights, and
    the dropout masks training draws later, from ``generator``."""
    bins = None
    if cfg.model == "default" and cfg.d_embedding > 0 and x_num_train.shape[1] > 0:
        bins = compute_bins(x_num_train, n_bins=cfg.n_bins)
    spec = spec_for(cfg, n_num=x_num_train.shape[1], cat_cardinalities=cat_cardinalities, n_out=n_out,
                    n_bins_per_feature=[len(b) - 1 for b in bins] if bins is not None else None)
    network = build(spec, generator=generator)
    if bins is not None:
        network.set_bins(bins)
    return spec, network


def spec_for(cfg: Any, *, n_num: int, cat_cardinalities: list[int], n_out: int,
             n_bins_per_feature: list[int] | None) -> dict[str, Any]:
    """The constructor arguments (JSON-able) for the model ``cfg.model`` names; stored in the model file."""
    common = {"n_num": n_num, "cat_cardinalities": list(cat_cardinalities), "n_out": n_out}
    if cfg.model == "mlp":
        return {"kind": "mlp", **common, "layers": list(cfg.layers), "activation": cfg.activation,
                "dropout": cfg.dropout}
    return {"kind": "tabm", **common, "k": cfg.k, "d_block": cfg.d_block, "n_blocks": cfg.n_blocks,
            "dropout": cfg.dropout, "d_embedding": cfg.d_embedding, "n_bins_per_feature": n_bins_per_feature}


def build(spec: dict[str, Any], *, generator: torch.Generator | None = None) -> nn.Module:
    """Build a freshly initialised module from a spec made by :func:`spec_for`, its random draws (initial weights,
    then training's dropout) from ``generator`` (torch's global generator when None)."""
    # the temperature is applied to the averaged probabilities (predict_output), not a constructor argument
    kwargs = {k: v for k, v in spec.items() if k not in ("kind", "temperature")} | {"generator": generator}
    if spec["kind"] == "mlp":
        return MLP(**{**kwargs, "layers": tuple(kwargs["layers"])})
    if spec["kind"] == "tabm":
        return TabM(**kwargs)
    raise ValueError(f"unknown model kind {spec['kind']!r}")
