"""Bad input gets a clear error and nothing is lost.

Through the CLI, every bad input must: exit with status 2; print exactly one line on stderr, ``error: ...``, that names
the file or column and says how to fix it; print no traceback; and leave the folder exactly as it was (no model
file, no predictions file, no temporary file, inputs unchanged). Through the Python API the same inputs raise the
matching :mod:`neuraltab.errors` subclass.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import pickle
import shutil
import struct
import subprocess
import sys
import tempfile
import traceback
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import save_file
from typer.testing import CliRunner

import neuraltab
from neuraltab.artifacts import FORMAT_VERSION
from neuraltab.cli import app
from neuraltab.errors import ArtifactError, ConfigError, DataError, SchemaError, UserError

FAST = ["--epochs", "2", "--k", "2", "--d-block", "16", "--n-blocks", "1", "--threads", "1"]
FAST_API = {"epochs": 2, "k": 2, "d_block": 16, "n_blocks": 1, "threads": 1}

runner = CliRunner()


# ======================================================================================================================
# Helpers
# ======================================================================================================================


def make_hr(n: int = 200, seed: int = 0) -> pd.DataFrame:
    """An HR-like table: numeric, integer and string columns and a 0/1 target ``left``."""
    rng = np.random.default_rng(seed)
    satisfaction = rng.uniform(0, 1, n).round(3)
    hours = rng.integers(120, 300, n)
    dept = rng.choice(["sales", "support", "it"], n)
    salary = rng.choice(["low", "medium", "high"], n)
    left = ((satisfaction < 0.4) ^ (rng.uniform(size=n) < 0.1)).astype(np.int64)
    return pd.DataFrame({"satisfaction": satisfaction, "hours": hours, "dept": dept, "salary": salary, "left": left})


def snapshot(folder: Path) -> dict[str, str]:
    """Every file under ``folder`` (hidden ones included) with the SHA-256 of its content."""
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def invoke(*args: object):
    return runner.invoke(app, [str(a) for a in args])


def assert_user_error(result, *phrases: str) -> str:
    """Exit 2, one ``error: ...`` line on stderr containing every phrase, nothing on stdout, no traceback."""
    tb = ""
    if result.exc_info and not isinstance(result.exception, SystemExit):
        tb = "".join(traceback.format_exception(*result.exc_info))
    context = f"exit {result.exit_code}\n--- stdout\n{result.stdout}\n--- stderr\n{result.stderr}\n{tb}"
    assert not tb, f"an exception escaped instead of a one-line error:\n{context}"
    assert result.exit_code == 2, context
    lines = result.stderr.splitlines()
    assert len(lines) == 1, f"expected exactly one line on stderr:\n{context}"
    line = lines[0]
    assert line.startswith("error: "), context
    assert "Traceback" not in result.stderr + result.stdout, context
    assert result.stdout == "", context
    for phrase in phrases:
        assert phrase.lower() in line.lower(), f"{phrase!r} missing from: {line}"
    return line


def check_bad_cli(folder: Path, args: list[object], *phrases: str) -> str:
    """Run the CLI on a bad input and check the error contract and that ``folder`` is left exactly as it was."""
    before = snapshot(folder)
    line = assert_user_error(invoke(*args), *phrases)
    assert snapshot(folder) == before, "the folder changed: a partial output or temp file was left, or input modified"
    return line


def rewrite_header(data: bytes, edit) -> bytes:
    """Rewrite a safetensors file's JSON header with ``edit(header) -> header``; the tensor bytes stay as they are."""
    (n_header,) = struct.unpack("<Q", data[:8])
    header = edit(json.loads(data[8:8 + n_header]))
    raw = json.dumps(header, separators=(",", ":")).encode()
    raw += b" " * (-len(raw) % 8)  # safetensors pads the header to 8 bytes
    return struct.pack("<Q", len(raw)) + raw + data[8 + n_header:]


def bump_format_version(header: dict) -> dict:
    """Raise every ``format_version`` in the ``__metadata__``, wherever this file format keeps it (directly, or in a
    JSON document stored as a metadata value)."""
    found = []

    def bump(obj):
        if isinstance(obj, dict):
            out = {}
            for key, value in obj.items():
                if key == "format_version":
                    found.append(value)
                    out[key] = str(int(value) + 1) if isinstance(value, str) else int(value) + 1
                else:
                    out[key] = bump(value)
            return out
        if isinstance(obj, str) and obj.startswith("{"):
            try:
                parsed = json.loads(obj)
            except ValueError:
                return obj
            return json.dumps(bump(parsed), separators=(",", ":"))
        return obj

    header = {**header, "__metadata__": bump(header["__metadata__"])}
    assert found, "no format_version in the model file's metadata: update this test to the new file layout"
    return header


