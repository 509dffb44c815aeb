"""Tests for neuraltab.networks.tabm: quantile bins, piecewise-linear embeddings and the TabM-mini ensemble."""

from __future__ import annotations

import doctest

import pytest
import torch
import torch.nn.functional as F

import neuraltab.networks.tabm as tabm_module
from neuraltab.networks.tabm import PiecewiseLinearEmbeddings, TabM, compute_bins, piecewise_linear_encoding


def _inputs(b: int, n_num: int, cards: list[int], seed: int = 0) -> tuple[torch.Tensor, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    x_num = torch.randn(b, n_num, generator=g)
    if not cards:
        return x_num, torch.zeros(b, 0, dtype=torch.long)
    return x_num, torch.stack([torch.randint(0, c, (b,), generator=g) for c in cards], 1)


# --- compute_bins ------------------------------------------------------------------------------------------------
def test_compute_bins_sorted_unique_and_bounded():
    torch.manual_seed(0)
    x = torch.cat([torch.randn(500, 2), torch.randint(0, 3, (500, 1)).float()], 1)  # last column: 3 distinct values
    bins = compute_bins(x, 48)
    assert len(bins) == 3
    for j, edges in enumerate(bins):
        assert edges.dtype == torch.float32 and edges.ndim == 1
        assert 2 <= len(edges) <= 49
        assert bool((edges[1:] > edges[:-1]).all()), "edges must be strictly increasing"
        assert edges[0] == x[:, j].min() and edges[-1] == x[:, j].max()
    assert len(bins[0]) == 49  # continuous column: every quantile distinct
    # Discrete column: duplicates removed; linear interpolation adds at most one edge between two values.
    assert {0.0, 1.0, 2.0} <= set(bins[2].tolist()) and len(bins[2]) <= 5


def test_compute_bins_constant_column_gets_one_bin():
    x = torch.stack([torch.full((20,), 3.5), torch.arange(20.0)], 1)
    edges = compute_bins(x, 8)[0]
    assert len(edges) == 2 and edges[0] == 3.5 and edges[1] > edges[0]


def test_compute_bins_caps_n_bins_at_n_minus_1():
    x = torch.tensor([[0.0], [1.0], [4.0], [9.0], [16.0]])
    edges = compute_bins(x, 48)[0]
    assert edges.tolist() == [0.0, 1.0, 4.0, 9.0, 16.0]  # 4 bins = N - 1
    assert len(compute_bins(torch.tensor([[2.0]]), 48)[0]) == 2  # a single row still gives one bin


@pytest.mark.parametrize("n_bins", [1, 0, -3, 2.5, True])
def test_compute_bins_rejects_bad_n_bins(n_bins):
    with pytest.raises(ValueError, match=f"n_bins must be an integer >= 2, got {n_bins!r}"):
        compute_bins(torch.randn(10, 2), n_bins)


@pytest.mark.parametrize(
    ("x", "match"),
    [
        (torch.randn(10), r"2-D tensor \[N, n_num\], got \(10,\)"),
        (torch.randn(2, 3, 4), r"got \(2, 3, 4\)"),
        (torch.empty(0, 3), r"non-empty .* got shape \(0, 3\)"),
        (torch.tensor([[1.0], [float("nan")]]), "finite"),
    ],
)
def test_compute_bins_rejects_bad_input(x, match):
    with pytest.raises(ValueError, match=match):
        compute_bins(x, 4)


# --- piecewise-linear encoding and embeddings -------------------------------------------------------------------
def test_encoding_values_below_inside_at_and_above_edges():
    edges = [torch.tensor([0.0, 1.0, 3.0])]
    x = torch.tensor([[-1.0], [0.0], [0.5], [1.0], [2.0], [3.0], [5.0]])
    expected = [[-1.0, 0.0], [0.0, 0.0], [0.5, 0.0], [1.0, 0.0], [1.0, 0.5], [1.0, 1.0], [1.0, 2.0]]
    assert torch.allclose(piecewise_linear_encoding(x, edges)[:, 0], torch.tensor(expected))


def test_encoding_is_linear_within_a_bin_and_pads_short_features():
    edges = [torch.tensor([0.0, 1.0, 2.0, 4.0]), torch.tensor([-2.0, 2.0])]  # 3 bins, then a single bin
    x = torch.tensor([[2.5, -6.0], [3.0, 0.0], [3.5, 6.0]])
    enc = piecewise_linear_encoding(x, edges)
    assert enc.shape == (3, 2, 3)
    assert torch.allclose(enc[1, 0], (enc[0, 0] + enc[2, 0]) / 2)  # affine inside the bin [2, 4]
    assert torch.allclose(enc[:, 1, 0], torch.tensor([-1.0, 0.5, 2.0]))  # a single bin is unclamped both ways
    assert torch.all(enc[:, 1, 1:] == 0)  # padded bins are zero
    # Continuity: just left and right of an inner edge give (almost) the same code.
    eps = 1e-4
    left, right = piecewise_linear_encoding(torch.tensor([[1.0 - eps, 0.0], [1.0 + eps, 0.0]]), edges)[:, 0]
    assert torch.allclose(left, right, atol=1e-3)


def test_embeddings_shapes_buffers_and_agreement_with_encoding():
    torch.manual_seed(0)
    bins = compute_bins(torch.randn(200, 3), 6)
    bins[1] = torch.tensor([-1.0, 1.0])
    emb = PiecewiseLinearEmbeddings(n_bins_per_feature=[len(e) - 1 for e in bins], d_embedding=5)
    assert "edges" in emb.state_dict() and emb.edges.shape == (3, 7)
    emb.set_bins(bins)
    with torch.no_grad():
        emb.weight.normal_()  # zero at init (version B); make the non-linear part visible
    x = torch.randn(4, 3) * 2
    out = emb(x)
    assert out.shape == (4, 3, 5) and out.dtype == torch.float32
    nonlinear = torch.einsum("bnt,ntd->bnd", piecewise_linear_encoding(x, bins), emb.weight)
    expected = emb.bias0 + emb.weight0 * x[..., None] + nonlinear
    assert torch.allclose(out, expected, atol=1e-5)
    assert emb(x[None].expand(2, -1, -1)).shape == (2, 4, 3, 5)  # extra leading dims


def test_embeddings_set_bins_validates():
    emb = PiecewiseLinearEmbeddings(n_bins_per_feature=[2, 1], d_embedding=4)
    with pytest.raises(ValueError, match=r"\[1, 1\] bins per feature, the module expects \[2, 1\]"):
        emb.set_bins([torch.tensor([0.0, 1.0]), torch.tensor([0.0, 1.0])])
    with pytest.raises(ValueError, match="strictly increasing"):
        emb.set_bins([torch.tensor([0.0, 1.0, 1.0]), torch.tensor([0.0, 1.0])])
    with pytest.raises(ValueError, match="n_bins_per_feature"):
        PiecewiseLinearEmbeddings(n_bins_per_feature=[], d_embedding=4)


# --- TabM ----------------------------------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("n_num", "cards", "embed", "b", "k"),
    [
        (4, [], False, 7, 3),
        (4, [], True, 7, 3),
        (0, [3, 5], False, 7, 3),
        (2, [3, 1], False, 7, 3),
        (2, [3, 1], True, 7, 3),
        (2, [3], True, 1, 3),
        (2, [3], True, 5, 1),
        (2, [3], False, 1, 1),
    ],
)
def test_tabm_output_shapes(n_num, cards, embed, b, k):
    torch.manual_seed(0)
    x_train = torch.randn(50, n_num)
    model = TabM.from_training_data(
        x_num_train=x_train, n_bins=8 if embed else None, cat_cardinalities=cards, n_out=3, k=k, d_block=16
    )
    assert (model.num_embeddings is not None) == (embed and n_num > 0)
    x_num, x_cat = _inputs(b, n_num, cards)
    for mode in (model.train, model.eval):
        mode()
        out = model(x_num, x_cat)
        assert out.shape == (b, k, 3) and out.dtype == torch.float32 and torch.isfinite(out).all()
    # A different batch per member: [B, k, ...] inputs.
    out = model(x_num[:, None].expand(-1, k, -1), x_cat[:, None].expand(-1, k, -1))
    assert out.shape == (b, k, 3)
    assert torch.allclose(out, model(x_num, x_cat), atol=1e-6)


