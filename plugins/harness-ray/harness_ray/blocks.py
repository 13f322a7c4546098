"""Records and decisions as Arrow blocks, the unit Ray Data moves between tasks and actors.

A record travels as ``(seq, source, payload, skip)`` (:data:`harness.stages.Entry`): ``payload``
is what the core's reader gave for it (a JSONL line's bytes, a Parquet row, or the exception
that says why it cannot be read), pickled. A decision travels as ``(seq, sub, outcome, source,
errored, line)`` where ``line`` is the decision's journal JSON.
"""

from __future__ import annotations

import itertools
import pickle
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

import pyarrow as pa

from harness.inputs import Source
from harness.stages import Entry, Finished
from harness.stops import RunStopped, Stop

RECORDS = pa.schema([("seq", pa.int64()), ("source", pa.string()), ("payload", pa.binary()),
                     ("skip", pa.list_(pa.int64()))])
DECISIONS = pa.schema([("seq", pa.int64()), ("sub", pa.int64()), ("outcome", pa.string()),
                       ("source", pa.string()), ("errored", pa.list_(pa.string())),
                       ("line", pa.binary())])


def read_records(source: Source, first_seq: int, done: Mapping[int, Iterable[int]], rows: int,
                 limit: int | None = None) -> Iterator[pa.Table]:
    """Blocks of ``rows`` records of one input, numbered from ``first_seq`` (the record's
    position in the run's inputs, :func:`harness.inputs.iter_entries`' numbering) up to
    ``limit``, each with the indexes of its transcripts already decided."""
    columns: dict[str, list[Any]] = {name: [] for name in RECORDS.names}
    for seq, (position, raw) in enumerate(source.records(), first_seq):
        if limit is not None and seq >= limit:
            break
        columns["seq"].append(seq)
        columns["source"].append(position)
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


STOPPED = -1
"""``seq`` of the one row of a block that says the run must stop (its ``line``: why)."""


def stop_block(stop: RunStopped, decided: list[Finished] | None = None) -> pa.Table:
    """A block saying that the run must stop (a judge endpoint down, ``--max-cost`` reached),
    after the transcripts the actor decided before that: an exception raised in an actor
    reaches the driver only as text, so it travels as data (its kind in ``outcome``)."""
    row = pa.table({"seq": [STOPPED], "sub": [STOPPED], "outcome": [stop.stop.value],
                    "source": [""], "errored": [[]], "line": [str(stop).encode()]},
                   schema=DECISIONS)
    return pa.concat_tables([from_decisions(decided), row]) if decided else row


def to_decisions(block: pa.Table) -> list[Finished]:
    """A block's decisions as the core's :class:`Finished` (the journal line kept as JSON);
    a stop row is left out: :func:`stop_of` says why the run stops."""
    data = block.to_pydict()
    return [Finished(seq, sub, 0, outcome, source, tuple(errored), None, line)
            for seq, sub, outcome, source, errored, line
            in zip(data["seq"], data["sub"], data["outcome"], data["source"], data["errored"],
                   data["line"], strict=True) if seq != STOPPED]


def stop_of(block: pa.Table) -> RunStopped | None:
    """What stops the run, as a local run would raise it, when the block ends with a stop
    row."""
    seqs = block.column("seq").to_pylist()
    if STOPPED not in seqs:
        return None
    at = seqs.index(STOPPED)
    return RunStopped(Stop(block.column("outcome")[at].as_py()),
                      block.column("line")[at].as_py().decode())


SAMPLE_RECORDS = 200


def measure(source: Source) -> tuple[int, float]:
    """How many records one input holds (exactly, as :meth:`Source.records` yields them) and
    the mean size in bytes of its first ones as they travel in a block."""
    sizes = []
    for _, raw in itertools.islice(source.records(), SAMPLE_RECORDS):
        sizes.append(len(raw) if isinstance(raw, bytes) else len(pickle.dumps(raw, protocol=5)))
    return source.count(), sum(sizes) / max(1, len(sizes))