# ======================================================================================================================
# Fixtures
# ======================================================================================================================


@pytest.fixture(scope="module")
def model_file(tmp_path_factory) -> Path:
    """A trained model on the HR-like table (in its own folder: tests copy or only read it)."""
    folder = tmp_path_factory.mktemp("model")
    data = folder / "hr.csv"
    make_hr().to_csv(data, index=False)
    result = invoke("train", data, "--target", "left", *FAST, "--quiet", "-o", folder / "hr.ntab")
    assert result.exit_code == 0, result.stderr
    return folder / "hr.ntab"


@pytest.fixture
def hr_csv(tmp_path) -> Path:
    path = tmp_path / "hr.csv"
    make_hr().to_csv(path, index=False)
    return path


# ======================================================================================================================
# train: bad tables
# ======================================================================================================================


def _write(path: Path, content: bytes | str) -> Path:
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    return path


def _junk_without_nul(n: int = 4000) -> bytes:
    """Bytes no text encoding explains: control characters and invalid UTF-8, but no NUL."""
    return bytes(((i * 37 + 11) % 255) + 1 for i in range(n))


BAD_TABLES = {
    # case: (file name, content or None for "does not exist", --target, phrases the message must contain)
    "not-found": ("missing.csv", None, "left", ["missing.csv", "not found", "check the path"]),
    "empty": ("empty.csv", b"", "left", ["empty.csv", "empty", "header row"]),
    "header-only": ("header.csv", "satisfaction,hours,left\n", "left", ["header.csv", "no data rows", "add rows"]),
    "header-only-no-newline": ("header.csv", "satisfaction,hours,left", "left", ["header.csv", "no data rows"]),
    "blank-lines-only": ("blank.csv", "\n\n   \n", "left", ["blank.csv", "empty"]),
    "too-few-rows": ("tiny.csv", "satisfaction,hours,left\n0.1,150,1\n0.9,200,0\n0.5,180,0\n", "left",
                     ["tiny.csv", "3", "at least"]),
    "binary-nul-bytes": ("junk.csv", b"PK\x03\x04\x14\x00\x06\x00" + bytes(range(256)) * 8, "left",
                         ["junk.csv", "unreadable encoding", "UTF-8"]),
    "binary-no-nul": ("junk.csv", _junk_without_nul(), "left", ["junk.csv", "unreadable encoding", "UTF-8"]),
    "ragged-rows": ("ragged.csv", "satisfaction,hours,left\n0.1,150,1\n0.9,200,0\n0.5,180,0,extra\n0.2,160,1\n",
                    "left", ["ragged.csv", "line 4", "4 fields", "header has 3"]),
}


@pytest.mark.parametrize("case", list(BAD_TABLES))
def test_train_rejects_bad_table(tmp_path, case):
    name, content, target, phrases = BAD_TABLES[case]
    data = tmp_path / name
    if content is not None:
        _write(data, content)
    # no --output: a model would land next to the data, inside the checked folder
    check_bad_cli(tmp_path, ["train", data, "--target", target, *FAST], *phrases)


def test_train_rejects_a_folder_as_data(tmp_path, monkeypatch):
    (tmp_path / "tables").mkdir()
    check_bad_cli(tmp_path, ["train", tmp_path / "tables", "--target", "left", *FAST], "tables", "folder")
    monkeypatch.chdir(tmp_path / "tables")
    check_bad_cli(tmp_path, ["train", ".", "--target", "left", *FAST], "folder")  # `neuraltab train .`


def test_target_column_missing_suggests_the_close_match(tmp_path, hr_csv):
    line = check_bad_cli(tmp_path, ["train", hr_csv, "--target", "lef", *FAST], "hr.csv", "'lef'", "not found")
    assert "did you mean 'left'?" in line


def test_target_column_missing_lists_the_columns_when_nothing_is_close(tmp_path, hr_csv):
    line = check_bad_cli(tmp_path, ["train", hr_csv, "--target", "churned", *FAST], "hr.csv", "'churned'")
    assert "available columns" in line and "'left'" in line and "'satisfaction'" in line


