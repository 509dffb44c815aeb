"""Network modules (torch only, never pandas) and the one factory that builds them from a JSON-able spec.

Every model maps ``x_num`` float32[B, n_num] and ``x_cat`` int64[B, n_cat] to float32[B, k, n_out]: k ensemble
members' logits (classification) or standardised values (regression); the plain MLP has k = 1.
"""

from __future__ import annotations

from typing import Any

from torch import nn

from .mlp import MLP
from .tabm import TabM

__all__ = ["MLP", "TabM", "build", "spec_for"]


def spec_for(cfg: Any, *, n_num: int, cat_cardinalities: list[int], n_out: int,
             n_bins_per_feature: list[int] | None) -> dict[str, Any]:
    """The constructor arguments (JSON-able) for the model ``cfg.model`` names; stored in the model file."""
    common = {"n_num": n_num, "cat_cardinalities": list(cat_cardinalities), "n_out": n_out}
    if cfg.model == "mlp":
        return {"kind": "mlp", **common, "layers": list(cfg.layers), "activation": cfg.activation,
                "dropout": cfg.dropout}
    return {"kind": "tabm", **common, "k": cfg.k, "d_block": cfg.d_block, "n_blocks": cfg.n_blocks,
            "dropout": cfg.dropout, "d_embedding": cfg.d_embedding, "n_bins_per_feature": n_bins_per_feature}


def build(spec: dict[str, Any]) -> nn.Module:
    """Build a freshly initialised module from a spec made by :func:`spec_for`."""
    kwargs = {k: v for k, v in spec.items() if k != "kind"}
    if spec["kind"] == "mlp":
        return MLP(**{**kwargs, "layers": tuple(kwargs["layers"])})
    if spec["kind"] == "tabm":
        return TabM(**kwargs)
    raise ValueError(f"unknown model kind {spec['kind']!r}")
