"""The hand-derived TabM training step must give what autograd + torch.optim give, and step aside when it can't."""

from __future__ import annotations

import copy

import pytest
import torch

from neuraltab.train.checkpoint import Checkpoint
from neuraltab.config import TrainConfig, resolve
from neuraltab.networks.tabm import TabM, _Dropout, dropout_mask, dropout_scale, kept_levels
from neuraltab.train.fast.tabm_step import TabMStepper, _drop, make_tabm_stepper
from neuraltab.train import train
from neuraltab.train.autograd import autograd_epoch as _autograd_epoch, make_optimizer as _make_optimizer

from conftest import assert_matches_torch_optim


def _data(n, task, n_num=4, cards=(3, 5), n_out=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    x_num = torch.randn(n, n_num, generator=g)
    x_cat = torch.stack([torch.randint(0, c, (n,), generator=g) for c in cards], 1) if cards else \
        torch.zeros(n, 0, dtype=torch.long)
    if task == "regression":
        y = x_num[:, 0] + 0.1 * torch.randn(n, generator=g) if n_num else torch.randn(n, generator=g)
    else:
        y = torch.randint(0, n_out, (n,), generator=g)
    return x_num, x_cat, y


def _model(x_num, cards, n_out, *, embed=True, **kwargs):
    torch.manual_seed(1)
    if embed and x_num.shape[1]:
        model = TabM.from_training_data(x_num_train=x_num, n_bins=6, cat_cardinalities=list(cards), n_out=n_out,
                                        d_block=16, **kwargs)
    else:
        model = TabM(n_num=x_num.shape[1], cat_cardinalities=list(cards), n_out=n_out, d_block=16, **kwargs)
    with torch.no_grad():  # the embeddings' piecewise weights start at zero: move every weight off its start
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))
    return model


CASES = {
    "binary, dropout, AdamW, clipped": dict(task="binary", n_out=2, k=4, dropout=0.2),
    "multiclass, per-member heads (k * classes > 64)": dict(task="multiclass", n_out=5, k=16, dropout=0.1),
    "regression, 3 blocks": dict(task="regression", n_out=1, k=4, dropout=0.1, n_blocks=3),
    "raw numbers, Adam with L2, no clipping": dict(task="binary", n_out=2, k=4, dropout=0.1, embed=False,
                                                   optimizer="adam", grad_clip=None),
    "no categoricals, 1 block, no dropout": dict(task="multiclass", n_out=3, k=2, dropout=0.0, cards=(), n_blocks=1),
    "no numbers": dict(task="binary", n_out=2, k=4, dropout=0.1, n_num=0),
}


@pytest.mark.parametrize("case", list(CASES))
def test_tabm_step_epochs_match_autograd_epochs(case):
    spec = dict(CASES[case])
    task, n_out = spec.pop("task"), spec.pop("n_out")
    cards, n_num = spec.pop("cards", (3, 5)), spec.pop("n_num", 4)
    optimizer, grad_clip = spec.pop("optimizer", "adamw"), spec.pop("grad_clip", 1.0)
    x_num, x_cat, y = _data(150, task, n_num=n_num, cards=cards, n_out=n_out)
    ref = _model(x_num, cards, n_out, **spec)
    fast = copy.deepcopy(ref)
    cfg = TrainConfig(optimizer=optimizer, lr=3e-3, weight_decay=1e-3, grad_clip=grad_clip, batch_size=32,
                      precision="fp32")
    ref_opt = _make_optimizer(ref, cfg, torch.device("cpu"))
    stepper = make_tabm_stepper(fast, task=task, cfg=cfg, x_num=x_num, x_cat=x_cat, y=y)
    assert isinstance(stepper, TabMStepper)
    g = torch.Generator().manual_seed(5)
    for epoch in range(3):  # 150 rows in batches of 32: a short last batch every epoch
        perm = torch.randperm(150, generator=g)
        torch.manual_seed(100 + epoch)  # the same dropout draws on both paths
        loss_ref, _ = _autograd_epoch(ref, ref_opt, (x_num, x_cat, y), perm, batch_size=32, task=task,
                                      grad_clip=grad_clip, should_stop=lambda: False)
        torch.manual_seed(100 + epoch)
        loss_fast, complete = stepper.run_epoch(perm, lambda: False)
        assert complete
        assert loss_fast == pytest.approx(loss_ref, rel=1e-5)
    assert_matches_torch_optim(ref, ref_opt, fast, stepper.optimizer.state_dict(), steps=3 * 5, param_rtol=1e-5,
                               exp_avg_atol=1e-7)


