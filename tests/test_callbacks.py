"""Callbacks and the one stop flag: any callback can end a run after a step or an epoch, on every training path, and
early stopping, the time limit and signals are such callbacks."""

from __future__ import annotations

import pytest
import torch

from neuraltab.config import TrainConfig, resolve
from neuraltab.networks import build, spec_for
from neuraltab.train import Callback, EarlyStopping, Run, TimeLimit, train

# one run per training path: the default model's hand-derived step, the plain MLP's, and autograd (SGD)
PATHS = {
    "tabm-step": dict(model="default", k=2, d_block=16, n_blocks=1, d_embedding=4, n_bins=4, precision="fp32"),
    "mlp-step": dict(model="mlp", layers=(8,), optimizer="adam"),
    "autograd": dict(model="mlp", layers=(8,), optimizer="sgd"),
}


def _data(n=96, seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, 3, generator=g)
    return x, torch.zeros(n, 0, dtype=torch.long), (x[:, 0] + x[:, 1] > 0).long()


def _run(path, callbacks, *, epochs=6, early_stopping=True, **options):
    cfg = resolve(TrainConfig(epochs=epochs, batch_size=16, early_stopping=early_stopping, threads=1,
                              **{**PATHS[path], **options}), n_train=96, device_type="cpu")
    bins = [torch.linspace(-3, 3, 5)] * 3 if cfg.model == "default" else None
    spec = spec_for(cfg, n_num=3, cat_cardinalities=[], n_out=2, n_bins_per_feature=[4] * 3 if bins else None)
    torch.manual_seed(0)
    network = build(spec)
    if bins:
        network.set_bins(bins)
    history = train(network, _data(), _data(seed=1) if early_stopping else None, task="binary", cfg=cfg,
                    callbacks=callbacks)
    return network, history


class StopAtStep(Callback):
    def __init__(self, at, *, discard=False):
        self.at, self.discard, self.steps = at, discard, []

    def on_step_end(self, step):
        self.steps.append(step)
        if step == self.at:
            self.run.stop("cancelled", discard_epoch=self.discard)


class StopAtEpoch(Callback):
    def __init__(self, at):
        self.at, self.seen = at, []

    def on_epoch_end(self, epoch, logs):
        self.seen.append(epoch)
        if epoch == self.at:
            self.run.stop("enough")


@pytest.mark.parametrize("path", list(PATHS))
def test_a_callback_stops_the_run_after_the_step_it_asks_on_every_path(path):
    stop = StopAtStep(9)  # 6 steps an epoch: the 3rd step of epoch 2
    _, history = _run(path, [stop])
    assert stop.steps == list(range(1, 10))  # no step ran after the one that asked
    assert history.stop_reason == "cancelled"
    assert [e["epoch"] for e in history.epochs] == [1, 2]  # the part of epoch 2 was evaluated and recorded


@pytest.mark.parametrize("path", list(PATHS))
def test_a_stop_that_discards_the_epoch_leaves_it_out_of_the_history(path):
    _, history = _run(path, [StopAtStep(9, discard=True)])
    assert history.stop_reason == "cancelled" and [e["epoch"] for e in history.epochs] == [1]


@pytest.mark.parametrize("path", list(PATHS))
def test_a_callback_stops_the_run_after_an_epoch(path):
    stop = StopAtEpoch(3)
    _, history = _run(path, [stop], epochs=10, early_stopping=False)
    assert stop.seen == [1, 2, 3] and history.stop_reason == "enough" and len(history.epochs) == 3


def test_the_first_reason_given_is_the_one_recorded():
    run = Run(torch.nn.Linear(1, 1))
    run.stop("first")
    run.stop("second", discard_epoch=True)
    assert (run.stop_training, run.stop_reason, run.discard_epoch) == (True, "first", False)


def test_callbacks_see_the_run_and_its_network_before_training_begins():
    class Look(Callback):
        def on_train_begin(self, info):
            self.model, self.path = self.run.model, info["steps_per_epoch"]

    look = Look()
    network, _ = _run("autograd", [look], epochs=1)
    assert look.model is network and look.path == 6


def test_step_hooks_are_called_once_a_step_and_only_for_callbacks_that_override_them():
    counter = StopAtStep(at=-1)  # never stops
    plain = StopAtEpoch(at=-1)
    _, history = _run("mlp-step", [counter, plain], epochs=3, early_stopping=False)
    assert counter.steps == list(range(1, 19)) and history.stop_reason == "max_epochs"
    assert "on_step_end" not in type(plain).__dict__


def _logs(score, loss):
    return {"valid_score": score, "valid_loss": loss}


def test_early_stopping_waits_patience_epochs_on_the_loss_and_breaks_ties_by_the_higher_score():
    early = EarlyStopping(patience=2)
    early.run = Run(torch.nn.Linear(1, 1))
    # epoch 3 ties 2 on the loss with a higher score; epoch 4's score is the highest but its loss is worse
    sequence = [(0.5, 1.0), (0.7, 0.8), (0.72, 0.8), (0.9, 0.85), (0.8, 0.9)]
    for epoch, (score, loss) in enumerate(sequence, start=1):
        logs = _logs(score, loss)
        early.on_epoch_end(epoch, logs)
        assert logs["best_epoch"] == min(epoch, 3)
        assert early.run.stop_training == (epoch == 5)  # epochs 4 and 5 did not improve on 3's loss
    assert early.run.stop_reason == "early_stopping" and early.best_score == 0.72


def test_early_stopping_reads_a_checkpoint_written_when_the_score_came_first():
    old = EarlyStopping(patience=3)
    old.load_state({"best_key": [0.9, -0.3], "since_best": 1, "best_epoch": 4, "best_score": 0.9}, None)
    new = EarlyStopping(patience=3)
    new.load_state({"best_key": [-0.3, 0.9], "since_best": 1, "best_epoch": 4, "best_score": 0.9, "monitor": "loss"},
                   None)
    assert old.best_key == new.best_key == (-0.3, 0.9)
    for early in (old, new):
        early.run = Run(torch.nn.Linear(1, 1))
        early.on_epoch_end(5, _logs(0.95, 0.35))  # a higher score at a higher loss is no improvement
        assert early.best_epoch == 4 and early.since_best == 2


def test_early_stopping_keeps_a_copy_of_the_best_weights_not_a_view():
    model = torch.nn.Linear(1, 1)
    early = EarlyStopping(patience=5)
    early.run = Run(model)
    early.on_epoch_end(1, _logs(0.9, 0.1))
    with torch.no_grad():
        model.weight.fill_(123.0)
    early.on_epoch_end(2, _logs(0.1, 0.9))
    assert float(early.best_state["weight"]) != 123.0


def test_the_time_limit_stops_mid_epoch_and_keeps_the_part_it_trained(monkeypatch):
    clock = iter(range(10**6))
    monkeypatch.setattr("neuraltab.train.callbacks.time.perf_counter", lambda: float(next(clock)))
    limit = TimeLimit(seconds=4.5)
    _, history = _run("autograd", [], epochs=50, time_limit=4.5)
    assert history.stop_reason == "time_limit" and 1 <= len(history.epochs) < 50
    limit.run = Run(torch.nn.Linear(1, 1))
    limit.on_train_begin({})
    limit.on_step_end(1)
    assert not limit.run.stop_training
    for _ in range(5):
        limit.on_step_end(1)
    assert limit.run.stop_reason == "time_limit"