def test_target_with_a_single_class(tmp_path):
    data = tmp_path / "hr.csv"
    make_hr().assign(left=1).to_csv(data, index=False)
    check_bad_cli(tmp_path, ["train", data, "--target", "left", *FAST],
                  "hr.csv", "'left'", "single class", "at least two classes")


def test_target_with_every_value_missing(tmp_path):
    data = tmp_path / "hr.csv"
    make_hr().assign(left=np.nan).to_csv(data, index=False)
    check_bad_cli(tmp_path, ["train", data, "--target", "left", *FAST], "hr.csv", "'left'", "missing")


# ======================================================================================================================
# train: bad options, bad output folder
# ======================================================================================================================


@pytest.mark.parametrize(
    "option, phrases",
    [
        (["--test-size", "2"], ["test", "size", "2"]),
        (["--model", "foo"], ["model", "'foo'", "default", "mlp"]),
        (["--epochs", "0"], ["epochs", "positive"]),
        (["--optimizer", "adamm"], ["optimizer", "'adamm'", "did you mean 'adam"]),
        (["--task", "binary", "--seed", "-1"], ["seed", "-1"]),
    ],
    ids=["test-size-2", "model-foo", "epochs-0", "optimizer-typo", "seed-negative"],
)
def test_invalid_option_values(tmp_path, hr_csv, option, phrases):
    check_bad_cli(tmp_path, ["train", hr_csv, "--target", "left", *FAST, *option], *phrases)


def test_output_folder_that_does_not_exist(tmp_path, hr_csv, model_file):
    out = tmp_path / "no_such_folder" / "hr.ntab"
    check_bad_cli(tmp_path, ["train", hr_csv, "--target", "left", *FAST, "-o", out], "no_such_folder", "create it")
    check_bad_cli(tmp_path, ["predict", model_file, hr_csv, "-o", tmp_path / "no_such_folder" / "p.csv"],
                  "no_such_folder", "create it")


@contextlib.contextmanager
def unprivileged():
    """Run the block as the 'nobody' user when the tests run as root (root ignores folder permissions).

    The saved user id stays root, so the block's end switches back; real and effective ids both change, so
    ``os.access`` and the kernel see the same unprivileged user.
    """
    if os.geteuid() != 0:
        yield
        return
    if not hasattr(os, "setresuid"):
        pytest.skip("running as root, and this platform cannot drop to another user and back")
    import pwd

    try:
        nobody = pwd.getpwnam("nobody").pw_uid
    except KeyError:
        pytest.skip("running as root and there is no 'nobody' user to drop to")
    os.setresuid(nobody, nobody, 0)
    try:
        yield
    finally:
        os.setresuid(0, 0, 0)


@pytest.mark.skipif(os.name != "posix", reason="folder permissions as tested here are POSIX")
def test_output_folder_that_is_not_writable(model_file):
    folder = Path(tempfile.mkdtemp(prefix="neuraltab-ro-"))  # not tmp_path: its parents are private to the owner
    locked = folder / "locked"
    try:
        os.chmod(folder, 0o755)
        data = folder / "hr.csv"
        make_hr().to_csv(data, index=False)
        model = folder / "hr.ntab"
        shutil.copyfile(model_file, model)
        os.chmod(data, 0o644)
        os.chmod(model, 0o644)
        locked.mkdir()
        os.chmod(locked, 0o555)
        runs = {"hr.ntab": ["train", data, "--target", "left", *FAST, "--quiet", "-o"],
                "predictions.csv": ["predict", model, data, "--quiet", "-o"]}
        # the same commands into a writable folder work (and load every module they import lazily)
        writable = Path(tempfile.mkdtemp(prefix="neuraltab-rw-"))
        try:
            for name, args in runs.items():
                ok = invoke(*args, writable / name)
                assert ok.exit_code == 0, ok.stderr
        finally:
            shutil.rmtree(writable, ignore_errors=True)
        for name, args in runs.items():
            before = snapshot(folder)
            with unprivileged():
                result = invoke(*args, locked / name)
            line = assert_user_error(result, str(locked), "write to another")
            assert "not writable" in line or "permission denied" in line.lower(), line
            assert snapshot(folder) == before
            assert list(locked.iterdir()) == []
    finally:
        if locked.exists():
            os.chmod(locked, 0o755)
        shutil.rmtree(folder, ignore_errors=True)


# ======================================================================================================================
# predict / evaluate: tables that do not fit the model
# ======================================================================================================================