def test_tabm_none_for_missing_feature_kind():
    model = TabM(n_num=0, cat_cardinalities=[4], n_out=1, k=2, d_block=8)
    assert model(None, torch.tensor([[0], [3]])).shape == (2, 2, 1)
    model = TabM(n_num=2, cat_cardinalities=[], n_out=1, k=2, d_block=8)
    assert model(torch.randn(2, 2), None).shape == (2, 2, 1)


def test_tabm_scaling_init_per_feature_chunk():
    torch.manual_seed(0)
    model = TabM(n_num=2, cat_cardinalities=[3, 4], n_out=2, k=5, d_embedding=6, n_bins_per_feature=[4, 4])
    s = model.scaling.detach()
    assert s.shape == (5, 2 * 6 + 3 + 4)
    for lo, hi in [(0, 6), (6, 12), (12, 15), (15, 19)]:
        assert torch.all(s[:, lo:hi] == s[:, lo : lo + 1]), "one scalar per member and feature chunk"
    assert len(torch.unique(s)) > 10  # 'normal' init: distinct values
    model = TabM(n_num=3, cat_cardinalities=[4], n_out=2, k=6)
    s = model.scaling.detach()
    assert set(s.unique().tolist()) <= {-1.0, 1.0}  # 'random-signs' without embeddings
    assert torch.all(s[:, 3:] == s[:, 3:4])


