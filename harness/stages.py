"""The synchronous stage of the engine: records parsed and the plan's front run a chunk at a time.

The same :class:`SyncStage` runs in the engine's process or in worker processes
(:func:`worker_run` builds it once per worker from a picklable :class:`WorkerSpec`), so results
do not depend on where a chunk ran.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import os
import pickle
import signal
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from harness.collector import THRESHOLDS
from harness.inputs.reader import decode, parse_record
from harness.models import (
    Compacted,
    Decision,
    InputError,
    Transcript,
    Verdict,
    compact_json,
)
from harness.options import RunOptions
from harness.outputs import TrainView, train_view
from harness.plan import Plan
from harness.policy import input_error_decision
from harness.suite import Suite

__all__ = ["Entry", "Finished", "Pending", "SyncStage", "WorkerSpec", "ctrl_c_deferred",
           "parse_entry", "worker_init", "worker_run"]

Entry = tuple[int, str, Any, frozenset[int]]
"""``(seq, source, payload, skip)``: a record's position in the input, where it was read, the
record (raw bytes, a decoded dict, an exception, or a parsed Transcript / InputError), and the
indexes of its transcripts to leave out (already decided, on resume)."""
View = TrainView | None | Literal[False]
"""A transcript's train view, ``None`` for an unreadable record, ``False`` when not taken."""


@dataclass(slots=True)
class Finished:
    """A decided transcript: the decision as an object, or as its JSON from a worker process
    (so the engine's process does not rebuild objects it only writes out).

    ``sub == -1`` marks a record with nothing left to decide (all done on an earlier run).
    """

    seq: int
    sub: int
    count: int
    outcome: str
    source: str
    errored: tuple[str, ...] = ()
    decision: Decision | None = None
    line: bytes | None = None
    view: View = False
    """The transcript's :func:`~harness.outputs.train_view` as read (``None``: an unreadable
    record), when the engine was asked for views; ``False`` when not."""
    transcript_id: str = ""
    """The decision's ``transcript_id`` (``""``: unknown, read it from the JSON)."""
    shape: bytes | None = None
    """Where the batch shared this decision (:class:`~harness.plan.SharedDecisions`): the same
    for every decision that differs from it only in its id and source."""

    @classmethod
    def of(cls, seq: int, sub: int, count: int, decision: Decision,
           serialize: bool = False, view: View = False, memo: Compacted | None = None
           ) -> Finished:
        line = None
        if serialize:
            decision, line = recordable(decision, memo)
        return cls(seq, sub, count, decision.outcome, decision.source, tuple(decision.errored),
                   None if serialize else decision, line, view, decision.transcript_id)

    def json(self) -> bytes:
        """The decision as JSON."""
        if self.line is None:
            assert self.decision is not None
            self.decision, self.line = recordable(self.decision)
        return self.line

    def to_decision(self) -> Decision:
        """The decision as an object, its own: what the plan shared between transcripts of a
        batch (where nothing differs: verdicts, their evidence and details, the failed and
        errored lists) is copied, so a caller may change it."""
        if self.decision is None:
            self.decision = Decision.model_validate_json(self.json())
        else:
            fields = self.decision.__dict__
            fields["verdicts"] = [_own(v) for v in self.decision.verdicts]
            fields["failed"], fields["errored"] = list(fields["failed"]), list(fields["errored"])
        return self.decision


def _own(verdict: Verdict) -> Verdict:
    copy = verdict.model_copy()
    copy.__dict__["evidence"] = list(verdict.evidence)
    copy.__dict__["details"] = dict(verdict.details)
    return copy


@dataclass(slots=True)
class Pending:
    """A transcript with criteria left for the engine's async stage."""

    seq: int
    sub: int
    count: int
    transcript: Transcript
    verdicts: list[Verdict]
    blocked: str | None
    view: View = False


RECORD_CRITERION = "record"
"""Criterion name of the verdict that says a decision could not be written down."""


def recordable(decision: Decision, memo: Compacted | None = None) -> tuple[Decision, bytes]:
    """The decision and its JSON; a decision that cannot be serialized (a criterion put an
    unserializable value in its details, say) becomes that transcript's error, not the run's."""
    try:
        return decision, compact_json(decision, memo)
    except Exception as exc:  # noqa: BLE001 - one record's failure is that record's error
        reason = f"the decision could not be recorded: {type(exc).__name__}: {exc}"[:500]
        error = Decision(
            transcript_id=decision.transcript_id.encode("utf-8", "backslashreplace").decode(),
            source=decision.source.encode("utf-8", "backslashreplace").decode(),
            outcome="error", errored=[RECORD_CRITERION],
            verdicts=[Verdict(criterion=RECORD_CRITERION, kind=RECORD_CRITERION,
                              outcome="error", explanation=reason)])
        return error, compact_json(error)


def parse_entry(entry: Entry, formats: Mapping[str, Any],
                input_format: str) -> list[Transcript | InputError]:
    """The transcripts of one record (or its input error); never raises."""
    _, source, payload, _ = entry
    if isinstance(payload, Transcript | InputError):
        return [payload]
    try:
        parsed = parse_record(decode(payload), source, formats, input_format)
    except Exception as exc:  # noqa: BLE001 - a poison record is that record's error
        parsed = InputError(source=source, reason=f"unreadable record: {type(exc).__name__}: "
                                                  f"{exc}"[:500])
    return [parsed] if isinstance(parsed, InputError) else list(parsed)