def test_predict_missing_feature_column(tmp_path, model_file):
    data = tmp_path / "new.csv"
    make_hr().drop(columns=["satisfaction"]).to_csv(data, index=False)
    check_bad_cli(tmp_path, ["predict", model_file, data, "-o", tmp_path / "pred.csv"],
                  "new.csv", "'satisfaction'", "missing", "add")


def test_predict_names_every_missing_feature_column(tmp_path, model_file):
    data = tmp_path / "new.csv"
    make_hr().drop(columns=["satisfaction", "dept"]).to_csv(data, index=False)
    check_bad_cli(tmp_path, ["predict", model_file, data, "-o", tmp_path / "pred.csv"],
                  "new.csv", "'satisfaction'", "'dept'")


@pytest.mark.parametrize("command", ["predict", "evaluate"])
def test_predict_numeric_column_now_text(tmp_path, model_file, command):
    data = tmp_path / "new.csv"
    table = make_hr()
    table["satisfaction"] = np.where(np.arange(len(table)) % 2 == 0, "high", "low")
    table.to_csv(data, index=False)
    output = ["-o", tmp_path / "pred.csv"] if command == "predict" else []
    check_bad_cli(tmp_path, [command, model_file, data, *output],
                  "new.csv", "'satisfaction'", "should hold numbers", "fix the column")


def test_predict_extra_columns_are_ignored_with_a_notice(tmp_path, model_file):
    data = tmp_path / "new.csv"
    make_hr().drop(columns=["left"]).assign(manager="ann", bonus=0.5).to_csv(data, index=False)
    out = tmp_path / "pred.csv"
    result = invoke("predict", model_file, data, "-o", out)
    assert result.exit_code == 0, result.stderr
    notices = [line for line in result.stderr.splitlines() if "ignoring" in line]
    assert len(notices) == 1 and "'manager'" in notices[0] and "'bonus'" in notices[0], result.stderr
    assert "error" not in result.stderr.lower()
    assert len(pd.read_csv(out)) == 200


def test_predict_refuses_to_overwrite_an_existing_output(tmp_path, model_file, hr_csv):
    (tmp_path / "pred.csv").write_text("keep me\n")
    check_bad_cli(tmp_path, ["predict", model_file, hr_csv, "-o", tmp_path / "pred.csv"],
                  "pred.csv", "already exists", "--force")


def test_evaluate_with_labels_the_model_never_saw(tmp_path, model_file):
    data = tmp_path / "new.csv"
    make_hr().assign(left=np.where(np.arange(200) % 2 == 0, 1, 7)).to_csv(data, index=False)
    check_bad_cli(tmp_path, ["evaluate", model_file, data], "new.csv", "'left'", "7", "known labels")


def test_predict_unknown_id_column(tmp_path, model_file, hr_csv):
    check_bad_cli(tmp_path, ["predict", model_file, hr_csv, "--id", "employee_id", "-o", tmp_path / "pred.csv"],
                  "'employee_id'", "--id")


@pytest.mark.parametrize("name", ["prediction", "proba_1"])
def test_predict_id_column_named_like_an_output_column(tmp_path, model_file, name):
    data = tmp_path / "new.csv"
    make_hr().assign(**{name: [f"e{i}" for i in range(200)]}).to_csv(data, index=False)
    # the ID would be overwritten by the predictions: refused, naming the clash
    check_bad_cli(tmp_path, ["predict", model_file, data, "--id", name, "-o", tmp_path / "pred.csv"],
                  f"'{name}'", "--id", "output column", "rename")


def test_evaluate_without_the_target_column(tmp_path, model_file):
    data = tmp_path / "new.csv"
    make_hr().drop(columns=["left"]).to_csv(data, index=False)
    check_bad_cli(tmp_path, ["evaluate", model_file, data], "new.csv", "'left'")


@pytest.mark.parametrize("case", ["not-found", "empty", "ragged-rows", "binary-nul-bytes"])
def test_predict_rejects_bad_table(tmp_path, model_file, case):
    name, content, _, phrases = BAD_TABLES[case]
    data = tmp_path / name
    if content is not None:
        _write(data, content)
    check_bad_cli(tmp_path, ["predict", model_file, data, "-o", tmp_path / "pred.csv"], *phrases)


# ======================================================================================================================
# Model files that are not (or no longer) good model files
# ======================================================================================================================


