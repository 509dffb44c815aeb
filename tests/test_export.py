"""ONNX export: the graph's predictions equal neuraltab's own, computed by ONNX Runtime in a process without torch.

Parity cases per model: rows of the table (a batch of 4,096), one row, seven rows; every numeric column missing,
infinities, unseen and empty categories, values on the quantile knots (and, for unscaled inputs, on the bin edges),
values far outside the training range. Tiny networks with their weights nudged off their initial values (the
embeddings' bin weights start at zero, which would hide a wrong bin) keep this cheap and sharp.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

import neuraltab
import neuraltab.errors
from conftest import HR_CSV, SHARED_DATA, make_table
from neuraltab.data.preprocess import _category_keys
from neuraltab.errors import ArtifactError, UserError

onnx = pytest.importorskip("onnx", reason="the onnx extra is not installed (pip install 'neuraltab[onnx]')")
ort = pytest.importorskip("onnxruntime", reason="the onnx extra is not installed (pip install 'neuraltab[onnx]')")

from neuraltab.export import graph as onnx_graph  # noqa: E402  (needs onnx)
from neuraltab.export.pipeline import _quantile_normal, bin_index, snap_to_knots  # noqa: E402

RUNNER = Path(__file__).with_name("onnx_runner.py")
PUBLIC = SHARED_DATA / "public"
TINY = {"k": 2, "d_block": 16, "n_blocks": 1, "n_bins": 8, "d_embedding": 4, "epochs": 1, "threads": 1,
        "precision": "fp32", "seed": 0}
TOLERANCE = 1e-5  # the issue's: in probability, and relative for regression


# ------------------------------------------------------------------------------------------------- helpers
def _tiny_model(df: pd.DataFrame, target: str, **options) -> neuraltab.Model:
    model = neuraltab.fit(df, target=target, **{**TINY, **options})
    generator = torch.Generator().manual_seed(1)
    with torch.no_grad():  # off the initial values: zero bin weights and symmetric starts would hide wrong lookups
        for p in model.network.parameters():
            p.add_(torch.randn(p.shape, generator=generator) * 0.05)
    return model


def _feeds(model: neuraltab.Model, X: pd.DataFrame, numbers: str = "float32") -> dict[str, np.ndarray]:
    """The graph's inputs for X: float32 numbers and booleans (NaN missing), category keys as strings ('' missing)."""
    feeds = {}
    for col in model.schema.features:
        s = X[col.name]
        if col.kind == "categorical":
            keys = _category_keys(s)
            feeds[col.name] = np.array(["" if k is None else k for k in keys], dtype=str).reshape(-1, 1)
        else:
            feeds[col.name] = pd.to_numeric(s.map(lambda v: float(v) if isinstance(v, (bool, np.bool_)) else v),
                                            errors="coerce").to_numpy(numbers, na_value=np.nan).reshape(-1, 1)
    return feeds


def _as_model_sees(model: neuraltab.Model, X: pd.DataFrame) -> pd.DataFrame:
    """X with the numbers the graph's float32 inputs stand for: each rounded to float32, except that one whose float32
    rounding is a quantile knot's stands for that knot (0.38, repeated in training, as written in a file)."""
    X = X.copy()
    pre = model.preprocessor
    for j, (col, part) in enumerate(pre.numeric_inputs):
        values = pd.to_numeric(X[col], errors="coerce").to_numpy(np.float64)
        rounded = values.astype(np.float32)
        if pre.scaling == "quantile":
            knots = pre.stats["quantiles"][:, j]
            knots32 = knots.astype(np.float32)
            hit = np.searchsorted(knots32, rounded, side="right") - 1
            on = (hit >= 0) & (knots32[np.maximum(hit, 0)] == rounded)
            X[col] = np.where(on, knots[np.maximum(hit, 0)], rounded.astype(np.float64))
        else:
            X[col] = rounded.astype(np.float64)
    return X


