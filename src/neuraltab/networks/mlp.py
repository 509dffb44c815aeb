"""The plain multilayer perceptron: the classic Keras recipe, made exact and reusable."""

from __future__ import annotations

import torch
from torch import nn

from .layers import Dropout, linear

__all__ = ["MLP", "ACTIVATIONS"]

ACTIVATIONS = {"relu": nn.ReLU, "gelu": nn.GELU, "silu": nn.SiLU, "tanh": nn.Tanh, "sigmoid": nn.Sigmoid, "selu": nn.SELU,
               "linear": nn.Identity}


class MLP(nn.Module):
    """A Sequential of Linear→activation(→Dropout) blocks and a Linear head over [numeric, one-hot categoricals].

    The categorical one-hot encoding is fixed (it is ``pd.get_dummies`` with an extra slot for missing/unknown), so
    ``layers=(64, 64), activation="relu"`` is exactly Dense(64)-relu-Dense(64)-relu-Dense(n_out).

    >>> m = MLP(n_num=3, cat_cardinalities=[4], n_out=2, layers=(64, 64), activation="relu")
    >>> m(torch.zeros(5, 3), torch.zeros(5, 1, dtype=torch.long)).shape  # [batch, members=1, n_out]
    torch.Size([5, 1, 2])
    >>> [type(layer).__name__ for layer in m.net]
    ['Linear', 'ReLU', 'Linear', 'ReLU', 'Linear']
    """

    def __init__(self, *, n_num: int, cat_cardinalities: list[int], n_out: int, layers: tuple[int, ...] = (64, 64),
                 activation: str = "relu", dropout: float = 0.0, generator: torch.Generator | None = None) -> None:
        super().__init__()
        self.cat_cardinalities = list(cat_cardinalities)
        offsets = torch.tensor([0, *self.cat_cardinalities[:-1]], dtype=torch.long).cumsum(0)
        self.register_buffer("cat_offsets", offsets if cat_cardinalities else torch.zeros(0, dtype=torch.long),
                             persistent=False)
        d_in = n_num + sum(self.cat_cardinalities)
        blocks: list[nn.Module] = []
        for width in layers:
            blocks += [linear(d_in, width, generator=generator), ACTIVATIONS[activation]()]
            if dropout > 0:
                blocks.append(Dropout(dropout, generator=generator))
            d_in = width
        blocks.append(linear(d_in, n_out, generator=generator))
        self.net = nn.Sequential(*blocks)
        with torch.no_grad():
            for layer in self.net:
                if isinstance(layer, nn.Linear):  # Keras' Dense defaults: Glorot-uniform weights, zero biases
                    nn.init.xavier_uniform_(layer.weight, generator=generator)
                    nn.init.zeros_(layer.bias)
        self.dropout_generator = generator  # what training's dropout draws from (None: torch's global generator)

    def inputs(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        """The dense input matrix [numeric, one-hot categoricals]: float32[B, n_num + sum(cardinalities)]."""
        if not self.cat_cardinalities:
            return x_num
        one_hot = torch.zeros(x_cat.shape[0], sum(self.cat_cardinalities), dtype=x_num.dtype, device=x_num.device)
        one_hot.scatter_(1, x_cat + self.cat_offsets, 1.0)
        return torch.cat([x_num, one_hot], dim=1)

    def forward(self, x_num: torch.Tensor, x_cat: torch.Tensor) -> torch.Tensor:
        """x_num: float32[B, n_num], x_cat: int64[B, n_cat] → float32[B, 1, n_out]."""
        return self.net(self.inputs(x_num, x_cat)).unsqueeze(1)
