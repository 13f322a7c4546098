"""Records and decisions as Arrow blocks, the unit Ray Data moves between tasks and actors.

A block of records comes from one input file. Each record is a row: the input's number
(``file``), the record's number in it (``index``), its position (``source``, ``name:line``), the
indexes of its transcripts already decided (``skip``), and the record itself as a column of
its kind: ``line`` (a JSONL line's or a ``.json`` element's bytes), ``row`` (a Parquet or Arrow
row, a struct of the file's own columns) or ``error`` (why it cannot be read). Nothing is
pickled. A block's last row may be the input's ``END`` row: ``index`` is then how many
records the input holds, which is how the driver numbers the inputs after it without a
counting pass (:mod:`harness_ray.numbering`).

A block of decisions carries the same ``(file, index)`` keys, the transcript's ``sub``, and the
decision as its journal JSON (``line``), plus the input's ``END`` row passed through, and a
``STOP`` row when the run must stop (an exception raised in an actor reaches the driver only as
text, so a stop travels as data).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from harness.inputs.reader import RecordError, _batch_rows
from harness.stages import Entry, Finished
from harness.stops import RunStopped, Stop

LINE, ROW, ERROR, END = 0, 1, 2, 3
"""Kinds of a records row."""
DECIDED, PASSED_END, STOPPED, BROKEN = 0, 3, 4, 5
"""Kinds of a decisions row: a decision, an input's ``END`` row passed through, a stop, and an
actor that could not build the suite (``line``: why, in one line)."""

RECORD_FIELDS = [("file", pa.int32()), ("index", pa.int64()), ("kind", pa.int8()),
                 ("source", pa.string()), ("line", pa.binary()), ("error", pa.string()),
                 ("skip", pa.list_(pa.int64()))]
DECISIONS = pa.schema([("file", pa.int32()), ("index", pa.int64()), ("kind", pa.int8()),
                       ("sub", pa.int64()), ("outcome", pa.string()), ("source", pa.string()),
                       ("errored", pa.list_(pa.string())), ("line", pa.binary())])


class RecordsBlock:
    """Rows of one input collected into a block (``row``: the struct type of a table input)."""

    def __init__(self, file: int, row_type: pa.DataType | None = None) -> None:
        self.file = file
        self.row_type = row_type
        self.columns: dict[str, list[Any]] = {name: [] for name, _ in RECORD_FIELDS}
        self.rows: list[pa.Array] = []

    def __len__(self) -> int:
        return len(self.columns["index"])

    def add(self, index: int, kind: int, source: str | None, skip: Iterable[int] = (), *,
            line: bytes | None = None, error: str | None = None) -> None:
        c = self.columns
        c["file"].append(self.file)
        c["index"].append(index)
        c["kind"].append(kind)
        c["source"].append(source)
        c["line"].append(line)
        c["error"].append(error)
        c["skip"].append(sorted(skip))
        if self.row_type is not None and kind != ROW:
            self.rows.append(pa.nulls(1, self.row_type))

    def with_rows(self, row_type: pa.DataType) -> RecordsBlock:
        """This block (error rows only so far) with a ``row`` column of ``row_type``."""
        block = RecordsBlock(self.file, row_type)
        block.columns = self.columns
        block.rows = [pa.nulls(len(self), row_type)] if len(self) else []
        return block

    def add_rows(self, rows: pa.StructArray) -> None:
        """The struct of the rows just added with :meth:`add` (kind ``ROW``)."""
        self.rows.append(rows)

    def table(self) -> pa.Table:
        arrays = [pa.array(self.columns[name], type) for name, type in RECORD_FIELDS]
        names = [name for name, _ in RECORD_FIELDS]
        if self.row_type is not None:
            arrays.append(pa.concat_arrays(self.rows) if self.rows
                          else pa.array([], self.row_type))
            names.append("row")
        return pa.Table.from_arrays(arrays, names)


@dataclass(frozen=True)
class Records:
    """A block of records as the engine's entries, keyed by their row in the block."""

    block: pa.Table
    messages_column: str = "messages"

    @property
    def file(self) -> int:
        return self.block.column("file")[0].as_py()

    def keys(self) -> list[tuple[int, int, int]]:
        """``(file, index, kind)`` per row."""
        c = self.block.column
        return list(zip(c("file").to_pylist(), c("index").to_pylist(), c("kind").to_pylist(),
                        strict=True))

    def entries(self) -> Iterator[Entry]:
        """``(row, source, payload, skip)`` for every record row (not the ``END`` row)."""
        c = self.block.column
        kinds = c("kind").to_pylist()
        rows = self._rows(kinds)
        for n, (kind, source, line, error, skip) in enumerate(zip(
                kinds, c("source").to_pylist(), c("line").to_pylist(), c("error").to_pylist(),
                c("skip").to_pylist(), strict=True)):
            if kind == LINE:
                yield n, source, line, frozenset(skip)
            elif kind == ROW:
                yield n, source, next(rows), frozenset(skip)
            elif kind == ERROR:
                yield n, source, RecordError(error), frozenset(skip)

    def _rows(self, kinds: Sequence[int]) -> Iterator[dict[str, Any] | Exception]:
        """The table rows as the core's reader gives them (one conversion for the block)."""
        if "row" not in self.block.column_names:
            return iter(())
        rows = self.block.column("row").combine_chunks()
        rows = rows.filter(pa.array([k == ROW for k in kinds]))
        return _batch_rows(pa.RecordBatch.from_struct_array(rows), self.messages_column)


