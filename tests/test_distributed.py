"""Training across processes (neuraltab.train.distributed, torchrun, ``--nproc``): hashed shards that are disjoint and
complete, per-rank statistics that merge into exactly one process's, and real two-process gloo runs: accuracy as one
process's, identical preprocessing on every rank, only rank 0 writes, resume, a rank without rows, a killed rank.

Every multi-process test has a timeout; the process group's own is lowered (NEURALTAB_DIST_TIMEOUT) so that a bug
that hangs shows as a failure within it.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from neuraltab.config import TrainConfig
from neuraltab.data.stream import (TRAIN, StreamTable, fit_preprocessor, gather_statistics, infer_streamed_schema,
                                   limits_for, merge_statistics, shard_of, split_codes, training_blocks)
from neuraltab.errors import no_notice

ROOT = Path(__file__).resolve().parents[1]
HR = ROOT / ".." / "shared" / "data" / "hr.csv"
needs_hr = pytest.mark.skipif(not HR.exists(), reason="needs ../shared/data/hr.csv (the shared data folder is not "
                                                      "checked out)")
PYTHON = sys.executable
TINY = ["--model", "mlp", "--layers", "16", "--threads", "1"]


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK", "MASTER_ADDR",
                                                             "MASTER_PORT", "LOCAL_WORLD_SIZE")}
    env["PYTHONPATH"] = str(ROOT / "src") + os.pathsep + env.get("PYTHONPATH", "")
    env["NEURALTAB_DIST_TIMEOUT"] = "60"
    env.update(extra)
    return env


def _cli(*args: str, cwd: Path, timeout: float = 240) -> subprocess.CompletedProcess:
    return subprocess.run([PYTHON, "-m", "neuraltab", *args], cwd=cwd, env=_env(), capture_output=True, text=True,
                          timeout=timeout)


def _table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    df = pd.DataFrame({"a": rng.normal(size=n), "b": rng.integers(0, 50, n).astype(float),
                       "c": rng.choice(["x", "y", "z", "w"], n, p=[0.4, 0.3, 0.2, 0.1])})
    df.loc[::13, "a"] = np.nan
    df["y"] = ((df["a"].fillna(0) + (df["c"] == "x")) > 0.2).astype(int)
    return df


# ======================================================================================================================
# Shards and merged statistics, in one process
# ======================================================================================================================


def test_shards_are_disjoint_complete_and_balanced():
    positions = np.arange(200_003)
    for world in (2, 3, 5):
        owner = shard_of(positions, seed=7, world_size=world)
        assert owner.min() == 0 and owner.max() == world - 1
        counts = np.bincount(owner, minlength=world)
        assert counts.sum() == len(positions)  # every row has exactly one rank
        assert np.abs(counts / len(positions) - 1 / world).max() < 0.01
        assert (owner == shard_of(positions, seed=7, world_size=world)).all()  # every rank computes the same
    assert not (shard_of(positions, seed=7, world_size=2) == shard_of(positions, seed=8, world_size=2)).all()


def test_training_blocks_of_the_shards_are_the_table_split_among_ranks(tmp_path):
    """Each rank's epoch hands out only its shard's training rows; the shards together are every training row once."""
    df = _table(3_000)
    df["row"] = np.arange(len(df)) * 0.731 + 0.1  # a distinct number per row (an integer count would be an ID column)
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    table = StreamTable.open(path)
    cfg = TrainConfig(seed=3, scaling="standard")
    schema, _, _ = infer_streamed_schema(table, "y", cfg, sample_rows=10_000, notify=no_notice)
    limits = limits_for(None, raw_row_bytes=100, input_row_bytes=40)
    pre = fit_preprocessor(schema, gather_statistics(table, schema, cfg, limits, test_size=0.2, valid_size=0.1),
                           scaling="standard", max_categories=cfg.max_categories, source="t", notify=no_notice)

    def rows(shard):  # the model inputs handed out, one row each (the "row" feature makes every row distinct)
        blocks = list(training_blocks(table, pre, seed=3, epoch=1, test_size=0.2, valid_size=0.1, buffer_rows=256,
                                      shard=shard))
        return np.concatenate([np.column_stack([b.x_num, b.x_cat, b.y]) for b in blocks])

    everything = rows(None)
    expected = np.flatnonzero(split_codes(np.arange(len(df)), seed=3, test_size=0.2, valid_size=0.1) == TRAIN)
    assert len(np.unique(everything, axis=0)) == len(everything) == len(expected)
    parts = [rows((r, 3)) for r in range(3)]
    assert min(len(p) for p in parts) > 0.25 * len(everything)
    joined = np.concatenate(parts)
    assert len(joined) == len(everything)  # no row twice
    np.testing.assert_array_equal(np.unique(joined, axis=0), np.unique(everything, axis=0))  # and none missing


def test_merged_shard_statistics_are_one_process_statistics(tmp_path):
    """Statistics gathered per shard and merged give the very preprocessing one process fits on the whole table:
    the same sample, category counts, gaps, target moments, and so the same bin edges and quantile knots."""
    df = _table(5_000, seed=1)
    df["v"] = np.random.default_rng(2).normal(size=len(df)) * 3 + 1  # a regression target too
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    table = StreamTable.open(path)
    for target in ("y", "v"):
        cfg = TrainConfig(seed=5)
        schema, _, _ = infer_streamed_schema(table, target, cfg, sample_rows=10_000, notify=no_notice)
        limits = limits_for(None, raw_row_bytes=100, input_row_bytes=40)
        limits = type(limits)(sample_rows=1_000, valid_rows=300, test_rows=300, buffer_rows=1024)  # samples, not all
        whole = gather_statistics(table, schema, cfg, limits, test_size=0.2, valid_size=0.1)
        parts = [gather_statistics(table, schema, cfg, limits, test_size=0.2, valid_size=0.1, shard=(r, 3))
                 for r in range(3)]
        assert sum(p.n_train for p in parts) == whole.n_train and min(p.n_train for p in parts) > 0
        merged = merge_statistics(parts, max_categories=cfg.max_categories)
        assert merged.n_split == whole.n_split
        pd.testing.assert_frame_equal(merged.sample, whole.sample)
        pd.testing.assert_frame_equal(merged.valid, whole.valid)
        pd.testing.assert_frame_equal(merged.test, whole.test)
        assert merged.missing == whole.missing
        for col in whole.counts:
            pd.testing.assert_series_equal(merged.counts[col], whole.counts[col], check_names=False)
        np.testing.assert_allclose(merged.y_moments(), whole.y_moments(), rtol=1e-12)
        fitted = [fit_preprocessor(schema, s, scaling="quantile", max_categories=cfg.max_categories, source="t",
                                   notify=no_notice).to_state() for s in (whole, merged)]
        assert fitted[0][1] == fitted[1][1]
        assert fitted[0][0].keys() == fitted[1][0].keys() and fitted[0][0]
        for key in fitted[0][0]:
            np.testing.assert_array_equal(fitted[0][0][key], fitted[1][0][key], err_msg=key)


# ======================================================================================================================
# Two processes with gloo
# ======================================================================================================================

WORKER = textwrap.dedent('''
    """A torchrun worker: fit through the Python API inside the process group, record what this rank saw."""
    import hashlib, json, os, sys
    from pathlib import Path

    import neuraltab
    import neuraltab.api
    import neuraltab.artifacts
    import neuraltab.train.checkpoint
    from neuraltab.train import Callback

    out = Path(sys.argv[1])
    rank = int(os.environ["RANK"])
    writes = []  # every bundle this rank writes (checkpoints and models)
    real_save = neuraltab.artifacts.save_bundle

    def logged(path, *args, **kwargs):
        writes.append(str(path))
        return real_save(path, *args, **kwargs)

    neuraltab.train.checkpoint.save_bundle = logged
    neuraltab.api.save_bundle = logged

    class StopInEpoch(Callback):  # Ctrl-C's way of stopping, asked on rank 0 only (callbacks run there)
        def __init__(self, epoch):
            self.epoch = epoch
        def on_step_end(self, step):
            if self.run.epoch == self.epoch:
                self.run.stop("interrupted", discard_epoch=True)

    def digest(model):
        tensors, meta = model._bundle()
        h = hashlib.sha256()
        for k in sorted(tensors):
            h.update(k.encode()); h.update(tensors[k].contiguous().numpy().tobytes())
        return h.hexdigest()

    def pre_state(model):
        tensors, meta = model.preprocessor.to_state()
        return json.loads(json.dumps([{k: v.tolist() for k, v in tensors.items()}, meta]))

    options = dict(k=2, d_block=32, n_blocks=1, n_bins=8, d_embedding=4, epochs=3, threads=1, scaling="quantile")
    ckpt = out / "run.ckpt"
    whole = neuraltab.fit(sys.argv[2], "left", **options)
    stopped = neuraltab.fit(sys.argv[2], "left", checkpoint=ckpt, checkpoint_every=1, callbacks=[StopInEpoch(2)],
                            **options)
    kept = ckpt.exists()
    resumed = neuraltab.fit(sys.argv[2], "left", checkpoint=ckpt, checkpoint_every=1, resume=True, **options)
    if rank == 0:
        whole.save(out / "model.ntab")
    (out / f"rank{rank}.json").write_text(json.dumps({
        "preprocessing": pre_state(whole), "edges": whole.network.state_dict()["num_embeddings.edges"].tolist(),
        "whole": digest(whole), "resumed": digest(resumed),
        "stopped_reason": stopped.history["stop_reason"], "stopped_epochs": len(stopped.history["epochs"]),
        "checkpoint_kept": kept, "writes": writes, "accuracy": whole.metrics["test"]["accuracy"],
        "path": whole.history["path"]}))
''')


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@needs_hr
@pytest.mark.slow
def test_torchrun_two_ranks_same_preprocessing_rank_zero_writes_and_resume(tmp_path):
    """Under torchrun with the Python API: every rank fits the same bin edges and quantile knots (those of one
    process), only rank 0 writes the checkpoint and the model, a stop asked on one rank stops both, and the resumed
    run ends with the uninterrupted run's weights, bit for bit."""
    (tmp_path / "worker.py").write_text(WORKER)
    done = subprocess.run([PYTHON, "-m", "torch.distributed.run", "--standalone", "--nproc-per-node", "2",
                           str(tmp_path / "worker.py"), str(tmp_path), str(HR)], env=_env(), capture_output=True,
                          text=True, timeout=420)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [json.loads((tmp_path / f"rank{r}.json").read_text()) for r in (0, 1)]
    assert ranks[0]["preprocessing"] == ranks[1]["preprocessing"]  # medians, quantile knots, vocabularies
    assert ranks[0]["edges"] == ranks[1]["edges"] and len(ranks[0]["edges"]) > 0  # the embeddings' bin edges
    assert ranks[0]["whole"] == ranks[1]["whole"]  # the same weights on every rank
    assert ranks[1]["writes"] == []
    assert ranks[0]["writes"].count(str(tmp_path / "run.ckpt")) >= 1 and str(tmp_path / "model.ntab") in \
        ranks[0]["writes"]
    for r in ranks:
        assert r["stopped_reason"] in ("interrupted", "stopped on another rank") and r["stopped_epochs"] == 1
        assert r["path"] == "autograd"
    assert ranks[0]["stopped_reason"] == "interrupted" and ranks[0]["checkpoint_kept"]
    assert ranks[0]["resumed"] == ranks[0]["whole"] and ranks[1]["resumed"] == ranks[1]["whole"]
    assert not (tmp_path / "run.ckpt").exists()  # removed once the resumed run finished
    assert sorted(p.name for p in tmp_path.iterdir()) == ["model.ntab", "rank0.json", "rank1.json", "worker.py"]

    # the same preprocessing as one process streaming the whole table
    import neuraltab

    one = neuraltab.fit(str(HR), "left", k=2, d_block=32, n_blocks=1, n_bins=8, d_embedding=4, epochs=1, threads=1,
                        scaling="quantile", stream=True)
    tensors, meta = one.preprocessor.to_state()
    assert json.loads(json.dumps([{k: v.tolist() for k, v in tensors.items()}, meta])) == ranks[0]["preprocessing"]
    assert one.network.state_dict()["num_embeddings.edges"].tolist() == ranks[0]["edges"]