def test_padded_bins_get_exactly_zero_gradient():
    """Features with fewer bins than the widest have padded rows in the embedding weight; no value reaches them, so
    their gradient must be exactly 0, as autograd's is (else Adam would move them by a full step on rounding noise)."""
    x_num, x_cat, y = _data(100, "binary")
    x_num[:, 1] = (x_num[:, 1] > 0).float()  # a 0/1 column: one bin where the others have six
    model = _model(x_num, (3, 5), 2, k=4, dropout=0.0)
    emb = model.num_embeddings
    assert min(emb.n_bins_per_feature) < max(emb.n_bins_per_feature)
    cfg = TrainConfig(lr=3e-3, weight_decay=0.0, batch_size=32, precision="fp32")
    stepper = make_tabm_stepper(model, task="binary", cfg=cfg, x_num=x_num, x_cat=x_cat, y=y)
    stepper.run_epoch(torch.arange(100), lambda: False)
    padded = stepper.g["num_embeddings.weight"][1, emb.n_bins_per_feature[1]:]
    assert padded.numel() > 0 and bool((padded == 0).all())


def test_bf16_gradients_are_as_close_to_float32_as_autocasts_are():
    """bf16 keeps 8 significant bits, so no bf16 gradient equals the float32 one: the step's bf16 gradient of one
    batch must be about as far from the float32 gradient as autocast's bf16 gradient is, parameter by parameter."""
    x_num, x_cat, y = _data(300, "binary")
    perm = torch.randperm(300, generator=torch.Generator().manual_seed(0))
    grads = {}
    for precision in ("fp32", "bf16"):  # lr ~0: the weights stay, the gradients are those of the first batch
        cfg = TrainConfig(lr=1e-30, weight_decay=0.0, grad_clip=None, batch_size=256, precision=precision)
        ref = _model(x_num, (3, 5), 2, k=8, dropout=0.1)
        torch.manual_seed(7)  # the same dropout masks on both paths
        _autograd_epoch(ref, _make_optimizer(ref, cfg, torch.device("cpu")), (x_num, x_cat, y), perm,
                        batch_size=256, task="binary", grad_clip=None, should_stop=lambda: True, precision=precision)
        grads[f"autograd {precision}"] = {name: p.grad for name, p in ref.named_parameters()}
        stepper = make_tabm_stepper(_model(x_num, (3, 5), 2, k=8, dropout=0.1), task="binary", cfg=cfg,
                                    x_num=x_num, x_cat=x_cat, y=y)
        assert stepper.dtype == (torch.bfloat16 if precision == "bf16" else torch.float32)
        torch.manual_seed(7)
        stepper.run_epoch(perm, lambda: True)
        grads[f"step {precision}"] = stepper.g
    exact = grads["autograd fp32"]
    for name, g in exact.items():
        torch.testing.assert_close(grads["step fp32"][name], g, rtol=1e-4, atol=1e-7, msg=name)
        autocast_error = float((grads["autograd bf16"][name] - g).norm() / g.norm())
        step_error = float((grads["step bf16"][name] - g).norm() / g.norm())
        assert 0 < step_error < 1.5 * autocast_error + 0.01, (name, step_error, autocast_error)


@pytest.mark.parametrize(("p", "kept"), [(0.1, 230), (0.25, 192), (0.5, 128), (0.999, 1), (0.001, 256)])
def test_dropout_mask_drops_p_rounded_to_a_256th_and_the_model_draws_the_same_masks(p, kept):
    assert kept_levels(p) == kept and dropout_scale(p) == 256 / kept
    torch.manual_seed(0)
    mask = dropout_mask((1000, 301), p)
    assert mask.dtype == torch.int16 and set(mask.unique().tolist()) <= {-1, 0}
    dropped_share = float((mask == 0).float().mean())
    assert abs(dropped_share - (1 - kept / 256)) < 4 * (p * (1 - p) / mask.numel()) ** 0.5 + 1e-9
    h = torch.rand(64, 48) + 0.5  # positive, as after a ReLU
    torch.manual_seed(3)
    dropped = _Dropout(p).train()(h)
    for dtype in (torch.float32, torch.bfloat16):
        torch.manual_seed(3)
        ours = h.to(dtype)
        _drop(ours, p, None)  # in place, without the rescaling
        assert torch.equal(ours == 0, dropped == 0)
        torch.testing.assert_close(ours.float()[ours != 0] * dropout_scale(p), dropped[dropped != 0], rtol=1e-2,
                                   atol=0)
    # the kept elements average the input: the rescaling is by the share actually kept, not 1 / (1 - p)
    torch.manual_seed(5)
    ones = _Dropout(p).train()(torch.ones(400_000))
    assert abs(float(ones.mean()) - 1) < 4 * (p / (1 - p) / 400_000) ** 0.5 + 1e-9


