"""Contract tests for neuraltab.artifacts: the safetensors model file, its integrity checks, and no pickle anywhere."""

from __future__ import annotations

import errno
import io
import json
import os
import pickle
import re
import struct
import zipfile
from pathlib import Path

import pytest
import torch
from safetensors.torch import save as st_save

import neuraltab
from neuraltab import artifacts
from neuraltab.artifacts import FORMAT_VERSION, atomic_write_bytes, load_bundle, save_bundle
from neuraltab.errors import ArtifactError

from conftest import FillingFile

META = {
    "schema": {"target": "y", "classes": [0, 1, "café"], "features": [{"name": "a", "kind": "numeric"}]},
    "config": {"lr": 0.002, "layers": [64, 32], "time_limit": None, "early_stopping": True},
    "metrics": {"test": {"accuracy": 0.875, "roc_auc": None}},
    "y_mean": -1.25e-7,
}


def _tensors() -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(0)
    return {
        "backbone.0.weight": torch.randn(8, 4, generator=g),
        "backbone.0.bias": torch.randn(8, generator=g).to(torch.float64),
        "codes": torch.arange(12, dtype=torch.int64).reshape(3, 4),
        "mask": torch.tensor([True, False, True]),
        "half": torch.randn(5, generator=g).to(torch.bfloat16),
        "transposed": torch.randn(3, 5, generator=g).t(),  # not contiguous
        "empty": torch.zeros(0, 3),
        "grad": torch.randn(2, 2, generator=g, requires_grad=True),
    }


def _assert_tensors_equal(loaded: dict[str, torch.Tensor], expected: dict[str, torch.Tensor]) -> None:
    assert set(loaded) == set(expected)
    for name, t in expected.items():
        assert loaded[name].dtype == t.dtype and loaded[name].shape == t.shape, name
        assert torch.equal(loaded[name], t.detach()), name


def _listing(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir())


# ======================================================================================================================
# Round trip and atomic writes
# ======================================================================================================================
def test_round_trip_keeps_tensors_and_meta(tmp_path):
    tensors = _tensors()
    out = save_bundle(tmp_path / "m.ntab", tensors, META)
    assert out == tmp_path / "m.ntab"
    loaded, meta = load_bundle(out)
    _assert_tensors_equal(loaded, tensors)
    checksum = meta.pop("checksum")
    assert re.fullmatch(r"[0-9a-f]{64}", checksum)
    assert meta == META


def test_round_trip_with_a_scalar_tensor(tmp_path):
    tensors = {"temperature": torch.tensor(1.5), "step": torch.tensor(7, dtype=torch.int64)}
    save_bundle(tmp_path / "m.ntab", tensors, {})
    loaded, _ = load_bundle(tmp_path / "m.ntab")
    _assert_tensors_equal(loaded, tensors)


def test_save_does_not_change_the_callers_meta(tmp_path):
    meta = {"a": 1}
    save_bundle(tmp_path / "m.ntab", _tensors(), meta)
    assert meta == {"a": 1}


def test_successful_write_leaves_no_temporary_file(tmp_path):
    save_bundle(tmp_path / "m.ntab", _tensors(), META)
    save_bundle(tmp_path / "m.ntab", _tensors(), {"v": 2}, force=True)
    assert _listing(tmp_path) == ["m.ntab"]
    assert load_bundle(tmp_path / "m.ntab")[1]["v"] == 2


def _no_space(*args, **kwargs):
    raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))


@pytest.mark.parametrize("where", ["write", "fsync", "rename", "temp file"])
def test_a_full_disk_is_one_line_naming_the_file_and_leaves_the_old_file(tmp_path, monkeypatch, where):
    path = tmp_path / "m.ntab"
    save_bundle(path, _tensors(), META)
    before = path.read_bytes()
    seen: list[list[str]] = []
    if where == "write":
        real_fdopen = os.fdopen
        monkeypatch.setattr(artifacts.os, "fdopen",
                            lambda fd, *a, **k: FillingFile(real_fdopen(fd, *a, **k), tmp_path, seen))
    else:
        target = {"fsync": (artifacts.os, "fsync"), "rename": (artifacts.os, "replace"),
                  "temp file": (artifacts.tempfile, "mkstemp")}[where]
        monkeypatch.setattr(*target, _no_space)
    data = artifacts.bundle_bytes({"w": torch.ones(3)}, {"new": True})
    with pytest.raises(ArtifactError) as info:
        save_bundle(path, {"w": torch.ones(3)}, {"new": True}, force=True)
    message = str(info.value)
    assert "\n" not in message
    assert message == (f"{path}: cannot write (the disk is full: No space left on device, {len(data):,} bytes to "
                       "write); free some space or write to another file")
    if where == "write":  # the half-written temporary file existed, and is gone
        assert len(seen) == 1 and len(seen[0]) == 2
        assert seen[0][0].startswith(".m.ntab.") and seen[0][0].endswith(".tmp")
    assert _listing(tmp_path) == ["m.ntab"]
    assert path.read_bytes() == before