@needs_hr
@pytest.mark.slow
def test_nproc_two_reaches_one_process_accuracy(tmp_path):
    """``neuraltab train --nproc 2``: the same global batch in two gloo processes reaches one process's test accuracy
    within noise, says which path trained, and leaves only the model file behind."""
    common = ["train", str(HR), "-t", "left", "--epochs", "6", "--json", "--threads", "1"]
    (tmp_path / "one").mkdir()
    (tmp_path / "two").mkdir()
    one = _cli(*common, "--stream", "-o", str(tmp_path / "one" / "m.ntab"), cwd=tmp_path)
    two = _cli(*common, "--nproc", "2", "-o", str(tmp_path / "two" / "m.ntab"), cwd=tmp_path / "two")
    assert one.returncode == 0, one.stderr[-2000:]
    assert two.returncode == 0, two.stderr[-2000:]
    a1 = json.loads(one.stdout)["metrics"]["test"]["accuracy"]
    r2 = json.loads(two.stdout)  # one JSON result: rank 0 alone prints
    a2 = r2["metrics"]["test"]["accuracy"]
    assert a1 > 0.93 and abs(a1 - a2) < 0.015, (a1, a2)
    assert r2["path"] == "autograd" and "DistributedDataParallel" in r2["path_reason"]
    assert any("distributed over 2 processes (gloo)" in n for n in r2["notices"])
    assert sorted(p.name for p in (tmp_path / "two").iterdir()) == ["m.ntab"]
    assert two.stderr.count("reached the last epoch") == 1  # one progress display, rank 0's


