"""neuraltab.networks.predict reuses a TabM's inference plan (its folded, cast weights) between calls, and only
while no weight has changed: predictions equal a fresh plan's exactly, before and after the weights move."""

from __future__ import annotations

import torch

import neuraltab.networks.predict as predict
from neuraltab.networks.predict import predict_output
from neuraltab.networks.tabm import TabM


def _model_and_inputs() -> tuple[TabM, torch.Tensor, torch.Tensor]:
    torch.manual_seed(0)
    x_num, x_cat = torch.randn(64, 3), torch.randint(0, 4, (64, 1))
    model = TabM.from_training_data(x_num_train=x_num, n_bins=8, cat_cardinalities=[4], n_out=2, k=3, d_block=16,
                                    d_embedding=4)
    return model.eval(), x_num, x_cat


def _fresh(model, x_num, x_cat, precision="fp32"):
    predict._PLANS.pop(model, None)
    return predict_output(model, x_num, x_cat, task="binary", precision=precision)


def test_the_plan_is_built_once_while_the_weights_stay_put(monkeypatch):
    model, x_num, x_cat = _model_and_inputs()
    built = []
    original = model.inference_plan
    monkeypatch.setattr(model, "inference_plan", lambda dtype: built.append(dtype) or original(dtype))
    first = predict_output(model, x_num, x_cat, task="binary")
    again = predict_output(model, x_num[:5], x_cat[:5], task="binary")
    assert built == [torch.float32]
    torch.testing.assert_close(again, first[:5], rtol=0, atol=0)
    predict_output(model, x_num, x_cat, task="binary", precision="bf16")
    assert built == [torch.float32, torch.bfloat16]  # another dtype: another plan


def test_an_optimizer_step_or_a_loaded_state_dict_gives_a_new_plan():
    model, x_num, x_cat = _model_and_inputs()
    before = predict_output(model, x_num, x_cat, task="binary")
    optimizer = torch.optim.SGD(model.parameters(), lr=0.5)
    model.train()
    model(x_num, x_cat).sum().backward()
    optimizer.step()
    model.eval()
    after = predict_output(model, x_num, x_cat, task="binary")
    assert not torch.equal(after, before)
    torch.testing.assert_close(after, _fresh(model, x_num, x_cat), rtol=0, atol=0)
    other, _, _ = _model_and_inputs()
    with torch.no_grad():
        other.head_bias.add_(1.0)
    model.load_state_dict(other.state_dict())
    torch.testing.assert_close(predict_output(model, x_num, x_cat, task="binary"), _fresh(other, x_num, x_cat),
                               rtol=0, atol=0)


def test_a_model_left_training_is_predicted_in_eval_mode_and_given_back_as_it_was():
    """The eval()/train() walk is skipped only when nothing trains; a module left training (dropout on) still
    predicts as in eval mode, and the model is handed back in its own mode."""
    model, x_num, x_cat = _model_and_inputs()
    expected = _fresh(model, x_num, x_cat)
    model.blocks.train()  # one part training: dropout would change the prediction
    torch.testing.assert_close(predict_output(model, x_num, x_cat, task="binary"), expected, rtol=0, atol=0)
    assert not model.training and not any(m.training for m in model.modules())  # train(False), as before
    model.train()
    torch.testing.assert_close(predict_output(model, x_num, x_cat, task="binary"), expected, rtol=0, atol=0)
    assert all(m.training for m in model.modules())
