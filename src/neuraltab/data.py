"""Reading tables, inferring their schema, and splitting them.

``read_table`` turns a file (CSV/TSV with a sniffed delimiter and encoding, Parquet, JSON lines) or a DataFrame into a
DataFrame, with one-line errors for everything a person can get wrong. ``infer_schema`` decides what each column is
and what task the target implies. ``split`` makes the seeded train/valid/test split.
"""

from __future__ import annotations

import codecs
import csv
import hashlib
import io
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .errors import DataError, SchemaError, closest_names

__all__ = [
    "read_table",
    "source_name",
    "available_memory",
    "estimate_memory",
    "check_memory",
    "fingerprint",
    "Column",
    "Schema",
    "infer_schema",
    "split",
    "label_key",
    "KINDS",
]

Notify = Callable[[str], None]


def _ignore(_: str) -> None:
    pass


NULL_MARKERS = ["", "#N/A", "#N/A N/A", "#NA", "-1.#IND", "-1.#QNAN", "-NaN", "-nan", "1.#IND", "1.#QNAN",
                "N/A", "NA", "NULL", "NaN", "n/a", "nan", "null", "?", "None", "none"]
_MARKERS = frozenset(NULL_MARKERS)
_SNIFF_BYTES = 1 << 16
_DELIMITERS = [",", ";", "\t", "|"]
_CSV_SUFFIXES = {".csv", ".tsv", ".txt", ".tab", ".data", ".dat", ""}

# ======================================================================================================================
# Reading
# ======================================================================================================================


def source_name(source: Any) -> str:
    """How messages refer to a data source."""
    return str(source) if isinstance(source, (str, Path)) else "the DataFrame"


def read_table(source: str | Path | pd.DataFrame, *, encoding: str | None = None, decimal: str | None = None,
               notify: Notify = _ignore) -> pd.DataFrame:
    """Read a CSV/TSV/Parquet/JSON-lines file (or pass a DataFrame through) with clear, one-line errors.

    The input is never modified. Column names are made unique and non-blank (with a notice). In a text file, a column
    of numbers written with thousands separators ("1,234.5") or decimal commas ("1,5", "1.234,5") is read as numbers,
    with a notice; ``decimal`` ("." or ",") says which the file uses, None guesses per column. Before a file is read,
    :func:`check_memory` refuses one that clearly will not fit in memory.
    """
    if decimal not in (None, ".", ","):
        raise DataError(f"decimal must be '.' or ',' (or None to detect it per column), got {decimal!r}")
    if isinstance(source, pd.DataFrame):
        df = source
        name = "the DataFrame"
    elif isinstance(source, (str, Path)):
        path = Path(source)
        name = str(source)
        if not path.exists():
            raise DataError(f"{name}: file not found; check the path")
        if path.is_dir():
            raise DataError(f"{name}: is a folder, not a table file; pass a CSV, Parquet or JSON-lines file")
        if path.stat().st_size == 0:
            raise DataError(f"{name}: the file is empty; it needs a header row and at least one data row")
        suffix = path.suffix.lower()
        if suffix in (".xlsx", ".xls", ".xlsm", ".ods"):
            raise DataError(f"{name}: spreadsheet files are not read directly; save the sheet as CSV and pass that file")
        if suffix in (".gz", ".bz2", ".zip", ".xz", ".zst"):
            raise DataError(f"{name}: compressed files are not read directly; decompress it first")
        check_memory(path)
        if suffix in (".parquet", ".pq"):
            df = _read_parquet(path)
        elif suffix in (".jsonl", ".ndjson", ".json"):
            df = _read_json_lines(path)
        else:
            df = _read_csv(path, encoding=encoding, decimal=decimal, notify=notify)
    else:
        raise DataError(f"expected a file path or a pandas DataFrame, got {type(source).__name__}")

    if df.shape[1] == 0:
        raise DataError(f"{name}: no columns found; the file needs a header row")
    if len(df) == 0:
        raise DataError(f"{name}: has a header but no data rows; add rows below the header")
    return _clean_column_names(df, name, notify)


