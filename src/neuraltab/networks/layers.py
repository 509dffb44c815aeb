"""Layers drawn from an explicit random generator, so that building or training a network never touches the caller's
global RNG (``generator=None`` falls back to torch's global generator, as torch's own layers do)."""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

__all__ = ["linear", "Dropout"]


def linear(d_in: int, d_out: int, *, generator: torch.Generator | None) -> nn.Linear:
    """``nn.Linear(d_in, d_out)`` initialised exactly as its ``reset_parameters`` does (Kaiming-uniform weights with
    a = √5, biases uniform in ±1/√d_in), but with draws from ``generator``."""
    layer = torch.nn.utils.skip_init(nn.Linear, d_in, d_out)
    with torch.no_grad():
        nn.init.kaiming_uniform_(layer.weight, a=math.sqrt(5), generator=generator)
        bound = 1 / math.sqrt(d_in) if d_in > 0 else 0.0
        nn.init.uniform_(layer.bias, -bound, bound, generator=generator)
    return layer


class Dropout(nn.Dropout):
    """``nn.Dropout`` drawing its mask from ``generator`` (the same mask torch's dropout draws from a global generator
    in the same state). On a GPU the mask comes from a generator of that device, seeded once from ``generator``."""

    def __init__(self, p: float, *, generator: torch.Generator | None = None) -> None:
        super().__init__(p)
        self.generator = generator
        self._device_generators: dict[torch.device, torch.Generator] = {}

    def forward(self, x: Tensor) -> Tensor:
        if not self.training or self.p == 0.0 or self.generator is None:
            return super().forward(x)
        keep = torch.empty_like(x).bernoulli_(1 - self.p, generator=self.generator_for(x.device))
        return x * keep.div_(1 - self.p)

    def generator_for(self, device: torch.device) -> torch.Generator:
        if device.type == "cpu":
            return self.generator
        if device not in self._device_generators:
            seed = int(torch.randint(0, 2**63 - 1, (), generator=self.generator))
            self._device_generators[device] = torch.Generator(device=device).manual_seed(seed)
        return self._device_generators[device]
