"""Tables larger than memory (neuraltab.data.stream, train.streamed): the hash split, the samples, statistics equal to
the in-memory fit's, the automatic choice, streamed predictions equal to in-memory ones, one-line errors, and memory
that stays flat as the file grows."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

import neuraltab
import neuraltab.api
from neuraltab.api import prepare
from neuraltab.config import TrainConfig, parse_bytes
from neuraltab.data.preprocess import Preprocessor
from neuraltab.data.read import read_table
from neuraltab.data.schema import infer_schema
from neuraltab.data.stream import (TEST, TRAIN, VALID, BottomK, StreamTable, gather_statistics, infer_streamed_schema,
                                   limits_for, row_keys, split_codes)
from neuraltab.errors import ConfigError, DataError

HR = Path(__file__).resolve().parents[1] / ".." / "shared" / "data" / "hr.csv"
TINY = dict(model="mlp", layers=(16,), epochs=2)  # a cheap network: these tests are about the data path


def _table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.integers(0, 100, n).astype(float),
                       "c": rng.choice(["x", "y", "z", "w"], n, p=[0.4, 0.3, 0.2, 0.1]), "d": rng.exponential(size=n),
                       "when": pd.Timestamp("2020-01-01") + pd.to_timedelta(rng.integers(0, 700, n), unit="D")})
    df.loc[::17, "a"] = np.nan
    df["y"] = ((df["a"].fillna(0) + (df["c"] == "x") - 0.3 * df["d"]) > 0.1).astype(int)
    return df


@pytest.fixture(scope="module")
def small_csv(tmp_path_factory) -> Path:
    path = tmp_path_factory.mktemp("stream") / "small.csv"
    _table(3000).to_csv(path, index=False)
    return path


# ---------------------------------------------------------------------------------------------------- the split
def test_the_hash_split_is_deterministic_disjoint_complete_and_sized_by_the_options():
    positions = np.arange(200_000)
    codes = split_codes(positions, seed=3, test_size=0.3, valid_size=0.2)
    assert set(np.unique(codes)) == {TRAIN, VALID, TEST}  # every row in exactly one split
    shares = np.bincount(codes, minlength=3) / len(codes)
    assert shares[TEST] == pytest.approx(0.3, abs=0.005) and shares[VALID] == pytest.approx(0.14, abs=0.005)
    # a row's split depends on its position only: chunk boundaries and reading order change nothing
    pieces = np.concatenate([split_codes(positions[s:s + 7919], seed=3, test_size=0.3, valid_size=0.2)
                             for s in range(0, len(positions), 7919)])
    assert (pieces == codes).all()
    other = split_codes(positions, seed=4, test_size=0.3, valid_size=0.2)
    assert (other != codes).mean() > 0.3  # another seed, another split
    # neighbouring rows are not correlated (a sorted file must not put a block of rows in one split)
    assert abs(np.corrcoef(row_keys(positions[:-1], seed=0, stream=0), row_keys(positions[1:], seed=0, stream=0))[0, 1]) < 0.01


def test_a_bottom_k_sample_does_not_depend_on_the_chunking_and_is_uniform():
    rng = np.random.default_rng(0)
    df = pd.DataFrame({"v": rng.normal(size=50_000)})
    positions = np.arange(len(df))
    keys = row_keys(positions, seed=1, stream=2)
    samples = []
    for size in (1000, 7777, 50_000):
        sample = BottomK(2000)
        for s in range(0, len(df), size):
            sample.offer(df.iloc[s:s + size], keys[s:s + size], positions[s:s + size])
        samples.append(sample.frame())
    for frame, pos in samples[1:]:
        assert (pos == samples[0][1]).all() and frame.equals(samples[0][0])
    assert (np.diff(samples[0][1]) > 0).all()  # in table order
    assert abs(samples[0][1].mean() / len(df) - 0.5) < 0.03  # spread over the whole table, not its head


# ---------------------------------------------------------------------------------------------------- statistics
def _in_memory_fit(path: Path, schema, *, seed: int, scaling: str = "quantile") -> tuple[Preprocessor, pd.DataFrame]:
    """The in-memory Preprocessor fitted on exactly the rows the hash split trains on."""
    df = read_table(path)
    train = df[split_codes(np.arange(len(df)), seed=seed, test_size=0.3, valid_size=0.2) == TRAIN]
    return Preprocessor(schema, scaling=scaling).fit(train), train


@pytest.mark.parametrize("scaling", ["quantile", "standard"])
def test_streamed_statistics_equal_the_in_memory_fit_when_the_training_rows_fit_in_the_sample(small_csv, scaling):
    cfg = TrainConfig(seed=0)
    table = StreamTable.open(small_csv)
    schema, n_rows, _ = infer_streamed_schema(table, "y", cfg, sample_rows=100_000, notify=lambda m: None)
    assert n_rows == 3000
    assert schema == infer_schema(read_table(small_csv), "y")  # every row sampled: the in-memory schema
    limits = limits_for(None, raw_row_bytes=100, input_row_bytes=50)
    stats = gather_statistics(table, schema, cfg, limits, test_size=0.3, valid_size=0.2)
    from neuraltab.data.stream import fit_preprocessor

    streamed = fit_preprocessor(schema, stats, scaling=scaling, max_categories=1000, source="s", notify=lambda m: None)
    memory, train = _in_memory_fit(small_csv, schema, seed=0, scaling=scaling)
    assert stats.n_train == len(train)
    assert streamed.vocabs == memory.vocabs and streamed.numeric_inputs == memory.numeric_inputs
    assert (streamed.indicators == memory.indicators).all() and len(memory.indicators) == 1  # column a has gaps
    np.testing.assert_array_equal(streamed.median, memory.median)
    for key in memory.stats:
        np.testing.assert_allclose(streamed.stats[key], memory.stats[key], rtol=1e-12)


def test_a_streamed_regression_target_gets_the_in_memory_mean_and_spread(small_csv):
    from neuraltab.data.stream import fit_preprocessor

    cfg = TrainConfig(seed=2)
    table = StreamTable.open(small_csv)
    schema, _, _ = infer_streamed_schema(table, "d", cfg, sample_rows=100_000, notify=lambda m: None)
    assert schema.task == "regression"
    # a tiny sample: the target's moments are merged chunk by chunk over every training row, not sampled
    limits = limits_for(None, raw_row_bytes=100, input_row_bytes=50).__class__(sample_rows=100, valid_rows=100,
                                                                              test_rows=100, buffer_rows=8192)
    stats = gather_statistics(table, schema, cfg, limits, test_size=0.3, valid_size=0.2)
    streamed = fit_preprocessor(schema, stats, scaling="quantile", max_categories=1000, source="s", notify=print)
    memory, _ = _in_memory_fit(small_csv, schema, seed=2)
    assert streamed.y_mean == pytest.approx(memory.y_mean, rel=1e-12)
    assert streamed.y_std == pytest.approx(memory.y_std, rel=1e-9)


def test_the_command_line_streams_a_folder_with_the_budget_flag(tmp_path, small_csv):
    from typer.testing import CliRunner

    from neuraltab.cli import app

    folder = tmp_path / "parts"
    folder.mkdir()
    df = read_table(small_csv)
    df.iloc[:1500].to_parquet(folder / "a.parquet")
    df.iloc[1500:].to_parquet(folder / "b.parquet")
    model = tmp_path / "m.ntab"
    result = CliRunner().invoke(app, ["train", str(folder), "--target", "y", "--memory-budget", "64MB", "--model", "mlp",
                                      "--layers", "16", "--epochs", "2", "--output", str(model), "--json", "--quiet"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["path"] == "autograd"
    assert neuraltab.load(model).config.stream and neuraltab.load(model).config.memory_budget == "64MB"
    out = tmp_path / "p.csv"
    result = CliRunner().invoke(app, ["predict", str(model), str(folder), "--output", str(out), "--quiet"])
    assert result.exit_code == 0, result.output
    assert len(pd.read_csv(out)) == 3000
    bad = CliRunner().invoke(app, ["train", str(folder), "--target", "y", "--memory-budget", "lots"])
    assert bad.exit_code == 2 and "--memory-budget" in bad.output


def test_streamed_quantiles_from_a_capped_sample_are_within_the_stated_rank_error(tmp_path):
    path = tmp_path / "t.csv"
    _table(40_000, seed=1).to_csv(path, index=False)
    cfg = TrainConfig(seed=0)
    table = StreamTable.open(path)
    schema, _, _ = infer_streamed_schema(table, "y", cfg, sample_rows=100_000, notify=lambda m: None)
    k = 2000
    stats = gather_statistics(table, schema, cfg, limits_for(None, raw_row_bytes=100, input_row_bytes=50)
                              .__class__(sample_rows=k, valid_rows=1000, test_rows=1000, buffer_rows=8192),
                              test_size=0.3, valid_size=0.2)
    assert len(stats.sample) == k
    from neuraltab.data.stream import fit_preprocessor

    streamed = fit_preprocessor(schema, stats, scaling="quantile", max_categories=1000, source="s", notify=print)
    memory, train = _in_memory_fit(path, schema, seed=0)
    # counts are exact whatever the sample: the vocabulary and the missing indicators equal the in-memory ones
    assert streamed.vocabs == memory.vocabs and (streamed.indicators == memory.indicators).all()
    # each streamed knot's rank in the training rows is its level within 4 standard deviations of 0.5/sqrt(k) (a
    # knot on a run of tied values may sit anywhere in that run); column a's gaps are filled with each fit's own
    # median, so its knots are checked through that median: its rank among a's values is 1/2 within the same error
    present = np.sort(train["a"].dropna().to_numpy())
    assert abs(np.searchsorted(present, streamed.median[0]) / len(present) - 0.5) < 4 * 0.5 / np.sqrt(k)
    q_stream, q_memory = streamed.stats["quantiles"], memory.stats["quantiles"]
    assert q_stream.shape == q_memory.shape
    levels = np.linspace(0, 1, len(q_memory))[1:-1]
    tolerance = 4 * 0.5 / np.sqrt(k)
    for j, col in [(1, "b"), (2, "d")]:
        values = np.sort(train[col].to_numpy())
        lo = np.searchsorted(values, q_stream[1:-1, j], side="left") / len(values)
        hi = np.searchsorted(values, q_stream[1:-1, j], side="right") / len(values)
        assert (lo <= levels + tolerance).all() and (hi >= levels - tolerance).all(), col
        assert np.abs(np.median(lo + hi) / 2 - 0.5) < 0.5  # not vacuous: the ranks are spread out
    # and the sample is not the whole training set, so this was an estimate
    assert k < len(train)


# ---------------------------------------------------------------------------------------------------- the choice
def test_the_options_parse_budgets_and_reject_nonsense():
    assert parse_bytes("2GB") == 2 * 10**9 and parse_bytes("1.5GiB") == 3 * 2**29 and parse_bytes(5 * 10**6) == 5 * 10**6
    assert TrainConfig(memory_budget="512MiB").memory_budget == "512MiB"
    with pytest.raises(ConfigError, match="memory_budget"):
        TrainConfig(memory_budget="lots")
    with pytest.raises(ConfigError, match="memory_budget"):
        TrainConfig(memory_budget=10)  # under a megabyte: a mistake, not a budget


def test_streaming_starts_by_itself_above_the_budget_and_the_in_memory_path_is_untouched_below_it(tmp_path, small_csv):
    below = prepare(small_csv, "y", **TINY)
    assert below.epochs is None and not below.cfg.stream
    bigger = tmp_path / "bigger.csv"
    _table(20_000).to_csv(bigger, index=False)
    assert prepare(bigger, "y", memory_budget="1GB", **TINY).epochs is None
    above = prepare(bigger, "y", memory_budget="1MB", **TINY)  # the file's estimate is over 1 MB
    assert above.epochs is not None and above.cfg.stream
    forced = prepare(small_csv, "y", stream=True, **TINY)
    assert forced.epochs is not None
    assert prepare(read_table(small_csv), "y", stream=True, **TINY).epochs is None  # a DataFrame is in memory already


def test_a_streamed_run_is_deterministic_and_records_how_it_trained(small_csv):
    first = neuraltab.fit(small_csv, "y", stream=True, seed=5, **TINY)
    again = neuraltab.fit(small_csv, "y", stream=True, seed=5, **TINY)
    assert first.to_bytes() == again.to_bytes()
    assert first.history["path"] == "autograd" and "streamed" in first.history["path_reason"]
    assert first.config.stream and neuraltab.api.load_bytes(first.to_bytes()).config.stream
    other = neuraltab.fit(small_csv, "y", stream=True, seed=6, **TINY)
    assert other.to_bytes() != first.to_bytes()


def test_a_folder_of_csv_files_streams_as_one_table(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    whole = _table(2400)
    for i in range(3):
        whole.iloc[i * 800:(i + 1) * 800].to_csv(folder / f"part-{i}.csv", index=False)
    whole.to_csv(tmp_path / "whole.csv", index=False)
    a = neuraltab.fit(folder, "y", seed=1, **TINY)  # a folder always streams
    b = neuraltab.fit(tmp_path / "whole.csv", "y", seed=1, stream=True, **TINY)
    assert a.data_fingerprint["rows"] == 2400 and a.data_fingerprint["kind"] == "folder"
    assert a.metrics["test"] == b.metrics["test"]  # the same rows in the same positions


def test_parquet_streams_as_csv_does(tmp_path, small_csv):
    path = tmp_path / "small.parquet"
    read_table(small_csv).to_parquet(path)
    a = neuraltab.fit(path, "y", seed=1, stream=True, **TINY)
    b = neuraltab.fit(small_csv, "y", seed=1, stream=True, **TINY)
    assert a.metrics["test"]["accuracy"] == pytest.approx(b.metrics["test"]["accuracy"], abs=0.02)
    assert a.preprocessor.vocabs == b.preprocessor.vocabs


# ---------------------------------------------------------------------------------------------------- predict
@pytest.mark.parametrize("suffix", [".csv", ".parquet", ".jsonl"])
def test_streamed_predictions_and_metrics_equal_the_in_memory_ones(tmp_path, small_csv, suffix):
    model = neuraltab.fit(small_csv, "y", seed=0, **TINY)
    streamed, memory = tmp_path / f"s{suffix}", tmp_path / f"m{suffix}"
    assert model.predict_file(small_csv, streamed, stream=True) == 3000
    model.predict_file(small_csv, memory, stream=False)
    if suffix == ".parquet":
        pd.testing.assert_frame_equal(pd.read_parquet(streamed), pd.read_parquet(memory))
    else:
        assert streamed.read_bytes() == memory.read_bytes()
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary file left
    got, want = model.evaluate(small_csv, stream=True), model.evaluate(small_csv, stream=False)
    assert got.pop("rows") == 3000 and got == want


def test_a_failed_streamed_prediction_leaves_no_output(tmp_path, small_csv):
    model = neuraltab.fit(small_csv, "y", seed=0, **TINY)
    bad = tmp_path / "bad.csv"
    read_table(small_csv).drop(columns=["c"]).to_csv(bad, index=False)
    with pytest.raises(neuraltab.errors.SchemaError, match="missing 1 feature column"):
        model.predict_file(bad, tmp_path / "out.csv", stream=True)
    assert list(tmp_path.iterdir()) == [bad]


# ---------------------------------------------------------------------------------------------------- bad input
def test_a_ragged_row_mid_file_gets_the_in_memory_readers_one_line_error(tmp_path):
    path = tmp_path / "ragged.csv"
    lines = _table(60_000).to_csv(index=False).splitlines()
    lines[45_000] += ",extra"
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(DataError) as memory:
        read_table(path)
    with pytest.raises(DataError) as streamed:
        neuraltab.fit(path, "y", stream=True, **TINY)
    assert str(streamed.value) == str(memory.value)
    assert "line 45001" in str(streamed.value) and "\n" not in str(streamed.value)


def test_a_column_that_turns_to_text_past_the_first_rows_is_read_as_text(tmp_path):
    df = _table(30_000)
    df["b"] = df["b"].astype(object)
    df.loc[29_000, "b"] = "n/k"  # numbers in the head, one word near the end
    path = tmp_path / "late.csv"
    df.to_csv(path, index=False)
    model = neuraltab.fit(path, "y", stream=True, **TINY)
    assert dict((c.name, c.kind) for c in model.schema.features)["b"] == "numeric"  # numbers, one stray word


def test_json_lines_are_not_streamed_and_the_message_names_the_option(tmp_path):
    path = tmp_path / "t.jsonl"
    _table(50).to_json(path, orient="records", lines=True, date_format="iso")
    with pytest.raises(DataError, match="not read in record batches") as info:
        neuraltab.fit(path, "y", stream=True, **TINY)
    assert "memory_budget" in info.value.render("python")


# ---------------------------------------------------------------------------------------------------- accuracy
@pytest.mark.slow
@pytest.mark.skipif(not HR.exists(), reason="needs ../shared/data/hr.csv (the shared data folder is not checked out)")
def test_a_streamed_run_on_ten_times_hr_matches_the_in_memory_accuracy(tmp_path):
    path = tmp_path / "hr10.csv"
    text = HR.read_text().splitlines()
    path.write_text("\n".join([text[0]] + text[1:] * 10) + "\n")
    options = dict(model="mlp", layers=(32,), epochs=2, batch_size=512, seed=0)
    memory = neuraltab.fit(path, "left", **options)
    # a budget whose shuffle buffer holds under half the training rows: they arrive in several blocks
    streamed = neuraltab.fit(path, "left", stream=True, memory_budget="16MB", **options)
    assert streamed.history["path_reason"].startswith("the table is streamed")
    assert any("uniform sample" in n for n in streamed.notices)  # validation and test capped by the budget
    a, b = memory.metrics["test"]["accuracy"], streamed.metrics["test"]["accuracy"]
    assert a > 0.9 and abs(a - b) < 0.02, (a, b)


# ---------------------------------------------------------------------------------------------------- memory
_RSS_SCRIPT = textwrap.dedent("""
    import json, resource, sys
    import neuraltab
    peaks = []
    for path in sys.argv[1:]:  # the small file first: the process's own start-up and warm-up are in both peaks
        model = neuraltab.fit(path, "y", stream=True, memory_budget="16MB", model="mlp", layers=(8,), epochs=1,
                              batch_size=1024, early_stopping=False)
        peaks.append({"rss_kib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss,
                      "rows": model.data_fingerprint["rows"]})
    print(json.dumps(peaks))
