"""Reading the inputs in Ray Data read tasks, with the core's reader: one task per input file.

Ray Data's own readers (``read_json``, ``read_parquet``) are not used: they parse JSONL into a
typed table (an integer past 64 bits, a NaN or a malformed line would not be read as a local
run reads it, and a bad line fails the whole file), and they number neither a file's records
nor its unreadable row groups as the local engine does (``file:line``, ``file:row``). The
core's reader (:meth:`harness.inputs.Source.records`' steps) keeps every record's number and
position, so the decisions are the local engine's, byte for byte.

A task numbers its input's records from 0 and ends with the input's ``END`` row (how many
records it holds): the driver turns ``(file, index)`` into the run's ``seq``. Only a resumed run
(to leave out what is decided) and ``--limit`` need to know where an input starts before it is
read; :func:`count_prefix` counts the inputs up to the last record they concern, no further.
"""

from __future__ import annotations

import os
import socket
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa

from harness.inputs import Source
from harness.inputs.reader import _table_batches
from harness_ray.blocks import END, ERROR, LINE, ROW, RecordsBlock


class InputNotVisible(Exception):
    """An input the driver read is missing (or another file) where a read task runs."""


@dataclass(frozen=True)
class InputRead:
    """What a read task needs to read one input."""

    file: int
    """The input's number, in the run's order."""
    source: Source
    rows: int
    """Records per block."""
    stat: tuple[int, int] | None = None
    """``(size, mtime_ns)`` the driver saw (a local file), checked where the task runs."""
    done: dict[int, frozenset[int]] = field(default_factory=dict)
    """Record index -> its transcripts already decided."""
    stop: int | None = None
    """Read records with an index below this only (``--limit``)."""


def local_stat(source: Source) -> tuple[int, int] | None:
    if source.is_url:
        return None
    st = os.stat(source.location)
    return st.st_size, st.st_mtime_ns


def check_visible(read: InputRead) -> None:
    """Raise :class:`InputNotVisible` when the file is not the one the driver saw."""
    if read.stat is None:
        return
    where = socket.gethostname()
    try:
        here = local_stat(read.source)
    except OSError as exc:
        raise InputNotVisible(
            f"input {read.source.name} cannot be read on {where}, where a Ray read task runs "
            f"({exc.strerror or exc}): the driver reads it at {read.source.location}; put the "
            "inputs on a filesystem every node mounts, or give URLs") from None
    if here != read.stat:
        raise InputNotVisible(
            f"input {read.source.name} is another file on {where}, where a Ray read task runs, "
            f"than the driver's (size or modification time differ): put the inputs on a "
            "filesystem every node mounts, or give URLs")


def read_input(read: InputRead) -> Iterator[pa.Table]:
    """Blocks of ``read.rows`` records of one input, then its ``END`` row."""
    check_visible(read)
    if read.source.kind in ("parquet", "arrow"):
        yield from _read_table(read)
    else:
        yield from _read_text(read)


def _read_text(read: InputRead) -> Iterator[pa.Table]:
    block = RecordsBlock(read.file)
    index = 0
    for position, raw in read.source.records():
        if read.stop is not None and index >= read.stop:
            break
        skip = read.done.get(index, ())
        if isinstance(raw, bytes):
            block.add(index, LINE, position, skip, line=raw)
        else:
            block.add(index, ERROR, position, skip, error=_reason(raw))
        index += 1
        if len(block) >= read.rows:
            yield block.table()
            block = RecordsBlock(read.file)
    block.add(index, END, None)
    yield block.table()


def _read_table(read: InputRead) -> Iterator[pa.Table]:
    """A Parquet or Arrow input: rows stay Arrow (a struct column of the file's columns),
    positions as :func:`harness.inputs.reader._iter_table` gives them."""
    name = read.source.name
    blocks = _TableBlocks(read)
    for start, batch in _table_batches(read.source):
        if isinstance(batch, Exception):
            yield from blocks.error(name if start == 0 else f"{name}:{start}", _reason(batch))
        else:
            yield from blocks.rows(start, batch)
        if blocks.stopped:
            break
    yield blocks.end()


class _TableBlocks:
    """Blocks of ``read.rows`` records cut from a table input's batches and errors."""

    def __init__(self, read: InputRead) -> None:
        self.read = read
        self.index = 0
        self.row_type: pa.DataType | None = None
        self.block = RecordsBlock(read.file)

    @property
    def stopped(self) -> bool:
        return self.read.stop is not None and self.index >= self.read.stop

    def error(self, position: str, reason: str) -> Iterator[pa.Table]:
        if self.stopped:
            return
        self.block.add(self.index, ERROR, position, self.read.done.get(self.index, ()),
                       error=reason)
        self.index += 1
        yield from self._full()

    def rows(self, start: int, batch: pa.RecordBatch) -> Iterator[pa.Table]:
        if self.row_type is None:
            self.row_type = batch.to_struct_array().type
            self.block = self.block.with_rows(self.row_type)
        offset = 0
        while offset < batch.num_rows and not self.stopped:
            take = min(self.read.rows - len(self.block), batch.num_rows - offset)
            if self.read.stop is not None:
                take = min(take, self.read.stop - self.index)
            for n in range(take):
                self.block.add(self.index + n, ROW, f"{self.read.source.name}:"
                               f"{start + offset + n}", self.read.done.get(self.index + n, ()))
            self.block.add_rows(batch.slice(offset, take).to_struct_array())
            offset += take
            self.index += take
            yield from self._full()

    def _full(self) -> Iterator[pa.Table]:
        if len(self.block) >= self.read.rows:
            yield self.block.table()
            self.block = RecordsBlock(self.read.file, self.row_type)

    def end(self) -> pa.Table:
        self.block.add(self.index, END, None)
        return self.block.table()


def _reason(exc: Exception) -> str:
    """What a record's error says (``str(exc)``, as the core's parse step reads it)."""
    return str(exc) or type(exc).__name__


def count_prefix(sources: list[Source], bound: int) -> list[int]:
    """The first ``seq`` of each input, counted (without parsing a record) from the first
    input on until the inputs counted hold more than ``bound`` records: the inputs a
    resumed run's decided records or ``--limit`` concern. Later inputs are not counted."""
    firsts: list[int] = []
    seq = 0
    for source in sources:
        firsts.append(seq)
        if seq > bound:
            break
        seq += source.count()
    return firsts


class InputFiles:
    """A Ray Data datasource: one read task per input (the class is built on first use, so
    that Ray Data is imported only when the engine runs)."""

    def __new__(cls, reads: list[InputRead]) -> Any:
        from ray.data.block import BlockMetadata
        from ray.data.datasource import Datasource, ReadTask

        class _InputFiles(Datasource):
            def estimate_inmemory_data_size(self) -> int | None:
                return None

            def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                               data_context: Any = None) -> list[ReadTask]:
                return [ReadTask(_reader(read), BlockMetadata(
                    num_rows=None, size_bytes=None, exec_stats=None,
                    input_files=(read.source.name,))) for read in reads]

        return _InputFiles()


def _reader(read: InputRead) -> Callable[[], Iterator[pa.Table]]:
    return lambda: read_input(read)
