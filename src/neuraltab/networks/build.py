"""The one factory for networks: a JSON-able spec (stored in the model file) and the module built from it."""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from .bag import MAX_MEMBERS, Bag
from .mlp import MLP
from .tabm import TabM, compute_bins

__all__ = ["bag_spec", "build", "spec_for", "network_for"]


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
    if spec["kind"] == "bag":
        return Bag([build(member, generator=generator) for member in _bag_members(spec)])
    # the temperature is applied to the averaged probabilities (predict_output), not a constructor argument
    kwargs = {k: v for k, v in spec.items() if k not in ("kind", "temperature")} | {"generator": generator}
    if spec["kind"] == "mlp":
        return MLP(**{**kwargs, "layers": tuple(kwargs["layers"])})
    if spec["kind"] == "tabm":
        return TabM(**kwargs)
    raise ValueError(f"unknown model kind {spec['kind']!r}")


_SHARED = ("n_num", "cat_cardinalities", "n_out")  # what every fold model of a bag has in common with the bag


def bag_spec(members: list[dict[str, Any]]) -> dict[str, Any]:
    """The spec of a :class:`Bag` of networks built from ``members`` (specs made by :func:`spec_for`)."""
    return {"kind": "bag", **{key: members[0][key] for key in _SHARED}, "members": list(members)}


def _bag_members(spec: dict[str, Any]) -> list[dict[str, Any]]:
    """A bag spec's member specs, checked: 1 to MAX_MEMBERS plain networks with the bag's inputs and outputs."""
    members = spec["members"]
    if not isinstance(members, list) or not 1 <= len(members) <= MAX_MEMBERS:
        raise ValueError(f"a bag holds 1 to {MAX_MEMBERS} fold models, got {str(members)[:60]}")
    for member in members:
        if not isinstance(member, dict) or member.get("kind") == "bag" \
                or any(member.get(key) != spec[key] for key in _SHARED):
            raise ValueError("a fold model's spec does not fit its bag's inputs and outputs")
    return members