def _read_csv(path: Path, *, encoding: str | None, decimal: str | None, notify: Notify,
              source: bytes | None = None) -> pd.DataFrame:
    """Read a delimited text file with pyarrow. ``source``: the file's bytes with blank lines removed (a second try)."""
    import pyarrow as pa
    import pyarrow.csv as pacsv

    name = str(path)
    with open(path, "rb") as fh:
        head = fh.read(_SNIFF_BYTES)
    if len(head) < _SNIFF_BYTES and not head.strip():
        raise DataError(f"{name}: the file is empty (only blank lines); it needs a header row and at least one data row")
    if encoding is None:
        encoding = _sniff_encoding(head, name, notify)
    try:
        text = codecs.getincrementaldecoder(encoding)(errors="replace").decode(head, final=False)
    except LookupError:
        raise DataError(f"{name}: unknown encoding {encoding!r}; use a name such as utf-8, latin-1 or utf-16") from None
    delimiter = _sniff_delimiter(text)
    utf8 = encoding.lower().replace("_", "-") in ("utf-8", "utf8", "utf-8-sig")
    read_opts = pacsv.ReadOptions(encoding="utf8" if utf8 or source is not None else encoding)
    parse_opts = pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=True)
    convert_opts = pacsv.ConvertOptions(null_values=NULL_MARKERS, strings_can_be_null=True,
                                        quoted_strings_can_be_null=True, decimal_point=decimal or ".")
    try:
        table = pacsv.read_csv(io.BytesIO(source) if source is not None else path, read_options=read_opts,
                               parse_options=parse_opts, convert_options=convert_opts)
    except pa.ArrowInvalid as exc:
        msg = str(exc)
        if "Empty CSV file" in msg:
            if head.strip():
                raise DataError(f"{name}: has a header but no data rows; add rows below the header") from None
            raise DataError(f"{name}: the file is empty; it needs a header row and at least one data row") from None
        match = re.search(r"Expected (\d+) columns, got (\d+)", msg)
        if match:
            if source is None:
                cleaned = _without_blank_lines(path, encoding)
                if cleaned is not None:  # lines of spaces or tabs (often trailing): skip them, as empty lines are
                    return _read_csv(path, encoding=encoding, decimal=decimal, notify=notify, source=cleaned)
            line = _first_ragged_line(path, encoding, delimiter, int(match.group(1)))
            where = f"line {line}" if line else "a row"
            raise DataError(
                f"{name}: {where} has {match.group(2)} fields but the header has {match.group(1)} (ragged rows); "
                f"fix that line, or quote values that contain the delimiter {delimiter!r}"
            ) from None
        if "UTF8" in msg or "utf8" in msg.lower():
            notify(f"{name}: not valid UTF-8; read as Latin-1 (pass --encoding to choose another)")
            return _read_csv(path, encoding="latin-1", decimal=decimal, notify=notify)
        raise DataError(f"{name}: cannot parse as a delimited text table ({msg.splitlines()[0]})") from None
    except (UnicodeDecodeError, pa.ArrowException) as exc:
        raise DataError(f"{name}: cannot decode the file as {encoding} ({type(exc).__name__}); pass --encoding") from None
    if utf8 and any(pa.types.is_binary(t) for t in table.schema.types):
        # pyarrow keeps invalid UTF-8 past the sniffed head as binary columns instead of failing
        notify(f"{name}: not valid UTF-8; read as Latin-1 (pass --encoding to choose another)")
        return _read_csv(path, encoding="latin-1", decimal=decimal, notify=notify)
    df = table.to_pandas(date_as_object=False)
    return _parse_formatted_numbers(df, delimiter=delimiter, decimal=decimal, name=name, notify=notify)


_BLANK_LINE = re.compile(r"^[ \t]+(\r\n|\n|\r|$)", re.MULTILINE)


def _without_blank_lines(path: Path, encoding: str) -> bytes | None:
    """The file as UTF-8 without its lines of only spaces and tabs, or None when it has none."""
    with open(path, encoding=encoding, errors="replace", newline="") as fh:
        text = fh.read()
    cleaned, n = _BLANK_LINE.subn("", text)
    return cleaned.encode("utf-8") if n else None


# Numbers written for people: "1,234,567.5" (thousands commas), "1.234.567,5" / "1\u202f234,5" (decimal comma; the
# French thousands separator is a no-break space: a plain space is not taken, or "+33 612 345 678" would be a number).
_THOUSANDS_COMMA = re.compile(r"^[+-]?(\d{1,3}(,\d{3})+|\d+)(\.\d+)?$")
_DECIMAL_COMMA = re.compile(r"^[+-]?(\d{1,3}([.\u00a0\u202f]\d{3})+|\d+)(,\d+)?$")
_FORMATTED_SHARE = 0.95  # this share of a column's values must be numbers in the format for it to be converted


