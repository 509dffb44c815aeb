"""Model file safety (issue 6): a fuzzed model file either loads the very same model or raises the one-line
``ArtifactError`` naming the file; it never crashes the process, raises anything else, or runs code.

The mutations are drawn from a seeded generator, so every run (and CI) checks the same ones. Set
``NEURALTAB_FUZZ_N`` to run more locally (e.g. ``NEURALTAB_FUZZ_N=50000``); a failure message names the mutation.
"""

from __future__ import annotations

import copy
import io
import json
import os
import pickle
import re
import struct
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from conftest import FAST, make_table

import neuraltab
from neuraltab import artifacts
from neuraltab.errors import ArtifactError

N_MUTATIONS = int(os.environ.get("NEURALTAB_FUZZ_N", "2400"))
N_RESIGNED = int(os.environ.get("NEURALTAB_FUZZ_RESIGNED_N", "300"))
SEED = 20240606

Mutation = tuple[str, bytes]


# ======================================================================================================================
# The model under test and its reference predictions
# ======================================================================================================================
class Reference:
    def __init__(self, path: Path) -> None:
        self.path = path
        self.data = path.read_bytes()
        self.frame = make_table(40, seed=11).drop(columns="label")
        model = neuraltab.load(path)
        self.proba = model.predict_proba(self.frame).to_numpy()
        self.labels = model.predict(self.frame).tolist()
        (n_header,) = struct.unpack("<Q", self.data[:8])
        self.header_end = 8 + n_header
        self.header = json.loads(self.data[8:self.header_end])
        self.info = json.loads(self.header["__metadata__"][artifacts.FORMAT])

    def same_predictions(self, model: neuraltab.Model) -> str | None:
        """None when ``model`` predicts exactly as the original, else what differs."""
        proba = model.predict_proba(self.frame).to_numpy()
        if proba.shape != self.proba.shape or not np.array_equal(proba, self.proba):
            return "probabilities differ"
        if model.predict(self.frame).tolist() != self.labels:
            return "labels differ"
        return None


@pytest.fixture(scope="module")
def ref(tmp_path_factory) -> Reference:
    folder = tmp_path_factory.mktemp("fuzz_model")
    model = neuraltab.fit(make_table(200), target="label", **FAST)
    return Reference(model.save(folder / "original.ntab"))


def check_file(path: Path, ref: Reference) -> str | None:
    """The contract for one file: None when it holds, else what broke it."""
    try:
        model = neuraltab.load(path)
    except ArtifactError as exc:
        message = str(exc)
        if "\n" in message or "\r" in message:
            return f"ArtifactError message is not one line: {message!r}"
        if str(path) not in message:
            return f"ArtifactError message does not name the file: {message!r}"
        return None
    except Exception as exc:  # noqa: BLE001 - anything else escaping is the bug this test looks for
        return f"{type(exc).__name__}: {str(exc)[:300]}"
    try:
        return ref.same_predictions(model)
    except Exception as exc:  # noqa: BLE001
        return f"loaded, but predicting raised {type(exc).__name__}: {str(exc)[:300]}"


def _summary(failures: list[str], count: int) -> str:
    return f"{len(failures)} of {count} mutations broke the contract; first ones:\n  " + "\n  ".join(failures[:8])


# ======================================================================================================================
# Mutations
# ======================================================================================================================
def _region(rng: np.random.Generator, ref: Reference, size: int) -> tuple[str, int, int]:
    """A region of the file to aim at: the length prefix, the JSON header, the tensor bytes, or anywhere."""
    name = ["anywhere", "prefix", "header", "tensors"][rng.integers(4)]
    lo, hi = {"anywhere": (0, size), "prefix": (0, 8), "header": (8, ref.header_end),
              "tensors": (ref.header_end, size)}[name]
    return name, lo, max(hi, lo + 1)


def _encode_header(header: dict[str, Any] | str, rest: bytes, *, pad: bool = True) -> bytes:
    raw = header if isinstance(header, str) else json.dumps(header, separators=(",", ":"))
    blob = raw.encode("utf-8", "surrogatepass")
    if pad:
        blob += b" " * (-len(blob) % 8)
    return struct.pack("<Q", len(blob)) + blob + rest