def test_tabm_members_differ_at_init():
    torch.manual_seed(0)
    model = TabM.from_training_data(x_num_train=torch.randn(100, 3), n_bins=8, cat_cardinalities=[4], n_out=2, k=4)
    model.eval()
    out = model(*_inputs(6, 3, [4]))
    for i in range(4):
        for j in range(i + 1, 4):
            assert not torch.allclose(out[:, i], out[:, j], atol=1e-4), f"members {i} and {j} agree"


def test_tabm_deterministic_given_seed():
    x_train = torch.randn(100, 3)
    runs = []
    for _ in range(2):
        torch.manual_seed(123)
        model = TabM.from_training_data(x_num_train=x_train, n_bins=8, cat_cardinalities=[4], n_out=2, k=4, d_block=32)
        runs.append((model.state_dict(), model(*_inputs(9, 3, [4]))))  # train mode: dropout draws too
    (sd_a, out_a), (sd_b, out_b) = runs
    assert all(torch.equal(sd_a[name], sd_b[name]) for name in sd_a)
    assert torch.equal(out_a, out_b)


def test_tabm_state_dict_round_trip_restores_bins():
    torch.manual_seed(0)
    kwargs = dict(n_num=3, cat_cardinalities=[4, 2], n_out=2, k=4, d_block=32, d_embedding=8)
    x_train = torch.randn(200, 3)
    model = TabM.from_training_data(x_num_train=x_train, n_bins=10, **kwargs).eval()
    n_bins = model.num_embeddings.n_bins_per_feature
    with torch.no_grad():
        model.num_embeddings.weight.normal_()  # make the bins matter for the output
    torch.manual_seed(1)
    clone = TabM(**kwargs, n_bins_per_feature=n_bins).eval()
    x = _inputs(16, 3, [4, 2], seed=5)
    assert not torch.allclose(clone(*x), model(*x))
    clone.load_state_dict(model.state_dict())
    assert torch.equal(clone(*x), model(*x))
    assert torch.equal(clone.num_embeddings.edges, model.num_embeddings.edges)


def test_tabm_validation_errors():
    with pytest.raises(ValueError, match="at least one feature"):
        TabM(n_num=0, cat_cardinalities=[], n_out=1)
    with pytest.raises(ValueError, match="n_bins_per_feature has 1 entries for n_num=2"):
        TabM(n_num=2, cat_cardinalities=[], n_out=1, n_bins_per_feature=[4])
    with pytest.raises(ValueError, match="k must be >= 1"):
        TabM(n_num=2, cat_cardinalities=[], n_out=1, k=0)
    with pytest.raises(ValueError, match="n_num=3 but x_num_train has 2 columns"):
        TabM.from_training_data(x_num_train=torch.randn(10, 2), n_bins=4, n_num=3, cat_cardinalities=[], n_out=1)
    model = TabM(n_num=1, cat_cardinalities=[3], n_out=1, k=2, d_block=8)
    with pytest.raises(ValueError, match=r"\[0, cardinality\)"):
        model(torch.randn(2, 1), torch.tensor([[1], [3]]))
    with pytest.raises(ValueError, match="int64"):
        model(torch.randn(2, 1), torch.tensor([[1.0], [2.0]]))
    with pytest.raises(ValueError, match="no numeric embeddings"):
        model.set_bins([torch.tensor([0.0, 1.0])])


def test_fast_dropout_statistics():
    drop = tabm_module._Dropout(0.25)
    torch.manual_seed(0)
    x = torch.ones(200_001)
    y = drop(x)
    assert abs((y == 0).float().mean().item() - 0.25) < 0.01
    assert abs(y.mean().item() - 1.0) < 0.02
    assert torch.allclose(y.unique(), torch.tensor([0.0, 1 / 0.75]))
    assert torch.equal(drop.eval()(x), x)


