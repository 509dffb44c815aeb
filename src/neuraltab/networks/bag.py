"""Cross-validated bagging: fold models of one spec, trained on different folds, predicting as one network.

A :class:`Bag`'s output is its members' outputs side by side, ``[B, n * k, n_out]``: the inference path's mean over
dimension 1 (:func:`~neuraltab.networks.predict.predict_output`) is then the mean of the fold models' averaged
probabilities (or values), because every fold model has the same ``k``.
"""

from __future__ import annotations

from typing import Any, Sequence

import torch
from torch import Tensor, nn

from ..device import autocast

__all__ = ["Bag", "MAX_MEMBERS"]

MAX_MEMBERS = 64  # far above any sensible fold count; a larger count in a file is corruption


class Bag(nn.Module):
    """Fold models with the same inputs and outputs, predicting as the average of their predictions.

    >>> from neuraltab.networks.mlp import MLP
    >>> members = [MLP(n_num=2, cat_cardinalities=[], n_out=3, layers=(4,)) for _ in range(2)]
    >>> Bag(members)(torch.zeros(5, 2), torch.zeros(5, 0, dtype=torch.long)).shape
    torch.Size([5, 2, 3])
    """

    def __init__(self, members: Sequence[nn.Module]) -> None:
        super().__init__()
        if not 1 <= len(members) <= MAX_MEMBERS:
            raise ValueError(f"a bag holds 1 to {MAX_MEMBERS} fold models, got {len(members)}")
        self.members = nn.ModuleList(members)

    def forward(self, x_num: Tensor, x_cat: Tensor) -> Tensor:
        return torch.cat([member(x_num, x_cat) for member in self.members], dim=1)

    def inference_plan(self, dtype: torch.dtype = torch.float32) -> tuple[torch.dtype, list[Any]]:
        """Each member's own inference plan (None for a member without :meth:`inference_forward`)."""
        return dtype, [member.inference_plan(dtype) if hasattr(member, "inference_forward") else None
                       for member in self.members]

    def inference_forward(self, x_num: Tensor, x_cat: Tensor, *,
                          plan: tuple[torch.dtype, list[Any]] | None = None) -> Tensor:
        """float32[B, n * k, n_out]: each member's prediction-time forward, side by side."""
        dtype, plans = plan if plan is not None else self.inference_plan()
        outs = []
        for member, member_plan in zip(self.members, plans):
            if member_plan is not None:
                outs.append(member.inference_forward(x_num, x_cat, plan=member_plan))
            else:
                with autocast(x_num.device, "bf16" if dtype == torch.bfloat16 else "fp32"):
                    outs.append(member(x_num, x_cat).float())
        return torch.cat(outs, dim=1)
