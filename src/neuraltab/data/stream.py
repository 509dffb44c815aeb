"""Tables larger than memory: record batches (Parquet through ``pyarrow.dataset``, CSV in line-aligned blocks parsed
by ``pyarrow.csv``), a split by a seeded hash of each row's position, the preprocessing statistics gathered over the
batches, and the training rows handed out in shuffled blocks.

The steps are those of the in-memory path (:mod:`.schema` types the columns, :class:`~.preprocess.Preprocessor`
transforms them); only where the rows come from differs. Two passes read the file before training: the first draws a
uniform sample of its rows, on which :func:`~.schema.infer_schema` decides the columns' kinds (as it decides them on
a whole table in memory); the second gathers the statistics of the training rows, merged chunk by chunk:

- category counts, exactly, with the ``max_categories`` cap applied when the vocabulary is made (a column with over
  ``_PRUNE_AT`` distinct values keeps counting only its most frequent ones, so its counts become approximate);
- whether each numeric column has gaps (its missing indicator), exactly;
- regression targets' mean and spread, exactly (merged sums);
- medians, the quantile-scaling knots and the embeddings' bin edges from a **seeded bottom-k sample** of the
  training rows: the k rows whose hashed keys are smallest, a uniform sample without replacement (a reservoir
  sample that merges across chunks and processes). A quantile estimated from k rows has a rank error with standard
  deviation at most 0.5/sqrt(k): 0.16 percentage points for k = 100,000. With every training row in the sample the
  statistics are exactly those of the in-memory fit.

Memory stays bounded by the budget, not the file: the samples, the validation and test rows held for early stopping
and metrics, and the shuffle buffer are each capped in rows (:func:`limits_for`).
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import pandas as pd

from ..config import parse_bytes
from ..errors import DataError, Notify, no_notice, option
from ..system import available_memory
from .preprocess import Batch, Preprocessor, category_counts
from .read import (_SNIFF_BYTES, NULL_MARKERS, _clean_column_names, _first_ragged_line, _has_quote, _sniff_delimiter,
                   _sniff_encoding, estimate_memory)
from .schema import Schema, _unlabelled, infer_schema, label_key

__all__ = ["EVALUATION", "BottomK", "Limits", "Statistics", "StreamTable", "block_bytes_for", "budget_bytes",
           "fingerprint", "fit_preprocessor", "gather_statistics", "infer_streamed_schema", "labelled_rows",
           "limits_for", "merge_statistics", "row_keys", "shard_of", "should_stream", "split_codes", "training_blocks",
           "widening"]

_CSV_SUFFIXES = {".csv", ".tsv", ".txt", ".tab", ".data", ".dat"}
_PARQUET_SUFFIXES = {".parquet", ".pq"}
_PARQUET_ROWS = 1 << 17  # Parquet rows per record batch
_READAHEAD = 2  # record batches decoded ahead: pyarrow's default (16) would hold 16 blocks when training lags
_MAX_LABELS = 1024  # target values tracked so that the schema's sample holds every class
_PRUNE_AT = 100_000  # distinct values a column's counts may hold before the rarest are dropped
TRAIN, VALID, TEST = 0, 1, 2
# independent hash streams: the split, the schema's sample, the training sample, held-out samples, evaluation, the
# shard of a distributed run's rank
_SPLIT, _SCHEMA, _TRAIN_SAMPLE, _VALID_SAMPLE, _TEST_SAMPLE, EVALUATION, _SHARD = range(7)


# ======================================================================================================================
# Whether to stream, and how much to hold
# ======================================================================================================================


def budget_bytes(memory_budget: Any) -> int | None:
    """The memory budget in bytes: the option's value, else the memory available now (None where unknown)."""
    return parse_bytes(memory_budget) if memory_budget is not None else available_memory()


def should_stream(source: Any, *, stream: bool, memory_budget: Any) -> bool:
    """Whether ``source`` is read in record batches: asked for, a folder of files, or a file whose in-memory size
    (the memory guard's estimate) exceeds the budget. A DataFrame is already in memory."""
    if not isinstance(source, (str, Path)):
        return False
    path = Path(source)
    if stream or path.is_dir():
        return True
    if not path.is_file():
        return False  # the in-memory reader says what is wrong with it
    budget = budget_bytes(memory_budget)
    return budget is not None and estimate_memory(path) > budget


