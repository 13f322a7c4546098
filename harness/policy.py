"""The decision policy: what a criterion's result means, and how verdicts decide a transcript.

One place for each rule. The engine, its worker processes and the pytest plugin all call these.

An abstention (a panel whose members disagree with ``on_disagreement: abstain``, a pairwise
comparison that depends on the order) is a ``skipped`` verdict with ``details.abstained`` true
(:func:`abstained`): for the decision it counts exactly like any skipped verdict (it neither
passes nor fails a gate and adds no score to the mean), and the summary counts it apart.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

from harness.criterion import Criterion, Result
from harness.models import Decision, InputError, Transcript, Verdict, trusted
from harness.redact import redact_text
from harness.suite import CriterionSpec

INPUT_CRITERION = "input"
"""Criterion name of the verdict that records an unreadable input record."""
ABSTAINED = "abstained"
"""Key of ``Verdict.details`` that marks a skipped verdict as an abstention."""


def abstained(verdict: Verdict | Mapping[str, Any]) -> bool:
    """Whether a verdict (object, or dict as read from a journal) is an abstention."""
    outcome: str | None
    if isinstance(verdict, Verdict):
        outcome, details = verdict.outcome, verdict.details
    else:
        outcome, details = verdict.get("outcome"), verdict.get("details") or {}
    return outcome == "skipped" and details.get(ABSTAINED) is True


def criterion_errored(errored: Sequence[str]) -> bool:
    """Whether a decision's ``errored`` names a criterion error, not only an unreadable record:
    the one definition the error budget, a resume's retries and the summary count."""
    return any(name != INPUT_CRITERION for name in errored)


def normalise(result: Result | BaseException, threshold: float) -> Verdict:
    """What a criterion (or a pytest criterion function) returned, as a verdict: ``True`` and
    ``False`` pass and fail, a score passes from ``threshold`` on; anything unexpected, an
    exception included, is an error. A verdict handed out before is copied, never shared."""
    if isinstance(result, BaseException):
        return Verdict(outcome="error", explanation=f"{type(result).__name__}: {result}")
    if isinstance(result, Verdict):
        return result.model_copy(deep=True) if result.criterion else result
    if isinstance(result, bool):  # the hot path: built without validation (values known)
        return trusted(Verdict, outcome="pass" if result else "fail",
                       score=1.0 if result else 0.0)
    if isinstance(result, int | float):
        score = float(result)
        if math.isnan(score) or not 0.0 <= score <= 1.0:
            return Verdict(outcome="error", explanation=f"score {result!r} is not in [0, 1]")
        return Verdict(outcome="pass" if score >= threshold else "fail", score=score)
    return Verdict(outcome="error", explanation=f"criterion returned {type(result).__name__}, "
                                                "expected bool, float or Verdict")


def to_verdict(result: Result | BaseException, criterion: Criterion) -> Verdict:
    """Normalise what a criterion returned (:func:`normalise`), stamped with its name."""
    verdict = normalise(result, criterion.pass_threshold)
    if verdict.outcome == "error" and "://" in verdict.explanation:
        # an error names an endpoint, maybe with its credentials: never written as they are
        verdict.__dict__["explanation"] = redact_text(verdict.explanation)
    spec = criterion.spec
    # straight into the fields: pydantic's __setattr__ costs more than the rest of this function
    verdict.__dict__.update(criterion=spec.name, version=spec.version, kind=spec.kind)
    return verdict


def aggregate(verdicts: Sequence[Verdict] | Sequence[Mapping[str, Any]],
              ) -> tuple[str, float | None]:
    """One criterion's outcome and score over its verdicts (several for message scope): the
    worst outcome (error, fail, pass, then skipped) and the lowest score. Verdicts may be
    objects or, as read from a journal, dicts."""
    if verdicts and not isinstance(verdicts[0], Verdict):
        pairs = [(v["outcome"], v["score"]) for v in cast("Sequence[Mapping[str, Any]]", verdicts)]
    else:
        pairs = [(v.outcome, v.score) for v in cast("Sequence[Verdict]", verdicts)]
    outcomes = {o for o, _ in pairs}
    for outcome in ("error", "fail", "pass"):
        if outcome in outcomes:
            break
    else:
        outcome = "skipped"
    scores = [s for o, s in pairs if s is not None and o != "skipped"]
    return outcome, (min(scores) if scores else None)


WORST = {"error": 0, "fail": 1, "pass": 2, "skipped": 3}
"""Outcomes from worst to best: the order :func:`aggregate` keeps the first of."""
SKIPPED = ("skipped", None)