""")


@pytest.mark.slow
def test_the_memory_of_a_streamed_epoch_stays_flat_from_20_to_200_times_a_small_table(tmp_path):
    # the small table is 3,000 rows, so that at 20x its training rows already fill the budget's shuffle buffer
    base = _table(3000).to_csv(index=False).splitlines()
    paths = []
    for times in (20, 200):
        paths.append(tmp_path / f"x{times}.csv")
        paths[-1].write_text("\n".join([base[0]] + base[1:] * times) + "\n")
    out = subprocess.run([sys.executable, "-c", _RSS_SCRIPT, *map(str, paths)], capture_output=True, text=True,
                         timeout=600, check=True)
    small, big = json.loads(out.stdout.strip().splitlines()[-1])
    assert (small["rows"], big["rows"]) == (60_000, 600_000)
    size_200 = paths[1].stat().st_size / 2**20
    # the 200x file (33 MB; about 100 MB read into memory) may raise the process's peak by a fifth of its size at
    # most: a file read whole would raise it 15 times that
    grown = (big["rss_kib"] - small["rss_kib"]) / 1024
    assert grown < 0.2 * size_200, (grown, size_200)


def test_an_interrupted_streamed_run_resumes_to_the_uninterrupted_model(tmp_path, small_csv):
    import os
    import signal

    from neuraltab.train import Callback

    class InterruptAt(Callback):
        def on_epoch_end(self, epoch, logs):
            if epoch == 2:
                os.kill(os.getpid(), signal.SIGINT)  # as Ctrl-C would

    options = dict(stream=True, model="default", k=2, d_block=16, n_bins=8, epochs=4, patience=100, seed=3)
    reference = neuraltab.fit(small_csv, "y", **options)
    assert reference.history["path"] == "tabm-step"  # the default model's step trains block by block
    ckpt = tmp_path / "run.ckpt"
    stopped = neuraltab.fit(small_csv, "y", checkpoint=ckpt, callbacks=[InterruptAt()], **options)
    assert stopped.history["stop_reason"] == "interrupted" and ckpt.exists()
    resumed = neuraltab.fit(small_csv, "y", checkpoint=ckpt, resume=True, **options)
    assert resumed.to_bytes() == reference.to_bytes()


def test_a_folder_whose_files_have_other_columns_is_a_one_line_error(tmp_path):
    folder = tmp_path / "parts"
    folder.mkdir()
    _table(100).to_csv(folder / "a.csv", index=False)
    _table(100).drop(columns=["b"]).to_csv(folder / "b.csv", index=False)
    with pytest.raises(DataError, match="b.csv: its header differs from that of .*a.csv"):
        neuraltab.fit(folder, "y", **TINY)