def _with_info(ref: Reference, info_text: str, *, header: dict[str, Any] | None = None) -> bytes:
    """The original file with the neuraltab JSON document (a string inside the header) replaced by ``info_text``."""
    header = copy.deepcopy(ref.header if header is None else header)
    header["__metadata__"][artifacts.FORMAT] = info_text
    return _encode_header(header, ref.data[ref.header_end:])


def _paths(obj: Any, prefix: tuple = ()) -> Iterator[tuple]:
    """Every path (tuple of keys/indices) into a JSON value."""
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _get(obj: Any, path: tuple) -> Any:
    for key in path:
        obj = obj[key]
    return obj


def _set(obj: Any, path: tuple, value: Any) -> Any:
    if not path:
        return value
    _get(obj, path[:-1])[path[-1]] = value
    return obj


def _deep(depth: int, kind: str) -> str:
    return ("[" * depth + "]" * depth) if kind == "list" else ('{"a":' * depth + "1" + "}" * depth)


# JSON text json.dumps cannot write: non-finite and huge numbers, and nesting deeper than parsers allow
_RAW_NUMBERS = ["1e999", "-1e999", "NaN", "Infinity", "-Infinity", "9" * 5000, "-" + "9" * 400, "1" + "0" * 40,
                "1.7976931348623157e308", "5e-324", "-0", "0.0", "18446744073709551616", "9223372036854775808"]
_RAW_DEEP = [_deep(d, k) for d in (30, 200, 1100, 5000) for k in ("list", "dict")]
_RAWS = _RAW_NUMBERS + _RAW_DEEP


def _raw(index: int) -> str:
    """A placeholder that :func:`_dumps_with_raw` replaces by ``_RAWS[index]``, unquoted."""
    return f"\x01RAW{index}\x01"


def _new_value(rng: np.random.Generator, old: Any) -> Any:
    """A replacement for a JSON value: a nearby number, another type, or a raw literal (huge, NaN, deep nesting)."""
    choice = rng.integers(12)
    if choice == 0 and isinstance(old, (int, float)) and not isinstance(old, bool):
        return old + [1, -1, 0.5, 1e-9][rng.integers(4)]
    if choice == 1 and isinstance(old, (int, float)) and not isinstance(old, bool):
        return [0, -old, old * 2, -1, 2**31, 2**63, 2**64 + 1, 1e308, float(old) if isinstance(old, int) else int(old)][
            rng.integers(9)]
    if choice == 2:
        return _raw(int(rng.integers(len(_RAW_NUMBERS))))
    if choice == 3:
        return _raw(len(_RAW_NUMBERS) + int(rng.integers(len(_RAW_DEEP))))
    if choice == 4 and isinstance(old, str):
        return [old + "x", old.upper(), "", "\ud800", "é" * 3, old[:-1]][rng.integers(6)]
    return [None, True, False, "", "1", [], {}, [1, 2], {"a": 1}, -1, 0, 3.5][rng.integers(12)]


def _dumps_with_raw(obj: Any, **kwargs: Any) -> str:
    text = json.dumps(obj, **kwargs)
    return re.sub(r'"\\u0001RAW(\d+)\\u0001"', lambda m: _RAWS[int(m.group(1))], text)


def _edit_json(rng: np.random.Generator, obj: Any) -> tuple[str, str]:
    """One random edit of a JSON value (returns a description and the new JSON text)."""
    obj = copy.deepcopy(obj)
    paths = [p for p in _paths(obj) if p]
    path = paths[rng.integers(len(paths))]
    parent = _get(obj, path[:-1])
    op = rng.integers(5)
    if op == 0 and isinstance(parent, dict):
        del parent[path[-1]]
        return f"remove {path}", json.dumps(obj)
    if op == 1 and isinstance(parent, list):
        del parent[path[-1]]
        return f"remove item {path}", json.dumps(obj)
    if op == 2 and isinstance(parent, dict):
        parent["x" + str(rng.integers(100))] = _new_value(rng, None)
        return f"add key next to {path}", _dumps_with_raw(obj)
    new = _new_value(rng, _get(obj, path))
    _set(obj, path, new)
    shown = _dumps_with_raw(new)
    return f"set {path} = {shown[:24]}{'...' if len(shown) > 24 else ''}", _dumps_with_raw(obj)