def _special_rows(model: neuraltab.Model, X: pd.DataFrame, rng: np.random.Generator) -> pd.DataFrame:
    """Rows made to hit every corner: missing numbers, infinities, unseen and empty categories, knots, far values."""
    pre = model.preprocessor
    numeric = [c.name for c in model.schema.features if c.kind == "numeric"]
    categorical = [c.name for c in model.schema.features if c.kind == "categorical"]
    base = X.sample(64, replace=True, random_state=0).reset_index(drop=True)
    for col in numeric:
        base[col] = base[col].astype(np.float64)
    for col in categorical:
        base[col] = base[col].astype(object)
    base.loc[0, numeric] = np.nan  # every numeric column missing at once (the batch of one)
    for col in categorical:
        base.loc[0, col] = "never seen in training"
    for i, col in enumerate(numeric):  # each column missing, or infinite, on its own
        base.loc[1 + i % 6, col] = np.nan
        base.loc[7 + i % 5, col] = np.inf if i % 2 else -np.inf
    for col in [c.name for c in model.schema.features if c.kind == "boolean"]:
        base[col] = base[col].astype(object)
        base.loc[[0, 3], col] = np.nan
    for i, col in enumerate(categorical):
        base.loc[1 + i % 6, col] = np.nan  # an empty category
        base.loc[7 + i % 5, col] = "unseen value"
    knots = pre.stats.get("quantiles")
    position = {c: j for j, (c, part) in enumerate(pre.numeric_inputs) if part is None}
    for col in numeric:
        values = np.asarray(X[col], dtype=np.float64)
        low, high = np.nanmin(values), np.nanmax(values)
        spread = max(high - low, 1.0)
        far = [low - 10 * spread, high + 10 * spread, -1e30, 1e30, low, high]
        if knots is not None:  # the quantile knots themselves, ties included
            far += list(rng.choice(knots[:, position[col]], size=20))
        elif _edges(model) is not None:
            far += _edges(model)[position[col]]
        far = far[: 64 - 12]
        base.loc[12: 12 + len(far) - 1, col] = np.asarray(far, dtype=np.float64)  # the graph gets them as float32
    return base


def _edges(model: neuraltab.Model) -> list[list[float]] | None:
    emb = getattr(model.network, "num_embeddings", None)
    if emb is None or model.preprocessor.scaling != "none":
        return None
    return [row[: n + 1].tolist() for row, n in zip(emb.edges, emb.n_bins_per_feature)]


def _batches(model: neuraltab.Model, X: pd.DataFrame) -> dict[str, pd.DataFrame]:
    special = _special_rows(model, X, np.random.default_rng(0))
    rest = X.sample(4096 - len(special), replace=len(X) < 4096, random_state=1)
    big = pd.concat([special, rest], ignore_index=True)
    return {"1": special.iloc[:1], "7": special.iloc[1:8], "4096": big}