def _flip_middle(data: bytes) -> bytes:
    (n_header,) = struct.unpack("<Q", data[:8])
    middle = max(len(data) // 2, 8 + n_header + 16)  # inside the tensor bytes, past the header
    return data[:middle] + bytes(b ^ 0xFF for b in data[middle:middle + 16]) + data[middle + 16:]


def _foreign_safetensors(path: Path) -> None:
    save_file({"weight": torch.zeros(4, 3), "bias": torch.ones(3)}, str(path), metadata={"format": "pt"})


BAD_MODELS = {
    # case: (make the file at path from the good model's bytes, phrases the message must contain)
    "not-found": (None, ["not found"]),
    "empty": (lambda p, good: p.write_bytes(b""), ["truncated"]),
    "bytes-flipped-in-the-middle": (lambda p, good: p.write_bytes(_flip_middle(good)), ["corrupted", "retrain"]),
    "truncated-to-half": (lambda p, good: p.write_bytes(good[: len(good) // 2]), ["retrain"]),
    "truncated-end": (lambda p, good: p.write_bytes(good[:-10]), ["retrain"]),
    "a-csv-file": (lambda p, good: make_hr().to_csv(p, index=False), ["not a neuraltab model file"]),
    "foreign-safetensors": (lambda p, good: _foreign_safetensors(p), ["not a neuraltab model file"]),
    "pickle-renamed": (lambda p, good: p.write_bytes(pickle.dumps({"weights": [1, 2, 3]})), ["pickle"]),
    "torch-save-renamed": (lambda p, good: torch.save({"w": torch.zeros(2)}, p), ["not a neuraltab model file"]),
    "newer-format-version": (lambda p, good: p.write_bytes(rewrite_header(good, bump_format_version)),
                             [f"format {FORMAT_VERSION + 1}", "upgrade neuraltab"]),
}


@pytest.mark.parametrize("case", list(BAD_MODELS))
@pytest.mark.parametrize("command", ["predict", "evaluate", "info"])
def test_bad_model_file(tmp_path, model_file, hr_csv, case, command):
    make, phrases = BAD_MODELS[case]
    bad = tmp_path / "model.ntab"
    if make is not None:
        make(bad, model_file.read_bytes())
    args = {"predict": ["predict", bad, hr_csv, "-o", tmp_path / "pred.csv"],
            "evaluate": ["evaluate", bad, hr_csv], "info": ["info", bad]}[command]
    line = check_bad_cli(tmp_path, args, "model.ntab", *phrases)
    if case.startswith("truncated"):
        assert "truncated" in line or "corrupted" in line


def test_header_rewrite_alone_keeps_the_model_loadable(tmp_path, model_file):
    """Control for the newer-format case: the same header rewrite without the bump loads fine, so the error above
    is about the version and not about the rewriting."""
    same = tmp_path / "same.ntab"
    same.write_bytes(rewrite_header(model_file.read_bytes(), lambda header: header))
    assert invoke("info", same).exit_code == 0


def test_bad_model_file_is_not_run(tmp_path, hr_csv):
    """A pickle that would write a file when unpickled is refused without being unpickled."""
    marker = tmp_path / "pwned"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    bad = tmp_path / "model.ntab"
    bad.write_bytes(pickle.dumps(Payload()))
    check_bad_cli(tmp_path, ["predict", bad, hr_csv, "-o", tmp_path / "pred.csv"], "model.ntab", "pickle")
    assert not marker.exists()


# ======================================================================================================================
# The real console script: status 2, one line on stderr, nothing on stdout
# ======================================================================================================================


def _console(*args: object, cwd: Path) -> subprocess.CompletedProcess:
    script = Path(sys.executable).with_name("neuraltab")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "neuraltab.cli"]
    return subprocess.run([*command, *map(str, args)], cwd=cwd, capture_output=True, text=True, timeout=120,
                          env={**os.environ, "NO_COLOR": "1"})


def test_console_script_bad_input_exits_2_with_one_line_on_stderr(tmp_path):
    proc = _console("train", tmp_path / "missing.csv", "--target", "left", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == ""
    assert proc.stderr.splitlines() == [f"error: {tmp_path / 'missing.csv'}: file not found; check the path"]
    assert list(tmp_path.iterdir()) == []


def test_console_script_unparsable_option_value(tmp_path, hr_csv):
    """A value the option parser itself rejects (not a number) follows the same contract as every other bad input."""
    before = snapshot(tmp_path)
    proc = _console("train", hr_csv, "--target", "left", "--epochs", "ten", cwd=tmp_path)
    assert proc.returncode == 2
    assert proc.stdout == "" and "Traceback" not in proc.stderr
    lines = proc.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    assert "--epochs" in lines[0] and "integer" in lines[0]  # typer's own message does not echo the value
    assert snapshot(tmp_path) == before


# ======================================================================================================================
# A real full disk: a small tmpfs, filled up (mounting needs root, as the development and CI machines run the tests)
# ======================================================================================================================


@contextlib.contextmanager
def small_disk(size_kib: int = 512):
    """A fresh folder with a ``size_kib`` KiB tmpfs mounted on it, unmounted at the end. Skips, saying why, where no
    tmpfs can be mounted (not Linux, not root, or root without the right to mount in a container)."""
    if not sys.platform.startswith("linux"):
        pytest.skip("a real full disk is made by mounting a small tmpfs, which needs Linux")
    if os.geteuid() != 0:
        pytest.skip("a real full disk is made by mounting a small tmpfs, which needs root; run the tests as root")
    if shutil.which("mount") is None or shutil.which("umount") is None:
        pytest.skip("a real full disk is made by mounting a small tmpfs, and there is no mount/umount command")
    folder = Path(tempfile.mkdtemp(prefix="neuraltab-disk-"))
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size_kib}k", "tmpfs", str(folder)],
                          capture_output=True, text=True, timeout=30, check=False)
    if proc.returncode != 0:
        folder.rmdir()
        why = proc.stderr.strip().splitlines()[0] if proc.stderr.strip() else f"mount exited {proc.returncode}"
        pytest.skip(f"cannot mount a small tmpfs to fill up ({why}); a container needs CAP_SYS_ADMIN for this test")
    try:
        yield folder
    finally:
        if subprocess.run(["umount", str(folder)], capture_output=True, timeout=30, check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(folder)], capture_output=True, timeout=30, check=False)
        folder.rmdir()


def fill(disk: Path, *, leave: int) -> None:
    """Fill ``disk`` with one file until only ``leave`` bytes are free."""
    def free() -> int:
        stats = os.statvfs(disk)
        return stats.f_bavail * stats.f_frsize

    with open(disk / "filler.bin", "wb") as fh:
        fh.write(b"\0" * (free() - leave))
    assert free() == leave


def assert_one_error_line(proc: subprocess.CompletedProcess, expected: str) -> None:
    context = f"exit {proc.returncode}\n--- stdout\n{proc.stdout}\n--- stderr\n{proc.stderr}"
    assert proc.returncode == 2, context
    assert "Traceback" not in proc.stderr, context
    assert proc.stderr.splitlines() == [f"error: {expected}"], context


def test_a_full_disk_when_saving_the_model(tmp_path):
    """train on a disk without room for the model: status 2, one line naming the model file and the full disk and
    its size, and the folder exactly as it was (the input unchanged; no model, no partial or temporary file)."""
    quiet_fast = [*FAST, "--quiet"]
    with small_disk() as disk:
        data = disk / "hr.csv"
        make_hr(300).to_csv(data, index=False)
        elsewhere = tmp_path / "hr.ntab"  # the same run where there is room: the model file is this size
        assert invoke("train", data, "--target", "left", *quiet_fast, "-o", elsewhere).exit_code == 0
        size = elsewhere.stat().st_size
        fill(disk, leave=4096)  # a few KiB: the save starts, part of it lands, then the disk is full
        assert size > 4096, "the model would fit: make the disk fuller"
        before = snapshot(disk)
        proc = _console("train", data, "--target", "left", *quiet_fast, cwd=tmp_path)
        assert_one_error_line(proc, f"{disk / 'hr.ntab'}: cannot write (the disk is full: No space left on device, "
                                    f"{size:,} bytes to write); free some space or write to another file")
        assert proc.stdout == ""
        assert snapshot(disk) == before


def test_a_full_disk_when_writing_predictions(tmp_path):
    """predict a big table onto a full disk: with --output (new, or replacing an old file with --force) status 2, one
    line, and the folder as it was (the old predictions intact); to a redirected stdout, status 2 and one line saying
    the output is incomplete (the file is the shell's, not neuraltab's)."""
    model = tmp_path / "m.ntab"
    with small_disk() as disk:
        data = disk / "rows.csv"
        make_hr(3000).to_csv(data, index=False)
        assert invoke("train", data, "--target", "left", *FAST, "--quiet", "-o", model).exit_code == 0
        assert invoke("predict", model, data, "--quiet", "-o", tmp_path / "room.csv").exit_code == 0
        size = (tmp_path / "room.csv").stat().st_size  # the predictions, where there is room for them
        old = disk / "old.csv"
        old.write_text("prediction\nyes\n")
        fill(disk, leave=4096)
        before = snapshot(disk)
        for output, extra in ((disk / "new.csv", []), (old, ["--force"])):
            proc = _console("predict", model, data, "-o", output, *extra, cwd=tmp_path)
            assert_one_error_line(proc, f"{output}: cannot write (the disk is full: No space left on device, "
                                        f"{size:,} bytes to write); free some space or write to another file")
            assert snapshot(disk) == before
        with open(disk / "redirected.csv", "wb") as stdout:
            command = [sys.executable, "-m", "neuraltab.cli", "predict", str(model), str(data)]
            proc = subprocess.run(command, stdout=stdout, stderr=subprocess.PIPE, text=True, timeout=120, cwd=tmp_path,
                                  env={**os.environ, "NO_COLOR": "1"}, check=False)
        assert_one_error_line(proc, "standard output: cannot write the predictions (No space left on device), so what "
                                    "it got is incomplete; free some space where it goes, or write them with --output")
        assert 0 < (disk / "redirected.csv").stat().st_size <= 4096


# ======================================================================================================================
# The Python API raises the matching neuraltab.errors subclass
# ======================================================================================================================


def _one_line(exc: pytest.ExceptionInfo) -> str:
    message = str(exc.value)
    assert "\n" not in message and message
    assert isinstance(exc.value, UserError)
    return message


def test_api_missing_and_empty_files_raise_data_error(tmp_path):
    with pytest.raises(DataError) as exc:
        neuraltab.fit(tmp_path / "missing.csv", target="left", **FAST_API)
    assert "missing.csv" in _one_line(exc)
    _write(tmp_path / "empty.csv", b"")
    with pytest.raises(DataError) as exc:
        neuraltab.fit(str(tmp_path / "empty.csv"), target="left", **FAST_API)
    assert "empty.csv" in _one_line(exc)
    _write(tmp_path / "ragged.csv", BAD_TABLES["ragged-rows"][1])
    with pytest.raises(DataError) as exc:
        neuraltab.fit(tmp_path / "ragged.csv", target="left", **FAST_API)
    assert "line 4" in _one_line(exc)


def test_api_schema_errors(tmp_path):
    with pytest.raises(SchemaError) as exc:
        neuraltab.fit(make_hr(), target="lef", **FAST_API)
    assert "did you mean 'left'?" in _one_line(exc)
    with pytest.raises(SchemaError) as exc:
        neuraltab.fit(make_hr().assign(left=0), target="left", **FAST_API)
    assert "single class" in _one_line(exc)


def test_api_config_errors():
    with pytest.raises(ConfigError) as exc:
        neuraltab.fit(make_hr(), target="left", test_size=2)
    assert "test_size" in _one_line(exc)
    with pytest.raises(ConfigError) as exc:
        neuraltab.fit(make_hr(), target="x", batchsize=3)
    assert "did you mean 'batch_size'" in _one_line(exc)
    assert isinstance(exc.value, ValueError)  # scikit-learn style callers catch ValueError


def test_api_predict_errors(model_file):
    model = neuraltab.load(model_file)
    with pytest.raises(SchemaError) as exc:
        model.predict(make_hr().drop(columns=["hours"]))
    assert "'hours'" in _one_line(exc)
    with pytest.raises(SchemaError) as exc:
        model.predict(make_hr().assign(hours="many"))
    assert "'hours'" in _one_line(exc)


@pytest.mark.parametrize("case", ["not-found", "bytes-flipped-in-the-middle", "truncated-to-half", "a-csv-file",
                                  "pickle-renamed", "newer-format-version"])
def test_api_load_raises_artifact_error(tmp_path, model_file, case):
    make, phrases = BAD_MODELS[case]
    bad = tmp_path / "model.ntab"
    if make is not None:
        make(bad, model_file.read_bytes())
    with pytest.raises(ArtifactError) as exc:
        neuraltab.load(bad)
    message = _one_line(exc)
    assert "model.ntab" in message
    for phrase in phrases:
        assert phrase in message