def byte_mutations(ref: Reference, rng: np.random.Generator, n: int) -> Iterator[Mutation]:
    data = ref.data
    size = len(data)
    kinds = ["flip", "flip", "set", "bit", "truncate", "append", "duplicate", "cut", "digit", "whitespace",
             "header", "header", "info", "info", "prefix"]
    for i in range(n):
        kind = kinds[rng.integers(len(kinds))]
        buf = bytearray(data)
        if kind in ("flip", "set", "bit"):
            region, lo, hi = _region(rng, ref, size)
            positions = rng.integers(lo, hi, size=int(rng.integers(1, 9)))
            for p in positions:
                if kind == "flip":
                    buf[p] ^= int(rng.integers(1, 256))
                elif kind == "bit":
                    buf[p] ^= 1 << int(rng.integers(8))
                else:
                    buf[p] = [0x00, 0xFF][rng.integers(2)]
            yield f"#{i} {kind} {region} at {sorted(positions.tolist())}", bytes(buf)
        elif kind == "truncate":
            where = rng.integers(4)
            cut = int([rng.integers(0, 17), rng.integers(8, ref.header_end), rng.integers(ref.header_end, size),
                       rng.integers(0, size)][where])
            yield f"#{i} truncate to {cut} bytes", data[:cut]
        elif kind == "append":
            junk = [rng.bytes(int(rng.integers(1, 65))), b"\x00" * int(rng.integers(1, 17)), data,
                    b" " * 8, b"\n"][rng.integers(5)]
            yield f"#{i} append {len(junk)} junk bytes", data + junk
        elif kind in ("duplicate", "cut"):
            a = int(rng.integers(0, size))
            b = min(size, a + int(rng.integers(1, [8, 64, 1024][rng.integers(3)])))
            if kind == "cut":
                yield f"#{i} cut bytes [{a}:{b})", data[:a] + data[b:]
            else:
                at = int(rng.integers(0, size + 1))
                yield f"#{i} duplicate bytes [{a}:{b}) at {at}", data[:at] + data[a:b] + data[at:]
        elif kind == "digit":  # keeps the JSON valid most of the time: shapes, offsets and metadata numbers change
            digits = [j for j in range(8, ref.header_end) if 48 <= data[j] <= 57]
            positions = [digits[k] for k in rng.integers(0, len(digits), size=int(rng.integers(1, 4)))]
            for p in positions:
                buf[p] = 48 + (buf[p] - 48 + int(rng.integers(1, 10))) % 10
            yield f"#{i} change header digits at {sorted(positions)}", bytes(buf)
        elif kind == "whitespace":  # JSON whitespace: the padding and the spaces between tokens; the meaning stays
            spaces = [j for j in range(8, ref.header_end) if data[j] == 0x20]
            if spaces:
                p = spaces[rng.integers(len(spaces))]
                buf[p] = b"\t\n\r"[rng.integers(3)]
                yield f"#{i} header whitespace at {p} -> {buf[p]!r}", bytes(buf)
            else:  # re-serialise the header with other whitespace and key order
                header = dict(reversed(list(ref.header.items())))
                yield f"#{i} header re-serialised, keys reversed", _encode_header(json.dumps(header, indent=1),
                                                                                   data[ref.header_end:])
        elif kind == "header":  # the safetensors header itself: dtype, shape, data_offsets, keys
            desc, text = _edit_json(rng, ref.header)
            yield f"#{i} header: {desc}", _encode_header(text, data[ref.header_end:], pad=bool(rng.integers(2)))
        elif kind == "info":  # the neuraltab JSON document (metadata, checksum, versions) inside the header
            desc, text = _edit_json(rng, ref.info)
            yield f"#{i} neuraltab metadata: {desc}", _with_info(ref, text)
        else:  # the length prefix: off by a little, or wildly
            n_header = ref.header_end - 8
            new = [n_header + int(rng.integers(-16, 17)), 0, 1, 2**63, 2**64 - 1, size, size - 8,
                   int(rng.integers(0, 2**32))][rng.integers(8)]
            yield f"#{i} length prefix {n_header} -> {new}", struct.pack("<Q", new % 2**64) + data[8:]


