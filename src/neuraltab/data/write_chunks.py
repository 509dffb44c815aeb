"""Prediction tables written a chunk at a time (a streamed prediction), atomically: into a temporary file beside the
output, renamed into place only when every chunk is in, removed when anything fails."""

from __future__ import annotations

import os
import sys
import tempfile
from pathlib import Path
from typing import Any

import pandas as pd

from ..artifacts import _advice, _mode_for, _why, check_writable
from ..errors import ArtifactError, DataError
from .write import OUTPUT_SUFFIXES

__all__ = ["ChunkedTableWriter"]


class ChunkedTableWriter:
    """``with ChunkedTableWriter(path, force=...) as out: out.write(table)`` for each chunk, in order; the bytes are
    those :func:`.write.write_table` writes for the chunks' concatenation (CSV/TSV, JSON lines) or the same rows as
    one Parquet file. ``path`` None writes CSV to stdout, chunk by chunk."""

    def __init__(self, path: Path | None, *, force: bool = False) -> None:
        self.path = None if path is None else Path(path)
        self.force = force
        self.suffix = self.path.suffix.lower() if self.path else ".csv"
        if self.suffix not in OUTPUT_SUFFIXES:
            raise DataError(f"{path}: cannot write {self.suffix or 'files without an extension'}; "
                            f"use one of {', '.join(OUTPUT_SUFFIXES)}")
        self.fh: Any = None
        self.tmp: str | None = None
        self.parquet: Any = None
        self.schema: Any = None
        self.n_written = 0

    def __enter__(self) -> "ChunkedTableWriter":
        if self.path is None:
            self.fh = sys.stdout.buffer
            return self
        check_writable(self.path, force=self.force)
        parent = self.path.parent if str(self.path.parent) else Path(".")
        try:
            fd, self.tmp = tempfile.mkstemp(prefix=f".{self.path.name}.", suffix=".tmp", dir=parent)
            os.chmod(self.tmp, _mode_for(self.path))
        except OSError as exc:
            raise ArtifactError(f"{self.path}: cannot write ({_why(exc, b'')}); {_advice(exc)}") from None
        self.fh = os.fdopen(fd, "wb")
        return self

    def write(self, table: pd.DataFrame) -> None:
        import pyarrow as pa

        arrow = pa.Table.from_pandas(table, preserve_index=False)
        try:
            if self.suffix in (".parquet", ".pq"):
                import pyarrow.parquet as pq

                if self.parquet is None:
                    self.schema = arrow.schema
                    self.parquet = pq.ParquetWriter(self.fh, self.schema)
                self.parquet.write_table(arrow.cast(self.schema))
            elif self.suffix in (".jsonl", ".ndjson", ".json"):
                text = table.to_json(orient="records", lines=True)
                self.fh.write((text if text.endswith("\n") or not text else text + "\n").encode())
            else:
                import pyarrow.csv as pacsv

                delimiter = "\t" if self.suffix in (".tsv", ".tab") else ","
                options = pacsv.WriteOptions(delimiter=delimiter, quoting_style="needed",
                                             include_header=self.n_written == 0)
                pacsv.write_csv(arrow, self.fh, write_options=options)
        except OSError as exc:
            where = self.path or "standard output"
            raise ArtifactError(f"{where}: cannot write the predictions ({_why(exc, b'')}); {_advice(exc)}") from None
        self.n_written += len(table)

    def __exit__(self, kind: Any, exc: Any, tb: Any) -> None:
        if self.path is None:
            if kind is None:
                self.fh.flush()
            return
        try:
            if self.parquet is not None:
                self.parquet.close()
            if kind is None:
                self.fh.flush()
                os.fsync(self.fh.fileno())
            self.fh.close()
            if kind is None:
                if not self.force and self.path.exists():
                    check_writable(self.path, force=False)
                os.replace(self.tmp, self.path)
                self.tmp = None
        except OSError as err:
            raise ArtifactError(f"{self.path}: cannot write ({_why(err, b'')}); {_advice(err)}") from None
        finally:
            if self.tmp is not None:
                Path(self.tmp).unlink(missing_ok=True)
