"""The synchronous stage of the engine: records parsed and cheap criteria run a chunk at a time.

The same :class:`SyncStage` runs in the engine's process or in worker processes
(:func:`worker_init` builds it once per worker from a picklable :class:`StageSpec`), so results
do not depend on where a chunk ran.
"""

from __future__ import annotations

import os
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.criterion import Criterion
from harness.inputs.reader import decode, iter_raw, parse_record
from harness.models import Decision, InputError, Transcript, Verdict, compact_json
from harness.policy import aggregate, blocks_expensive, decide, input_error_decision, to_verdict
from harness.suite import CriterionSpec, Suite

__all__ = ["Entry", "Finished", "Pending", "StageSpec", "SyncStage", "evaluate", "iter_raw",
           "parse_entry", "skipped_verdict", "worker_init", "worker_run"]

Entry = tuple[int, str, Any, frozenset[int]]
"""``(seq, source, payload, skip)``: a record's position in the input, where it was read, the
record (raw bytes, a decoded dict, an exception, or a parsed Transcript / InputError), and the
indexes of its transcripts to leave out (already decided, on resume)."""


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

    @classmethod
    def of(cls, seq: int, sub: int, count: int, decision: Decision,
           serialize: bool = False) -> Finished:
        line = None
        if serialize:
            decision, line = recordable(decision)
        return cls(seq, sub, count, decision.outcome, decision.source, tuple(decision.errored),
                   None if serialize else decision, line)

    def json(self) -> bytes:
        """The decision as JSON."""
        if self.line is None:
            assert self.decision is not None
            self.decision, self.line = recordable(self.decision)
        return self.line

    def to_decision(self) -> Decision:
        """The decision as an object."""
        if self.decision is None:
            self.decision = Decision.model_validate_json(self.json())
        return self.decision


@dataclass(slots=True)
class Pending:
    """A transcript with criteria left for the engine's async stage."""

    seq: int
    sub: int
    count: int
    transcript: Transcript
    verdicts: list[Verdict]
    blocked: str | None


RECORD_CRITERION = "record"
"""Criterion name of the verdict that says a decision could not be written down."""


def recordable(decision: Decision) -> tuple[Decision, bytes]:
    """The decision and its JSON; a decision that cannot be serialized (a criterion put an
    unserializable value in its details, say) becomes that transcript's error, not the run's."""
    try:
        return decision, compact_json(decision)
    except Exception as exc:  # noqa: BLE001 - one record's failure is that record's error
        reason = f"the decision could not be recorded: {type(exc).__name__}: {exc}"[:500]
        error = Decision(
            transcript_id=decision.transcript_id.encode("utf-8", "backslashreplace").decode(),
            source=decision.source.encode("utf-8", "backslashreplace").decode(),
            outcome="error", errored=[RECORD_CRITERION],
            verdicts=[Verdict(criterion=RECORD_CRITERION, kind=RECORD_CRITERION,
                              outcome="error", explanation=reason)])
        return error, compact_json(error)


def skipped_verdict(criterion: Criterion, gate: str) -> Verdict:
    return to_verdict(Verdict(outcome="skipped", explanation=f"skipped: gate '{gate}' already "
                                                             "failed"), criterion)


def _run(criterion: Criterion, units: list[Transcript]) -> list[Verdict]:
    started = time.perf_counter()
    try:
        results = criterion.evaluate_batch(units)
        if len(results) != len(units):
            raise RuntimeError(f"evaluate_batch returned {len(results)} results "
                               f"for {len(units)} transcripts")
    except Exception:  # isolate the culprit: one at a time
        results = Criterion.evaluate_batch(criterion, units)
    each = round((time.perf_counter() - started) / max(len(units), 1), 7)  # 0.1 us is plenty
    verdicts = []
    for result in results:
        verdict = to_verdict(result, criterion)
        if not verdict.latency_s:
            verdict.__dict__["latency_s"] = each
        verdicts.append(verdict)
    return verdicts


