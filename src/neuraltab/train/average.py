"""An exponential moving average of the weights over training steps: what validation sees and what is kept.

The last step's weights carry that step's noise; an average over the last epoch's steps (decay ``1 - 1/steps``, a
running mean until that many steps have been seen) is a smoother point of the same trajectory. For regression with
the default model it lowers the test RMSE on the public tables (``benchmarks/README.md``, issue 15); for
classification it did not, so ``average_weights`` is chosen per task (:func:`neuraltab.config.resolve`).

The average is updated after every step from wherever the step wrote the weights: the hand-derived steps' flat
buffer (through :class:`~.fast.flat_adam.FlatAdam`'s per-parameter views) or the model's own parameters. Between
epochs the model holds the raw weights, as the steps expect; :meth:`WeightAverage.swapped` puts the average in for
validation and the callbacks (so early stopping keeps the average of its best epoch), then the raw weights back.
"""

from __future__ import annotations

from contextlib import contextmanager
from typing import Any, Iterator

import torch
from torch import Tensor, nn

__all__ = ["WeightAverage"]


class WeightAverage:
    """The average of ``model``'s parameters over the steps seen so far, one tensor per parameter."""

    def __init__(self, model: nn.Module, *, steps_per_epoch: int, stepper: Any = None) -> None:
        self.params = list(model.parameters())
        self.names = [name for name, _ in model.named_parameters()]
        self.decay = 1.0 - 1.0 / max(1, steps_per_epoch)
        optimizer = getattr(stepper, "optimizer", None)
        # a hand-derived step keeps the live weights in its flat buffer and writes the model only once an epoch
        live = optimizer.param_views(optimizer.flat["w"]) if hasattr(optimizer, "param_views") else self.params
        self.source = [w.detach() for w in live]  # views: they follow every in-place step
        self.average = [p.detach().clone() for p in self.params]
        self.count = 0

    @torch.no_grad()
    def update(self) -> None:
        """After a step: fold the step's weights in (the first is copied; then weight ``max(1 - decay, 1/count)``)."""
        self.count += 1
        weight = max(1.0 - self.decay, 1.0 / self.count)
        if weight == 1.0:
            torch._foreach_copy_(self.average, self.source)
        else:
            torch._foreach_lerp_(self.average, self.source, weight)

    @torch.no_grad()
    def load_into(self) -> None:
        """The average as the model's weights (when no validation chose an epoch, at the end of training)."""
        if self.count:
            torch._foreach_copy_(self.params, self.average)

    @contextmanager
    def swapped(self) -> Iterator[None]:
        """The average in the model's parameters inside the block, the raw weights back after it."""
        if not self.count:
            yield
            return
        params = self.params
        with torch.no_grad():
            raw = [p.detach().clone() for p in params]
            torch._foreach_copy_(params, self.average)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(params, raw)

    def state(self) -> tuple[dict[str, Tensor], int]:
        """The average by parameter name, and the steps it has seen (for a checkpoint)."""
        return {name: a.clone() for name, a in zip(self.names, self.average)}, self.count

    @torch.no_grad()
    def load_state(self, average: dict[str, Tensor], count: int) -> None:
        for name, a in zip(self.names, self.average):
            a.copy_(average[name])
        self.count = int(count)
