"""The review engine: transcripts through a suite's criteria, to verdicts and decisions."""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Iterator, Sequence
from itertools import islice
from pathlib import Path
from typing import Any

from harness.criterion import Criterion, Result, SuiteContext
from harness.models import Decision, InputError, Transcript, Verdict
from harness.plugins import Registry, get_registry
from harness.suite import CriterionSpec, Suite, SuiteError, load_suite, validate_config

INPUT_CRITERION = "input"
"""Criterion name of the verdict that records an unreadable input record."""


def to_verdict(result: Result | BaseException, criterion: Criterion) -> Verdict:
    """Normalise what a criterion returned into a verdict. Anything unexpected is an error."""
    if isinstance(result, BaseException):
        verdict = Verdict(outcome="error", explanation=f"{type(result).__name__}: {result}")
    elif isinstance(result, Verdict):
        verdict = result
    elif isinstance(result, bool):
        verdict = Verdict(outcome="pass" if result else "fail", score=1.0 if result else 0.0)
    elif isinstance(result, int | float):
        score = float(result)
        if math.isnan(score) or not 0.0 <= score <= 1.0:
            verdict = Verdict(outcome="error", explanation=f"score {result!r} is not in [0, 1]")
        else:
            passed = score >= criterion.pass_threshold
            verdict = Verdict(outcome="pass" if passed else "fail", score=score)
    else:
        verdict = Verdict(outcome="error",
                          explanation=f"criterion returned {type(result).__name__}, "
                                      "expected bool, float or Verdict")
    if verdict.criterion:  # a verdict object the criterion handed out before: keep it intact
        verdict = verdict.model_copy(deep=True)
    spec = criterion.spec
    verdict.criterion, verdict.version, verdict.kind = spec.name, spec.version, spec.kind
    return verdict


def aggregate(verdicts: Sequence[Verdict]) -> tuple[str, float | None]:
    """One criterion's outcome and score over its verdicts (several for message scope)."""
    outcomes = {v.outcome for v in verdicts}
    for outcome in ("error", "fail", "pass"):
        if outcome in outcomes:
            break
    else:
        outcome = "skipped"
    scores = [v.score for v in verdicts if v.score is not None and v.outcome != "skipped"]
    return outcome, (min(scores) if scores else None)


def weighted_mean(pairs: Iterable[tuple[float | None, float]]) -> float | None:
    pairs = [(s, w) for s, w in pairs if s is not None]
    total = sum(w for _, w in pairs)
    return sum(s * w for s, w in pairs) / total if total else None


def decide(transcript: Transcript, verdicts: list[Verdict], specs: Sequence[CriterionSpec],
           threshold: float | None) -> Decision:
    """The decision policy: every gate passes and, if set, the non-gate mean reaches threshold.

    Fail-closed: an error on a gate decides ``error``; so does an error on a non-gate criterion
    when a threshold needs its score.
    """
    by_name: dict[str, list[Verdict]] = {}
    for v in verdicts:
        by_name.setdefault(v.criterion, []).append(v)
    results = {s.name: aggregate(by_name.get(s.name, [])) for s in specs}
    errored = [s.name for s in specs if results[s.name][0] == "error"]
    failed = [s.name for s in specs if s.gate and results[s.name][0] == "fail"]
    score = weighted_mean((results[s.name][1], s.weight) for s in specs)
    outcome = "pass"
    if any(s.gate for s in specs if s.name in errored):
        outcome = "error"
    elif failed:
        outcome = "fail"
    elif threshold is not None:
        non_gates = [s for s in specs if not s.gate]
        if any(s.name in errored for s in non_gates):
            outcome = "error"
        else:
            mean = weighted_mean((results[s.name][1], s.weight) for s in non_gates)
            if mean is None or mean < threshold:
                outcome, failed = "fail", ["threshold"]
    return Decision(transcript_id=transcript.id, source=transcript.source, outcome=outcome,
                    score=score, verdicts=verdicts, failed=failed, errored=errored)


def input_error_decision(error: InputError) -> Decision:
    verdict = Verdict(criterion=INPUT_CRITERION, kind=INPUT_CRITERION, outcome="error",
                      explanation=error.reason)
    return Decision(transcript_id=error.transcript_id or error.source, source=error.source,
                    outcome="error", verdicts=[verdict], errored=[INPUT_CRITERION])


