"""``assert_passes``: apply registered criteria (regex, judges, classifiers) inside a test."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.engine import Engine
from harness.models import Decision, InputError, Transcript, Verdict
from harness.plugins import get_registry
from harness.pytest_plugin.render import describe
from harness.suite import COMMON_KEYS, CriterionSpec, Suite, SuiteError, load_suite

CriterionOrSuite = Engine | Suite | str | Path | Mapping[str, Any] | Sequence[Mapping[str, Any]]

_engines: dict[Any, Engine] = {}


class ReviewFailure(AssertionError):
    """``assert_passes`` found the transcript failing; ``decision`` holds every verdict."""

    def __init__(self, message: str, decision: Decision) -> None:
        super().__init__(message)
        self.decision = decision


def _spec(raw: Mapping[str, Any], index: int) -> CriterionSpec:
    raw = dict(raw)
    raw.setdefault("name", raw.get("kind", f"criterion-{index + 1}"))
    common = {k: v for k, v in raw.items() if k in COMMON_KEYS}
    config = {k: v for k, v in raw.items() if k not in COMMON_KEYS}
    try:
        return CriterionSpec(**common, config=config, origin="<assert_passes>")
    except ValidationError as exc:
        raise SuiteError(f"assert_passes: criterion {raw['name']!r}: {exc}") from None


def engine_for(criterion_or_suite: CriterionOrSuite, judge: str | None = None) -> Engine:
    """An engine for a suite file, a :class:`Suite`, one criterion dict or a list of them.

    Engines are built once per process and reused (criteria compile once).
    """
    if isinstance(criterion_or_suite, Engine):
        return criterion_or_suite
    if isinstance(criterion_or_suite, Suite):
        key: Any = ("suite", id(criterion_or_suite), judge)
    elif isinstance(criterion_or_suite, str | Path):
        path = Path(criterion_or_suite).resolve()
        key = ("path", str(path), path.stat().st_mtime_ns if path.exists() else 0, judge)
    elif isinstance(criterion_or_suite, Mapping):
        key = ("dict", repr(sorted(criterion_or_suite.items())), judge)
    else:
        key = ("list", repr([sorted(c.items()) for c in criterion_or_suite]), judge)
    engine = _engines.get(key)
    if engine is None:
        if isinstance(criterion_or_suite, Suite):
            suite = criterion_or_suite
        elif isinstance(criterion_or_suite, str | Path):
            suite = load_suite(criterion_or_suite)
        else:
            raws = ([criterion_or_suite] if isinstance(criterion_or_suite, Mapping)
                    else list(criterion_or_suite))
            suite = Suite(name="assert_passes", criteria=[_spec(r, i) for i, r in enumerate(raws)])
        engine = Engine(suite, get_registry(), judge=judge)
        _engines[key] = engine
    return engine


def failure_message(decision: Decision) -> str:
    """Why a decision is not a pass: each failing or erroring criterion with its evidence."""
    reasons = ", ".join(decision.failed + decision.errored) or decision.outcome
    lines = [f"transcript {decision.transcript_id!r} did not pass ({decision.outcome}: {reasons})"]
    by_name: dict[str, list[Verdict]] = {}
    for verdict in decision.verdicts:
        by_name.setdefault(verdict.criterion, []).append(verdict)
    for name in [*decision.failed, *decision.errored]:
        verdicts = by_name.get(name, [])
        if verdicts:
            outcome = "error" if name in decision.errored else "fail"
            lines.append(describe(name, verdicts[0].kind, outcome, decision.transcript_id,
                                  decision.source, verdicts))
    return "\n".join(lines)


def assert_passes(transcript: Transcript | Mapping[str, Any], criterion_or_suite: CriterionOrSuite,
                  *, judge: str | None = None) -> Decision:
    """Review ``transcript`` with registered criteria; raise :class:`ReviewFailure` if it fails.

    ``criterion_or_suite`` is a suite file, a :class:`Suite`, an :class:`Engine`, one criterion as
    a dict (``{"kind": "regex", "pattern": "sorry", "expect": "absent"}``) or a list of them. The
    decision policy is the engine's: gates, threshold, fail-closed errors. Returns the decision.
    """
    __tracebackhide__ = True
    engine = engine_for(criterion_or_suite, judge)
    if not isinstance(transcript, Transcript):
        from harness.inputs import parse_record

        parsed = parse_record(dict(transcript), "<assert_passes>", engine.registry.formats)
        if isinstance(parsed, InputError):
            raise ValueError(f"assert_passes: unreadable transcript: {parsed.reason}")
        if len(parsed) != 1:
            raise ValueError("assert_passes: the record holds several transcripts; pass one")
        transcript = parsed[0]
    decision = engine.decide_batch([transcript])[0]
    if not decision.passed:
        raise ReviewFailure(failure_message(decision), decision)
    return decision