def _results(verdicts: Iterable[Verdict]) -> dict[str, tuple[str, float | None]]:
    """:func:`aggregate` of every criterion's verdicts, in one pass (the hot path)."""
    results: dict[str, tuple[str, float | None]] = {}
    for v in verdicts:
        outcome: str = v.outcome
        score = v.score
        if outcome == "skipped":
            score = None
        known = results.get(v.criterion)
        if known is not None:
            if WORST[known[0]] < WORST[outcome]:
                outcome = known[0]
            if score is None or (known[1] is not None and known[1] < score):
                score = known[1]
        results[v.criterion] = (outcome, score)
    return results


def weighted_mean(pairs: Iterable[tuple[float | None, float]]) -> float | None:
    known = [(s, w) for s, w in pairs if s is not None]
    total = sum([w for _, w in known])
    return sum([s * w for s, w in known]) / total if total else None


def masked_turns(transcript: Transcript | Mapping[str, Any]) -> set[int]:
    """Indices of the assistant turns at ``weight: 0``: context for training, never a target
    (of a transcript, or of its dict as a run directory gives it back)."""
    if isinstance(transcript, Transcript):
        return {i for i, m in enumerate(transcript.messages)
                if m.weight is not None and m.weight <= 0 and m.role == "assistant"}
    return {i for i, m in enumerate(transcript.get("messages") or ())
            if isinstance(m, Mapping) and m.get("role") == "assistant"
            and isinstance(m.get("weight"), int | float) and m["weight"] <= 0}


def counted(verdicts: list[Any], transcript: Transcript | Mapping[str, Any] | None) -> list[Any]:
    """The verdicts (objects or dicts) the decision counts: all but those on masked turns."""
    if transcript is None or all(
            (v.message_index if isinstance(v, Verdict) else v.get("message_index")) is None
            for v in verdicts):
        return verdicts  # only message-scoped verdicts can be on a masked turn
    hidden = masked_turns(transcript)
    if not hidden:
        return verdicts
    return [v for v in verdicts
            if (v.message_index if isinstance(v, Verdict) else v.get("message_index"))
            not in hidden]


def decide(transcript: Transcript | None, verdicts: list[Verdict],
           specs: Sequence[CriterionSpec], threshold: float | None,
           ident: tuple[str, str] | None = None) -> Decision:
    """The decision policy: every gate passes and, if set, the non-gate mean reaches threshold.

    Fail-closed: an error on a gate decides ``error``; so does an error on a non-gate criterion
    when a threshold needs its score. A skipped verdict, an abstention included, decides
    nothing: a gate that abstained does not fail, and its score is not in the mean. ``ident``
    is the transcript's ``(id, source)`` as read before any criterion saw it (default: the
    transcript's own; without a transcript, ``ident`` is needed).

    A message-scoped verdict on an assistant turn at ``weight: 0`` (:func:`masked_turns`, e.g.
    the failed turn a correction keeps as context) is recorded but decides nothing: training
    never takes that turn as a target.
    """
    maybe_masked = any(v.message_index is not None for v in verdicts)
    results = _results(counted(verdicts, transcript) if maybe_masked else verdicts)
    outcomes = [results.get(s.name, SKIPPED)[0] for s in specs]
    errored = [s.name for s, o in zip(specs, outcomes, strict=True) if o == "error"]
    failed = [s.name for s, o in zip(specs, outcomes, strict=True) if s.gate and o == "fail"]
    score = weighted_mean((results.get(s.name, SKIPPED)[1], s.weight) for s in specs)
    outcome, mean = "pass", None
    if threshold is not None:
        mean = weighted_mean((results.get(s.name, SKIPPED)[1], s.weight)
                             for s in specs if not s.gate)
    if any(s.gate and o == "error" for s, o in zip(specs, outcomes, strict=True)):
        outcome = "error"
    elif failed:
        outcome = "fail"
    elif threshold is not None:
        if any(s.name in errored for s in specs if not s.gate):
            outcome = "error"
        elif mean is None or mean < threshold:
            outcome, failed = "fail", ["threshold"]
    if ident is None:
        assert transcript is not None, "decide() needs the transcript or its ident"
        ident = (transcript.id, transcript.source)
    tid, source = ident
    # every value is one this function made or checked: no validation needed (the hot path)
    return trusted(Decision, transcript_id=tid, source=source, outcome=outcome, score=score,
                   threshold_score=mean, verdicts=verdicts, failed=failed, errored=errored)


def input_error_decision(error: InputError) -> Decision:
    verdict = Verdict(criterion=INPUT_CRITERION, kind=INPUT_CRITERION, outcome="error",
                      explanation=error.reason)
    return Decision(transcript_id=error.transcript_id or error.source, source=error.source,
                    outcome="error", verdicts=[verdict], errored=[INPUT_CRITERION])


def blocks_expensive(criterion: Criterion) -> bool:
    """Whether a failure of this criterion skips the expensive criteria after it.

    Only transcript-scoped gates do: after a failed message-scoped gate, ``--on-fail mask`` may
    still keep the transcript with that message masked, and needs the other verdicts for it.
    """
    return criterion.spec.gate and criterion.spec.scope == "transcript"