def _run_onnx(jobs: list[tuple[Path, dict[str, np.ndarray]]], tmp: Path) -> list[dict[str, np.ndarray]]:
    """Run each (graph, feeds) in one fresh Python process that imports ONNX Runtime and numpy only."""
    spec = []
    for i, (path, feeds) in enumerate(jobs):
        np.savez(tmp / f"feeds{i}.npz", **feeds)
        spec.append({"onnx": str(path), "feeds": str(tmp / f"feeds{i}.npz"), "out": str(tmp / f"out{i}.npz")})
    (tmp / "jobs.json").write_text(json.dumps(spec))
    done = subprocess.run([sys.executable, str(RUNNER), str(tmp / "jobs.json")], capture_output=True, text=True,
                          cwd=tmp, env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    assert "without torch" in done.stdout
    results = []
    for job in spec:
        with np.load(job["out"], allow_pickle=False) as out:
            results.append({k: out[k] for k in out.files})
    return results


def _check_parity(model: neuraltab.Model, X: pd.DataFrame, tmp: Path, numbers: str = "float32") -> None:
    path = model.to_onnx(tmp / "model.onnx", numbers=numbers)
    onnx.checker.check_model(onnx.load(str(path)), full_check=True)
    batches = {name: _as_model_sees(model, b) if numbers == "float32" else b for name, b in _batches(model, X).items()}
    outputs = _run_onnx([(path, _feeds(model, b, numbers)) for b in batches.values()], tmp)
    for (name, batch), out in zip(batches.items(), outputs):
        if model.task == "regression":
            expected = model.predict(batch).to_numpy()
            assert out["value"].shape == expected.shape == (len(batch),)
            # relative, with the target's spread as the floor for values near zero
            scale = np.maximum(np.abs(expected), model.preprocessor.y_std)
            assert np.max(np.abs(out["value"] - expected) / scale) <= TOLERANCE, name
            continue
        expected = model.predict_proba(batch).to_numpy()
        assert out["probabilities"].shape == expected.shape == (len(batch), len(model.classes))
        assert out["probabilities"].dtype == np.float32
        np.testing.assert_allclose(out["probabilities"], expected, rtol=0, atol=TOLERANCE, err_msg=f"batch {name}")
        top2 = np.sort(expected, axis=1)[:, -2:]
        clear = top2[:, 1] - top2[:, 0] > 2 * TOLERANCE  # a near-tie may go either way within the tolerance
        labels = model.predict(batch).to_numpy()
        assert [str(v) for v in out["label"][clear]] == [str(v) for v in labels[clear]], name


# ------------------------------------------------------------------------------------------------- parity
@pytest.fixture(scope="module")
def hr() -> pd.DataFrame:
    if not HR_CSV.exists():
        pytest.skip(f"the shared benchmark data ({HR_CSV}) is not on this machine; it exists only in development and CI")
    return pd.read_csv(HR_CSV)


@pytest.mark.parametrize("options", [{}, {"model": "mlp", "layers": (16, 8)}, {"k": 4, "d_embedding": 0}],
                         ids=["default", "mlp", "raw-numbers"])
def test_parity_on_hr(hr, tmp_path, options):
    model = _tiny_model(hr.sample(3000, random_state=0), "left", **options)
    _check_parity(model, hr.drop(columns="left"), tmp_path)


def _public_tables() -> list[dict]:
    manifest = PUBLIC / "manifest.json"
    if not manifest.exists():
        return []
    return json.loads(manifest.read_text())["datasets"]


@pytest.mark.parametrize("table", _public_tables() or [pytest.param(None, marks=pytest.mark.skip(
    reason=f"the shared public tables ({PUBLIC}) are not on this machine; they exist only in development and CI"))],
    ids=lambda t: t["name"] if t else "missing")
def test_parity_on_public_tables(table, tmp_path):
    df = pd.read_csv(PUBLIC / table["file"])
    train = df.sample(min(len(df), 1500), random_state=0)
    # letter's 26 classes with k=4 take the per-member heads; the others the block-diagonal one
    model = _tiny_model(train, table["target"], task=table["task"], k=4 if table["name"] == "letter" else 2)
    _check_parity(model, df.drop(columns=table["target"]), tmp_path)


def test_float64_inputs_take_numbers_exactly(tmp_path):
    """ames' coordinates (-93.619754) have more digits than float32 holds: float64 inputs give neuraltab's predictions
    on the numbers exactly as read, where float32 ones, rounded, may not."""
    path = PUBLIC / "ames.csv"
    if not path.exists():
        pytest.skip(f"the shared public tables ({PUBLIC}) are not on this machine; they exist only in development and CI")
    df = pd.read_csv(path)
    model = _tiny_model(df.sample(1500, random_state=0), "Sale_Price", task="regression")
    _check_parity(model, df.drop(columns="Sale_Price"), tmp_path, numbers="float64")
    graph = onnx.load(str(tmp_path / "model.onnx"))
    kinds = {c.name: c.kind for c in model.schema.features}
    assert {i.name: i.type.tensor_type.elem_type for i in graph.graph.input if kinds[i.name] == "numeric"} == \
        {c: onnx.TensorProto.DOUBLE for c, k in kinds.items() if k == "numeric"}
    with pytest.raises(neuraltab.errors.ConfigError, match="'float32' or 'float64'"):
        model.to_onnx(tmp_path / "other.onnx", numbers="float16")


def test_parity_on_every_column_kind_and_scaling(tmp_path):
    """Booleans, integer-coded categories, columns with gaps (missing indicators), standard and no scaling (where
    the bin edges are raw values, so inputs exactly on them are tested), regression and multiclass."""
    rng = np.random.default_rng(5)
    df = make_table(600, task="regression", seed=5)
    df["flag"] = rng.random(600) > 0.4
    df["code"] = rng.choice([20, 30, 45, 190], size=600)
    df.loc[rng.choice(600, 40, replace=False), "x1"] = np.nan
    for i, options in enumerate([{"scaling": "standard"}, {"scaling": "none"}, {"model": "mlp", "activation": "gelu"},
                                 {"model": "mlp", "activation": "selu", "scaling": "none"}, {}]):
        model = _tiny_model(df, "label", **options)
        kinds = {c.name: c.kind for c in model.schema.features}
        assert kinds["flag"] == "boolean" and kinds["code"] == "categorical"
        assert len(model.preprocessor.indicators) == 2  # x1 and x2 had gaps
        (tmp_path / str(i)).mkdir()
        _check_parity(model, df.drop(columns="label"), tmp_path / str(i))
        if not options:  # booleans as float64 too
            (tmp_path / "f64").mkdir()
            _check_parity(model, df.drop(columns="label"), tmp_path / "f64", numbers="float64")
    multi = make_table(600, task="multiclass", seed=6)
    _check_parity(_tiny_model(multi, "label"), multi.drop(columns="label"), tmp_path)


def test_bf16_model_exports_float32(tmp_path):
    df = make_table(400, seed=2)
    model = _tiny_model(df, "label", precision="bf16")
    assert model.config.precision == "bf16"
    graph = onnx.load(str(model.to_onnx(tmp_path / "bf16.onnx")))
    types = {t.data_type for t in graph.graph.initializer}
    assert onnx.TensorProto.BFLOAT16 not in types and onnx.TensorProto.FLOAT16 not in types
    model.config = model.config.replace(precision="fp32")  # neuraltab's float32 prediction is the reference
    _check_parity(model, df.drop(columns="label"), tmp_path)


# ------------------------------------------------------------------------------------------------- graph pieces
@pytest.mark.parametrize("m", [5, 64, 65, 1000])
def test_knot_counts_equal_searchsorted(m):
    rng = np.random.default_rng(m)
    knots = np.sort(np.round(rng.normal(size=(3, m)), 1), axis=1)  # rounded: many ties
    x = np.concatenate([rng.normal(size=(200, 3)), knots[:, rng.integers(0, m, 50)].T, [[-9.0] * 3, [9.0] * 3]])

    for strict, side in ((False, "right"), (True, "left")):
        g = onnx_graph.GraphBuilder()
        name = g.input("x", onnx.TensorProto.DOUBLE, ["N", 3])
        g.output(onnx_graph.count_knots(g, name, knots, strict=strict, hint="k"), "out", onnx.TensorProto.INT64,
                 ["N", 3])
        got = ort.InferenceSession(g.model(doc="", metadata={}).SerializeToString()).run(None, {"x": x})[0]
        expected = np.stack([np.searchsorted(knots[j], x[:, j], side=side) for j in range(3)], axis=1)
        np.testing.assert_array_equal(got, expected)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_grid_search_counts_at_beside_and_outside_every_knot(dtype):
    """The grid search (knot_counts) against searchsorted on knots of every shape a column gives: ties, a skewed
    column that overflows its cells, a constant column, infinities; values on each knot, one ulp either side, far
    outside, infinite and NaN (which may get any count, but a valid one)."""
    rng = np.random.default_rng(5)
    m = 279
    columns = [np.round(rng.normal(size=m), 1),  # ties
               np.exp(rng.normal(size=m) * 6),  # skewed: most knots crowd the lowest cells
               np.full(m, 2.5),  # constant
               np.concatenate([[-np.inf], rng.normal(size=m - 2), [np.inf]]),  # beyond float32's range, say
               rng.integers(0, 6, m).astype(float),  # few distinct values
               np.concatenate([np.zeros(m - 1), [1e-30]])]  # a tiny span
    knots = np.sort(np.stack(columns), axis=1).astype(dtype)
    d = len(knots)
    on = knots[:, rng.integers(0, m, 300)].T
    x = np.concatenate([on, np.nextafter(on, dtype(np.inf)), np.nextafter(on, dtype(-np.inf)),
                        rng.normal(size=(300, d)).astype(dtype) * 3,
                        np.full((1, d), 1e30), np.full((1, d), -1e30), np.full((1, d), np.inf),
                        np.full((1, d), -np.inf), np.full((1, d), np.nan)]).astype(dtype)
    elem = onnx.TensorProto.FLOAT if dtype == np.float32 else onnx.TensorProto.DOUBLE
    g = onnx_graph.GraphBuilder()
    at_most, below = onnx_graph.knot_counts(g, g.input("x", elem, ["N", d]), knots, hint="k")
    g.output(at_most, "at_most", onnx.TensorProto.INT64, ["N", d])
    g.output(below, "below", onnx.TensorProto.INT64, ["N", d])
    model = g.model(doc="", metadata={})
    onnx.checker.check_model(model, full_check=True)
    got_at_most, got_below = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})
    finite = ~np.isnan(x[:, 0])
    for side, got in (("right", got_at_most), ("left", got_below)):
        expected = np.stack([np.searchsorted(knots[j], x[:, j], side=side) for j in range(d)], axis=1)
        np.testing.assert_array_equal(got[finite], expected[finite])
        assert ((got >= 0) & (got <= m)).all()