def test_other_failures_leave_no_temporary_file_and_keep_the_old_file(tmp_path, monkeypatch):
    path = tmp_path / "m.ntab"
    save_bundle(path, _tensors(), META)
    before = path.read_bytes()

    def interrupted(*args, **kwargs):
        raise RuntimeError("interrupted")

    monkeypatch.setattr(artifacts.os, "replace", interrupted)
    with pytest.raises(RuntimeError):
        save_bundle(path, {"w": torch.ones(3)}, {"new": True}, force=True)
    assert _listing(tmp_path) == ["m.ntab"]
    assert path.read_bytes() == before


def test_failed_first_write_creates_nothing(tmp_path, monkeypatch):
    def failing_fsync(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(artifacts.os, "fsync", failing_fsync)
    with pytest.raises(ArtifactError, match=r"m.ntab: cannot write \(Input/output error\); write to another file$"):
        atomic_write_bytes(tmp_path / "m.ntab", b"data", force=False)
    assert _listing(tmp_path) == []


@pytest.mark.skipif(os.name != "posix", reason="POSIX permissions")
@pytest.mark.parametrize("umask", [0o022, 0o077])
def test_a_new_file_gets_the_usual_permissions_and_a_replaced_file_keeps_its_own(tmp_path, umask):
    """Not mkstemp's private 0600: a model or predictions file reads like any other file its user writes."""
    previous = os.umask(umask)
    try:
        save_bundle(tmp_path / "new.ntab", _tensors(), META)
        assert (tmp_path / "new.ntab").stat().st_mode & 0o777 == 0o666 & ~umask
        for mode in (0o640, 0o664):
            path = tmp_path / f"old-{mode:o}.ntab"
            path.write_bytes(b"old")
            path.chmod(mode)
            save_bundle(path, _tensors(), META, force=True)
            assert path.stat().st_mode & 0o777 == mode
    finally:
        os.umask(previous)


def test_refuses_to_overwrite_without_force(tmp_path):
    path = tmp_path / "m.ntab"
    save_bundle(path, _tensors(), META)
    before = path.read_bytes()
    with pytest.raises(ArtifactError, match="already exists; pass force=True"):
        save_bundle(path, {"w": torch.ones(1)}, {})
    assert path.read_bytes() == before
    assert _listing(tmp_path) == ["m.ntab"]


def test_write_into_a_missing_folder_or_onto_a_folder(tmp_path):
    with pytest.raises(ArtifactError, match="does not exist"):
        save_bundle(tmp_path / "nope" / "m.ntab", _tensors(), META)
    with pytest.raises(ArtifactError, match="folder"):
        save_bundle(tmp_path, _tensors(), META, force=True)


# ======================================================================================================================
# Loading broken, foreign and future files
# ======================================================================================================================
@pytest.fixture()
def saved(tmp_path) -> Path:
    return save_bundle(tmp_path / "m.ntab", _tensors(), META)


def _data_start(data: bytes) -> int:
    return 8 + struct.unpack("<Q", data[:8])[0]


@pytest.mark.parametrize("keep", ["4 bytes", "half the header", "half the tensors", "all but one byte"])
def test_truncated_file(saved, keep):
    data = saved.read_bytes()
    cut = {"4 bytes": 4, "half the header": _data_start(data) // 2,
           "half the tensors": (_data_start(data) + len(data)) // 2, "all but one byte": len(data) - 1}[keep]
    saved.write_bytes(data[:cut])
    with pytest.raises(ArtifactError) as info:
        load_bundle(saved)
    msg = str(info.value)
    assert "m.ntab" in msg and ("truncated" in msg or "corrupted" in msg), msg


@pytest.mark.parametrize("where", [0.0, 0.5, 1.0])
def test_flipped_byte_in_tensor_data_fails_the_checksum(saved, where):
    data = bytearray(saved.read_bytes())
    start = _data_start(bytes(data))
    i = min(start + int(where * (len(data) - start)), len(data) - 1)
    data[i] ^= 0x01
    saved.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="checksum"):
        load_bundle(saved)


def test_foreign_safetensors_file(tmp_path):
    for name, metadata in (("plain", None), ("hf", {"format": "pt"})):
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(st_save({"w": torch.ones(2, 2)}, metadata=metadata))
        with pytest.raises(ArtifactError, match="not a neuraltab model file"):
            load_bundle(path)


def test_pickle_bytes_are_refused_without_unpickling(tmp_path, monkeypatch):
    def no_unpickling(*args, **kwargs):
        raise AssertionError("load_bundle must never unpickle")

    monkeypatch.setattr(pickle, "loads", no_unpickling)
    monkeypatch.setattr(pickle, "load", no_unpickling)
    path = tmp_path / "model.pkl"
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}, protocol=4))
    with pytest.raises(ArtifactError, match="pickle.*never loads pickles"):
        load_bundle(path)
    path.write_bytes(pickle.dumps({"weights": [1, 2, 3]}, protocol=0))  # text protocol: no \x80 marker
    with pytest.raises(ArtifactError):
        load_bundle(path)