def decisions(keys: Sequence[tuple[int, int, int]], decided: Iterable[Finished]) -> pa.Table:
    """Decided transcripts (``seq``: their row in the records block) as a block, with the
    records block's ``END`` row passed through."""
    columns: dict[str, list[Any]] = {name: [] for name in DECISIONS.names}
    for f in decided:
        file, index, _ = keys[f.seq]
        _append(columns, file, index, DECIDED, f.sub, f.outcome, f.source, list(f.errored),
                f.json())
    for file, index, kind in keys:
        if kind == END:
            _append(columns, file, index, PASSED_END, -1, "", "", [], b"")
    return pa.table(columns, schema=DECISIONS)


def _append(columns: dict[str, list[Any]], *values: Any) -> None:
    for name, value in zip(DECISIONS.names, values, strict=True):
        columns[name].append(value)


def stop_block(stop: RunStopped, done: pa.Table | None = None) -> pa.Table:
    """A block saying that the run must stop (a judge endpoint down, ``--max-cost`` reached,
    a block that keeps killing its actor), after what the actor decided before that."""
    row = pa.table({"file": [-1], "index": [-1], "kind": [STOPPED], "sub": [-1],
                    "outcome": [stop.stop.value], "source": [""], "errored": [[]],
                    "line": [str(stop).encode()]}, schema=DECISIONS)
    return pa.concat_tables([done, row]) if done is not None and done.num_rows else row


def broken_block(reason: str) -> pa.Table:
    """A block saying that an actor could not build the suite (``reason``: one line)."""
    return pa.table({"file": [-1], "index": [-1], "kind": [BROKEN], "sub": [-1],
                     "outcome": [""], "source": [""], "errored": [[]],
                     "line": [reason.encode()]}, schema=DECISIONS)


@dataclass(frozen=True)
class Decided:
    """What a decisions block says, for the driver."""

    decisions: list[tuple[int, int, Finished]]
    """``(file, index, decision)``; the decision's ``seq`` is set by the driver."""
    ends: list[tuple[int, int]]
    """``(file, records)`` of the inputs that ended in this block."""
    stop: RunStopped | None = None
    broken: str | None = None


def read_decisions(block: pa.Table) -> Decided:
    data = block.to_pydict()
    out: list[tuple[int, int, Finished]] = []
    ends: list[tuple[int, int]] = []
    stop: RunStopped | None = None
    broken: str | None = None
    for file, index, kind, sub, outcome, source, errored, line in zip(
            *(data[name] for name in DECISIONS.names), strict=True):
        if kind == DECIDED:
            out.append((file, index, Finished(-1, sub, 0, outcome, source, tuple(errored),
                                              None, line)))
        elif kind == PASSED_END:
            ends.append((file, index))
        elif kind == STOPPED:
            stop = RunStopped(Stop(outcome), line.decode())
        else:
            broken = line.decode()
    return Decided(out, ends, stop, broken)