def _seed_with_empty_rank(n_rows: int, *, test_size: float, valid_size: float) -> int:
    positions = np.arange(n_rows)
    for seed in range(100_000):
        train = split_codes(positions, seed=seed, test_size=test_size, valid_size=valid_size) == TRAIN
        owner = shard_of(positions[train], seed=seed, world_size=2)
        if train.sum() >= 4 and (owner == 0).all():
            return seed
    raise AssertionError("no seed leaves rank 1 without rows")


def test_a_rank_without_rows_finishes(tmp_path):
    """A table whose every training row hashes to rank 0: rank 1 steps with weight 0 through the same number of steps,
    and the run ends normally with a model."""
    df = _table(12, seed=4)
    path = tmp_path / "tiny.csv"
    df.to_csv(path, index=False)
    seed = _seed_with_empty_rank(len(df), test_size=0.2, valid_size=0.1)
    done = _cli("train", str(path), "-t", "y", "--seed", str(seed), "--epochs", "3", "--nproc", "2", "--json",
                *TINY, cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    result = json.loads(done.stdout)
    assert result["epochs_run"] == 3 and (tmp_path / "tiny.ntab").exists()


def _children(pid: int) -> list[int]:
    out = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            out.append(int(stat.parent.name))
    return out


def _rank_of(pid: int) -> int | None:
    try:
        env = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return None
    for item in env:
        if item.startswith(b"RANK="):
            return int(item[5:])
    return None


@needs_hr
def test_a_killed_rank_ends_the_run_with_one_line(tmp_path):
    """``--nproc 2`` with rank 1 killed mid-training: the launcher stops rank 0 and exits within the timeout,
    naming the rank and the signal in one line."""
    proc = subprocess.Popen([PYTHON, "-m", "neuraltab", "train", str(HR), "-t", "left", "--epochs", "500",
                             "--no-early-stopping", "--nproc", "2", *TINY, "-o", str(tmp_path / "m.ntab")],
                            cwd=tmp_path, env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 120
        victim = None
        while victim is None and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.5)
            ranks = {_rank_of(p): p for p in _children(proc.pid)}
            if 1 in ranks and list(tmp_path.glob("*.ckpt")):  # training is under way: epoch 10's checkpoint exists
                victim = ranks[1]
        assert victim is not None, "rank 1 never got going"
        os.kill(victim, signal.SIGKILL)
        killed = time.monotonic()
        _, err = proc.communicate(timeout=90)
        assert time.monotonic() - killed < 90
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 128 + signal.SIGKILL, err[-2000:]
    last = err.strip().splitlines()[-1]
    assert last == "error: rank 1 of 2 was ended by SIGKILL; the other ranks were stopped", err[-2000:]
    assert not (tmp_path / "m.ntab").exists()


def test_a_rank_whose_peer_dies_fails_with_one_line_without_torchrun(tmp_path):
    """Two ranks started by hand (no torchrun to stop the survivor): rank 1 is killed, and rank 0's next collective
    fails; it exits with status 2 and one error line within the process group's timeout, never hanging."""
    df = _table(20_000, seed=5)
    path = tmp_path / "t.csv"
    df.to_csv(path, index=False)
    port = str(_free_port())
    procs = []
    for rank in (0, 1):
        env = _env(RANK=str(rank), WORLD_SIZE="2", LOCAL_RANK=str(rank), LOCAL_WORLD_SIZE="2",
                   MASTER_ADDR="127.0.0.1", MASTER_PORT=port, NEURALTAB_DIST_TIMEOUT="30")
        procs.append(subprocess.Popen([PYTHON, "-m", "neuraltab", "train", str(path), "-t", "y", "--epochs", "500",
                                       "--no-early-stopping", "--checkpoint-every", "1", *TINY, "-o",
                                       str(tmp_path / "m.ntab")], cwd=tmp_path, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    try:
        deadline = time.monotonic() + 120
        while not list(tmp_path.glob("*.ckpt")) and time.monotonic() < deadline and procs[0].poll() is None:
            time.sleep(0.3)
        assert list(tmp_path.glob("*.ckpt")), procs[0].poll()
        procs[1].kill()
        killed = time.monotonic()
        _, err = procs[0].communicate(timeout=60)
        assert time.monotonic() - killed < 60
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
            p.wait()
    assert procs[0].returncode == 2, err[-2000:]
    errors = [line for line in err.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and errors[0].startswith("error: rank 0 of 2: the process group failed"), err[-2000:]
    assert "Traceback" not in err
    assert list(tmp_path.glob("*.ckpt")) and not (tmp_path / "m.ntab").exists()  # rank 0's last checkpoint kept


# ======================================================================================================================
# NCCL on GPUs: run where CUDA is (a lent GPU machine), skipped elsewhere
# ======================================================================================================================

NCCL_ONE = textwrap.dedent('''
    """A caller's own NCCL group of one process (as Ray's TorchTrainer makes for one GPU worker), then neuraltab.fit."""
    import json, sys
    import torch, torch.distributed as dist
    import neuraltab
    from neuraltab.train import distributed

    torch.cuda.set_device(0)
    dist.init_process_group("nccl", init_method=f"tcp://127.0.0.1:{sys.argv[3]}", rank=0, world_size=1,
                            device_id=torch.device("cuda", 0))
    model = neuraltab.fit(sys.argv[1], "y", epochs=4, k=2, d_block=32, n_blocks=1, n_bins=8, d_embedding=4)
    ctx = distributed.current()
    print(json.dumps({"backend": ctx.backend, "device": str(ctx.device), "path": model.history["path"],
                      "accuracy": model.metrics["test"]["accuracy"], "model_device": str(model.device)}))
    dist.destroy_process_group()
''')


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="no CUDA GPU on this machine")
def test_nccl_group_of_one_trains_through_ddp_on_the_gpu(tmp_path):
    df = _table(4_000, seed=6)
    df.to_csv(tmp_path / "t.csv", index=False)
    (tmp_path / "one.py").write_text(NCCL_ONE)
    done = subprocess.run([PYTHON, str(tmp_path / "one.py"), str(tmp_path / "t.csv"), str(tmp_path),
                           str(_free_port())], env=_env(), capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout.strip().splitlines()[-1])
    assert result["backend"] == "nccl" and result["device"] == "cuda:0" and result["path"] == "autograd"
    assert result["accuracy"] > 0.8, result


@pytest.mark.skipif(not __import__("torch").cuda.is_available() or __import__("torch").cuda.device_count() < 2,
                    reason="needs two CUDA GPUs")
def test_nproc_two_on_two_gpus_uses_nccl(tmp_path):
    df = _table(4_000, seed=7)
    df.to_csv(tmp_path / "t.csv", index=False)
    done = _cli("train", str(tmp_path / "t.csv"), "-t", "y", "--epochs", "4", "--nproc", "2", "--device", "cuda",
                "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-3000:]
    result = json.loads(done.stdout)
    assert any("(nccl)" in n for n in result["notices"]) and result["metrics"]["test"]["accuracy"] > 0.8


def test_a_distributed_environment_without_a_file_or_a_rendezvous_is_one_line(tmp_path, monkeypatch):
    import neuraltab
    from neuraltab.errors import ConfigError, UserError

    monkeypatch.setenv("WORLD_SIZE", "2")
    for name in ("RANK", "MASTER_ADDR", "MASTER_PORT"):
        monkeypatch.delenv(name, raising=False)
    with pytest.raises(ConfigError, match="a distributed run reads a table file"):
        neuraltab.fit(_table(50), "y", epochs=1)
    _table(50).to_csv(tmp_path / "t.csv", index=False)
    with pytest.raises(UserError, match="RANK, MASTER_ADDR, MASTER_PORT are not set; launch it with torchrun"):
        neuraltab.fit(str(tmp_path / "t.csv"), "y", epochs=1)
