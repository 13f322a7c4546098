"""Output files written atomically: rows go to ``OUT.tmp``, renamed to ``OUT`` on success.

A failed export leaves any earlier ``OUT`` untouched. JSONL (``.gz`` compressed when the name
ends so) or Parquet, written in bounded chunks.
"""

from __future__ import annotations

import gzip
import json
import os
from pathlib import Path
from typing import IO, Any

import pyarrow as pa
import pyarrow.parquet as pq

ROWS_PER_WRITE = 2048


def is_parquet(path: Path) -> bool:
    return path.name.endswith(".parquet")


class Sink:
    """Base: a temporary file, committed by :meth:`close`, removed by :meth:`abort`."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.tmp = self.path.with_name(self.path.name + ".tmp")
        self.rows = 0

    def add(self, row: dict[str, Any]) -> None:
        raise NotImplementedError

    def _close(self) -> None:
        raise NotImplementedError

    def close(self) -> None:
        self._close()
        os.replace(self.tmp, self.path)

    def abort(self) -> None:
        """Drop the temporary file; the previous ``OUT``, if any, stays."""
        self.buffer: list[dict[str, Any]] = []
        try:
            self._close()
        except Exception:  # noqa: BLE001 - already failing; the original error is raised
            pass
        finally:
            self.tmp.unlink(missing_ok=True)

    def __enter__(self) -> Sink:
        return self

    def __exit__(self, exc_type: Any, *_: Any) -> None:
        if exc_type is None:
            self.close()
        else:
            self.abort()


class JsonlSink(Sink):
    """One JSON object per line, UTF-8."""

    def __init__(self, path: Path) -> None:
        super().__init__(path)
        # closed by close()/abort(): the sink itself is the context manager
        self.fh: IO[str] = (gzip.open(self.tmp, "wt", encoding="utf-8")  # noqa: SIM115
                            if self.path.name.endswith(".gz")
                            else open(self.tmp, "w", encoding="utf-8"))  # noqa: SIM115

    def add(self, row: dict[str, Any]) -> None:
        self.fh.write(json.dumps(row, ensure_ascii=False) + "\n")
        self.rows += 1

    def _close(self) -> None:
        if not self.fh.closed:
            self.fh.close()


class ParquetSink(Sink):
    """Rows buffered and written in chunks with a fixed schema."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        super().__init__(path)
        self.schema = schema
        self.buffer: list[dict[str, Any]] = []
        self.writer: pq.ParquetWriter | None = pq.ParquetWriter(self.tmp, schema)

    def add(self, row: dict[str, Any]) -> None:
        self.buffer.append(row)
        self.rows += 1
        if len(self.buffer) >= ROWS_PER_WRITE:
            self._flush()

    def _flush(self) -> None:
        if self.buffer and self.writer is not None:
            self.writer.write_table(pa.Table.from_pylist(self.buffer, schema=self.schema))
            self.buffer = []

    def _close(self) -> None:
        if self.writer is not None:
            try:
                self._flush()
            finally:
                self.writer.close()
                self.writer = None
