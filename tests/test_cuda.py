"""GPU checks: they run only where CUDA is present (a lent GPU machine), and skip everywhere else, saying why."""

from __future__ import annotations

import numpy as np
import pytest
import torch

import neuraltab
from conftest import FAST, make_table
from neuraltab.networks.tabm import TabM, compute_bins
from neuraltab.device import native_bf16

pytestmark = pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA GPU on this machine")


def test_auto_device_trains_on_the_gpu_and_predicts_like_the_cpu_copy(tmp_path):
    df = make_table(400, seed=5)
    model = neuraltab.fit(df, target="label", **{**FAST, "epochs": 5})
    assert model.device.type == "cuda"
    assert model.config.precision == ("bf16" if native_bf16(torch.device("cuda")) else "fp32")
    path = model.save(tmp_path / "gpu.ntab")
    on_cpu = neuraltab.load(path, device="cpu")
    gpu, cpu = model.predict_proba(df).to_numpy(), on_cpu.predict_proba(df).to_numpy()
    # bf16 on one side, maybe float32 on the other: agreement to a few hundredths, and the same labels nearly always
    assert np.abs(gpu - cpu).max() < 0.05
    assert (gpu.argmax(1) == cpu.argmax(1)).mean() > 0.97


def test_explicit_cuda_index_and_fp32_precision():
    model = neuraltab.fit(make_table(200, seed=6), target="label", device="cuda:0", precision="fp32",
                          **{**FAST, "epochs": 2})
    assert str(model.device).startswith("cuda") and model.config.precision == "fp32"


def test_inference_forward_matches_forward_on_the_gpu():
    torch.manual_seed(0)
    x_train = torch.randn(300, 4)
    model = TabM(n_num=4, cat_cardinalities=[3], n_out=2, k=8, d_block=64, d_embedding=8,
                 n_bins_per_feature=[len(b) - 1 for b in compute_bins(x_train, 16)]).cuda().eval()
    model.set_bins([b.cuda() for b in compute_bins(x_train, 16)])
    x_num, x_cat = torch.randn(50, 4, device="cuda"), torch.randint(0, 3, (50, 1), device="cuda")
    with torch.no_grad():
        expected = model(x_num, x_cat)
    torch.testing.assert_close(model.inference_forward(x_num, x_cat), expected, rtol=1e-3, atol=1e-4)


def test_plain_mlp_trains_through_autograd_on_the_gpu():
    model = neuraltab.fit(make_table(200, seed=7), target="label", model="mlp", layers=(16,), epochs=3,
                          early_stopping=False)
    assert model.device.type == "cuda" and model.history["stop_reason"] == "max_epochs"