def _parse_formatted_numbers(df: pd.DataFrame, *, delimiter: str, decimal: str | None, name: str,
                             notify: Notify) -> pd.DataFrame:
    """Text columns of numbers with thousands separators or decimal commas, as float columns (with one notice).

    A column whose every separated value is ambiguous ("1,234": 1234 or 1.234?) is read with thousands separators
    when it also has numbers under 1000 written without one ("999"); otherwise it follows the file: decimal commas in
    a ``;``-delimited file (the usual pairing), thousands separators in others. ``decimal`` overrides the guess.
    """
    out = df
    said: dict[str, list[str]] = {"thousands": [], "decimal": []}
    for j in range(df.shape[1]):
        s = df.iloc[:, j]
        if not (s.dtype == object or pd.api.types.is_string_dtype(s)):
            continue
        present = s.notna().to_numpy()
        text = s[present].astype(str).str.strip()
        head = text.iloc[:1000]  # a text column of words is ruled out on its first values, cheaply
        if head.empty or (head.str.match(_THOUSANDS_COMMA) | head.str.match(_DECIMAL_COMMA)).mean() < _FORMATTED_SHARE:
            continue
        separated = text.str.contains(r"\d[,\u00a0\u202f]\d", regex=True).to_numpy()
        if not separated.any():
            continue
        fits: dict[str, np.ndarray] = {}
        if decimal != ",":
            fits["thousands"] = text.str.match(_THOUSANDS_COMMA).to_numpy()
        if decimal != ".":
            fits["decimal"] = text.str.match(_DECIMAL_COMMA).to_numpy()
        usable = [style for style, ok in fits.items() if ok.mean() >= _FORMATTED_SHARE and (ok & separated).any()]
        if not usable:
            continue
        if len(usable) == 1:
            style = usable[0]
        elif text[~separated].str.fullmatch(r"[+-]?\d{1,3}").any():
            style = "thousands"  # "999" next to "1,234": numbers under 1000 written without a separator
        else:
            style = "decimal" if delimiter == ";" else "thousands"
        ok = fits[style]
        if style == "thousands":
            plain = text.str.replace(",", "", regex=False)
        else:
            plain = text.str.replace(r"[.\u00a0\u202f]", "", regex=True).str.replace(",", ".", regex=False)
        parsed = pd.to_numeric(plain.where(ok), errors="coerce").to_numpy(dtype=float)
        values = np.full(len(s), np.nan)
        values[present] = parsed
        if out is df:
            out = df.copy()
        out.isetitem(j, values)
        first = int(np.flatnonzero(ok & separated)[0])
        note = f"{str(df.columns[j])!r} ({text.iloc[first]!r} -> {parsed[first]:.10g})"
        if len(usable) == 2:
            note += " (ambiguous: " + ("decimal commas are usual with ';' delimiters" if style == "decimal" else
                                       "a comma before 3 digits taken as a thousands separator") + ")"
        if not ok.all():
            examples = ", ".join(repr(v) for v in pd.unique(text[~ok])[:3])
            note += f" with {int((~ok).sum())} value(s) that are not numbers ({examples}) as missing"
        said[style].append(note)
    for style, what in (("thousands", "thousands separators"), ("decimal", "decimal commas")):
        if said[style]:
            shown = "; ".join(said[style][:5]) + (" ..." if len(said[style]) > 5 else "")
            notify(f"{name}: read {len(said[style])} column(s) of numbers written with {what}: {shown}")
    return out