def test_grid_cells_hold_few_knots_where_the_column_allows():
    """The point of the grid: a value is compared with the knots of its own cell only (2 here), not all 279."""
    knots = np.sort(np.random.default_rng(6).normal(size=(1, 279)), axis=1)
    g = onnx_graph.GraphBuilder()
    onnx_graph.knot_counts(g, g.input("x", onnx.TensorProto.DOUBLE, ["N", 1]), knots, hint="k", below=False)
    assert sum(node.op_type == "LessOrEqual" for node in g.nodes) <= 3


def test_bins_equal_the_networks_own():
    """The graph's bins are the network's (one definition, comparisons and a sum), on edges, between and outside."""
    from neuraltab.networks.tabm import bin_index as network_bins

    rng = np.random.default_rng(2)
    edges = np.sort(rng.normal(size=(4, 9)).astype(np.float32), axis=1)
    edges[1, 6:] = edges[1, 5]  # a feature with fewer bins, padded with its last edge
    last_bin = np.array([7, 4, 7, 7])
    x = np.concatenate([rng.normal(size=(300, 4)) * 2, edges.T, edges.T + 1e-7, [[-1e30] * 4, [1e30] * 4]])
    x = x.astype(np.float32)
    g = onnx_graph.GraphBuilder()
    g.output(bin_index(g, g.input("x", onnx.TensorProto.FLOAT, ["N", 4]), edges, last_bin), "out",
             onnx.TensorProto.INT64, ["N", 4])
    got = ort.InferenceSession(g.model(doc="", metadata={}).SerializeToString()).run(None, {"x": x})[0]
    expected = network_bins(torch.from_numpy(x), torch.from_numpy(edges), torch.from_numpy(last_bin)).numpy()
    np.testing.assert_array_equal(got, expected)
    searched = np.stack([np.searchsorted(edges[j], x[:, j], side="right") - 1 for j in range(4)], axis=1)
    np.testing.assert_array_equal(got, np.minimum(np.maximum(searched, 0), last_bin))