def block_bytes_for(budget: int | None) -> int:
    """CSV bytes per record batch: a 1/256 of the budget within 1-16 MiB (a batch takes several times its bytes once
    its text becomes Python strings, and a few are in flight at once)."""
    return int(min(max((budget or 2 * 10**9) // 256, 1 << 20), 1 << 24))


@dataclass(frozen=True)
class Limits:
    """Rows held in memory at most: the schema's and the statistics' samples, the validation and test rows, and the
    shuffle buffer."""

    sample_rows: int
    valid_rows: int
    test_rows: int
    buffer_rows: int


def limits_for(budget: int | None, *, raw_row_bytes: float, input_row_bytes: float) -> Limits:
    """Caps from the memory budget: an eighth of it for the samples, a sixteenth each for the validation and the test
    rows, an eighth for the shuffle buffer, each within fixed bounds (rows of a few hundred bytes fit the upper ones in
    about 2 GB; the lower ones keep the statistics and early stopping meaningful on a small budget)."""
    budget = budget or 2 * 10**9

    def cap(share: float, row_bytes: float, lo: int, hi: int) -> int:
        return int(min(max(budget * share / max(row_bytes, 1.0), lo), hi))

    return Limits(sample_rows=cap(1 / 8, raw_row_bytes, 10_000, 100_000),
                  valid_rows=cap(1 / 16, raw_row_bytes + input_row_bytes, 5_000, 50_000),
                  test_rows=cap(1 / 16, raw_row_bytes + input_row_bytes, 5_000, 100_000),
                  buffer_rows=cap(1 / 8, input_row_bytes, 8_192, 1 << 20))


# ======================================================================================================================
# Row hashes: the split and the samples
# ======================================================================================================================

_M1, _M2, _GOLDEN = np.uint64(0xBF58476D1CE4E5B9), np.uint64(0x94D049BB133111EB), np.uint64(0x9E3779B97F4A7C15)


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser, uint64 → uint64 (wrapping arithmetic): neighbouring inputs give unrelated outputs."""
    x = x ^ (x >> np.uint64(30))
    x = x * _M1
    x ^= x >> np.uint64(27)
    x *= _M2
    x ^= x >> np.uint64(31)
    return x


def row_keys(positions: np.ndarray, *, seed: int, stream: int) -> np.ndarray:
    """float64[n] in [0, 1): a seeded hash of each row's position in the table, one independent draw per ``stream``.

    >>> k = row_keys(np.arange(3), seed=0, stream=0)
    >>> bool(((k >= 0) & (k < 1)).all()), bool((k == row_keys(np.arange(3), seed=0, stream=0)).all())
    (True, True)
    """
    with np.errstate(over="ignore"):
        base = _mix(np.uint64(seed) * _GOLDEN + np.uint64(stream + 1) * _M1)
        x = _mix(np.asarray(positions, dtype=np.uint64) * _GOLDEN + base)
    return (x >> np.uint64(11)).astype(np.float64) * 2.0 ** -53


def split_codes(positions: np.ndarray, *, seed: int, test_size: float, valid_size: float) -> np.ndarray:
    """int8[n]: TRAIN, VALID or TEST for each row position: ``test_size`` of the rows test, ``valid_size`` of the
    rest validation, each row by its own hash, so the split needs no shuffle of the file and no count of its rows."""
    u = row_keys(positions, seed=seed, stream=_SPLIT)
    codes = np.full(len(u), TRAIN, dtype=np.int8)
    codes[u < test_size + (1 - test_size) * valid_size] = VALID
    codes[u < test_size] = TEST
    return codes


def shard_of(positions: np.ndarray, *, seed: int, world_size: int) -> np.ndarray:
    """int64[n]: the rank (0 .. world_size-1) whose shard each row position belongs to, by a seeded hash of the
    position, so the shards are disjoint, together complete, balanced whatever the file's order, and known to every
    rank without a word exchanged.

    >>> r = shard_of(np.arange(10_000), seed=0, world_size=4)
    >>> sorted(set(r.tolist())), bool(abs((r == 0).mean() - 0.25) < 0.02)
    ([0, 1, 2, 3], True)
    """
    if world_size <= 1:
        return np.zeros(len(positions), dtype=np.int64)
    return np.minimum((row_keys(positions, seed=seed, stream=_SHARD) * world_size).astype(np.int64), world_size - 1)


def _mine(df: pd.DataFrame, positions: np.ndarray, shard: tuple[int, int] | None, *,
          seed: int) -> tuple[pd.DataFrame, np.ndarray]:
    """The rows of a chunk in this rank's ``shard`` (rank, world size); all of them without one."""
    if shard is None or shard[1] <= 1:
        return df, positions
    keep = shard_of(positions, seed=seed, world_size=shard[1]) == shard[0]
    return df[keep], positions[keep]


class BottomK:
    """The ``k`` rows with the smallest keys offered so far: a uniform sample without replacement that merges across
    chunks. ``frame()`` gives them in table order."""

    def __init__(self, k: int) -> None:
        self.k = k
        self.parts: list[tuple[pd.DataFrame, np.ndarray, np.ndarray]] = []
        self.n_pending = 0
        self.threshold = np.inf  # the k-th smallest key once k rows are held
        self.offered = 0

    def offer(self, df: pd.DataFrame, keys: np.ndarray, positions: np.ndarray) -> None:
        self.offered += len(df)
        if self.k == 0 or not len(df):
            return
        if np.isfinite(self.threshold):
            keep = keys < self.threshold
            if not keep.any():
                return
            df, keys, positions = df[keep], keys[keep], positions[keep]
        self.parts.append((df, keys, positions))
        self.n_pending += len(df)
        if self.n_pending >= 2 * self.k:
            self._compact()

    def _compact(self) -> None:
        frames, keys, positions = zip(*self.parts)
        df, k_all, p_all = pd.concat(frames), np.concatenate(keys), np.concatenate(positions)
        if len(k_all) > self.k:
            chosen = np.argpartition(k_all, self.k - 1)[: self.k]
            df, k_all, p_all = df.iloc[chosen], k_all[chosen], p_all[chosen]
            self.threshold = float(k_all.max())
        self.parts, self.n_pending = [(df, k_all, p_all)], len(k_all)

    def merge(self, other: "BottomK") -> None:
        """Take in another sample's rows: the k smallest keys of both, which is the sample of the union of their rows
        (the keys hash row positions, the same in every process)."""
        for df, keys, positions in other.parts:
            self.offer(df, keys, positions)

    def frame(self) -> tuple[pd.DataFrame, np.ndarray]:
        """(the sampled rows in table order, with a fresh index; their positions)."""
        if not self.parts:
            return pd.DataFrame(), np.zeros(0, dtype=np.int64)
        self._compact()
        df, _, positions = self.parts[0]
        order = np.argsort(positions, kind="stable")
        return df.iloc[order].reset_index(drop=True), positions[order]


# ======================================================================================================================
# Reading in record batches
# ======================================================================================================================


@dataclass
class StreamTable:
    """One CSV/TSV or Parquet file, or a folder of them, read as DataFrames of consecutive rows.

    A text file's column types are those of its first rows (numbers as float64, text and dates as text); a later
    value that does not fit is a :class:`_TypeChange` that :meth:`widen` answers by reading that column as text.
    """

    name: str
    paths: list[Path]
    kind: str  # "csv" or "parquet"
    columns: list[str]  # as the in-memory reader names them (blank and duplicate names made unique)
    delimiter: str = ","
    encoding: str = "utf-8"
    decimal: str | None = None
    types: dict[str, Any] = field(default_factory=dict)  # CSV: arrow type per column as written in the file
    quoted: bool = True
    block_bytes: int = 1 << 22  # CSV bytes parsed per record batch (see :func:`block_bytes_for`)

    @classmethod
    def open(cls, source: str | Path, *, encoding: str | None = None, decimal: str | None = None,
             notify: Notify = no_notice, budget: int | None = None) -> "StreamTable":
        path, name = Path(source), str(source)
        if decimal not in (None, ".", ","):
            raise DataError(f"{option('decimal')} must be '.' or ',' (or None to detect it from the file), got "
                            f"{decimal!r}")
        if not path.exists():
            raise DataError(f"{name}: file not found; check the path")
        if path.is_dir():
            paths = sorted(p for p in path.rglob("*") if p.is_file() and not p.name.startswith(".")
                           and p.suffix.lower() in _CSV_SUFFIXES | _PARQUET_SUFFIXES)
            if not paths:
                raise DataError(f"{name}: the folder holds no CSV or Parquet files; put the table's files in it")
        else:
            paths = [path]
        kinds = {"parquet" if p.suffix.lower() in _PARQUET_SUFFIXES else
                 "csv" if p.suffix.lower() in _CSV_SUFFIXES or p.suffix == "" else p.suffix.lower() for p in paths}
        if len(kinds) > 1:
            raise DataError(f"{name}: holds both CSV and Parquet files; keep one format per folder")
        kind = kinds.pop()
        if kind not in ("csv", "parquet"):
            raise DataError(f"{name}: {kind} files are not read in record batches; convert the table to CSV or "
                            f"Parquet (or give it {option('memory_budget')} enough to read it whole)")
        empty = [p for p in paths if p.stat().st_size == 0]
        if empty:
            raise DataError(f"{empty[0]}: the file is empty; it needs a header row and at least one data row")
        if kind == "parquet":
            import pyarrow.parquet as pq

            try:
                names = list(pq.read_schema(paths[0]).names)
            except Exception as exc:  # pyarrow raises many types for corrupt files
                raise DataError(f"{paths[0]}: cannot read as Parquet ({str(exc).splitlines()[0]}); check the file is "
                                "complete") from None
            return cls(name=name, paths=paths, kind=kind, columns=_clean_column_names(
                pd.DataFrame(columns=names), name, notify).columns.tolist())
        with open(paths[0], "rb") as fh:
            head = fh.read(_SNIFF_BYTES)
        if encoding is None:
            encoding = _sniff_encoding(head, name, notify)
        text = head.decode(encoding, errors="replace")
        delimiter = _sniff_delimiter(text)
        table = cls(name=name, paths=paths, kind=kind, columns=[], delimiter=delimiter, encoding=encoding,
                    decimal=decimal, quoted=any(_has_quote(p) for p in paths), block_bytes=block_bytes_for(budget))
        table.types = table._head_types(head)
        table.columns = _clean_column_names(pd.DataFrame(columns=list(table.types)), name, notify).columns.tolist()
        return table

    # ------------------------------------------------------------------------------------------------------ CSV
    def _csv_options(self, types: dict[str, Any] | None) -> tuple[Any, Any, Any]:
        import pyarrow.csv as pacsv

        utf8 = self.encoding.lower().replace("_", "-") in ("utf-8", "utf8", "utf-8-sig")
        read = pacsv.ReadOptions(encoding="utf8" if utf8 else self.encoding, block_size=self.block_bytes)
        parse = pacsv.ParseOptions(delimiter=self.delimiter, newlines_in_values=self.quoted)
        convert = pacsv.ConvertOptions(null_values=NULL_MARKERS, strings_can_be_null=True,
                                       quoted_strings_can_be_null=True, decimal_point=self.decimal or ".",
                                       column_types=types)
        return read, parse, convert

    def _head_types(self, head: bytes) -> dict[str, Any]:
        """The arrow type each column is read as, from the first rows: numbers float64 (an integer column may have
        gaps and fractions further on), booleans bool, anything else text."""
        import io

        import pyarrow as pa
        import pyarrow.csv as pacsv

        cut = head if len(head) < _SNIFF_BYTES else head[: head.rfind(b"\n") + 1] or head
        read, parse, convert = self._csv_options(None)
        try:
            sample = pacsv.read_csv(io.BytesIO(cut), read_options=read, parse_options=parse, convert_options=convert)
        except pa.ArrowInvalid as exc:
            self._raise_parse_error(exc, self.paths[0])
        types = {}
        for name, t in zip(sample.schema.names, sample.schema.types):
            types[name] = (pa.float64() if pa.types.is_integer(t) or pa.types.is_floating(t) or pa.types.is_decimal(t)
                           else pa.bool_() if pa.types.is_boolean(t) else pa.string())
        return types

    def widen(self, column: str) -> None:
        """Read ``column`` (a name as written in the file) as text from now on."""
        import pyarrow as pa

        self.types[column] = pa.string()

    def _raise_parse_error(self, exc: Exception, path: Path) -> None:
        msg = str(exc)
        match = re.search(r"Expected (\d+) columns, got (\d+)", msg)
        if match:
            line = _first_ragged_line(path, self.encoding, self.delimiter, int(match.group(1)))
            where = f"line {line}" if line else "a row"
            raise DataError(
                f"{path}: {where} has {match.group(2)} fields but the header has {match.group(1)} (ragged rows); "
                f"fix that line, or quote values that contain the delimiter {self.delimiter!r}") from None
        match = re.search(r"In CSV column #(\d+): (?:Row #\d+: )?CSV conversion error to \w+: invalid value '(.*)'", msg)
        if match:
            raise _TypeChange(list(self.types)[int(match.group(1))], match.group(2))
        if "UTF8" in msg or "utf8" in msg.lower():
            raise DataError(f"{path}: not valid UTF-8 past its first rows; pass {option('encoding')} (e.g. latin-1)")
        raise DataError(f"{path}: cannot parse as a delimited text table ({msg.splitlines()[0]})") from None

    # ------------------------------------------------------------------------------------------------------ read
    def frames(self, columns: list[str] | None = None) -> Iterator[tuple[int, pd.DataFrame]]:
        """(position of the first row, DataFrame) for consecutive record batches, over every file in order.
        ``columns``: only these (names as :attr:`columns` gives them)."""
        import pyarrow as pa

        start = 0
        for path in self.paths:
            try:
                batches = self._csv_batches(path) if self.kind == "csv" else self._parquet_batches(path)
                for batch in batches:
                    if not batch.num_rows:
                        continue
                    df = batch.to_pandas(date_as_object=False)
                    if list(df.columns) != self.columns:
                        df = df.set_axis(self.columns, axis=1)
                    if columns is not None:
                        df = df[[c for c in columns if c in df.columns]]
                    yield start, df
                    start += len(df)
            except pa.ArrowInvalid as exc:
                if self.kind == "csv":
                    self._raise_parse_error(exc, path)
                raise DataError(f"{path}: cannot read as Parquet ({str(exc).splitlines()[0]}); check the file is "
                                "complete") from None
            except pa.ArrowException as exc:
                raise DataError(f"{path}: cannot read ({str(exc).splitlines()[0]})") from None

    def _parquet_batches(self, path: Path) -> Iterator[Any]:
        import pyarrow.dataset as ds

        for fragment in ds.dataset(str(path), format="parquet").get_fragments():
            yield from fragment.to_batches(batch_size=_PARQUET_ROWS, batch_readahead=_READAHEAD, fragment_readahead=1)

    def _csv_batches(self, path: Path) -> Iterator[Any]:
        """The file's rows, ``block_bytes`` of text at a time: each block ends at a line break outside quotes and
        is parsed with the header's column types. (``pyarrow.dataset``'s CSV scanner decodes ahead of its reader
        without a bound, so a slow consumer ends up holding the whole file.)"""
        import io

        import pyarrow.csv as pacsv

        read, parse, convert = self._csv_options(dict(self.types))
        codec = self.encoding.lower().replace("_", "-")
        if codec.startswith("utf-16") or codec.startswith("utf-32"):  # line breaks are not single bytes
            import pyarrow.dataset as ds

            fmt = ds.CsvFileFormat(parse_options=parse, convert_options=convert, read_options=read)
            for fragment in ds.dataset(str(path), format=fmt).get_fragments():
                yield from fragment.to_batches(batch_readahead=_READAHEAD, fragment_readahead=1)
            return
        with open(path, "rb") as fh:
            header = fh.readline()
            if path != self.paths[0]:
                with open(self.paths[0], "rb") as first:
                    if first.readline().strip() != header.strip():
                        raise DataError(f"{path}: its header differs from that of {self.paths[0]}; the files of a "
                                        "folder must have the same columns in the same order")
            carry = b""
            while True:
                block = fh.read(self.block_bytes)
                text = carry + block
                if not text:
                    return
                cut = len(text) if not block else _last_record_end(text, quoted=self.quoted)
                if cut <= 0:  # one record longer than a block: read on
                    carry = text
                    continue
                carry = text[cut:]
                table = pacsv.read_csv(io.BytesIO(header + text[:cut]), read_options=read, parse_options=parse,
                                       convert_options=convert)
                yield from table.to_batches()

    def file_name(self, column: str) -> str:
        """The name ``column`` has in the file (before blank and duplicate names were made unique)."""
        return list(self.types)[self.columns.index(column)] if self.kind == "csv" else column


def _last_record_end(text: bytes, *, quoted: bool) -> int:
    """The index just past the last line break of ``text`` that ends a record: outside quotes (an even number of
    double quotes before it; an escaped quote is written twice), 0 when there is none."""
    if not quoted:
        return text.rfind(b"\n") + 1
    raw = np.frombuffer(text, dtype=np.uint8)
    breaks = np.flatnonzero(raw == 10)
    if not len(breaks):
        return 0
    quotes_before = np.cumsum(raw == 34)[breaks]
    outside = breaks[quotes_before % 2 == 0]
    return int(outside[-1]) + 1 if len(outside) else 0


class _TypeChange(Exception):
    """A text file's column holds, past its first rows, a value its type from those rows cannot take."""

    def __init__(self, column: str, value: str) -> None:
        super().__init__(column, value)
        self.column, self.value = column, value


def widening(table: StreamTable, run: Any) -> Any:
    """``run()``, again with a column read as text whenever it meets a value its first rows' type cannot take."""
    for _ in range(len(table.types) + 1):
        try:
            return run()
        except _TypeChange as change:
            table.widen(change.column)
    raise AssertionError("every column is text and still a conversion failed: please report a bug")


def fingerprint(table: StreamTable, *, n_rows: int) -> dict[str, Any]:
    """As :func:`.split.fingerprint` records a file: the sha256 of its bytes (of each file's name and bytes, for a
    folder), rows and columns."""
    digest = hashlib.sha256()
    for path in table.paths:
        if len(table.paths) > 1:
            digest.update(str(path.relative_to(Path(table.name))).encode() + b"\x00")
        with open(path, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                digest.update(block)
    return {"kind": "folder" if len(table.paths) > 1 else "file", "name": Path(table.name).name,
            "sha256": digest.hexdigest(), "rows": int(n_rows), "columns": len(table.columns)}


# ======================================================================================================================
# Pass 1: the schema, from a uniform sample of the rows
# ======================================================================================================================


def infer_streamed_schema(table: StreamTable, target: str, cfg: Any, *, sample_rows: int,
                          notify: Notify) -> tuple[Schema, int, pd.DataFrame]:
    """(the schema, the table's row count, the sample) from a uniform sample of ``sample_rows`` rows, plus a row of
    each target value the sample lacks (up to ``_MAX_LABELS`` values), so that every class is known."""
    if target not in table.columns:
        infer_schema(pd.DataFrame(columns=table.columns), target, source=table.name)  # its one-line message

    def one_pass() -> tuple[pd.DataFrame, int, dict[str, pd.DataFrame]]:
        sample, labels, n = BottomK(sample_rows), {}, 0
        for start, df in table.frames():
            positions = np.arange(start, start + len(df))
            sample.offer(df, row_keys(positions, seed=cfg.seed, stream=_SCHEMA), positions)
            if len(labels) <= _MAX_LABELS:
                y = df[target]
                for value, index in zip(*_first_occurrences(y)):
                    key = label_key(value)
                    if key not in labels:
                        labels[key] = df.iloc[[index]]
            n = start + len(df)
        return sample.frame()[0], n, labels

    rows, n_rows, labels = widening(table, one_pass)
    seen = set(pd.Series([label_key(v) for v in rows[target].dropna()]).unique()) if len(rows) else set()
    extra = [row for key, row in labels.items() if key not in seen] if len(labels) <= _MAX_LABELS else []
    judged = pd.concat([rows, *extra], ignore_index=True) if extra else rows
    schema = infer_schema(judged, target, task=cfg.task, categorical=cfg.categorical, numeric=cfg.numeric,
                          drop=cfg.drop, source=table.name, notify=notify)
    return schema, n_rows, rows


def _first_occurrences(y: pd.Series) -> tuple[np.ndarray, np.ndarray]:
    """The distinct present values of ``y`` and the position of each one's first row."""
    present = y.notna().to_numpy()
    if not present.any():
        return np.zeros(0, dtype=object), np.zeros(0, dtype=np.int64)
    codes, uniques = pd.factorize(y, use_na_sentinel=True)
    _, first = np.unique(codes[codes >= 0], return_index=True)
    where = np.flatnonzero(codes >= 0)[first]
    return np.asarray(uniques, dtype=object), where


# ======================================================================================================================
# Pass 2: the training rows' statistics
# ======================================================================================================================


@dataclass
class Statistics:
    """What a pass over the table learned: row counts per split, the training sample, category counts, missing
    flags, the regression target's moments, and the validation and test rows held in memory (samples when capped)."""

    n_rows: int = 0
    n_unlabelled: int = 0
    n_split: list[int] = field(default_factory=lambda: [0, 0, 0])
    sample: pd.DataFrame | None = None
    counts: dict[str, pd.Series] = field(default_factory=dict)
    pruned: set[str] = field(default_factory=set)
    missing: dict[str, bool] = field(default_factory=dict)
    y_sum: float = 0.0
    y_sq: float = 0.0  # sum of squared deviations from the running mean (merged as Chan et al.)
    valid: pd.DataFrame | None = None
    test: pd.DataFrame | None = None
    samples: list[BottomK] = field(default_factory=list)  # the train, valid and test samples, for merging

    @property
    def n_train(self) -> int:
        return self.n_split[TRAIN]

    def y_moments(self) -> tuple[float, float]:
        n = max(self.n_train, 1)
        return self.y_sum / n, float(np.sqrt(self.y_sq / n))


def labelled_rows(df: pd.DataFrame, start: int, target: str) -> tuple[pd.DataFrame, np.ndarray, int]:
    """(the rows of a chunk whose target is present and finite, their positions, how many were left out)."""
    positions = np.arange(start, start + len(df))
    unlabelled, _ = _unlabelled(df[target])
    if unlabelled.any():
        return df[~unlabelled], positions[~unlabelled], int(unlabelled.sum())
    return df, positions, 0


def gather_statistics(table: StreamTable, schema: Schema, cfg: Any, limits: Limits, *, test_size: float,
                      valid_size: float, shard: tuple[int, int] | None = None) -> Statistics:
    """One pass over ``table``: the statistics of its training rows, merged chunk by chunk, and the held-out rows.
    With ``shard`` (rank, world size), only the rows of that rank's shard (:func:`shard_of`) count; the ranks'
    statistics then combine with :func:`merge_statistics` into those of the whole table."""
    stats = Statistics()
    target = schema.target
    samples = [BottomK(limits.sample_rows), BottomK(limits.valid_rows), BottomK(limits.test_rows)]
    streams = [_TRAIN_SAMPLE, _VALID_SAMPLE, _TEST_SAMPLE]
    categorical = [c.name for c in schema.features if c.kind not in ("numeric", "datetime")]
    probe = Preprocessor(schema)  # reads the numeric and datetime columns as the fitted one will
    probe.numeric_inputs = [(c.name, None if c.kind == "numeric" else "epoch_days") for c in schema.features
                            if c.kind in ("numeric", "datetime")]
    stats.missing = {c: False for c, _ in probe.numeric_inputs}
    stats.counts = {c: pd.Series(dtype=np.int64) for c in categorical}
    y_n = 0
    for start, df in table.frames():
        stats.n_rows = start + len(df)
        df, positions, n_left_out = labelled_rows(df, start, target)
        df, positions = _mine(df, positions, shard, seed=cfg.seed)
        stats.n_unlabelled += n_left_out
        codes = split_codes(positions, seed=cfg.seed, test_size=test_size, valid_size=valid_size)
        for part in (TRAIN, VALID, TEST):
            chosen = codes == part
            n_part = int(chosen.sum())
            stats.n_split[part] += n_part
            if n_part:
                rows = df[chosen] if n_part < len(df) else df
                samples[part].offer(rows, row_keys(positions[chosen], seed=cfg.seed, stream=streams[part]),
                                    positions[chosen])
        train = df[codes == TRAIN]
        if not len(train):
            continue
        raw = probe._numeric_rows(train, source=table.name, notify=no_notice, check_types=False)
        for (col, _), gaps in zip(probe.numeric_inputs, np.isnan(raw).any(axis=1)):
            stats.missing[col] |= bool(gaps)
        for col in categorical:
            merged = stats.counts[col].add(category_counts(train[col]), fill_value=0)
            if len(merged) > _PRUNE_AT:  # keep the most frequent: memory bounded, counts of rare values lost
                merged = merged.nlargest(max(10 * cfg.max_categories, _PRUNE_AT // 10))
                stats.pruned.add(col)
            stats.counts[col] = merged
        if schema.task == "regression":
            y = probe.encode_target(train[target], source=table.name).astype(np.float64)
            _add_moments(stats, y_n, len(y), float(y.sum()), float(((y - y.mean()) ** 2).sum()))
            y_n += len(y)
    stats.counts = {c: s.astype(np.int64) for c, s in stats.counts.items()}
    stats.samples = samples
    stats.sample, stats.valid, stats.test = (s.frame()[0] for s in samples)
    return stats


def _add_moments(stats: Statistics, n_a: int, n_b: int, sum_b: float, sq_b: float) -> None:
    """Merge a part's target count, sum and sum of squared deviations into ``stats`` (Chan et al.)."""
    if not n_b:
        return
    mean_a = stats.y_sum / n_a if n_a else 0.0
    delta = sum_b / n_b - mean_a
    stats.y_sq += sq_b + delta * delta * n_a * n_b / (n_a + n_b)
    stats.y_sum += sum_b


def merge_statistics(parts: list[Statistics], *, max_categories: int) -> Statistics:
    """The statistics of the union of disjoint shards' rows, from each shard's (in rank order): sums of the counts,
    the samples' smallest keys (the very sample one process over the whole table draws), gaps anywhere. Every rank
    merging the same parts gets the same result, so every rank fits the same preprocessing."""
    out = Statistics(n_rows=max(p.n_rows for p in parts), missing=dict(parts[0].missing))
    out.samples = [BottomK(s.k) for s in parts[0].samples]
    out.counts = {c: pd.Series(dtype=np.int64) for c in parts[0].counts}
    for part in parts:
        out.n_unlabelled += part.n_unlabelled
        _add_moments(out, out.n_split[TRAIN], part.n_split[TRAIN], part.y_sum, part.y_sq)
        out.n_split = [a + b for a, b in zip(out.n_split, part.n_split)]
        out.pruned |= part.pruned
        for col, gaps in part.missing.items():
            out.missing[col] = out.missing[col] or gaps
        for col, counts in part.counts.items():
            merged = out.counts[col].add(counts, fill_value=0)
            if len(merged) > _PRUNE_AT:
                merged = merged.nlargest(max(10 * max_categories, _PRUNE_AT // 10))
                out.pruned.add(col)
            out.counts[col] = merged
        for mine, theirs in zip(out.samples, part.samples):
            mine.merge(theirs)
    out.counts = {c: s.astype(np.int64) for c, s in out.counts.items()}
    out.sample, out.valid, out.test = (s.frame()[0] for s in out.samples)
    return out


def fit_preprocessor(schema: Schema, stats: Statistics, *, scaling: str, max_categories: int, source: str,
                     notify: Notify) -> Preprocessor:
    """The :class:`Preprocessor` the in-memory fit gives, from a pass's statistics (see the module's notes)."""
    if stats.n_train == 0 or stats.sample is None or not len(stats.sample):
        raise DataError(f"{source}: no training rows ({stats.n_rows} rows, {stats.n_unlabelled} without a target); "
                        f"add rows or lower {option('test_size')}")
    for col in sorted(stats.pruned):
        notify(f"{source}: column {col!r} has over {_PRUNE_AT:,} distinct values; its category counts beyond the "
               "most frequent are estimates")
    y_mean, y_std = stats.y_moments() if schema.task == "regression" else (0.0, 1.0)
    return Preprocessor.from_statistics(schema, scaling=scaling, max_categories=max_categories, sample=stats.sample,
                                        counts=stats.counts, missing=stats.missing, n_rows=stats.n_train,
                                        y_mean=y_mean, y_std=y_std, source=source, notify=notify)


# ======================================================================================================================
# Training rows in shuffled blocks
# ======================================================================================================================


def training_blocks(table: StreamTable, pre: Preprocessor, *, seed: int, epoch: int, test_size: float,
                    valid_size: float, buffer_rows: int, shard: tuple[int, int] | None = None) -> Iterator[Batch]:
    """The training rows of one epoch as model inputs, in blocks of ``buffer_rows // 2`` rows (the last one shorter).

    The rows pass through a shuffle buffer of ``buffer_rows`` rows: when it is full, a random half of it leaves as a
    block and the next rows take its place, so a row can leave up to the buffer's length away from its place in the
    file; a table whose training rows fit in the buffer leaves as one block in a uniformly random order. The order
    depends only on ``seed`` and ``epoch`` (and the ``shard``, (rank, world size): only its rows are handed out).
    """
    rng = np.random.default_rng([seed, epoch] + ([shard[0]] if shard is not None and shard[1] > 1 else []))
    target = pre.schema.target
    half = max(buffer_rows // 2, 1)
    x_num = x_cat = y = None
    fill = 0
    for start, df in table.frames():
        df, positions, _ = labelled_rows(df, start, target)
        df, positions = _mine(df, positions, shard, seed=seed)
        train = df[split_codes(positions, seed=seed, test_size=test_size, valid_size=valid_size) == TRAIN]
        if not len(train):
            continue
        batch = pre.transform(train, source=table.name, notify=no_notice, with_target=True, check_types=False)
        if x_num is None:
            x_num = np.empty((buffer_rows, batch.x_num.shape[1]), dtype=batch.x_num.dtype)
            x_cat = np.empty((buffer_rows, batch.x_cat.shape[1]), dtype=batch.x_cat.dtype)
            y = np.empty(buffer_rows, dtype=batch.y.dtype)
        i = 0
        while i < len(batch):
            take = min(buffer_rows - fill, len(batch) - i)
            x_num[fill:fill + take], x_cat[fill:fill + take] = batch.x_num[i:i + take], batch.x_cat[i:i + take]
            y[fill:fill + take] = batch.y[i:i + take]
            fill, i = fill + take, i + take
            if fill == buffer_rows:
                order = rng.permutation(buffer_rows)
                out, kept = order[:half], order[half:]
                yield Batch(x_num=x_num[out], x_cat=x_cat[out], y=y[out])
                x_num[: len(kept)], x_cat[: len(kept)], y[: len(kept)] = x_num[kept], x_cat[kept], y[kept]
                fill = len(kept)
    if fill:
        order = rng.permutation(fill)
        yield Batch(x_num=x_num[order], x_cat=x_cat[order], y=y[order])
