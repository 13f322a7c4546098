"""Records and decisions as Arrow blocks, the unit Ray Data moves between tasks and actors.

A block is one Arrow row whose columns are lists, one item per record: so a block is exactly
what a read task yields (``--ray-batch-size`` records; Ray Data never cuts a row in two), and
nothing is pickled. For each record: the input's number (``file``), the record's number in it
(``index``), its position (``source``, ``name:line``), the indexes of its transcripts already
decided (``skip``), its ``kind`` and the record itself in the column of its kind: ``line`` (a
JSONL line's or a ``.json`` element's bytes), ``row`` (a Parquet or Arrow row: a struct of the
file's own columns) or ``error`` (why it cannot be read). An input's last block ends with its
``END`` record, whose ``index`` is how many records the input holds: that is how the driver
numbers the inputs after it without a counting pass (:mod:`harness_ray.numbering`).

A block of decisions carries the same ``(file, index)`` keys, the transcript's ``sub``, and the
decision as its journal JSON (``line``), the input's ``END`` record passed through, and a
``STOPPED`` item when the run must stop (an exception raised in an actor reaches the driver
only as text, so a stop travels as data) or ``BROKEN`` when the actor could not build the suite.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from harness.inputs.reader import RecordError, _batch_rows
from harness.stages import Entry, Finished, View
from harness.stops import RunStopped, Stop

LINE, ROW, ERROR, END = 0, 1, 2, 3
"""Kinds of a record."""
DECIDED, PASSED_END, STOPPED, BROKEN = 0, 3, 4, 5
"""Kinds of a decisions item: a decision, an input's ``END`` passed through, a stop, and an
actor that could not build the suite (``line``: why, in one line)."""

RECORD_FIELDS = [("file", pa.int32()), ("index", pa.int64()), ("kind", pa.int8()),
                 ("source", pa.string()), ("line", pa.binary()), ("error", pa.string()),
                 ("skip", pa.list_(pa.int64()))]
DECISION_FIELDS = [("file", pa.int32()), ("index", pa.int64()), ("kind", pa.int8()),
                   ("sub", pa.int64()), ("outcome", pa.string()), ("source", pa.string()),
                   ("errored", pa.list_(pa.string())), ("line", pa.binary()),
                   ("count", pa.int64()), ("n_messages", pa.int64()), ("train", pa.binary()),
                   ("dedup", pa.binary())]
"""A decided transcript: where its record is, its decision (``line``), its record's
transcripts (``count``) and its train view (``n_messages`` -1: an unreadable record, -2: none
taken), so that the driver writes the outputs as they come (no second read of the inputs)."""
NO_VIEW = (-2, b"", b"")


def _one_row(columns: dict[str, list[Any]], fields: list[tuple[str, pa.DataType]],
             extra: dict[str, pa.Array] | None = None) -> pa.Table:
    """A one-row table: each column a list of the items."""
    arrays = {name: pa.array([columns[name]], pa.list_(type)) for name, type in fields}
    for name, values in (extra or {}).items():
        arrays[name] = pa.ListArray.from_arrays(pa.array([0, len(values)], pa.int32()), values)
    return pa.table(arrays)


def _items(block: pa.Table, name: str) -> pa.Array:
    """The items of a list column, every row of the block in order."""
    return block.column(name).combine_chunks().flatten()


class RecordsBlock:
    """Records of one input collected into a block (``row_type``: the struct of a table
    input's columns)."""

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
        extra = None
        if self.row_type is not None:
            extra = {"row": pa.concat_arrays(self.rows) if self.rows
                     else pa.array([], self.row_type)}
        return _one_row(self.columns, RECORD_FIELDS, extra)


@dataclass(frozen=True)
class Records:
    """A block of records as the engine's entries, keyed by their place in the block."""

    block: pa.Table
    messages_column: str = "messages"

    def keys(self) -> list[tuple[int, int, int]]:
        """``(file, index, kind)`` per record."""
        return list(zip(*(_items(self.block, name).to_pylist()
                          for name in ("file", "index", "kind")), strict=True))

    def entries(self) -> Iterator[Entry]:
        """``(place, source, payload, skip)`` for every record (not the ``END`` record)."""
        kinds = _items(self.block, "kind").to_pylist()
        rows = self._rows(kinds)
        columns = (_items(self.block, name).to_pylist()
                   for name in ("source", "line", "error", "skip"))
        for n, (kind, source, line, error, skip) in enumerate(zip(kinds, *columns,
                                                                  strict=True)):
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
        rows = _items(self.block, "row").filter(pa.array([k == ROW for k in kinds]))
        return _batch_rows(pa.RecordBatch.from_struct_array(rows), self.messages_column)


def decisions(keys: Sequence[tuple[int, int, int]], decided: Iterable[Finished],
              stop: RunStopped | None = None) -> pa.Table:
    """Decided transcripts (``seq``: their place in the records block) as a block, with the
    records block's ``END`` passed through, then ``stop`` if the run must stop."""
    columns: dict[str, list[Any]] = {name: [] for name, _ in DECISION_FIELDS}
    for f in decided:
        file, index, _ = keys[f.seq]
        view = NO_VIEW if f.view is False else (-1, b"", b"") if f.view is None else f.view
        _append(columns, file, index, DECIDED, f.sub, f.outcome, f.source, list(f.errored),
                f.json(), f.count, *view)
    for file, index, kind in keys:
        if kind == END:
            _append(columns, file, index, PASSED_END, -1, "", "", [], b"", 0, *NO_VIEW)
    if stop is not None:
        _append(columns, -1, -1, STOPPED, -1, stop.stop.value, "", [], str(stop).encode(), 0,
                *NO_VIEW)
    return _one_row(columns, DECISION_FIELDS)


def broken_block(reason: str) -> pa.Table:
    """A block saying that an actor could not build the suite (``reason``: one line)."""
    columns: dict[str, list[Any]] = {name: [] for name, _ in DECISION_FIELDS}
    _append(columns, -1, -1, BROKEN, -1, "", "", [], reason.encode(), 0, *NO_VIEW)
    return _one_row(columns, DECISION_FIELDS)


def _append(columns: dict[str, list[Any]], *values: Any) -> None:
    for (name, _), value in zip(DECISION_FIELDS, values, strict=True):
        columns[name].append(value)


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
    out: list[tuple[int, int, Finished]] = []
    ends: list[tuple[int, int]] = []
    stop: RunStopped | None = None
    broken: str | None = None
    for (file, index, kind, sub, outcome, source, errored, line, count, n_messages, train,
         dedup) in zip(*(_items(block, name).to_pylist() for name, _ in DECISION_FIELDS),
                       strict=True):
        if kind == DECIDED:
            view: View = False if n_messages == -2 else None if n_messages == -1 \
                else (n_messages, train, dedup)
            out.append((file, index, Finished(-1, sub, count, outcome, source, tuple(errored),
                                              None, line, view)))
        elif kind == PASSED_END:
            ends.append((file, index))
        elif kind == STOPPED:
            stop = RunStopped(Stop(outcome), line.decode())
        else:
            broken = line.decode()
    return Decided(out, ends, stop, broken)