def test_inverse_normal_cdf_matches_torch():
    p = np.concatenate([np.linspace(1e-7, 1 - 1e-7, 20001), np.geomspace(1e-7, 0.05, 2000),
                        1 - np.geomspace(1e-7, 0.05, 2000)])
    g = onnx_graph.GraphBuilder()
    g.output(onnx_graph.ndtri(g, g.input("p", onnx.TensorProto.DOUBLE, ["N"])), "out", onnx.TensorProto.DOUBLE, ["N"])
    got = ort.InferenceSession(g.model(doc="", metadata={}).SerializeToString()).run(None, {"p": p})[0]
    expected = torch.special.ndtri(torch.from_numpy(p)).numpy()
    np.testing.assert_allclose(got, onnx_graph.ndtri_reference(p), rtol=1e-13, atol=1e-13)
    # far below float32's rounding of the scores (about 3e-8 relative)
    np.testing.assert_allclose(got, expected, rtol=2e-9, atol=1e-8)


def test_quantile_graph_equals_the_numpy_transform():
    from neuraltab.data.quantile import quantile_normal_transform

    rng = np.random.default_rng(3)
    columns = [np.sort(rng.normal(size=300)), np.sort(np.round(rng.exponential(size=300), 1)),  # ties
               np.full(300, 2.5), np.sort(rng.integers(0, 4, 300).astype(float))]  # constant; few distinct values
    q = np.maximum.accumulate(np.stack([np.percentile(c, np.linspace(0, 100, 120)) for c in columns], axis=1), axis=0)
    x = np.concatenate([rng.normal(size=(500, 4)) * 2, q[rng.integers(0, 120, 200)], q[rng.integers(0, 120, 50)] + 1e-8,
                        [[-1e300] * 4, [1e300] * 4, [2.5] * 4]])
    g = onnx_graph.GraphBuilder()
    g.output(_quantile_normal(g, g.input("x", onnx.TensorProto.DOUBLE, ["N", 4]), q), "out", onnx.TensorProto.DOUBLE,
             ["N", 4])
    got = ort.InferenceSession(g.model(doc="", metadata={}).SerializeToString()).run(None, {"x": x})[0]
    expected = quantile_normal_transform(x, q)
    np.testing.assert_allclose(got.astype(np.float32), expected.astype(np.float32), rtol=1e-6, atol=1e-6)
    assert np.max(np.abs(got - expected)) < 1e-7  # the inverse CDF's approximation, nothing more


