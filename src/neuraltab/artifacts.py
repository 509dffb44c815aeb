"""The model file: one safetensors file holding every tensor, with the JSON metadata in its header. No pickle.

Layout: safetensors' own header metadata holds one key, ``"neuraltab"``, whose value is the JSON document
``{"format": "neuraltab", "format_version": 1, "meta": {...}}`` (one key, because safetensors writes its metadata
map in no fixed order and the same seed must give the same bytes). ``meta["checksum"]`` is a SHA-256 over all
tensors, so a flipped byte anywhere in the weights is caught at load time.
Writes are atomic: a temporary file in the same folder, fsync, then rename over the target.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import stat
import struct
import tempfile
from pathlib import Path
from typing import Any

import torch

from .errors import ArtifactError, option

__all__ = ["FORMAT", "FORMAT_VERSION", "save_bundle", "load_bundle", "bundle_bytes", "read_bundle_bytes",
           "atomic_write_bytes", "check_writable", "check_model_path"]

# what a table file is named: a model file under such a name would be taken for data (and `predict` would read it)
_TABLE_SUFFIXES = {".csv", ".tsv", ".txt", ".tab", ".parquet", ".pq", ".jsonl", ".ndjson", ".json", ".xlsx", ".xls"}

FORMAT = "neuraltab"
FORMAT_VERSION = 1
_MAX_HEADER = 100 * 1024 * 1024


def _canonical(meta: dict[str, Any]) -> str:
    return json.dumps(meta, sort_keys=True, separators=(",", ":"), allow_nan=False)


def _checksum(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> str:
    """SHA-256 over every tensor and the metadata (which holds preprocessing state, so it must not drift either)."""
    digest = hashlib.sha256(_canonical({k: v for k, v in meta.items() if k != "checksum"}).encode())
    for name in sorted(tensors):
        t = tensors[name].contiguous()
        digest.update(f"|{name}|{t.dtype}|{tuple(t.shape)}|".encode())
        digest.update(t.reshape(-1).view(torch.uint8).numpy().tobytes() if t.numel() else b"")
    return digest.hexdigest()


def check_writable(path: Path, *, force: bool) -> None:
    """Fail early (before a long training run) if ``path`` cannot be written."""
    path = Path(path)
    if path.is_dir():  # before --force is suggested: forcing would not help
        raise ArtifactError(f"{path}: is a folder; give a file name for the output")
    if path.exists() and not force:
        raise ArtifactError(f"{path}: already exists; pass {option('force', True)} to overwrite it or write to "
                            "another file")
    parent = path.parent if str(path.parent) else Path(".")
    if not parent.is_dir():
        raise ArtifactError(f"{path}: the folder {parent} does not exist; create it or write to another folder")
    if not os.access(parent, os.W_OK):
        raise ArtifactError(f"{path}: the folder {parent} is not writable; write to another folder")


def atomic_write_bytes(path: Path, data: bytes, *, force: bool) -> None:
    """Write ``data`` to ``path`` so that readers see either the old file or the complete new one, never a part.

    Any failure (a full disk included) removes the temporary file and is one :class:`ArtifactError` line naming
    ``path``; the old file, if any, is left as it was.
    """
    path = Path(path)
    check_writable(path, force=force)
    parent = path.parent if str(path.parent) else Path(".")
    mode = _mode_for(path)
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=parent)
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot write ({_why(exc, data)}); {_advice(exc)}") from None
    try:
        os.chmod(tmp, mode)  # mkstemp makes it private (0600); the result should read as any other file does
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        if not force and path.exists():
            raise ArtifactError(f"{path}: already exists; pass {option('force', True)} to overwrite it or write to "
                            "another file")
        os.replace(tmp, path)
    except OSError as exc:
        Path(tmp).unlink(missing_ok=True)
        raise ArtifactError(f"{path}: cannot write ({_why(exc, data)}); {_advice(exc)}") from None
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    try:  # make the rename itself durable
        dir_fd = os.open(parent, os.O_RDONLY)
        try:
            os.fsync(dir_fd)
        finally:
            os.close(dir_fd)
    except OSError:
        pass


def _mode_for(path: Path) -> int:
    """Permissions for a file written to ``path``: those of the file it replaces, else what ``open`` would give."""
    try:
        return stat.S_IMODE(path.stat().st_mode)
    except OSError:
        return 0o666 & ~_umask()


def _umask() -> int:
    try:  # Linux shows it; elsewhere it can only be read by setting it (briefly, for the whole process)
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


_NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


def _why(exc: OSError, data: bytes) -> str:
    """What went wrong, in words: the OS's own (e.g. "Permission denied"), and for a full disk its size too."""
    if exc.errno in _NO_SPACE:
        what = "the disk is full" if exc.errno == errno.ENOSPC else "the disk quota is used up"
        return f"{what}: {exc.strerror or 'No space left on device'}, {len(data):,} bytes to write"
    return exc.strerror or str(exc)


def _advice(exc: OSError) -> str:
    return "free some space or write to another file" if exc.errno in _NO_SPACE else "write to another file"


