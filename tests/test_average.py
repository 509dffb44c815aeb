"""Weight averaging (``average_weights``): its arithmetic against a hand-written oracle, the same average from the
hand-derived step and from autograd, what validation sees and what is kept, exact resume, and when it is chosen."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn

import neuraltab
from neuraltab.config import TrainConfig, resolve
from neuraltab.train import Callback
from neuraltab.train.average import WeightAverage
from neuraltab.train.checkpoint import Checkpoint
from neuraltab.train.loop import train

from conftest import FAST, make_table
from test_tabm_step import _data, _model

OPTIONS = {**FAST, "epochs": 10, "patience": 100}


def test_the_average_is_a_running_mean_then_an_exponential_one():
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    avg = WeightAverage(model, steps_per_epoch=4)  # decay 0.75: a running mean for the first 4 steps
    seen = []
    for _ in range(9):
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p))
        seen.append([p.detach().numpy().astype(np.float64).copy() for p in model.parameters()])
        avg.update()
    expected = [np.mean([s[i] for s in seen[:4]], axis=0) for i in range(2)]
    for s in seen[4:]:
        expected = [0.75 * e + 0.25 * w for e, w in zip(expected, s)]
    for got, want in zip(avg.average, expected):
        np.testing.assert_allclose(got.numpy(), want, rtol=1e-5, atol=1e-6)
    assert avg.count == 9


def test_swapped_shows_the_average_and_puts_the_raw_weights_back():
    model = nn.Linear(2, 1)
    avg = WeightAverage(model, steps_per_epoch=2)
    avg.update()
    with torch.no_grad():
        model.weight.add_(1.0)
    avg.update()
    raw = model.weight.detach().clone()
    with avg.swapped():
        assert torch.allclose(model.weight, raw - 0.5)
    assert torch.equal(model.weight, raw)


def _weights(model):
    return torch.cat([p.detach().flatten() for p in model.network.parameters()])


def _train(cfg, *, fast, **kwargs):
    x_num, x_cat, y = _data(120, "regression")
    model = _model(x_num, (3, 5), 1, k=4)
    torch.manual_seed(11)
    valid_data = tuple(t[:40] for t in (x_num, x_cat, y))
    history = train(model, tuple(t[40:] for t in (x_num, x_cat, y)), valid_data, task="regression", cfg=cfg,
                    fast=fast, **kwargs)
    return model, history


CFG = resolve(TrainConfig(k=4, d_block=16, batch_size=16, epochs=6, precision="fp32", patience=100),
              n_train=80, device_type="cpu", task="regression")


def test_the_hand_derived_step_and_autograd_average_alike():
    assert CFG.average_weights
    (fast, h_fast), (slow, h_slow) = _train(CFG, fast=True), _train(CFG, fast=False)
    assert h_fast.path == "tabm-step" and h_slow.path == "autograd"
    for a, b in zip(fast.parameters(), slow.parameters()):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("first_fast", [True, False])
def test_resume_restores_the_average_exactly_on_either_path(tmp_path, first_fast):
    straight, _ = _train(CFG, fast=True)
    ckpt = Checkpoint(tmp_path / "run.ckpt", every=1)
    _train(CFG.replace(epochs=3), fast=first_fast, checkpoint=ckpt)
    snap = ckpt.load()
    assert snap.average is not None and snap.counters["average_steps"] == 3 * math.ceil(80 / 16)
    assert any(not torch.equal(snap.average[k], snap.model[k]) for k in snap.average)  # not the raw weights again
    resumed, history = _train(CFG, fast=True, checkpoint=ckpt, resume=True)
    assert len(history.epochs) == 6
    tol = {"rtol": 0, "atol": 0} if first_fast else {"rtol": 1e-4, "atol": 1e-5}
    for a, b in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(b, a, **tol)


class _Raw(Callback):
    """Records what the model held at each epoch's end: the callbacks see the averaged weights."""

    def __init__(self):
        self.at_end = []

    def on_epoch_end(self, epoch, logs):
        self.at_end.append(torch.cat([p.detach().flatten().clone() for p in self.run.model.parameters()]))


def test_validation_scores_and_keeps_the_averaged_weights_and_training_is_unchanged():
    df = make_table(400, task="regression")
    seen_on, seen_off = _Raw(), _Raw()
    on = neuraltab.fit(df, target="label", callbacks=[seen_on], **OPTIONS)
    off = neuraltab.fit(df, target="label", average_weights=False, callbacks=[seen_off], **OPTIONS)
    # the steps are the same with or without the average: it is read, never fed back
    assert [e["train_loss"] for e in on.history["epochs"]] == [e["train_loss"] for e in off.history["epochs"]]
    # validation and the callbacks saw other weights than the raw ones, and the model kept is the best epoch's average
    assert all(not torch.equal(a, b) for a, b in zip(seen_on.at_end, seen_off.at_end))
    assert torch.equal(_weights(on), seen_on.at_end[on.history["best_epoch"] - 1])
    assert torch.equal(_weights(off), seen_off.at_end[off.history["best_epoch"] - 1])
    assert [e["valid_loss"] for e in on.history["epochs"]] != [e["valid_loss"] for e in off.history["epochs"]]


def test_without_validation_the_average_is_kept():
    df = make_table(300, task="regression")
    seen = _Raw()
    on = neuraltab.fit(df, target="label", early_stopping=False, callbacks=[seen], **OPTIONS)
    off = neuraltab.fit(df, target="label", early_stopping=False, average_weights=False, **OPTIONS)
    assert torch.equal(_weights(on), seen.at_end[-1])
    assert not torch.equal(_weights(on), _weights(off))


def test_the_same_seed_gives_the_same_averaged_model():
    df = make_table(300, task="regression")
    assert neuraltab.fit(df, target="label", **OPTIONS).to_bytes() == neuraltab.fit(df, target="label",
                                                                                    **OPTIONS).to_bytes()


@pytest.mark.parametrize(("model", "task", "given", "chosen"), [
    ("default", "regression", None, True), ("default", "binary", None, False), ("default", "multiclass", None, False),
    ("mlp", "regression", None, False), ("default", "regression", False, False), ("default", "binary", True, True),
])
def test_resolve_chooses_it_for_the_default_models_regression(model, task, given, chosen):
    cfg = resolve(TrainConfig(model=model, average_weights=given), n_train=1000, device_type="cpu", task=task)
    assert cfg.average_weights is chosen


def test_the_cli_flags_turn_it_off_and_on(tmp_path):
    from typer.testing import CliRunner

    from neuraltab.cli import app

    path = tmp_path / "t.csv"
    make_table(200, task="regression").to_csv(path, index=False)
    runner = CliRunner()
    for flag, expected in (("--no-average-weights", False), ("--average-weights", True)):
        out = tmp_path / f"{flag}.ntab"
        result = runner.invoke(app, ["train", str(path), "--target", "label", "--epochs", "2", "--k", "2",
                                     "--d-block", "16", "--quiet", "--output", str(out), flag])
        assert result.exit_code == 0, result.output
        assert neuraltab.load(out).config.average_weights is expected
