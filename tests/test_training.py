"""The training loop's arithmetic: the ensemble loss, prediction averaging, early stopping and target scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neuraltab.config import TrainConfig, resolve
from neuraltab.preprocessing import Batch
from neuraltab.training import Callback, ensemble_loss, predict_output, to_tensors, train


def test_classification_loss_is_the_mean_of_the_members_losses_not_the_loss_of_their_mean():
    torch.manual_seed(0)
    out = torch.randn(5, 3, 4)  # [B, k, C]
    y = torch.randint(0, 4, (5,))
    per_member = [nn.functional.cross_entropy(out[:, j], y) for j in range(3)]
    expected = torch.stack(per_member).mean()
    assert torch.allclose(ensemble_loss(out, y, task="multiclass"), expected)
    of_the_mean = nn.functional.nll_loss(out.softmax(-1).mean(1).log(), y)
    assert not torch.allclose(ensemble_loss(out, y, task="multiclass"), of_the_mean)


def test_regression_loss_is_the_mean_of_the_members_squared_errors():
    out = torch.tensor([[[1.0], [3.0]], [[0.0], [0.0]]])  # [B=2, k=2, 1]
    y = torch.tensor([2.0, 1.0])
    # members' errors: row 0: -1, +1; row 1: -1, -1 -> mean squared error 1 (the mean's error would be 0.5)
    assert float(ensemble_loss(out, y, task="regression")) == pytest.approx(1.0)


def test_predictions_average_the_members_probabilities():
    class Fixed(nn.Module):
        def forward(self, x_num, x_cat):
            logits = torch.tensor([[0.0, 0.0], [10.0, -10.0]])  # members: uniform, confident class 0
            return logits.expand(x_num.shape[0], 2, 2)

    proba = predict_output(Fixed(), torch.zeros(3, 1), torch.zeros(3, 0, dtype=torch.long), task="binary")
    assert proba.shape == (3, 2)
    assert torch.allclose(proba[0], torch.tensor([0.75, 0.25]), atol=1e-6)


def test_regression_targets_are_standardised_with_the_training_statistics():
    batch = Batch(x_num=np.zeros((3, 1), np.float32), x_cat=np.zeros((3, 0), np.int64),
                  y=np.array([10.0, 20.0, 30.0], np.float32))
    _, _, y = to_tensors(batch, torch.device("cpu"), task="regression", y_mean=20.0, y_std=10.0)
    assert y.tolist() == [-1.0, 0.0, 1.0]


class _Recorder(Callback):
    def __init__(self):
        self.epochs = []

    def on_epoch_end(self, epoch, logs):
        self.epochs.append(logs)


def _toy(n=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 2, generator=g)
    return x, torch.zeros(n, 0, dtype=torch.long), (x[:, 0] > 0).long()


def test_early_stopping_restores_the_best_epoch_weights():
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(2, 2))

    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.inner = model

        def forward(self, x_num, x_cat):
            return self.inner(x_num).unsqueeze(1)

    net = Wrap()
    cfg = resolve(TrainConfig(model="mlp", epochs=60, patience=3, lr=0.5, optimizer="sgd"), n_train=64,
                  device_type="cpu")
    recorder = _Recorder()
    history = train(net, _toy(), _toy(seed=1), task="binary", cfg=cfg, callbacks=[recorder])
    assert history.stop_reason in ("early_stopping", "max_epochs")
    best = max(recorder.epochs, key=lambda e: (e["valid_score"], -e["valid_loss"]))
    assert history.best_epoch == best["epoch"]
    # the restored weights reproduce the best epoch's validation loss
    x, xc, y = _toy(seed=1)
    proba = predict_output(net, x, xc, task="binary")
    loss = float(nn.functional.nll_loss(proba.clamp_min(1e-12).log(), y))
    assert loss == pytest.approx(best["valid_loss"], rel=1e-5)