def evaluate(criterion: Criterion, transcripts: Sequence[Transcript]) -> list[list[Verdict]]:
    """One criterion's verdicts for each transcript, the whole batch at once.

    A message-scoped criterion judges, for each assistant message, the conversation up to it,
    and gives one verdict per message (``message_index`` set).
    """
    if criterion.spec.scope != "message":
        return [[v] for v in _run(criterion, list(transcripts))]
    units, owners = [], []
    for i, transcript in enumerate(transcripts):
        for m, message in enumerate(transcript.messages):
            if message.role == "assistant":
                units.append(transcript.model_copy(
                    update={"messages": transcript.messages[: m + 1]}))
                owners.append((i, m))
    out: list[list[Verdict]] = [[] for _ in transcripts]
    for (i, m), verdict in zip(owners, _run(criterion, units), strict=True):
        verdict.__dict__["message_index"] = m
        out[i].append(verdict)
    return out


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
    """Parses a chunk of records and runs the synchronous criteria on all of it, cheapest first."""

    def __init__(self, criteria: list[Criterion], suite: Suite, formats: Mapping[str, Any],
                 input_format: str, all_criteria: bool, has_tail: bool,
                 specs: list[CriterionSpec] | None = None) -> None:
        self.criteria = criteria
        self.suite = suite
        self.formats = formats
        self.input_format = input_format
        self.all_criteria = all_criteria
        self.has_tail = has_tail
        self.specs = specs if specs is not None else [c.spec for c in criteria]
        self.rank = {s.name: n for n, s in enumerate(self.specs)}
        self.serialize = False
        """Hand decisions out as JSON (in worker processes: cheaper to send than objects)."""

    def run(self, chunk: Sequence[Entry]) -> list[Finished | Pending]:
        out: list[Finished | Pending] = []
        items: list[tuple[int, int, int, Transcript | InputError]] = []
        for entry in chunk:
            seq, skip = entry[0], entry[3]
            parsed = parse_entry(entry, self.formats, self.input_format)
            kept = [(sub, v) for sub, v in enumerate(parsed) if sub not in skip]
            if not kept:
                out.append(Finished(seq, -1, 0, "", ""))
            items.extend((seq, sub, len(kept), v) for sub, v in kept)
        transcripts = [v for *_, v in items if isinstance(v, Transcript)]
        # what identifies a transcript is read before any criterion sees it (criteria are user
        # code: one that edits its transcript changes neither its id nor the outputs, which
        # are built from the inputs, never from these objects)
        names = [(t.id, t.source) for t in transcripts]
        verdicts: list[list[Verdict]] = [[] for _ in transcripts]
        blocked: dict[int, str] = {}
        for criterion in self.criteria:
            todo = []
            for i in range(len(transcripts)):
                if criterion.expensive and i in blocked and not self.all_criteria:
                    verdicts[i].append(skipped_verdict(criterion, blocked[i]))
                else:
                    todo.append(i)
            blocking = blocks_expensive(criterion)
            for i, found in zip(todo, evaluate(criterion, [transcripts[i] for i in todo]),
                                strict=True):
                verdicts[i].extend(found)
                if blocking and aggregate(found)[0] in ("fail", "error"):
                    blocked.setdefault(i, criterion.name)
        n = 0
        for seq, sub, count, value in items:
            if isinstance(value, InputError):
                out.append(Finished.of(seq, sub, count, input_error_decision(value),
                                       self.serialize))
                continue
            found, gate, (tid, source) = verdicts[n], blocked.get(n), names[n]
            n += 1
            if self.has_tail:
                value.id, value.source = tid, source
                out.append(Pending(seq, sub, count, value, found, gate))
            else:
                found.sort(key=lambda v: self.rank[v.criterion])
                decision = decide(value, found, self.specs, self.suite.threshold, (tid, source))
                out.append(Finished.of(seq, sub, count, decision, self.serialize))
        return out


@dataclass
class StageSpec:
    """What a worker process needs to build the same synchronous stage as the engine."""

    suite: Suite
    plugins_dir: str | None
    judge: str | None
    all_criteria: bool
    cache_dir: Path | None
    input_format: str
    sync: list[str]
    names: list[str]
    has_tail: bool
    env: dict[str, str] = field(default_factory=dict)


_STAGE: SyncStage | None = None


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


def worker_init(spec: StageSpec) -> None:
    """Build the stage once per worker process."""
    global _STAGE
    exit_with_parent()
    os.environ.setdefault("OMP_NUM_THREADS", "1")  # one core per worker: no oversubscription
    from harness.engine import Engine
    from harness.plugins import get_registry

    engine = Engine(spec.suite, get_registry(spec.plugins_dir), judge=spec.judge,
                    all_criteria=spec.all_criteria, cache_dir=spec.cache_dir,
                    input_format=spec.input_format, only=spec.sync)
    specs = [s for s in spec.suite.criteria if s.name in spec.names]
    _STAGE = SyncStage(engine.order, spec.suite, engine.registry.formats, spec.input_format,
                       spec.all_criteria, spec.has_tail, specs)
    _STAGE.serialize = True


def worker_run(chunk: list[Entry]) -> list[Finished | Pending]:
    assert _STAGE is not None, "worker_init did not run"
    return _STAGE.run(chunk)