def _run(criterion: Criterion, units: list[Transcript]) -> list[Verdict]:
    started = time.perf_counter()
    try:
        results = criterion.evaluate_batch(units)
        if len(results) != len(units):
            raise RuntimeError(f"evaluate_batch returned {len(results)} results "
                               f"for {len(units)} transcripts")
    except Exception:  # isolate the culprit: one at a time
        results = Criterion.evaluate_batch(criterion, units)
    each = (time.perf_counter() - started) / max(len(units), 1)
    verdicts = []
    for result in results:
        verdict = to_verdict(result, criterion)
        if not verdict.latency_s:
            verdict.latency_s = each
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
        verdict.message_index = m
        out[i].append(verdict)
    return out


def blocks_expensive(criterion: Criterion) -> bool:
    """Whether a failure of this criterion skips the expensive criteria after it.

    Only transcript-scoped gates do: after a failed message-scoped gate, ``--on-fail mask`` may
    still keep the transcript with that message masked, and needs the other verdicts for it.
    """
    return criterion.spec.gate and criterion.spec.scope == "transcript"


class Engine:
    """A compiled suite: criteria built once, then any number of transcripts reviewed."""

    def __init__(
        self,
        suite: Suite | str | Path,
        registry: Registry | None = None,
        *,
        judge: str | None = None,
        all_criteria: bool = False,
        cache_dir: str | Path | None = None,
        batch_size: int = 64,
        options: dict[str, Any] | None = None,
    ) -> None:
        self.suite = suite if isinstance(suite, Suite) else load_suite(suite)
        self.registry = registry or get_registry()
        self.all_criteria = all_criteria
        self.batch_size = batch_size
        if self.suite.threshold is not None and all(c.gate for c in self.suite.criteria):
            raise SuiteError(f"{self.suite.path}: `threshold` needs at least one non-gate "
                             "criterion (gate: false) to average")
        self.context = SuiteContext(
            registry=self.registry,
            suite_dir=self.suite.directory,
            variables=self.suite.variables,
            judge=self.suite.judge,
            judge_override=judge,
            cache_dir=Path(cache_dir) if cache_dir else None,
        )
        self.criteria = [self._build(spec) for spec in self.suite.criteria]
        self.order = sorted(self.criteria, key=lambda c: c.cost)  # stable: suite order in a tier

    def _build(self, spec: CriterionSpec) -> Criterion:
        cls = self.registry.kinds.get(spec.kind)
        if cls is None:
            known = ", ".join(sorted(self.registry.kinds))
            raise SuiteError(f"{spec.origin}: criterion '{spec.name}': unknown kind "
                             f"'{spec.kind}' (known kinds: {known})")
        config = validate_config(spec, cls.Config)
        try:
            return cls(spec, config, self.context)
        except SuiteError:
            raise
        except Exception as exc:
            raise SuiteError(
                f"{spec.origin}: criterion '{spec.name}' ({spec.kind}): {exc}") from exc

    def decide_batch(self, items: Sequence[Transcript | InputError]) -> list[Decision]:
        """Review a batch: each criterion sees the whole batch at once, cheapest first."""
        transcripts = [t for t in items if isinstance(t, Transcript)]
        verdicts: list[list[Verdict]] = [[] for _ in transcripts]
        blocked: dict[int, str] = {}  # transcript index -> the gate that failed
        for criterion in self.order:
            todo = []
            for i in range(len(transcripts)):
                if criterion.expensive and i in blocked and not self.all_criteria:
                    verdicts[i].append(to_verdict(
                        Verdict(outcome="skipped",
                                explanation=f"skipped: gate '{blocked[i]}' already failed"),
                        criterion))
                else:
                    todo.append(i)
            blocking = blocks_expensive(criterion)
            for i, found in zip(todo, evaluate(criterion, [transcripts[i] for i in todo]),
                                strict=True):
                verdicts[i].extend(found)
                if blocking and aggregate(found)[0] in ("fail", "error"):
                    blocked.setdefault(i, criterion.name)
        rank = {c.name: n for n, c in enumerate(self.criteria)}
        decided = iter(
            decide(t, sorted(v, key=lambda x: rank[x.criterion]), self.suite.criteria,
                   self.suite.threshold)
            for t, v in zip(transcripts, verdicts, strict=True)
        )
        return [input_error_decision(item) if isinstance(item, InputError) else next(decided)
                for item in items]

    def review(
        self, items: Iterable[Transcript | InputError], batch_size: int | None = None
    ) -> Iterator[Decision]:
        """Decisions in input order, computed a batch at a time, yielded lazily."""
        stream = iter(items)
        size = batch_size or self.batch_size
        while batch := list(islice(stream, size)):
            yield from self.decide_batch(batch)