# ------------------------------------------------------------------------------------------------- the file
def test_float32_inputs_on_tied_knots_take_the_knots_score():
    """A value repeated in training (a run of equal knots) where the transform jumps: its float32 rounding, which is
    not the float64 knot, gets the knot's score, as the number written in a file does in neuraltab."""
    from neuraltab.data.quantile import quantile_normal_transform

    rng = np.random.default_rng(4)
    values = rng.choice([0.38, 0.53, 0.1, 0.77, 0.9], size=600)  # none is a float32 number
    q = np.percentile(values, np.linspace(0, 100, 40))[:, None]
    x64 = np.concatenate([q[:, 0], rng.uniform(0, 1, 100)])[:, None]
    g = onnx_graph.GraphBuilder()
    snapped = snap_to_knots(g, g.input("x", onnx.TensorProto.FLOAT, ["N", 1]), q)
    g.output(_quantile_normal(g, snapped, q), "out", onnx.TensorProto.DOUBLE, ["N", 1])
    got = ort.InferenceSession(g.model(doc="", metadata={}).SerializeToString()).run(
        None, {"x": x64.astype(np.float32)})[0]
    expected = quantile_normal_transform(x64, q)
    beside = quantile_normal_transform(x64.astype(np.float32).astype(np.float64), q)
    assert np.max(np.abs(beside - expected)) > 0.1  # the jump this guards against
    np.testing.assert_allclose(got, expected, rtol=0, atol=1e-6)