def test_zip_bytes_are_refused(tmp_path):
    buffer = io.BytesIO()
    torch.save({"w": torch.ones(2)}, buffer)  # a torch checkpoint is a zip of pickles
    (tmp_path / "ckpt.pt").write_bytes(buffer.getvalue())
    with pytest.raises(ArtifactError, match="zip archive"):
        load_bundle(tmp_path / "ckpt.pt")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as z:
        z.writestr("a.txt", "hello")
    (tmp_path / "a.zip").write_bytes(buffer.getvalue())
    with pytest.raises(ArtifactError, match="zip archive"):
        load_bundle(tmp_path / "a.zip")


def test_newer_format_version_names_both_versions(tmp_path, monkeypatch):
    newer = FORMAT_VERSION + 1
    path = tmp_path / "future.ntab"
    with monkeypatch.context() as m:  # a file written by a future neuraltab
        m.setattr(artifacts, "FORMAT_VERSION", newer)
        save_bundle(path, _tensors(), META)
    with pytest.raises(ArtifactError) as info:
        load_bundle(path)
    msg = str(info.value)
    assert f"format {newer}" in msg and f"format {FORMAT_VERSION}" in msg and "upgrade" in msg


def test_mangled_neuraltab_metadata(saved):
    from safetensors.torch import load as st_load

    data = saved.read_bytes()
    header = json.loads(data[8:_data_start(data)])
    mangled = {key: "{not json" for key in header["__metadata__"]}
    saved.write_bytes(st_save(st_load(data), metadata=mangled))
    with pytest.raises(ArtifactError, match="m.ntab"):
        load_bundle(saved)


def _bundle_with_header_length(tmp_path: Path, n_header: int) -> Path:
    """A genuine model file whose safetensors header is exactly ``n_header`` bytes (padding the metadata)."""
    path = tmp_path / "m.ntab"
    save_bundle(path, {"w": torch.ones(2)}, {"pad": ""})
    base = _data_start(path.read_bytes()) - 8  # each padding character adds one byte, before 8-byte alignment
    for pad in range(max(0, n_header - base - 8), n_header - base + 9):
        save_bundle(path, {"w": torch.ones(2)}, {"pad": "x" * pad}, force=True)
        data = path.read_bytes()
        if _data_start(data) - 8 == n_header:
            return path
        if _data_start(data) - 8 > n_header:
            break
    raise AssertionError(f"could not build a header of {n_header} bytes")


@pytest.mark.parametrize(("n_header", "first_bytes"), [(0x180, b"\x80"), (0x4B50, b"PK")])
def test_genuine_files_whose_length_prefix_looks_like_pickle_or_zip_load(tmp_path, n_header, first_bytes):
    # The first 8 bytes are the little-endian header length: 1 model file in 256 starts with 0x80, whatever its content.
    path = _bundle_with_header_length(tmp_path, n_header)
    assert path.read_bytes().startswith(first_bytes)
    tensors, meta = load_bundle(path)
    assert torch.equal(tensors["w"], torch.ones(2)) and meta["pad"].startswith("x")


@pytest.mark.parametrize("header", [b"this is not json", b"\xff\xfe\x00garbage", b"[1, 2, 3]"])
def test_header_that_is_not_a_json_object(tmp_path, header):
    path = tmp_path / "m.ntab"
    path.write_bytes(struct.pack("<Q", len(header)) + header + b"\x00" * 16)
    with pytest.raises(ArtifactError, match="not a neuraltab model file"):
        load_bundle(path)


def test_missing_file_and_directory(tmp_path):
    with pytest.raises(ArtifactError, match="not found") as info:
        load_bundle(tmp_path / "missing.ntab")
    assert "missing.ntab" in str(info.value)
    with pytest.raises(ArtifactError, match="folder"):
        load_bundle(tmp_path)