def meaning_preserving(ref: Reference) -> Iterator[Mutation]:
    """Rewrites that change the bytes but not what the file says: these must load the same model."""
    rest = ref.data[ref.header_end:]
    yield "header with indent=2", _encode_header(json.dumps(ref.header, indent=2), rest)
    yield "header keys reversed", _encode_header(dict(reversed(list(ref.header.items()))), rest)
    unpadded = _encode_header(ref.header, rest, pad=False)
    if unpadded != ref.data:  # a header whose length is a multiple of 8 already has no padding
        yield "header without padding", unpadded
    yield "header with 64 spaces more", _encode_header(json.dumps(ref.header) + " " * 64, rest, pad=False)
    yield "header with ASCII escapes", _encode_header(json.dumps(ref.header, ensure_ascii=True), rest)
    yield "neuraltab metadata re-serialised with indent", _with_info(ref, json.dumps(ref.info, indent=1))
    yield "neuraltab metadata keys reversed", _with_info(ref, json.dumps(dict(reversed(list(ref.info.items())))))
    yield "extra safetensors metadata key", _encode_header(
        {**ref.header, "__metadata__": {**ref.header["__metadata__"], "other": "tool"}}, rest)
    tabs = ref.data[:8] + ref.data[8:ref.header_end].rstrip(b" ").ljust(ref.header_end - 8, b"\t") + rest
    if tabs != ref.data:
        yield "padding spaces become tabs", tabs


# ======================================================================================================================
# The fuzz test
# ======================================================================================================================
def test_fuzzed_model_file_loads_identically_or_raises_artifact_error(ref, tmp_path):
    assert N_MUTATIONS >= 2000 or "NEURALTAB_FUZZ_N" in os.environ
    path = tmp_path / "model.ntab"
    rng = np.random.default_rng(SEED)
    count, failures = 0, []
    start = time.perf_counter()
    for description, data in byte_mutations(ref, rng, N_MUTATIONS):
        path.write_bytes(data)
        problem = check_file(path, ref)
        count += 1
        if problem is not None:
            failures.append(f"{description} -> {problem}")
    seconds = time.perf_counter() - start
    assert count == N_MUTATIONS
    assert not failures, _summary(failures, count)
    print(f"{count} mutations in {seconds:.1f} s")


def test_meaning_preserving_rewrites_load_the_same_model(ref, tmp_path):
    path = tmp_path / "model.ntab"
    failures = []
    for description, data in meaning_preserving(ref):
        assert data != ref.data, description
        path.write_bytes(data)
        try:
            model = neuraltab.load(path)
        except Exception as exc:  # noqa: BLE001
            failures.append(f"{description} -> {type(exc).__name__}: {exc}")
            continue
        if (problem := ref.same_predictions(model)) is not None:
            failures.append(f"{description} -> {problem}")
    assert not failures, "\n".join(failures)


def test_the_fuzzer_reaches_past_the_first_check(ref, tmp_path):
    """Guard against a fuzzer that only ever produces files rejected at the first byte: the mutations must reach
    every stage (header parse, safetensors validation, checksum), and some must load."""
    path = tmp_path / "model.ntab"
    rng = np.random.default_rng(SEED)
    messages: dict[str, int] = {}
    for _, data in byte_mutations(ref, rng, 600):
        path.write_bytes(data)
        try:
            neuraltab.load(path)
            key = "loaded"
        except ArtifactError as exc:
            key = re.sub(r"\(only \d+ bytes\)|\d+ bytes", "N bytes", str(exc).replace(str(path), "<file>"))
        except Exception as exc:  # noqa: BLE001 - reported by the main test
            key = type(exc).__name__
        messages[key] = messages.get(key, 0) + 1
    text = "\n".join(messages)
    for stage in ("checksum mismatch", "tensor data cannot be read", "header is not valid JSON", "truncated",
                  "unreadable neuraltab metadata"):
        assert stage in text, f"no mutation reached {stage!r}; seen: {messages}"
    assert messages.get("loaded", 0) > 0, messages