def test_stop_request_ends_the_epoch_after_the_current_step():
    x_num, x_cat, y = _data(100, "binary")
    model = _model(x_num, (3, 5), 2, k=4)
    cfg = resolve(TrainConfig(batch_size=16, precision="fp32"), n_train=100, device_type="cpu")
    stepper = make_tabm_stepper(model, task="binary", cfg=cfg, x_num=x_num, x_cat=x_cat, y=y)
    calls = []
    loss, complete = stepper.run_epoch(torch.arange(100), lambda: calls.append(1) or len(calls) == 2)
    assert not complete and len(calls) == 2 and loss > 0
    assert float(stepper.optimizer.state_dict()["state"][0]["step"]) == 2


@pytest.mark.parametrize("change", [{"optimizer": "sgd"}])
def test_runs_the_tabm_step_does_not_cover_use_autograd(change):
    x_num, x_cat, y = _data(30, "binary")
    cfg = resolve(TrainConfig(**change), n_train=30, device_type="cpu")
    model = _model(x_num, (3, 5), 2, k=4)
    assert make_tabm_stepper(model, task="binary", cfg=cfg, x_num=x_num, x_cat=x_cat, y=y) is None


@pytest.mark.parametrize("native", [True, False])
def test_the_default_model_uses_the_tabm_step(native):
    x_num, x_cat, y = _data(60, "binary")
    cfg = resolve(TrainConfig(), n_train=60, device_type="cpu", native_bf16=native)
    model = _model(x_num, (3, 5), 2, k=cfg.k)
    stepper = make_tabm_stepper(model, task="binary", cfg=cfg, x_num=x_num, x_cat=x_cat, y=y)
    assert stepper is not None and stepper.dtype == (torch.bfloat16 if native else torch.float32)


def _resume_run(tmp_path, *, first_path_autograd: bool):
    x_num, x_cat, y = _data(80, "multiclass", n_out=3)
    cfg = resolve(TrainConfig(k=4, d_block=16, batch_size=16, epochs=6, early_stopping=False, precision="fp32"),
                  n_train=80, device_type="cpu")

    def fresh():
        return _model(x_num, (3, 5), 3, k=4)

    straight = fresh()
    torch.manual_seed(11)
    train(straight, (x_num, x_cat, y), None, task="multiclass", cfg=cfg)
    ckpt = Checkpoint(tmp_path / "run.ckpt", every=1)
    first = fresh()
    torch.manual_seed(11)
    first_cfg = cfg.replace(epochs=3, optimizer="adamw")
    # first_path_autograd: the same run on the autograd path (as on a GPU), checkpointed, then resumed here
    history = train(first, (x_num, x_cat, y), None, task="multiclass", cfg=first_cfg, checkpoint=ckpt,
                    fast=not first_path_autograd)
    assert history.path == ("autograd" if first_path_autograd else "tabm-step")
    resumed = fresh()
    train(resumed, (x_num, x_cat, y), None, task="multiclass", cfg=cfg, checkpoint=ckpt, resume=True)
    return straight, resumed


def test_checkpoint_and_resume_through_the_tabm_step_give_the_uninterrupted_weights(tmp_path):
    straight, resumed = _resume_run(tmp_path, first_path_autograd=False)
    for a, b in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(b, a, rtol=0, atol=0)


def test_a_checkpoint_of_the_autograd_path_resumes_on_the_tabm_step(tmp_path):
    straight, resumed = _resume_run(tmp_path, first_path_autograd=True)
    for a, b in zip(straight.parameters(), resumed.parameters()):
        torch.testing.assert_close(b, a, rtol=1e-4, atol=1e-5)


def test_the_step_keeps_the_rows_compact_not_as_a_rows_by_input_width_matrix():
    """One-hot columns and embeddings are built per batch: for 20,000 rows with 300 one-hot columns and 4 × 16
    embedding columns, nothing kept between steps may hold rows × input width (≈ 7.3 M numbers)."""
    n, cards = 20_000, (150, 150)
    x_num, x_cat, y = _data(n, "binary", cards=cards)
    stepper = make_tabm_stepper(_model(x_num, cards, 2, k=2), task="binary", cfg=resolve(
        TrainConfig(batch_size=512, precision="fp32"), n_train=n, device_type="cpu"), x_num=x_num, x_cat=x_cat, y=y)
    stepper.run_epoch(torch.arange(n), lambda: False)
    kept = [t for t in vars(stepper).values() if isinstance(t, torch.Tensor)]
    kept += [t for d in vars(stepper).values() if isinstance(d, dict) for t in d.values() if isinstance(t, torch.Tensor)]
    width = stepper.first_c.shape[1]
    assert width == 4 * 16 + sum(cards)
    assert max(t.numel() for t in kept) < n * 10  # the columns: 4 numbers, their bins and fractions, 2 codes, labels
