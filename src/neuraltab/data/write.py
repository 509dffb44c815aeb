"""Writing prediction tables: CSV/TSV (formatted on every core), Parquet or JSON lines, atomically, or to stdout."""

from __future__ import annotations

import errno
import io
import sys
from pathlib import Path
from typing import Any

import pandas as pd

from ..artifacts import atomic_write_bytes
from ..errors import ArtifactError, DataError, option
from ..system import available_cores

__all__ = ["OUTPUT_SUFFIXES", "csv_bytes", "write_table"]

OUTPUT_SUFFIXES = (".csv", ".tsv", ".tab", ".txt", ".parquet", ".pq", ".jsonl", ".ndjson", ".json")


def write_table(table: pd.DataFrame, path: Path | None, *, force: bool = False) -> None:
    """Write predictions as CSV/TSV/Parquet/JSON lines (by extension), atomically; to stdout as CSV without a path."""
    import pyarrow as pa

    arrow = pa.Table.from_pandas(table, preserve_index=False)
    buffer = io.BytesIO()
    suffix = path.suffix.lower() if path else ".csv"
    if suffix not in OUTPUT_SUFFIXES:
        raise DataError(f"{path}: cannot write {suffix or 'files without an extension'}; "
                        f"use one of {', '.join(OUTPUT_SUFFIXES)}")
    if suffix in (".parquet", ".pq"):
        import pyarrow.parquet as pq

        pq.write_table(arrow, buffer)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        buffer.write(table.to_json(orient="records", lines=True).encode())
    else:
        buffer.write(csv_bytes(arrow, delimiter="\t" if suffix in (".tsv", ".tab") else ","))
    if path is None:
        try:  # a full disk behind a redirect takes part of a write and says so only in the count written
            rest = buffer.getbuffer()
            while len(rest):
                written = sys.stdout.buffer.write(rest)
                if not written:
                    raise OSError(errno.EIO, "the output took no more bytes")
                rest = rest[written:]
            sys.stdout.buffer.flush()
        except BrokenPipeError:  # the reader stopped (`| head`): click exits 1 quietly, as it should
            raise
        except OSError as exc:
            why = exc.strerror or exc
            raise ArtifactError(f"standard output: cannot write the predictions ({why}), so what it got is "
                                f"incomplete; free some space where it goes, or write them with {option('output')}") from None
    else:
        atomic_write_bytes(path, buffer.getvalue(), force=force)


def csv_bytes(arrow: Any, *, delimiter: str = ",", rows_per_part: int = 100_000) -> bytes:
    """The table as CSV bytes, identical to one ``pyarrow.csv.write_csv`` call but formatted on every core.

    pyarrow's writer runs on one thread and formatting numbers is nearly all of its time; blocks of rows are
    independent, so each core formats its own block and the bytes are joined.
    """
    import pyarrow.csv as pacsv

    n = arrow.num_rows
    parts = max(1, min(available_cores(), n // rows_per_part))

    def part(i: int) -> bytes:
        start, stop = n * i // parts, n * (i + 1) // parts
        out = io.BytesIO()
        options = pacsv.WriteOptions(delimiter=delimiter, quoting_style="needed", include_header=i == 0)
        pacsv.write_csv(arrow.slice(start, stop - start), out, write_options=options)
        return out.getvalue()

    if parts == 1:
        return part(0)
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(parts) as pool:
        return b"".join(pool.map(part, range(parts)))