def test_metadata_and_inputs(tmp_path):
    df = make_table(300, seed=1)
    model = _tiny_model(df, "label")
    model.save(tmp_path / "m.ntab")
    path = neuraltab.load(tmp_path / "m.ntab").to_onnx(tmp_path / "m.onnx")
    graph = onnx.load(str(path))
    props = {p.key: p.value for p in graph.metadata_props}
    assert props["model_sha256"] == hashlib.sha256((tmp_path / "m.ntab").read_bytes()).hexdigest()
    assert props["neuraltab_version"] == neuraltab.__version__
    assert json.loads(props["classes"]) == ["no", "yes"]
    assert json.loads(props["schema"]) == model.schema.to_dict()
    inputs = {i.name: (i.type.tensor_type.elem_type, [d.dim_param or d.dim_value for d in i.type.tensor_type.shape.dim])
              for i in graph.graph.input}
    assert inputs == {"x1": (onnx.TensorProto.FLOAT, ["N", 1]), "x2": (onnx.TensorProto.FLOAT, ["N", 1]),
                      "color": (onnx.TensorProto.STRING, ["N", 1]), "size": (onnx.TensorProto.STRING, ["N", 1])}
    assert [o.name for o in graph.graph.output] == ["label", "probabilities"]
    assert not any(n.op_type in ("TopK", "Loop", "If", "Scan") for n in graph.graph.node)


def test_refuses_to_overwrite_and_writes_atomically(tmp_path):
    model = _tiny_model(make_table(200, seed=4), "label")
    target = tmp_path / "m.onnx"
    target.write_bytes(b"old")
    with pytest.raises(ArtifactError, match="already exists"):
        model.to_onnx(target)
    assert target.read_bytes() == b"old"
    model.to_onnx(target, force=True)
    assert onnx.load(str(target)).graph.output and sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_unsupported_model_is_one_line_and_writes_nothing(tmp_path):
    df = make_table(300, seed=7)
    df["when"] = pd.date_range("2020-01-01", periods=300, freq="D")
    model = _tiny_model(df, "label")
    with pytest.raises(ArtifactError, match=r"cannot export to ONNX: datetime column 'when'") as caught:
        model.to_onnx(tmp_path / "m.onnx")
    assert "\n" not in str(caught.value) and "drop=['when']" in str(caught.value)
    model = _tiny_model(make_table(200), "label")
    model.spec = {**model.spec, "kind": "transformer"}
    with pytest.raises(ArtifactError, match="model kind 'transformer'"):
        model.to_onnx(tmp_path / "m.onnx")
    assert list(tmp_path.iterdir()) == []


def test_without_the_extra_says_what_to_install(tmp_path, monkeypatch):
    import importlib.util

    from typer.testing import CliRunner

    from neuraltab.cli.commands import app

    model = _tiny_model(make_table(200), "label")
    model.save(tmp_path / "m.ntab")
    real = importlib.util.find_spec
    monkeypatch.setattr(importlib.util, "find_spec", lambda name, *a: None if name == "onnxruntime" else real(name, *a))
    with pytest.raises(UserError, match=r"needs onnxruntime: pip install 'neuraltab\[onnx\]'"):
        model.to_onnx(tmp_path / "m.onnx")
    result = CliRunner().invoke(app, ["export", str(tmp_path / "m.ntab"), "-o", str(tmp_path / "m.onnx")])
    assert result.exit_code == 2 and "pip install 'neuraltab[onnx]'" in result.output
    assert not (tmp_path / "m.onnx").exists()


