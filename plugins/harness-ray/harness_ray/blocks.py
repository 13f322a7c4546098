"""Records and decisions as Arrow blocks, the unit Ray Data moves between tasks and actors.

A record travels as ``(seq, source, payload, skip)`` (:data:`harness.stages.Entry`): ``payload``
is what the core's reader gave for it (a JSONL line's bytes, a Parquet row, or the exception
that says why it cannot be read), pickled. A decision travels as ``(seq, sub, outcome, source,
errored, line)`` where ``line`` is the decision's journal JSON.
"""

from __future__ import annotations

import pickle
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pyarrow as pa

from harness.stages import Entry, Finished, iter_raw

RECORDS = pa.schema([("seq", pa.int64()), ("source", pa.string()), ("payload", pa.binary()),
                     ("skip", pa.list_(pa.int64()))])
DECISIONS = pa.schema([("seq", pa.int64()), ("sub", pa.int64()), ("outcome", pa.string()),
                       ("source", pa.string()), ("errored", pa.list_(pa.string())),
                       ("line", pa.binary())])


def read_records(path: str, given: str, first_seq: int, done: Mapping[int, Iterable[int]],
                 rows: int) -> Iterator[pa.Table]:
    """Blocks of ``rows`` records of one input file (read at ``path``, named as ``given`` on
    the command line, as a local run names it), numbered from ``first_seq`` (the record's
    position in the run's inputs), each with the indexes of its transcripts already decided."""
    columns: dict[str, list[Any]] = {name: [] for name in RECORDS.names}
    for seq, (source, raw) in enumerate(iter_raw(path), first_seq):
        columns["seq"].append(seq)
        columns["source"].append(given + source[len(path):] if source.startswith(path)
                                 else source)
        columns["payload"].append(pickle.dumps(raw, protocol=5))
        columns["skip"].append(sorted(done.get(seq, ())))
        if len(columns["seq"]) >= rows:
            yield pa.table(columns, schema=RECORDS)
            columns = {name: [] for name in RECORDS.names}
    if columns["seq"]:
        yield pa.table(columns, schema=RECORDS)


def to_entries(block: pa.Table) -> list[Entry]:
    """A block of records as the engine's entries."""
    data = block.to_pydict()
    return [(seq, source, pickle.loads(payload), frozenset(skip)) for seq, source, payload, skip
            in zip(data["seq"], data["source"], data["payload"], data["skip"], strict=True)]


def from_decisions(decided: list[Finished]) -> pa.Table:
    """Decided transcripts as a block."""
    return pa.table({"seq": [f.seq for f in decided], "sub": [f.sub for f in decided],
                     "outcome": [f.outcome for f in decided],
                     "source": [f.source for f in decided],
                     "errored": [list(f.errored) for f in decided],
                     "line": [f.json() for f in decided]}, schema=DECISIONS)


def to_decisions(block: pa.Table) -> list[Finished]:
    """A block of decisions as the core's :class:`Finished` (the journal line kept as JSON)."""
    data = block.to_pydict()
    return [Finished(seq, sub, 0, outcome, source, tuple(errored), None, line)
            for seq, sub, outcome, source, errored, line
            in zip(data["seq"], data["sub"], data["outcome"], data["source"], data["errored"],
                   data["line"], strict=True)]


def count_records(path: str) -> tuple[int, int]:
    """Records of one input file, as the core's reader counts them (exactly), and their size
    in bytes as they travel in a block."""
    records = size = 0
    for _, raw in iter_raw(path):
        records += 1
        size += len(raw) if isinstance(raw, bytes) else len(pickle.dumps(raw, protocol=5))
    return records, size