class SyncStage:
    """Parses a chunk of records and runs the plan's synchronous front on all of it."""

    def __init__(self, plan: Plan, formats: Mapping[str, Any], *, serialize: bool = False
                 ) -> None:
        self.plan = plan
        self.formats = formats
        self.serialize = serialize
        """Hand decisions out as JSON (in worker processes: cheaper to send than objects)."""

    async def run(self, chunk: Sequence[Entry], views: bool = False
                  ) -> list[Finished | Pending]:
        """The chunk's decided transcripts, and those left for the async tail; with ``views``,
        each carries its transcript's :func:`~harness.outputs.train_view`, taken as read."""
        out: list[Finished | Pending] = []
        items: list[tuple[int, int, int, Transcript | InputError]] = []
        for entry in chunk:
            seq, skip = entry[0], entry[3]
            parsed = parse_entry(entry, self.formats, self.plan.options.input_format)
            kept = [(sub, v) for sub, v in enumerate(parsed) if sub not in skip]
            if not kept:
                out.append(Finished(seq, -1, 0, "", ""))
            items.extend((seq, sub, len(kept), v) for sub, v in kept)
        transcripts = [v for *_, v in items if isinstance(v, Transcript)]
        # what identifies a transcript is read before any criterion sees it (criteria are user
        # code: one that edits its transcript changes neither its id nor the outputs, which
        # are built from the inputs, never from these objects)
        names = [(t.id, t.source) for t in transcripts]
        seen: list[View] = [train_view(t) for t in transcripts] if views \
            else [False] * len(transcripts)
        verdicts, blocked = await self.plan.run_front(transcripts)
        shared = self.plan.decisions()
        compacted: Compacted = {}  # the chunk's verdicts: shared ones compacted once
        n = 0
        for seq, sub, count, value in items:
            if isinstance(value, InputError):
                out.append(Finished.of(seq, sub, count, input_error_decision(value),
                                       self.serialize, None if views else False))
                continue
            found, gate, (tid, source), view = verdicts[n], blocked.get(n), names[n], seen[n]
            n += 1
            if self.plan.has_tail:
                value.id, value.source = tid, source
                out.append(Pending(seq, sub, count, value, found, gate, view))
            else:
                decision, line, shape = shared.decide(value, found, (tid, source),
                                                      own=not self.serialize)
                if line is None:
                    out.append(Finished.of(seq, sub, count, decision, self.serialize, view,
                                           compacted))
                else:
                    out.append(Finished(seq, sub, count, decision.outcome, source,
                                        tuple(decision.errored),
                                        None if self.serialize else decision, line, view,
                                        tid, shape))
        return out


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process needs to build the same synchronous stage as the engine."""

    suite: Suite
    options: RunOptions
    front: tuple[str, ...]
    """Names of the criteria of the plan's front (the only ones a worker builds)."""


PARENT_CHECK_S = 1.0


def exit_with_parent() -> None:
    """End this worker process when the process that started it is gone.

    A pool's workers hold both ends of its call queue, so a parent killed outright (SIGKILL,
    OOM) never closes it: without this they would wait for work forever."""
    import multiprocessing
    import threading

    started_by = multiprocessing.parent_process()  # known from the start, even if gone since
    parent = started_by.pid if started_by is not None else os.getppid()

    def watch() -> None:
        while os.getppid() == parent:
            time.sleep(PARENT_CHECK_S)
        os._exit(1)

    threading.Thread(target=watch, name="exit-with-parent", daemon=True).start()


def worker_init() -> None:
    """Set up a worker process: it ends with its parent, keeps to one core, and leaves Ctrl-C
    to its parent (which stops the pool: a terminal's Ctrl-C reaches every process)."""
    exit_with_parent()
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    gc.set_threshold(*THRESHOLDS)  # see harness.collector
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per worker: no oversubscription


@contextlib.contextmanager
def ctrl_c_deferred() -> Iterator[None]:
    """Ctrl-C waits for the block to end (in the main thread; elsewhere nothing changes).

    Around a pool's ``submit``, which may start a worker process: cut off while it hands the
    new process its start-up data, the process would die printing a traceback.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[Any] = []
    previous = signal.signal(signal.SIGINT, lambda *args: caught.append(args))
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)
        if caught and callable(previous):
            previous(*caught[0])  # the default handler raises KeyboardInterrupt


@functools.lru_cache(maxsize=2)
def _stage(spec: bytes) -> SyncStage:
    """The stage a pickled :class:`WorkerSpec` describes, built once per worker process."""
    from harness.plugins import get_registry

    worker: WorkerSpec = pickle.loads(spec)  # the engine's own pickle, never outside data
    plan = Plan(worker.suite, get_registry(worker.options.plugins_dir), worker.options,
                build=worker.front)
    gc.freeze()  # what lives as long as the process: out of the collector's view
    return SyncStage(plan, plan.registry.formats, serialize=True)


def worker_run(spec: bytes, chunk: list[Entry], views: bool = False
               ) -> list[Finished | Pending]:
    """Run the stage ``spec`` describes on a chunk (in a worker process)."""
    stage = _stage(spec)
    return stage.plan.context.loop.run(stage.run(chunk, views))
