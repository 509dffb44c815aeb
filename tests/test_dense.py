"""The hand-derived MLP training step must give what autograd + torch.optim give, and step aside when it can't."""

from __future__ import annotations

import pytest
import torch

from neuraltab.train.checkpoint import Checkpoint
from neuraltab.config import TrainConfig, resolve
from neuraltab.train.fast.mlp_step import DenseStepper, make_dense_stepper
from neuraltab.networks.mlp import MLP
from neuraltab.train import train
from neuraltab.train.autograd import autograd_epoch as _autograd_epoch, make_optimizer as _make_optimizer

from conftest import assert_matches_torch_optim


def _data(n, task, n_num=5, cards=(3, 4), seed=0, classes=None):
    """``classes``: that many classes, every one present, in random order (else a score's 2 or 4 buckets)."""
    g = torch.Generator().manual_seed(seed)
    x_num = torch.randn(n, n_num, generator=g)
    x_cat = torch.stack([torch.randint(0, c, (n,), generator=g) for c in cards], 1) if cards else torch.zeros(n, 0, dtype=torch.long)
    score = x_num[:, 0] - x_num[:, 1] + (x_cat[:, 0] == 1).float() if cards else x_num[:, 0]
    if task == "regression":
        y = score + 0.1 * torch.randn(n, generator=g)
    elif task == "binary":
        y = (score > 0).long()
    elif classes is not None:
        y = (torch.arange(n) % classes)[torch.randperm(n, generator=g)]
    else:
        y = torch.bucketize(score, torch.tensor([-1.0, 0.0, 1.0]))
    return x_num, x_cat, y


def _pair(task, *, layers=(16, 8), activation="relu", optimizer="adam", weight_decay=0.0, batch_size=7, n=50,
          cards=(3, 4), classes=None):
    """Two identical (model, optimizer) pairs plus data and config."""
    x_num, x_cat, y = _data(n, task, cards=cards, classes=classes)
    n_out = 1 if task == "regression" else int(y.max()) + 1
    cfg = resolve(TrainConfig(model="mlp", layers=layers, activation=activation, optimizer=optimizer,
                              weight_decay=weight_decay, batch_size=batch_size, lr=3e-2), n_train=n, device_type="cpu")
    models = []
    for _ in range(2):
        torch.manual_seed(1)
        m = MLP(n_num=x_num.shape[1], cat_cardinalities=list(cards), n_out=n_out, layers=layers, activation=activation)
        models.append((m, _make_optimizer(m, cfg, torch.device("cpu"))))
    return models, (x_num, x_cat, y), cfg


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("activation,optimizer,weight_decay,layers", [
    ("relu", "adam", 0.0, (16, 8)),
    ("tanh", "adamw", 1e-2, (12,)),
    ("sigmoid", "adam", 1e-3, (9, 7, 5)),  # L2 weight decay goes through the gradient scale too
])
def test_dense_epochs_match_autograd_epochs(task, activation, optimizer, weight_decay, layers):
    [(ref, ref_opt), (fast, fast_opt)], data, cfg = _pair(task, layers=layers, activation=activation,
                                                        optimizer=optimizer, weight_decay=weight_decay)
    stepper = make_dense_stepper(fast, task=task, cfg=cfg, x_num=data[0], x_cat=data[1], y=data[2])
    assert isinstance(stepper, DenseStepper)
    g = torch.Generator().manual_seed(3)
    for _ in range(4):  # 50 rows in batches of 7: a short last batch every epoch
        perm = torch.randperm(50, generator=g)
        loss_ref, done_ref = _autograd_epoch(ref, ref_opt, data, perm, batch_size=7, task=task, grad_clip=0,
                                             should_stop=lambda: False)
        loss_fast, done_fast = stepper.run_epoch(perm, lambda: False)
        assert done_ref and done_fast
        assert loss_fast == pytest.approx(loss_ref, rel=1e-4, abs=1e-6)
    assert_matches_torch_optim(ref, ref_opt, fast, stepper.optimizer.state_dict(), steps=4 * 8, param_rtol=1e-4,
                               exp_avg_atol=1e-6)