# ======================================================================================================================
# Crafted files with a valid checksum: the checksum is not a signature, so load must also survive a file whose
# metadata or tensors are wrong but consistently checksummed (written by a buggy tool or by hand)
# ======================================================================================================================
def resigned_mutations(ref: Reference, rng: np.random.Generator, n: int) -> Iterator[Mutation]:
    tensors, meta = artifacts.read_bundle_bytes(ref.data)
    meta = {k: v for k, v in meta.items() if k != "checksum"}
    names = sorted(tensors)
    for i in range(n):
        kind = rng.integers(3)
        t = dict(tensors)
        m = copy.deepcopy(meta)
        if kind == 0:  # a metadata value: removed, retyped, renumbered
            desc, text = _edit_json(rng, m)
            try:
                m = json.loads(text)
            except (ValueError, RecursionError):
                continue  # raw literals (NaN, 1e999, ...) cannot be checksummed; the byte fuzzer covers them
            if not isinstance(m, dict):
                continue
        else:  # a tensor: dropped, renamed, reshaped, retyped, emptied
            name = names[rng.integers(len(names))]
            op = rng.integers(6)
            if op == 0:
                del t[name]
                desc = f"drop tensor {name}"
            elif op == 1:
                t[name + "x"] = t.pop(name)
                desc = f"rename tensor {name}"
            elif op == 2:
                t[name] = t[name].reshape(-1)
                desc = f"flatten tensor {name}"
            elif op == 3:
                dtype = [torch.float16, torch.bfloat16, torch.float64, torch.int32, torch.int64, torch.bool,
                         torch.uint8, torch.float32][rng.integers(8)]
                t[name] = t[name].to(dtype)
                desc = f"tensor {name} as {dtype}"
            elif op == 4:
                t[name] = t[name].reshape(-1)[: max(0, t[name].numel() - 1)]
                desc = f"tensor {name} one element short"
            else:
                t[name] = torch.zeros((0,) + tuple(t[name].shape[1:]), dtype=t[name].dtype)
                desc = f"tensor {name} empty"
        try:
            data = artifacts.bundle_bytes(t, m)
        except ValueError:
            continue
        yield f"#{i} re-checksummed: {desc}", data


def check_loads_or_artifact_error(path: Path, ref: Reference) -> str | None:
    """For consistently checksummed files the model may legitimately differ: only the error contract is checked."""
    try:
        neuraltab.load(path)
    except ArtifactError as exc:
        message = str(exc)
        if "\n" in message or str(path) not in message:
            return f"bad ArtifactError message: {message!r}"
    except Exception as exc:  # noqa: BLE001
        return f"{type(exc).__name__}: {str(exc)[:300]}"
    return None


def test_consistently_checksummed_but_wrong_files_raise_artifact_error(ref, tmp_path):
    rng = np.random.default_rng(SEED + 1)
    path = tmp_path / "model.ntab"
    count, failures = 0, []
    for description, data in resigned_mutations(ref, rng, N_RESIGNED):
        path.write_bytes(data)
        count += 1
        if (problem := check_loads_or_artifact_error(path, ref)) is not None:
            failures.append(f"{description} -> {problem}")
    assert count > N_RESIGNED // 2
    assert not failures, _summary(failures, count)


def _resign(ref: Reference, edit: Callable[[dict[str, torch.Tensor], dict[str, Any]], None]) -> bytes:
    tensors, meta = artifacts.read_bundle_bytes(ref.data)
    meta = copy.deepcopy({k: v for k, v in meta.items() if k != "checksum"})
    tensors = dict(tensors)
    edit(tensors, meta)
    return artifacts.bundle_bytes(tensors, meta)


def test_non_string_device_in_the_saved_config_is_an_artifact_error(ref, tmp_path):
    path = tmp_path / "model.ntab"
    path.write_bytes(_resign(ref, lambda t, m: m["config"].update(device=-1)))
    with pytest.raises(ArtifactError, match="model.ntab"):
        neuraltab.load(path)


def test_inconsistent_preprocessing_state_is_caught_at_load(ref, tmp_path):
    path = tmp_path / "model.ntab"
    path.write_bytes(_resign(ref, lambda t, m: t.update({"pre.quantiles": t["pre.quantiles"].reshape(-1)})))
    with pytest.raises(ArtifactError, match="incomplete or inconsistent"):
        neuraltab.load(path)

