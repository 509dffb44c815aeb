"""The training options the playground needs, added to the one config: plain SGD, squared error on the class
probabilities, L1/L2 penalties on weights, a linear activation and no hidden layer. All train through autograd."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch

import neuraltab
import neuraltab.api
from neuraltab.config import TrainConfig
from neuraltab.errors import ConfigError
from neuraltab.networks import MLP
from neuraltab.train.autograd import ensemble_loss, make_optimizer, penalty


def _table(n: int = 200) -> pd.DataFrame:
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.normal(size=n)})
    df["y"] = (df.a + df.b > 0).astype(int)
    return df


def test_squared_error_on_two_classes_is_the_playgrounds_half_squared_error_of_tanh():
    logits = torch.randn(50, 1, 2)
    y = torch.randint(0, 2, (50,))
    o = torch.tanh((logits[:, 0, 1] - logits[:, 0, 0]) / 2)  # p1 - p0
    t = y.float() * 2 - 1
    expected = (0.5 * (o - t) ** 2).mean()
    assert torch.allclose(ensemble_loss(logits, y, task="binary", loss="squared_error"), expected, atol=1e-6)


def test_penalty_covers_weight_matrices_only():
    net = MLP(n_num=2, cat_cardinalities=[], n_out=2, layers=(3,), activation="tanh")
    w = [p for p in net.parameters() if p.ndim == 2]
    expected = 0.1 * sum(p.abs().sum() for p in w) + 0.5 * 0.2 * sum((p * p).sum() for p in w)
    assert torch.allclose(penalty(net, l1=0.1, l2=0.2), expected)
    assert penalty(net, l1=0, l2=0) is None


def test_plain_sgd_has_no_momentum():
    net = MLP(n_num=2, cat_cardinalities=[], n_out=2, layers=(3,))
    opt = make_optimizer(net, TrainConfig(optimizer="sgd", momentum=0.0, lr=0.1, weight_decay=0.0), torch.device("cpu"))
    assert opt.param_groups[0]["momentum"] == 0.0


@pytest.mark.parametrize("options", [
    dict(optimizer="sgd", momentum=0.0, lr=0.1, loss="squared_error", activation="tanh", layers=(4, 2)),
    dict(activation="linear", layers=(), l2=0.01, lr=0.05),
    dict(l1=0.001, layers=(8,), lr=0.02),
])
def test_fit_trains_with_the_playground_options_through_autograd(options):
    model = neuraltab.fit(_table(), "y", model="mlp", epochs=30, threads=1, **options)
    assert model.history["path"] == "autograd"
    assert model.metrics["test"]["accuracy"] > 0.8
    again = neuraltab.api.load_bytes(model.to_bytes())
    assert again.config == model.config


def test_cross_entropy_is_refused_for_regression():
    with pytest.raises(ConfigError, match="loss"):
        TrainConfig(task="regression", loss="cross_entropy")