def test_dense_stepper_continues_from_existing_optimizer_state():
    [(ref, ref_opt), (fast, fast_opt)], data, cfg = _pair("binary")
    perms = [torch.randperm(50, generator=torch.Generator().manual_seed(i)) for i in range(3)]
    for opt, model in ((ref_opt, ref), (fast_opt, fast)):  # one autograd epoch for both: state now exists
        _autograd_epoch(model, opt, data, perms[0], batch_size=7, task="binary", grad_clip=0, should_stop=lambda: False)
    stepper = make_dense_stepper(fast, task="binary", cfg=cfg, x_num=data[0], x_cat=data[1], y=data[2])
    stepper.optimizer.load_state_dict(fast_opt.state_dict())  # as a checkpoint of the autograd path is resumed
    for perm in perms[1:]:
        _autograd_epoch(ref, ref_opt, data, perm, batch_size=7, task="binary", grad_clip=0, should_stop=lambda: False)
        stepper.run_epoch(perm, lambda: False)
    for p_ref, p_fast in zip(ref.parameters(), fast.parameters()):
        torch.testing.assert_close(p_fast, p_ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("n,batch_size,classes", [(5, 32, 2), (40, 64, 26), (40, 7, 26)])
def test_one_batch_tables_and_many_classes_match_autograd(n, batch_size, classes):
    """A batch larger than the table (one short batch, no full ones) and 26 classes in the class-major blocks."""
    [(ref, ref_opt), (fast, _)], data, cfg = _pair("multiclass", batch_size=batch_size, n=n, cards=(),
                                                   classes=classes)
    assert int(data[2].max()) + 1 == classes
    stepper = make_dense_stepper(fast, task="multiclass", cfg=cfg, x_num=data[0], x_cat=data[1], y=data[2])
    assert isinstance(stepper, DenseStepper)
    g = torch.Generator().manual_seed(0)
    for _ in range(3):
        perm = torch.randperm(n, generator=g)
        loss_ref, _ = _autograd_epoch(ref, ref_opt, data, perm, batch_size=min(batch_size, n), task="multiclass",
                                      grad_clip=0, should_stop=lambda: False)
        loss_fast, done = stepper.run_epoch(perm, lambda: False)
        assert done and loss_fast == pytest.approx(loss_ref, rel=1e-5)
    for p_ref, p_fast in zip(ref.parameters(), fast.parameters()):
        torch.testing.assert_close(p_fast, p_ref, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("task", ["binary", "multiclass", "regression"])
@pytest.mark.parametrize("steps", [3, 7])  # 7: every full batch of 50 rows in batches of 7, not the short last one
def test_a_stopped_epoch_reports_the_loss_of_the_rows_seen_as_autograd_does(task, steps):
    [(ref, ref_opt), (fast, _)], data, cfg = _pair(task)
    stepper = make_dense_stepper(fast, task=task, cfg=cfg, x_num=data[0], x_cat=data[1], y=data[2])
    perm = torch.randperm(50, generator=torch.Generator().manual_seed(5))
    results = []
    for run in (lambda stop: _autograd_epoch(ref, ref_opt, data, perm, batch_size=7, task=task, grad_clip=0,
                                             should_stop=stop),
                lambda stop: stepper.run_epoch(perm, stop)):
        calls = []
        results.append(run(lambda: calls.append(1) or len(calls) == steps))
    (loss_ref, done_ref), (loss_fast, done_fast) = results
    assert not done_ref and not done_fast
    assert loss_fast == pytest.approx(loss_ref, rel=1e-5)


def test_stop_request_ends_the_epoch_after_the_current_step_and_reports_the_rows_seen():
    [_, (fast, fast_opt)], data, cfg = _pair("binary")
    stepper = make_dense_stepper(fast, task="binary", cfg=cfg, x_num=data[0], x_cat=data[1], y=data[2])
    calls = []
    loss, complete = stepper.run_epoch(torch.arange(50), lambda: calls.append(1) or len(calls) == 2)
    assert not complete and len(calls) == 2 and loss > 0
    assert float(stepper.optimizer.state_dict()["state"][0]["step"]) == 2


@pytest.mark.parametrize("change, why", [({"dropout": 0.2}, "not Dropout"), ({"activation": "gelu"}, "not GELU"),
                                         ({"grad_clip": 1.0}, "no gradient clipping"),
                                         ({"optimizer": "sgd"}, "optimizer is sgd"),
                                         ({"precision": "bf16"}, "float32 only")])
def test_runs_the_dense_step_does_not_cover_use_autograd_and_say_why(change, why):
    from neuraltab.train.fast import select

    x_num, x_cat, y = _data(30, "binary")
    cfg = resolve(TrainConfig(model="mlp", layers=(8,), **change), n_train=30, device_type="cpu")
    model = MLP(n_num=5, cat_cardinalities=[3, 4], n_out=2, layers=(8,), activation=cfg.activation,
                dropout=cfg.dropout)
    assert make_dense_stepper(model, task="binary", cfg=cfg, x_num=x_num, x_cat=x_cat, y=y) is None
    stepper, path, reason = select(model, task="binary", cfg=cfg, x_num=x_num, x_cat=x_cat, y=y)
    assert stepper is None and path == "autograd" and why in reason


def test_the_classic_recipe_uses_the_dense_step():
    x_num, x_cat, y = _data(30, "binary")
    cfg = resolve(TrainConfig(model="mlp", layers=(64, 64), optimizer="adam", batch_size=32), n_train=30,
                  device_type="cpu")
    model = MLP(n_num=5, cat_cardinalities=[3, 4], n_out=2, layers=(64, 64))
    assert make_dense_stepper(model, task="binary", cfg=cfg, x_num=x_num, x_cat=x_cat, y=y) is not None


def test_checkpoint_and_resume_through_the_dense_step_give_the_uninterrupted_weights(tmp_path):
    x_num, x_cat, y = _data(60, "multiclass")
    cfg = resolve(TrainConfig(model="mlp", layers=(8,), batch_size=16, epochs=6, early_stopping=False),
                  n_train=60, device_type="cpu")

    def fresh():
        torch.manual_seed(0)
        return MLP(n_num=5, cat_cardinalities=[3, 4], n_out=int(y.max()) + 1, layers=(8,))

    straight = fresh()
    train(straight, (x_num, x_cat, y), None, task="multiclass", cfg=cfg)
    ckpt = Checkpoint(tmp_path / "run.ckpt", every=1)
    first = fresh()
    train(first, (x_num, x_cat, y), None, task="multiclass", cfg=cfg.replace(epochs=3), checkpoint=ckpt)
    resumed = fresh()
    train(resumed, (x_num, x_cat, y), None, task="multiclass", cfg=cfg, checkpoint=ckpt, resume=True)
    for a, b in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-5, atol=1e-6)