# ======================================================================================================================
# Hand-made corruptions the fuzzer found (kept as readable regression cases)
# ======================================================================================================================
def _info_with(ref: Reference, path: tuple, raw: str) -> bytes:
    """The original file with the neuraltab JSON value at ``path`` replaced by the raw JSON text ``raw``."""
    info = copy.deepcopy(ref.info)
    _set(info, path, "\x01MARK\x01")
    return _with_info(ref, json.dumps(info).replace('"\\u0001MARK\\u0001"', raw))


def _header_with(ref: Reference, path: tuple, raw: str) -> bytes:
    header = copy.deepcopy(ref.header)
    _set(header, path, "\x01MARK\x01")
    return _encode_header(json.dumps(header).replace('"\\u0001MARK\\u0001"', raw), ref.data[ref.header_end:])


CRAFTED = {
    "NaN in the metrics": lambda r: _info_with(r, ("meta", "metrics", "test", "roc_auc"), "NaN"),
    "1e999 in the history": lambda r: _info_with(r, ("meta", "history", "best_score"), "1e999"),
    "format_version 1e999": lambda r: _info_with(r, ("format_version",), "1e999"),
    "format_version -Infinity": lambda r: _info_with(r, ("format_version",), "-Infinity"),
    "metadata nested 5,000 deep": lambda r: _info_with(r, ("meta", "schema"), _deep(5000, "list")),
    "metadata is a list": lambda r: _with_info(r, "[1, 2]"),
    "header nested 5,000 deep": lambda r: _header_with(r, ("model.scaling", "shape"), _deep(5000, "dict")),
    "shape with 5,000 digits": lambda r: _header_with(r, ("model.scaling", "shape", 0), "9" * 5000),
    "offset past 2**64": lambda r: _header_with(r, ("model.scaling", "data_offsets", 1), "18446744073709551616"),
    "header byte flipped to invalid JSON": lambda r: r.data.replace(b'":', b'"!', 1),
}


@pytest.mark.parametrize("case", list(CRAFTED))
def test_crafted_corruption_is_an_artifact_error(ref, tmp_path, case):
    path = tmp_path / "model.ntab"
    path.write_bytes(CRAFTED[case](ref))
    with pytest.raises(ArtifactError) as info:
        neuraltab.load(path)
    message = str(info.value)
    assert str(path) in message and "\n" not in message
    assert "corrupted" in message or "truncated" in message, message


# ======================================================================================================================
# Files that would run code when unpickled are refused without being unpickled
# ======================================================================================================================
class _Payload:
    """Unpickling this creates the marker file."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def _torch_zip(payload: _Payload) -> bytes:
    buffer = io.BytesIO()
    torch.save({"state": payload}, buffer)
    return buffer.getvalue()


def _npy(payload: _Payload) -> bytes:
    buffer = io.BytesIO()
    np.save(buffer, np.array([payload], dtype=object), allow_pickle=True)
    return buffer.getvalue()


# test_bad_input.py checks protocol-default pickles through the CLI; these cover every protocol (0 has no \x80 marker),
# a torch.save zip and a NumPy object array, through the Python API and load_bytes.
PAYLOADS = {f"pickle-protocol-{p}": (lambda payload, p=p: pickle.dumps(payload, protocol=p))
            for p in range(pickle.HIGHEST_PROTOCOL + 1)}
PAYLOADS["torch-save-zip"] = _torch_zip
PAYLOADS["numpy-object-array"] = _npy


@pytest.mark.parametrize("kind", list(PAYLOADS))
def test_code_carrying_file_renamed_to_ntab_is_refused_and_not_run(tmp_path, kind):
    marker = tmp_path / "pwned"
    data = PAYLOADS[kind](_Payload(marker))
    assert not marker.exists()
    path = tmp_path / "model.ntab"
    path.write_bytes(data)
    with pytest.raises(ArtifactError) as info:
        neuraltab.load(path)
    assert str(path) in str(info.value) and "\n" not in str(info.value)
    with pytest.raises(ArtifactError):
        neuraltab.api.load_bytes(data)
    assert not marker.exists(), "loading the file ran the code in it"
    if kind.startswith("pickle"):  # the control: the payload does run when unpickled
        pickle.loads(data)
        assert marker.exists()
