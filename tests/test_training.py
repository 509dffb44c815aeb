"""The training loop's arithmetic: the ensemble loss, prediction averaging, early stopping and target scaling."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from neuraltab.config import TrainConfig, resolve
from neuraltab.data.preprocess import Batch
from neuraltab.device import to_tensors
from neuraltab.networks import predict_output
from neuraltab.train import Callback, train
from neuraltab.train.autograd import ensemble_loss

from conftest import make_table


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


class _PoisonAfter(Callback):
    """Sets a weight to NaN after epoch ``n``: the next epoch's loss is NaN, as when training blows up."""

    def __init__(self, model, n):
        self.model, self.n, self.notices = model, n, []

    def on_epoch_end(self, epoch, logs):
        if epoch == self.n:
            with torch.no_grad():
                next(self.model.parameters())[0, 0] = float("nan")

    def on_notice(self, message):
        self.notices.append(message)


def _diverging_run(early_stopping, keep_diverged=True):
    x_num, x_cat, y = _toy()
    cfg = resolve(TrainConfig(model="mlp", layers=(8,), epochs=10, patience=10, early_stopping=early_stopping,
                              scaling="standard", keep_diverged=keep_diverged), n_train=len(y), device_type="cpu")
    from neuraltab.networks.mlp import MLP

    torch.manual_seed(0)
    model = MLP(n_num=x_num.shape[1], cat_cardinalities=[], n_out=2, layers=(8,))
    poison = _PoisonAfter(model, 2)
    valid = (x_num, x_cat, y) if early_stopping else None
    history = train(model, (x_num, x_cat, y), valid, task="binary", cfg=cfg, callbacks=[poison])
    return model, history, poison


def test_a_diverging_run_without_a_best_epoch_is_a_one_line_config_error():
    from neuraltab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^training diverged in epoch 3 \(the loss became nan\); lower 'lr' \(now "
                                          r"0\.001\) or scale the inputs with scaling='quantile'$") as info:
        _diverging_run(early_stopping=False)
    assert info.value.render("cli").endswith("lower --lr (now 0.001) or scale the inputs with --scaling quantile")


def test_a_diverging_run_is_an_error_naming_the_way_to_keep_its_best_epoch_unless_asked():
    from neuraltab.errors import ConfigError

    with pytest.raises(ConfigError, match=r"^training diverged in epoch 3 \(the loss became nan\); lower 'lr'") as info:
        _diverging_run(early_stopping=True, keep_diverged=False)
    assert "\n" not in str(info.value) and info.value.render("cli").endswith("pass --keep-diverged")


@pytest.mark.parametrize("task", ["binary", "regression"])
def test_an_exploding_loss_stops_training_with_one_line_suggesting_a_lower_learning_rate(task):
    import neuraltab
    from neuraltab.errors import ConfigError

    df = make_table(200, task=task)
    options = {"lr": 10.0, "epochs": 30, "k": 2, "d_block": 16, "n_blocks": 1, "threads": 1}  # the issue's --lr 10
    with pytest.raises(ConfigError, match=r"^training diverged in epoch \d+ \(the loss became [^;]*times an "
                                          r"untrained model's\); lower 'lr' \(now 10\)") as info:
        neuraltab.fit(df, "label", **options)
    assert "\n" not in str(info.value)
    # asked to: the best epoch before it is kept, with a notice
    notices = []

    class Collect(Callback):
        def on_notice(self, message):
            notices.append(message)

    model = neuraltab.fit(df, "label", keep_diverged=True, callbacks=[Collect()], **options)
    assert model.history["stop_reason"] == "diverged"
    assert [n for n in notices if n.startswith("training diverged")]
    # an ordinary learning rate never trips it
    assert neuraltab.fit(df, "label", **(options | {"lr": None})).history["stop_reason"] != "diverged"


def test_a_diverging_run_keeps_the_best_epoch_before_it_with_a_notice():
    model, history, poison = _diverging_run(early_stopping=True)
    assert history.stop_reason == "diverged" and history.best_epoch <= 2 and len(history.epochs) == 2
    assert len(poison.notices) == 1 and poison.notices[0].startswith("training diverged in epoch 3")
    assert all(torch.isfinite(p).all() for p in model.parameters())  # the best epoch's weights are back


@pytest.mark.parametrize("kind", ["mlp", "tabm", "tabm_raw"])
def test_matmul_flops_per_row_equals_torchs_flop_counter(kind):
    from torch.utils.flop_counter import FlopCounterMode

    from neuraltab.networks.mlp import MLP
    from neuraltab.networks.tabm import TabM
    from neuraltab.device import matmul_flops_per_row

    x_num, x_cat = torch.randn(50, 5), torch.randint(0, 3, (50, 2))
    if kind == "mlp":
        model = MLP(n_num=5, cat_cardinalities=[3, 3], n_out=3, layers=(32, 16))
    else:
        bins = {"n_bins_per_feature": [4] * 5} if kind == "tabm" else {}
        model = TabM(n_num=5, cat_cardinalities=[3, 3], n_out=3, k=4, d_block=24, n_blocks=3, **bins)
    with torch.no_grad(), FlopCounterMode(display=False) as counter:
        model.eval()(x_num[:1], x_cat[:1])
    assert matmul_flops_per_row(model) == counter.get_total_flops()


def test_threads_for_gives_one_thread_to_tiny_steps_and_all_cores_to_big_ones():
    from neuraltab.networks.mlp import MLP
    from neuraltab.networks.tabm import TabM
    from neuraltab.device import threads_for

    classic = MLP(n_num=20, cat_cardinalities=[], n_out=2, layers=(64, 64))  # ~1.1 MFLOP a step at batch 32
    assert threads_for(classic, batch_size=32, cores=2) == 1
    assert threads_for(classic, batch_size=1024, cores=2) == 2  # ~35 MFLOP
    default = TabM(n_num=20, cat_cardinalities=[], n_out=2, k=8, d_block=128)
    assert threads_for(default, batch_size=256, cores=4) == 4
    assert threads_for(default, batch_size=256, cores=1) == 1
    with_dropout = MLP(n_num=20, cat_cardinalities=[], n_out=2, layers=(8,), dropout=0.5).train()
    state = torch.get_rng_state()
    threads_for(with_dropout, batch_size=32, cores=2)
    assert torch.equal(state, torch.get_rng_state())  # counting FLOPs draws no dropout mask
    assert with_dropout.training  # and leaves the mode as it was


@pytest.mark.parametrize("n_classes", [2, 7, 8, 9, 26])
def test_mean_probabilities_equal_the_members_softmax_averaged(n_classes):
    from neuraltab.networks.predict import _mean_probabilities

    logits = torch.randn(300, 8, n_classes, generator=torch.Generator().manual_seed(n_classes)) * 4
    ours = _mean_probabilities(logits)
    torch.testing.assert_close(ours, logits.softmax(-1).mean(1), rtol=1e-6, atol=1e-7)
    torch.testing.assert_close(ours.sum(1), torch.ones(300))