def _parse_header(data: bytes) -> dict[str, Any] | None:
    """The safetensors JSON header, or None when ``data`` does not start with one."""
    if len(data) < 8:
        return None
    (n_header,) = struct.unpack("<Q", data[:8])
    if n_header > min(len(data) - 8, _MAX_HEADER):
        return None
    try:
        header = json.loads(data[8:8 + n_header])
    except (ValueError, RecursionError):  # not JSON, not UTF-8, a 5,000-digit number, or nested past the stack
        return None
    return header if isinstance(header, dict) else None


def bundle_bytes(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> bytes:
    """The bytes of a model file: tensors + JSON metadata (with its checksum) in one safetensors document."""
    from safetensors.torch import save

    tensors = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    meta = {**meta, "checksum": _checksum(tensors, meta)}
    header = {FORMAT: _canonical({"format": FORMAT, "format_version": FORMAT_VERSION, "meta": meta})}
    return save(tensors, metadata=header)


def check_model_path(path: Path, *, force: bool) -> None:
    """Fail early if a model file cannot be written at ``path``, or would be named like a table (``model.csv``)."""
    path = Path(path)
    if path.suffix.lower() in _TABLE_SUFFIXES:
        raise ArtifactError(f"{path}: a model file named like a {path.suffix} table would be taken for data; name "
                            f"it {path.with_suffix('.ntab').name} (predictions are written by predict)")
    check_writable(path, force=force)


def save_bundle(path: Path, tensors: dict[str, torch.Tensor], meta: dict[str, Any], *, force: bool = False) -> Path:
    """Write tensors + JSON metadata as one safetensors file, atomically. Returns the path."""
    check_model_path(Path(path), force=force)
    atomic_write_bytes(Path(path), bundle_bytes(tensors, meta), force=force)
    return Path(path)


def load_bundle(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Read a model file written by :func:`save_bundle`; any problem is an :class:`ArtifactError` naming it."""
    path = Path(path)
    if not path.exists():
        raise ArtifactError(f"{path}: model file not found; check the path (train one with `neuraltab train`)")
    if path.is_dir():
        raise ArtifactError(f"{path}: is a folder, not a model file")
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise ArtifactError(f"{path}: cannot read ({exc.strerror or exc})") from None
    return read_bundle_bytes(data, name=str(path))


def read_bundle_bytes(data: bytes, *, name: str = "the model bytes") -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Parse the bytes of a model file (see :func:`bundle_bytes`); ``name`` is how messages refer to them."""
    from safetensors.torch import load

    header = _parse_header(data)
    if header is None:
        if len(data) < 8:
            raise ArtifactError(f"{name}: truncated or not a model file (only {len(data)} bytes); re-copy or retrain")
        # a safetensors header that fails to parse is corruption, whatever its length's first byte looks like
        if data[8:10] == b'{"' and struct.unpack("<Q", data[:8])[0] > len(data) - 8:
            raise ArtifactError(f"{name}: truncated or corrupted (the header runs past the end of the file's "
                                f"{len(data)} bytes); re-copy or retrain the model")
        if data[8:10] == b'{"':
            raise ArtifactError(f"{name}: corrupted model file (its header is not valid JSON); "
                                "re-copy or retrain the model")
        if data[:1] == b"\x80" or data[:2] == b"PK":
            kind = "a Python pickle" if data[:1] == b"\x80" else "a zip archive (such as a torch.save checkpoint)"
            raise ArtifactError(f"{name}: looks like {kind}, not a neuraltab model file; neuraltab never loads pickles")
        raise ArtifactError(f"{name}: not a neuraltab model file; pass a file written by `neuraltab train`")
    metadata = header.get("__metadata__")
    if not isinstance(metadata, dict) or FORMAT not in metadata:
        raise ArtifactError(f"{name}: not a neuraltab model file (a safetensors file from another tool?); "
                            "pass a file written by `neuraltab train`")
    try:
        info = json.loads(metadata[FORMAT])
        if not isinstance(info, dict):
            raise TypeError("not a JSON object")
        version = int(info["format_version"])
    except (TypeError, ValueError, KeyError, OverflowError, RecursionError):  # OverflowError: int(1e999)
        raise ArtifactError(f"{name}: corrupted model file (unreadable neuraltab metadata); re-copy or retrain") from None
    if not isinstance(info, dict) or info.get("format") != FORMAT:
        raise ArtifactError(f"{name}: not a neuraltab model file (a safetensors file from another tool?); "
                            "pass a file written by `neuraltab train`")
    if version > FORMAT_VERSION:
        raise ArtifactError(f"{name}: written in model format {version}, but this neuraltab reads format "
                            f"{FORMAT_VERSION} and older; upgrade neuraltab (pip install -U neuraltab)")
    meta = info.get("meta")
    try:
        tensors = load(data)
    except Exception:  # safetensors raises its own error types for malformed data
        raise ArtifactError(f"{name}: corrupted model file (its tensor data cannot be read); re-copy or retrain the model") from None
    try:
        # a genuine file's metadata holds only finite numbers, so a NaN or 1e999 (ValueError here) is corruption too
        intact = isinstance(meta, dict) and meta.get("checksum") == _checksum(tensors, meta)
    except (ValueError, TypeError, RecursionError, RuntimeError):
        intact = False
    if not intact:
        raise ArtifactError(f"{name}: corrupted model file (checksum mismatch); re-copy or retrain the model")
    return tensors, meta