@pytest.fixture
def one_thread():
    """Tiny models run fastest on one thread, and stay fast when other processes load the CPU."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


def test_tabm_overfits_a_tiny_table(one_thread):
    torch.manual_seed(0)
    n, k = 64, 4
    x_num = torch.randn(n, 3)
    x_cat = torch.randint(0, 5, (n, 1))
    y = torch.randint(0, 2, (n,))  # random labels: only memorisation fits them
    model = TabM.from_training_data(
        x_num_train=x_num, n_bins=16, cat_cardinalities=[5], n_out=2, k=k, d_block=64, dropout=0.0
    )
    opt = torch.optim.AdamW(model.parameters(), lr=3e-3, weight_decay=3e-4)
    for _ in range(200):
        logits = model(x_num, x_cat)  # [n, k, 2]
        loss = F.cross_entropy(logits.flatten(0, 1), y.repeat_interleave(k))  # mean of the members' losses
        opt.zero_grad()
        loss.backward()
        opt.step()
    model.eval()
    with torch.no_grad():
        proba = model(x_num, x_cat).softmax(-1).mean(1)
    accuracy = (proba.argmax(-1) == y).float().mean().item()
    assert accuracy >= 0.95, f"training accuracy {accuracy:.3f} (final loss {loss.item():.3f})"


def test_doctests_pass():
    result = doctest.testmod(tabm_module)
    assert result.attempted >= 5 and result.failed == 0


def test_embedding_by_bin_lookup_matches_the_dense_encoding_in_value_and_gradient():
    """forward() looks up each value's bin instead of building PLE(x) [B, n, T]; values and grads must agree."""
    torch.manual_seed(1)
    bins = compute_bins(torch.randn(300, 4), 9)
    bins[1] = torch.tensor([-1.0, 1.0])  # one bin: open on both sides
    bins[2] = torch.tensor([0.0, 0.5, 2.0])  # padded to the widest feature
    emb = PiecewiseLinearEmbeddings(n_bins_per_feature=[len(e) - 1 for e in bins], d_embedding=3)
    emb.set_bins(bins)
    with torch.no_grad():
        emb.weight.normal_()
    edges_hit = torch.stack([bins[0][:4], bins[1][:1].expand(4), bins[2][:3].repeat(2)[:4], bins[3][-4:]], 1)
    x = torch.cat([torch.randn(50, 4) * 3, edges_hit, torch.full((2, 4), 1e6), torch.full((2, 4), -1e6)])
    out = emb(x)
    dense = emb.bias0 + emb.weight0 * x[..., None] + torch.einsum("bnt,ntd->bnd", piecewise_linear_encoding(x, bins),
                                                                 emb.weight)
    torch.testing.assert_close(out, dense, rtol=1e-5, atol=1e-4)
    g = torch.randn_like(out)
    grads = torch.autograd.grad((out * g).sum(), [emb.weight, emb.weight0, emb.bias0])
    grads_dense = torch.autograd.grad((dense * g).sum(), [emb.weight, emb.weight0, emb.bias0])
    for a, b in zip(grads, grads_dense):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-2)


@pytest.mark.parametrize("n_out,k,n_blocks,embed", [(2, 4, 2, True), (1, 3, 1, False), (30, 8, 3, True)])
def test_inference_forward_matches_forward(n_out, k, n_blocks, embed):
    """The prediction path (folded first layer, fused bias+ReLU, block-diagonal or batched heads) = forward()."""
    torch.manual_seed(0)
    x_train = torch.randn(200, 3)
    kwargs = {"n_num": 3, "cat_cardinalities": [4, 2], "n_out": n_out, "k": k, "d_block": 16, "n_blocks": n_blocks,
              "d_embedding": 4}
    model = (TabM.from_training_data(x_num_train=x_train, n_bins=6, **kwargs) if embed
             else TabM(**kwargs)).eval()
    with torch.no_grad():
        for p in model.parameters():
            p.add_(0.1 * torch.randn_like(p))  # the PLE weights start at zero: make every part count
    x_num, x_cat = torch.randn(37, 3), torch.stack([torch.randint(0, 4, (37,)), torch.randint(0, 2, (37,))], 1)
    with torch.no_grad():
        expected = model(x_num, x_cat)
    got = model.inference_forward(x_num, x_cat)
    assert got.shape == expected.shape == (37, k, n_out) and got.dtype == torch.float32
    torch.testing.assert_close(got, expected, rtol=1e-4, atol=1e-5)
    low = model.inference_forward(x_num, x_cat, dtype=torch.bfloat16)
    torch.testing.assert_close(low, expected, rtol=0.05, atol=0.05)
    assert (model.inference_plan().head_block_diagonal is not None) == (k * n_out <= 64)  # (30, 8): batched heads


@pytest.mark.parametrize("fused", ["missing", "raises"])
def test_inference_forward_falls_back_to_plain_linear_layers(monkeypatch, fused):
    torch.manual_seed(0)
    model = TabM.from_training_data(x_num_train=torch.randn(100, 3), n_bins=6, n_num=3, cat_cardinalities=[4],
                                    n_out=2, k=4, d_block=16, d_embedding=4).eval()
    x_num, x_cat = torch.randn(9, 3), torch.randint(0, 4, (9, 1))
    expected = model.inference_forward(x_num, x_cat)

    def broken(*args):
        raise NotImplementedError("no such kernel here")

    monkeypatch.setattr(tabm_module, "_FUSED_LINEAR", None if fused == "missing" else broken)
    torch.testing.assert_close(model.inference_forward(x_num, x_cat), expected, rtol=1e-5, atol=1e-6)