def test_cli_export(tmp_path):
    from typer.testing import CliRunner

    from neuraltab.cli.commands import app

    df = make_table(300, task="regression", seed=8)
    _tiny_model(df, "label").save(tmp_path / "m.ntab")
    out = tmp_path / "m.onnx"
    runner = CliRunner()
    result = runner.invoke(app, ["export", str(tmp_path / "m.ntab"), "-o", str(out)])
    assert result.exit_code == 0, result.output
    assert [o.name for o in onnx.load(str(out)).graph.output] == ["value"]
    again = runner.invoke(app, ["export", str(tmp_path / "m.ntab"), "-o", str(out)])
    assert again.exit_code == 2 and "already exists; pass --force" in again.output
    assert runner.invoke(app, ["export", str(tmp_path / "m.ntab"), "-o", str(out), "--force", "--float64"]).exit_code == 0
    assert {i.type.tensor_type.elem_type for i in onnx.load(str(out)).graph.input if i.name.startswith("x")} == \
        {onnx.TensorProto.DOUBLE}
    missing = runner.invoke(app, ["export", str(tmp_path / "nope.ntab"), "-o", str(tmp_path / "x.onnx")])
    assert missing.exit_code == 2 and "model file not found" in missing.output


def test_readme_example_runs_without_neuraltab_or_torch(hr, tmp_path):
    """The README's Export section: `neuraltab export`, then its five lines in a process that imports neither."""
    import re

    from typer.testing import CliRunner

    from neuraltab.cli.commands import app

    readme = (Path(__file__).resolve().parents[1] / "README.md").read_text(encoding="utf-8")
    section = readme.split("### `neuraltab export MODEL -o model.onnx`\n", 1)[1].split("\n### ", 1)[0]
    command = re.findall(r"```bash\n(.*?)```", section, flags=re.DOTALL)[0].strip()
    code = re.findall(r"```python\n(.*?)```", section, flags=re.DOTALL)[0]
    assert len(code.strip().splitlines()) == 5 and "neuraltab" not in code and "torch" not in code
    model = _tiny_model(hr.sample(2000, random_state=0), "left")
    model.save(tmp_path / "hr.ntab")
    hr.iloc[:50].to_csv(tmp_path / "hr.csv", index=False)
    assert command == "neuraltab export hr.ntab -o hr.onnx"
    args = command.split()[1:]
    result = CliRunner().invoke(app, [args[0], str(tmp_path / args[1]), args[2], str(tmp_path / args[3])])
    assert result.exit_code == 0, result.output
    check = ("\nimport sys\nassert 'torch' not in sys.modules and 'neuraltab' not in sys.modules\n"
             "import numpy as np\nnp.save('label.npy', label); np.save('proba.npy', probabilities)\n")
    done = subprocess.run([sys.executable, "-c", code + check], cwd=tmp_path, capture_output=True, text=True,
                          env={"PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    expected = model.predict_proba(_as_model_sees(model, hr.iloc[:50].drop(columns="left"))).to_numpy()
    np.testing.assert_allclose(np.load(tmp_path / "proba.npy"), expected, atol=TOLERANCE, rtol=0)
    assert np.load(tmp_path / "label.npy").tolist() == model.predict(hr.iloc[:50]).tolist()


def test_parity_of_a_best_preset_bag(tmp_path):
    """A bag of fold models exports as one graph: the members side by side, their probabilities (or values) averaged
    as the model averages them; TabM and MLP members, classification and regression."""
    for i, (task, options) in enumerate([("binary", {}), ("regression", {}),
                                         ("multiclass", {"model": "mlp", "layers": (8,)})]):
        df = make_table(400, task=task, seed=7 + i)
        model = _tiny_model(df, "label", preset="best", folds=3, **options)
        assert model.spec["kind"] == "bag" and len(model.network.members) == 3
        (tmp_path / str(i)).mkdir()
        _check_parity(model, df.drop(columns="label"), tmp_path / str(i))