def _sniff_encoding(head: bytes, name: str, notify: Notify) -> str:
    if head.startswith(codecs.BOM_UTF8):
        return "utf-8"  # pyarrow drops the BOM itself
    if head.startswith((codecs.BOM_UTF16_LE, codecs.BOM_UTF16_BE)):
        return "utf-16"
    if b"\x00" in head:
        utf16 = _utf16_without_bom(head)
        if utf16:
            return utf16
        raise DataError(f"{name}: unreadable encoding: the file contains binary data (NUL bytes), not text; "
                        "export the table as CSV (UTF-8) and try again")
    try:
        codecs.getincrementaldecoder("utf-8")().decode(head, final=False)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    controls = sum(1 for b in head if b < 32 and b not in (9, 10, 13))
    if controls > max(8, len(head) // 100):
        raise DataError(f"{name}: unreadable encoding: the file is neither UTF-8 nor plain text; "
                        "export the table as CSV (UTF-8) and try again")
    notify(f"{name}: not valid UTF-8; read as Latin-1 (pass --encoding to choose another)")
    return "latin-1"


def _utf16_without_bom(head: bytes) -> str | None:
    """"utf-16-le"/"utf-16-be" when the bytes look like UTF-16 text written without a BOM: a NUL in (nearly) every
    other byte, as ASCII text gives, and text once decoded."""
    even, odd = head[0::2], head[1::2]
    if len(odd) < 2:
        return None
    for codec, zeros, chars in (("utf-16-le", odd, even), ("utf-16-be", even, odd)):
        if zeros.count(0) >= 0.6 * len(zeros) and chars.count(0) <= 0.02 * len(chars):
            try:
                text = head[: len(head) // 2 * 2].decode(codec)
            except UnicodeDecodeError:
                continue
            if sum(ch.isprintable() or ch in "\t\r\n" for ch in text) >= 0.98 * len(text):
                return codec
    return None


# ======================================================================================================================
# Memory guard
# ======================================================================================================================

# bytes in memory per byte on disk while a file is read into a DataFrame (the Arrow table and the DataFrame coexist)
MEMORY_FACTORS = {"text": 3.0, "json": 2.0, "parquet": 5.0}


def available_memory() -> int | None:
    """Bytes this process can still allocate: MemAvailable from /proc/meminfo, lowered to the cgroup's remaining limit
    (containers); None where neither can be read (not Linux)."""
    found: list[int] = []
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    found.append(int(line.split()[1]) * 1024)
                    break
    except (OSError, ValueError, IndexError):
        pass
    for limit_file, usage_file in (("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory.current"),
                                   ("/sys/fs/cgroup/memory/memory.limit_in_bytes",
                                    "/sys/fs/cgroup/memory/memory.usage_in_bytes")):
        try:
            limit = int(Path(limit_file).read_text().strip())  # "max" (no limit) fails here
            usage = int(Path(usage_file).read_text().strip())
        except (OSError, ValueError):
            continue
        if 0 < limit < 1 << 60:
            found.append(max(limit - usage, 0))
        break
    return min(found) if found else None


def estimate_memory(path: str | Path) -> int:
    """Rough bytes of memory needed to read ``path`` into a DataFrame: its size on disk times a factor per format."""
    path = Path(path)
    suffix = path.suffix.lower()
    kind = ("parquet" if suffix in (".parquet", ".pq") else
            "json" if suffix in (".jsonl", ".ndjson", ".json") else "text")
    return int(path.stat().st_size * MEMORY_FACTORS[kind])


def _size(n: float) -> str:
    for unit in ("bytes", "KiB", "MiB", "GiB", "TiB"):
        if n < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "bytes" else f"{n:.1f} {unit}"
        n /= 1024
    return f"{n:.1f} TiB"


def check_memory(path: str | Path, *, available: int | None = None) -> None:
    """Refuse, with one line, to read a file that clearly will not fit in memory, rather than be killed mid-read.

    ``available`` defaults to :func:`available_memory`; the check is skipped when that is unknown.
    """
    if available is None:
        available = available_memory()
    if available is None:
        return
    needed = estimate_memory(path)
    if needed > available:
        size = Path(path).stat().st_size
        raise DataError(f"{path}: reading this {_size(size)} file needs about {_size(needed)} of memory but only "
                        f"{_size(available)} is available; train on a sample of its rows (e.g. the first rows, or a "
                        "random share) or free memory; a streaming option for tables larger than memory is planned "
                        "for a later release")


def _sniff_delimiter(text: str) -> str:
    """Pick the delimiter that splits the first lines into the same number (> 1) of fields, the most fields winning."""
    lines = [ln for ln in text.splitlines()[:50] if ln.strip()]
    if len(lines) > 1 and not text.endswith("\n"):
        lines = lines[:-1]  # the sample may cut the last line short
    best, best_score = ",", (0, 0)
    for delim in _DELIMITERS:
        try:
            counts = [len(row) for row in csv.reader(lines, delimiter=delim)]
        except csv.Error:
            continue
        if not counts or counts[0] < 2:
            continue
        consistent = sum(c == counts[0] for c in counts) / len(counts)
        score = (round(consistent, 2), counts[0])
        if score > best_score:
            best, best_score = delim, score
    return best


def _first_ragged_line(path: Path, encoding: str, delimiter: str, expected: int) -> int | None:
    with open(path, encoding=encoding, errors="replace", newline="") as fh:
        reader = csv.reader(fh, delimiter=delimiter)
        for row in reader:
            if row and len(row) != expected and not (len(row) == 1 and not row[0].strip()):  # blank lines are skipped
                return reader.line_num
    return None


def _read_parquet(path: Path) -> pd.DataFrame:
    import pyarrow.parquet as pq

    try:
        return pq.read_table(path).to_pandas(date_as_object=False)
    except Exception as exc:  # pyarrow raises many types for corrupt files
        raise DataError(f"{path}: cannot read as Parquet ({str(exc).splitlines()[0]}); check the file is complete") from None


def _read_json_lines(path: Path) -> pd.DataFrame:
    import pyarrow.json as pajson

    try:
        return pajson.read_json(path).to_pandas(date_as_object=False)
    except Exception as exc:
        raise DataError(f"{path}: cannot read as JSON lines, one object per line ({str(exc).splitlines()[0]})") from None


def _clean_column_names(df: pd.DataFrame, name: str, notify: Notify) -> pd.DataFrame:
    original = [str(c) for c in df.columns]
    cleaned: list[str] = []
    seen: set[str] = set()
    for i, col in enumerate(original):
        new = col.strip() or f"unnamed_{i + 1}"
        base, n = new, 1
        while new in seen:
            new = f"{base}.{n}"
            n += 1
        seen.add(new)
        cleaned.append(new)
    changed = [(a, b) for a, b in zip(original, cleaned) if a != b]
    if changed:
        shown = ", ".join(f"{a!r} -> {b!r}" for a, b in changed[:5])
        notify(f"{name}: renamed {len(changed)} blank or duplicate column name(s): {shown}")
    if cleaned != list(df.columns):
        df = df.set_axis(cleaned, axis=1)
    return df


def fingerprint(source: Any, df: pd.DataFrame) -> dict[str, Any]:
    """What the model was trained on: sha256 of the file (or of the DataFrame's content), rows and columns."""
    if isinstance(source, (str, Path)):
        digest = hashlib.sha256()
        with open(source, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
        kind, name = "file", Path(source).name
    else:
        digest = hashlib.sha256(pd.util.hash_pandas_object(df, index=False).to_numpy().tobytes())
        digest.update("\x1f".join(map(str, df.columns)).encode())
        kind, name = "dataframe", None
    return {"kind": kind, "name": name, "sha256": digest.hexdigest(), "rows": int(len(df)), "columns": int(df.shape[1])}


# ======================================================================================================================
# Schema
# ======================================================================================================================

KINDS = ("numeric", "categorical", "boolean", "datetime")


@dataclass(frozen=True)
class Column:
    name: str
    kind: str  # one of KINDS


@dataclass(frozen=True)
class Schema:
    """What each column is and what the target means. Stored in the model file as JSON."""

    target: str
    task: str  # binary | multiclass | regression
    features: tuple[Column, ...]
    classes: tuple[Any, ...] = ()  # class labels as the user wrote them (classification only), sorted
    dropped: tuple[tuple[str, str], ...] = ()  # (column, reason)

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    def feature_names(self) -> list[str]:
        return [c.name for c in self.features]

    def to_dict(self) -> dict[str, Any]:
        return {
            "target": self.target,
            "task": self.task,
            "classes": list(self.classes),
            "features": [{"name": c.name, "kind": c.kind} for c in self.features],
            "dropped": [{"name": n, "reason": r} for n, r in self.dropped],
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "Schema":
        return cls(
            target=d["target"],
            task=d["task"],
            classes=tuple(d["classes"]),
            features=tuple(Column(c["name"], c["kind"]) for c in d["features"]),
            dropped=tuple((c["name"], c["reason"]) for c in d["dropped"]),
        )


def label_key(value: Any) -> str:
    """A type-insensitive key for class labels, so 1, 1.0 and "1" from different files name the same class."""
    if isinstance(value, (bool, np.bool_)):
        return str(bool(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return str(int(value)) if float(value).is_integer() else repr(float(value))
    if isinstance(value, np.datetime64):  # as the Timestamp a pandas column gives: "2020-01-01 00:00:00"
        return str(pd.Timestamp(value))
    if isinstance(value, np.timedelta64):
        return str(pd.Timedelta(value))
    return str(value)


def _plain(value: Any) -> Any:
    """A JSON-able Python scalar for a label, keeping its type (ints stay ints, bools stay bools)."""
    if isinstance(value, (bool, np.bool_)):
        return bool(value)
    if isinstance(value, (int, np.integer)):
        return int(value)
    if isinstance(value, (float, np.floating)):
        return int(value) if float(value).is_integer() else float(value)
    return label_key(value)  # text, and anything else (dates too) as label_key writes it, so the two always match


_ID_NAME = re.compile(r"(^|[_\s.-])(id|uuid|guid|key|index)$|^(id|uuid|guid|index|unnamed_\d+)", re.IGNORECASE)


def infer_schema(
    df: pd.DataFrame,
    target: str,
    *,
    task: str = "auto",
    categorical: tuple[str, ...] = (),
    numeric: tuple[str, ...] = (),
    drop: tuple[str, ...] = (),
    source: str = "the data",
    notify: Notify = _ignore,
) -> Schema:
    """Decide the task from the target and the kind of every other column.

    Rows with a missing target must already be removed (see :func:`drop_missing_target`).
    """
    columns = list(df.columns)
    if target not in columns:
        raise SchemaError(_target_not_found(target, columns, source))
    for option, names in (("--categorical", categorical), ("--numeric", numeric), ("--drop", drop)):
        for col in names:
            if col not in columns:
                raise SchemaError(f"{source}: column {col!r} given to {option} not found; {closest_names(col, columns)}")
    if len(df) < 2:
        raise DataError(f"{source}: has {len(df)} usable row(s) (rows with a target value); training needs at least 4 "
                        "(2 with test_size=0): add rows")
    y = df[target]
    task, classes = _infer_task(y, task, target, source, notify)

    features: list[Column] = []
    dropped: list[tuple[str, str]] = []
    n_unique: dict[str, int] = {}  # distinct non-missing values per column, counted once
    for col in columns:
        if col == target:
            continue
        if col in drop:
            dropped.append((col, "dropped by request"))
            continue
        kind, reason = _infer_kind(df[col], col, forced="categorical" if col in categorical else
                                   "numeric" if col in numeric else None, source=source, notify=notify,
                                   counts=n_unique)
        if kind is None:
            dropped.append((col, reason))
        else:
            features.append(Column(col, kind))
    if dropped:
        notify(f"{source}: ignoring {len(dropped)} column(s): " + "; ".join(f"{n!r} ({r})" for n, r in dropped[:8])
               + (" ..." if len(dropped) > 8 else ""))
    if not features:
        raise SchemaError(f"{source}: no usable feature columns besides the target {target!r}; "
                          "the table needs at least one column that is not an ID, constant or empty")
    for col, how in _leaks(df, target, [c.name for c in features], task, n_unique):
        notify(f"{source}: column {col!r} {how} the target {target!r}: a leak? The model will just copy it, which is "
               f"useless unless it is known when predicting for real; if not, drop it (--drop {col})")
    return Schema(target=target, task=task, features=tuple(features), classes=classes, dropped=tuple(dropped))


def _target_not_found(target: Any, columns: list[str], source: str) -> str:
    if not isinstance(target, str) and str(target) in columns:  # DataFrame column 1 is read as the name "1"
        return (f"{source}: target {target!r} is not a column name: column names are text here; "
                f"pass target={str(target)!r}")
    return f"{source}: target column {target!r} not found; {closest_names(str(target), columns)}"


def drop_missing_target(df: pd.DataFrame, target: str, *, source: str, notify: Notify) -> pd.DataFrame:
    if target not in df.columns:
        raise SchemaError(_target_not_found(target, list(df.columns), source))
    y = df[target]
    missing = y.isna().to_numpy()
    if pd.api.types.is_float_dtype(y):
        infinite = np.isinf(y.to_numpy(dtype=float, na_value=np.nan))
    elif y.dtype == object:
        infinite = np.array([isinstance(v, (float, np.floating)) and bool(np.isinf(v)) for v in y], dtype=bool)
    else:
        infinite = np.zeros(len(y), dtype=bool)
    what = "missing or infinite" if infinite.any() else "missing"
    missing = missing | infinite
    n_missing = int(missing.sum())
    if n_missing:
        if n_missing == len(df):
            raise SchemaError(f"{source}: every value of the target column {target!r} is {what}; fill it in")
        notify(f"{source}: dropped {n_missing} row(s) whose target {target!r} is {what}")
        df = df.loc[~missing]
    return df


_LEAK_MIN_ROWS = 10  # fewer rows than this say too little to call a one-to-one match a leak


def _leaks(df: pd.DataFrame, target: str, features: list[str], task: str,
           n_unique: dict[str, int]) -> list[tuple[str, str]]:
    """Features that determine the target exactly: (column, how), for a notice.

    One-to-one: on the rows where the feature is present (at least half of them, and 10), each feature value goes with
    one target value and each target value with one feature value, and target values repeat there (else any column of
    distinct values would match). For a regression target whose values do not repeat: a numeric feature that rises or
    falls strictly with it. Cheap on big tables: most columns are ruled out by their count of distinct values.
    """
    y = df[target]
    n = len(df)
    n_y = y.nunique()
    found: list[tuple[str, str]] = []
    order: np.ndarray | None = None
    for col in features:
        x = df[col]
        n_x = n_unique[col] if col in n_unique else x.nunique()
        if n_x < 2 or n_x > n_y:
            continue
        present = x.notna().to_numpy()
        n_present = int(present.sum())
        if n_present < max(_LEAK_MIN_ROWS, n / 2):
            continue
        xs, ys = (x, y) if n_present == n else (x[present], y[present])
        try:
            if n_x != (n_y if n_present == n else ys.nunique()):
                continue
            if n_x < n_present:  # the target repeats: a one-to-one match is evidence
                pairs = len(pd.DataFrame({"x": xs.to_numpy(), "y": ys.to_numpy()}).drop_duplicates())
                if pairs != n_x:
                    continue
                how = "maps one-to-one onto"
            elif task == "regression" and pd.api.types.is_numeric_dtype(x) and not pd.api.types.is_bool_dtype(x):
                if order is None:
                    order = np.argsort(y.to_numpy(dtype=float), kind="stable")
                steps = np.diff(x.to_numpy(dtype=float)[order][present[order]])
                if not (np.all(steps > 0) or np.all(steps < 0)):
                    continue
                how = "rises or falls strictly with"
            else:
                continue
            if bool(np.all(xs.to_numpy(dtype=object) == ys.to_numpy(dtype=object))):
                how = "is identical to"
        except (TypeError, ValueError):  # cells that cannot be hashed or compared: not this check's business
            continue
        found.append((col, how))
    return found


def _infer_task(y: pd.Series, task: str, target: str, source: str, notify: Notify) -> tuple[str, tuple[Any, ...]]:
    values = y.dropna()
    n_unique = values.nunique()
    is_numeric = pd.api.types.is_numeric_dtype(values) and not pd.api.types.is_bool_dtype(values)
    if task == "auto":
        if not is_numeric:
            task = "binary" if n_unique <= 2 else "multiclass"
        else:
            floats = values.to_numpy(dtype=float)
            integral = bool(np.all(np.isfinite(floats))) and bool(np.all(np.mod(floats, 1) == 0))
            if n_unique <= 2:
                task = "binary"
            elif integral and n_unique <= 20 and n_unique * 20 <= len(values):
                task = "multiclass"
                notify(f"{source}: target {target!r} has {n_unique} integer values: treated as multiclass "
                       "classification (pass --task regression to predict it as a number)")
            else:
                task = "regression"
    if task == "regression":
        if not is_numeric:
            raise SchemaError(f"{source}: target {target!r} is not numeric, so it cannot be a regression target; "
                              "use --task binary or multiclass")
        if n_unique < 2:
            raise SchemaError(f"{source}: target {target!r} has a single value ({_plain(values.iloc[0])!r}); "
                              "a model needs a target that varies")
        return task, ()
    if n_unique < 2:
        only = _plain(values.iloc[0]) if len(values) else None
        raise SchemaError(f"{source}: target {target!r} has a single class ({only!r}); "
                          "classification needs at least two classes in the data")
    if task == "binary" and n_unique > 2:
        raise SchemaError(f"{source}: --task binary but target {target!r} has {n_unique} classes; use --task multiclass")
    uniques = [_plain(v) for v in pd.unique(values)]
    by_key: dict[str, Any] = {}
    for v in uniques:
        by_key.setdefault(label_key(v), v)
    try:
        classes = tuple(sorted(by_key.values()))
    except TypeError:
        classes = tuple(sorted(by_key.values(), key=label_key))
    return task, classes


def _infer_kind(s: pd.Series, col: str, *, forced: str | None, source: str, notify: Notify,
                counts: dict[str, int] | None = None) -> tuple[str | None, str]:
    non_null = s.dropna()
    try:
        n, n_unique = len(s), non_null.nunique()
        if counts is not None:
            counts[col] = n_unique
    except TypeError:  # unhashable cells: dicts, lists, arrays
        bad = next((v for v in non_null if getattr(v, "__hash__", None) is None), None)
        if bad is None:
            raise
        raise SchemaError(f"{source}: column {col!r} holds {type(bad).__name__} values such as {str(bad)[:40]!r}; "
                          "a cell must hold one number, text, boolean or date: flatten or drop that column") from None
    if forced == "categorical":
        return "categorical", ""
    if forced == "numeric":
        if not (pd.api.types.is_numeric_dtype(s) or pd.api.types.is_bool_dtype(s)):
            parsed = pd.to_numeric(non_null, errors="coerce")
            if parsed.isna().any():
                bad = non_null[parsed.isna()].iloc[0]
                raise SchemaError(f"{source}: column {col!r} given to --numeric has non-numeric values such as {bad!r}; "
                                  "clean them or leave the column to be inferred")
        return "numeric", ""
    if len(non_null) == 0:
        return None, "all values missing"
    if n_unique == 1:
        return None, "constant"
    if pd.api.types.is_bool_dtype(s) or (s.dtype == object and non_null.map(type).eq(bool).all()):
        return "boolean", ""
    if pd.api.types.is_datetime64_any_dtype(s):
        return "datetime", ""
    if pd.api.types.is_numeric_dtype(s):
        values = non_null.to_numpy(dtype=float)
        finite = values[np.isfinite(values)]
        if len(finite) == 0:
            return None, "no finite values (only infinities)"
        integral = len(finite) == len(values) and bool(np.all(np.mod(finite, 1) == 0))
        if integral and n_unique == n and n >= 20 and (_ID_NAME.search(col) or non_null.is_monotonic_increasing):
            return None, "ID-like: a distinct integer per row"
        if integral and 3 <= n_unique <= 32 and n >= 10 * n_unique and n_unique * 2 < finite.max() - finite.min() + 1:
            return "categorical", ""  # sparse integer codes (e.g. 20, 30, 45, 190) are labels, not quantities
        return "numeric", ""
    # text: numbers stored as text, dates, IDs, or categories
    text = non_null.astype(str).str.strip()
    text = text[~text.isin(_MARKERS)]  # "N/A", "?", "" in a DataFrame: missing, as they are in a file
    if text.empty:
        return None, "all values missing"
    n_unique = text.nunique()
    if n_unique == 1:
        return None, "constant"
    parsed = pd.to_numeric(text, errors="coerce")
    n_bad = int(parsed.isna().sum())
    if n_bad <= 0.05 * len(text) and n_bad < len(text):
        if n_bad:
            examples = ", ".join(repr(v) for v in text[parsed.isna()].unique()[:3])
            notify(f"{source}: column {col!r} is numeric but {n_bad} value(s) are not numbers ({examples}); "
                   "they are treated as missing")
        return "numeric", ""
    if _looks_like_dates(text):
        return "datetime", ""
    if n_unique == n and n >= 20:
        return None, "ID-like: a distinct value per row"
    if n >= 100 and n_unique > 0.9 * n:
        return None, "almost every value distinct (an ID or free text)"
    return "categorical", ""


def _looks_like_dates(text: pd.Series) -> bool:
    sample = text.iloc[:200]
    if not sample.str.contains(r"^\d{1,4}[-/.]\d{1,2}[-/.]\d{1,4}", regex=True).mean() > 0.95:
        return False
    return parse_datetimes(sample).notna().mean() > 0.95


def parse_datetimes(s: pd.Series) -> pd.Series:
    """Parse a column into naive UTC timestamps; unparsable values become NaT."""
    if pd.api.types.is_datetime64_any_dtype(s):
        out = s
    else:
        out = pd.to_datetime(s.astype("string"), errors="coerce", format="mixed", utc=True)
    if getattr(out.dt, "tz", None) is not None:
        out = out.dt.tz_convert("UTC").dt.tz_localize(None)
    return out


# ======================================================================================================================
# Split
# ======================================================================================================================


def split(
    n_rows: int, *, y: np.ndarray | None, test_size: float, valid_size: float, seed: int, notify: Notify = _ignore,
    source: str = "the table",
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Seeded train/valid/test row positions; stratified by ``y`` (class codes) when given and possible.

    >>> tr, va, te = split(100, y=None, test_size=0.3, valid_size=0.2, seed=0)
    >>> len(tr), len(va), len(te)
    (56, 14, 30)
    """
    from sklearn.model_selection import train_test_split

    index = np.arange(n_rows)
    min_rows = 2 if test_size == 0 else 4
    if n_rows < min_rows:
        raise DataError(f"{source}: has {n_rows} usable row(s); training needs at least {min_rows} "
                        "(some for training, validation and testing): add rows")
    if test_size == 0 and n_rows < 3:  # one row to train on and one to validate on would only be noise
        notify(f"{source}: only {n_rows} rows, too few to hold some out for validation: training uses all of them, "
               "without early stopping")
        return index, index[:0], index[:0]

    def _cut(idx: np.ndarray, size: float, what: str) -> tuple[np.ndarray, np.ndarray]:
        strat = y[idx] if y is not None else None
        if strat is not None:
            counts = np.bincount(strat)
            n_held = int(np.ceil(size * len(idx)))
            if counts[counts > 0].min() < 2 or n_held < (counts > 0).sum() or len(idx) - n_held < (counts > 0).sum():
                notify(f"{source}: some classes are too rare to stratify the {what} split; it is random instead")
                strat = None
        return train_test_split(idx, test_size=size, random_state=seed, stratify=strat)

    if test_size > 0:
        rest, test = _cut(index, test_size, "test")
    else:
        rest, test = index, index[:0]
    train, valid = _cut(rest, valid_size, "validation")
    return np.sort(train), np.sort(valid), np.sort(test)
