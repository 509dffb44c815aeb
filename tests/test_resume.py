"""Checkpoints and resume: a killed or interrupted run continues to exactly the model an uninterrupted run makes."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import neuraltab
from neuraltab.errors import ArtifactError
from neuraltab.train import Callback

from conftest import FAST, FillingFile, make_table

OPTIONS = {**FAST, "epochs": 12, "patience": 100}  # every epoch runs: the interruption lands mid-run


class _InterruptAt(Callback):
    """Sends this process SIGINT (as Ctrl-C would) at the end of one epoch."""

    def __init__(self, epoch: int) -> None:
        self.epoch = epoch

    def on_epoch_end(self, epoch, logs):
        if epoch == self.epoch:
            os.kill(os.getpid(), signal.SIGINT)


def test_ctrl_c_keeps_the_best_model_and_resume_gives_the_uninterrupted_result(tmp_path):
    df = make_table(300)
    reference = neuraltab.fit(df, target="label", **OPTIONS)
    ckpt = tmp_path / "run.ckpt"

    stopped = neuraltab.fit(df, target="label", checkpoint=ckpt, checkpoint_every=100, callbacks=[_InterruptAt(5)],
                            **OPTIONS)
    assert stopped.history["stop_reason"] == "interrupted"
    assert 5 <= len(stopped.history["epochs"]) < 12
    assert stopped.metrics["test"]["accuracy"] > 0  # a usable model came back, not an exception
    assert ckpt.exists()  # written on the signal even though checkpoint_every was not reached

    resumed = neuraltab.fit(df, target="label", checkpoint=ckpt, resume=True, **OPTIONS)
    assert not ckpt.exists()  # removed once training finished
    assert resumed.to_bytes() == reference.to_bytes()


def test_checkpoint_from_other_options_is_refused(tmp_path):
    df = make_table(200)
    ckpt = tmp_path / "run.ckpt"
    neuraltab.fit(df, target="label", checkpoint=ckpt, callbacks=[_InterruptAt(2)], **OPTIONS)
    with pytest.raises(ArtifactError, match="other data or with other options"):
        neuraltab.fit(df, target="label", checkpoint=ckpt, resume=True, **{**OPTIONS, "lr": 0.01})


def test_a_full_disk_at_a_later_checkpoint_keeps_the_previous_one_and_resume_continues(tmp_path, monkeypatch):
    """Replacing a checkpoint needs room for a second copy, so a disk that held the first may not hold the next: the
    run stops with one line that says so, the previous checkpoint stays whole, and --resume finishes the run."""
    from neuraltab import artifacts

    df = make_table(200)
    reference = neuraltab.fit(df, target="label", **OPTIONS)
    ckpt = tmp_path / "run.ckpt"
    real_write, real_fdopen, writes = artifacts.atomic_write_bytes, os.fdopen, []

    def fills_up_at_the_third(path, data, *, force):
        writes.append(path)
        if len(writes) < 3:
            return real_write(path, data, force=force)
        with monkeypatch.context() as m:
            m.setattr(artifacts.os, "fdopen", lambda fd, *a, **k: FillingFile(real_fdopen(fd, *a, **k)))
            return real_write(path, data, force=force)

    monkeypatch.setattr(artifacts, "atomic_write_bytes", fills_up_at_the_third)
    with pytest.raises(ArtifactError) as info:
        neuraltab.fit(df, target="label", checkpoint=ckpt, checkpoint_every=1, **OPTIONS)
    message = str(info.value)
    assert "\n" not in message and message.startswith(f"{ckpt}: cannot write (the disk is full")
    assert message.endswith("the previous checkpoint is kept as it was, so the same command with resume=True "
                            "continues from it once there is room")
    assert info.value.render("cli").endswith("the same command with --resume continues from it once there is room")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["run.ckpt"]  # no temporary file
    monkeypatch.undo()
    resumed = neuraltab.fit(df, target="label", checkpoint=ckpt, checkpoint_every=1, resume=True, **OPTIONS)
    assert resumed.to_bytes() == reference.to_bytes()
    assert not ckpt.exists()


def _train_cmd(data: Path, out: Path, *extra: str) -> list[str]:
    return [sys.executable, "-m", "neuraltab.cli", "train", str(data), "--target", "label", "--output", str(out),
            "--epochs", "40", "--patience", "100", "--k", "2", "--d-block", "32", "--n-blocks", "1",
            "--batch-size", "32", "--threads", "1", "--checkpoint-every", "1", "--quiet", *extra]


def test_sigkill_mid_training_then_resume_gives_the_same_model_file(tmp_path):
    data = tmp_path / "data.csv"
    make_table(3000).to_csv(data, index=False)
    reference = tmp_path / "reference.ntab"
    subprocess.run(_train_cmd(data, reference), check=True, capture_output=True, timeout=300)

    out = tmp_path / "run.ntab"
    ckpt = tmp_path / "run.ntab.ckpt"
    proc = subprocess.Popen(_train_cmd(data, out), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    time.sleep(0.2)  # land somewhere inside a later epoch
    assert proc.poll() is None, "training finished before it could be killed; make the run longer"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert ckpt.exists() and not out.exists()
    assert not [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]  # no half-written file left behind

    subprocess.run(_train_cmd(data, out, "--resume"), check=True, capture_output=True, timeout=300)
    assert out.read_bytes() == reference.read_bytes()
    assert not ckpt.exists()


@pytest.mark.parametrize(("sent", "status"), [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_sigterm_saves_the_best_model_so_far_and_the_checkpoint(tmp_path, sent, status):
    data = tmp_path / "data.csv"
    make_table(3000).to_csv(data, index=False)
    out = tmp_path / "run.ntab"
    ckpt = tmp_path / "run.ntab.ckpt"
    proc = subprocess.Popen(_train_cmd(data, out), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    deadline = time.monotonic() + 120
    while not ckpt.exists() and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)  # the first checkpoint means training is under way and the handlers are installed
    assert proc.poll() is None, "training finished before it could be stopped; make the run longer"
    proc.send_signal(sent)
    stdout, stderr = proc.communicate(timeout=120)
    assert proc.returncode == status, stderr  # as a shell reports it: a script can tell the run did not finish
    assert "Traceback" not in stderr
    model = neuraltab.load(out)
    assert model.history["stop_reason"] == "interrupted"
    assert len(model.history["epochs"]) < 40
    assert ckpt.exists()  # kept, so that --resume can continue the run


def test_ctrl_c_while_the_command_starts_is_one_line_and_status_130(monkeypatch, capsys):
    from neuraltab import cli
    from neuraltab.cli import runtime

    def interrupted(argv):  # Ctrl-C lands while the entry point sets up and loads the commands (torch, pandas)
        raise KeyboardInterrupt

    monkeypatch.setattr(runtime, "prepare", interrupted)
    with pytest.raises(SystemExit) as info:
        cli.run()
    assert info.value.code == 130
    assert capsys.readouterr().err == "interrupted\n"