def test_empty_file(tmp_path):
    (tmp_path / "m.ntab").write_bytes(b"")
    with pytest.raises(ArtifactError, match="truncated"):
        load_bundle(tmp_path / "m.ntab")


# ======================================================================================================================
# No pickle anywhere in the package
# ======================================================================================================================
_PICKLE_LOAD = re.compile(r"\b(?:c?pickle|_pickle|dill|joblib)\s*\.\s*(?:loads?|Unpickler)\b|from\s+(?:c?pickle|_pickle)"
                          r"\s+import\s+[^\n]*\b(?:loads?|Unpickler)\b")
_TORCH_LOAD = re.compile(r"\btorch\s*\.\s*load\s*\(")
_CODE_FROM_FILES = {
    "numpy load with allow_pickle=True": re.compile(r"\b(?:np|numpy)\s*\.\s*load\s*\([^)]*allow_pickle\s*=\s*True"),
    "pandas read_pickle": re.compile(r"\bread_pickle\s*\("),
    "joblib / dill / cloudpickle load": re.compile(r"\b(?:joblib|dill|cloudpickle)\s*\.\s*loads?\s*\("),
    "marshal / shelve": re.compile(r"\bmarshal\s*\.\s*loads?\s*\(|\bshelve\s*\.\s*open\s*\("),
    "yaml.load without a safe loader": re.compile(r"\byaml\s*\.\s*(?:unsafe_)?load\s*\((?![^)]*SafeLoader)"),
    "torch.jit.load / torch.package": re.compile(r"\btorch\s*\.\s*jit\s*\.\s*load\s*\(|\bPackageImporter\b"),
    "eval / exec / compile": re.compile(r"(?<![\w.])(?:eval|exec|compile)\s*\("),
    "np.load (may unpickle by default in old NumPy)": re.compile(r"\b(?:np|numpy)\s*\.\s*load\s*\("),
}


def _unsafe_loads(source: str) -> list[str]:
    """Calls that may unpickle: pickle.load(s), and torch.load without weights_only=True."""
    found = [m.group(0) for m in _PICKLE_LOAD.finditer(source)]
    for m in _TORCH_LOAD.finditer(source):
        depth, i = 1, m.end()
        while i < len(source) and depth:  # the call's arguments, across lines
            depth += {"(": 1, ")": -1}.get(source[i], 0)
            i += 1
        if not re.search(r"\bweights_only\s*=\s*True\b", source[m.end():i]):
            found.append(source[m.start():i])
    return found


def test_the_unsafe_load_detector_works():
    assert _unsafe_loads("x = pickle.loads(b)\ny = pickle.load(fh)")
    assert _unsafe_loads("from pickle import loads")
    assert _unsafe_loads("torch.load(path)")
    assert _unsafe_loads("torch.load(\n    path,\n    map_location='cpu',\n)")
    assert _unsafe_loads("torch.load(path, weights_only=False)")
    assert not _unsafe_loads("torch.load(path, map_location='cpu', weights_only=True)")
    assert not _unsafe_loads("torch.load(\n  open(p, 'rb'),\n  weights_only=True)")
    assert not _unsafe_loads("pickle.dumps(x)  # writing is not loading")


def _code_from_files(source: str) -> list[str]:
    """Calls that could run code taken from a file: unpickling, unsafe torch.load, and the patterns above."""
    return _unsafe_loads(source) + [name for name, pattern in _CODE_FROM_FILES.items() if pattern.search(source)]


def test_the_code_from_files_detector_works():
    assert _code_from_files("np.load(p, allow_pickle=True)")
    assert _code_from_files("x = pd.read_pickle(path)")
    assert _code_from_files("joblib.load(f)") and _code_from_files("marshal.loads(b)")
    assert _code_from_files("yaml.load(text)") and not _code_from_files("yaml.load(text, Loader=yaml.SafeLoader)")
    assert _code_from_files("eval(text)") and _code_from_files("exec(code, {})")
    assert _code_from_files("torch.jit.load(path)")
    assert not _code_from_files("model.eval()\nnet.train().eval()")
    assert not _code_from_files("re.compile(r'x')")
    assert _code_from_files("pickle.loads(blob)") and not _code_from_files("torch.load(p, weights_only=True)")


def test_package_source_runs_no_code_from_files():
    root = Path(neuraltab.__file__).parent
    files = sorted(root.rglob("*.py"))
    assert len(files) >= 8, f"expected the package sources under {root}"
    offenders = {str(p.relative_to(root)): hits for p in files if (hits := _code_from_files(p.read_text("utf-8")))}
    assert offenders == {}
