"""Test outcomes as verdicts, and a criterion's tally over a corpus (per-criterion mode)."""

from __future__ import annotations

import heapq
import inspect
from itertools import count
from typing import Any

import pytest

from harness.models import Outcome, Transcript, Verdict
from harness.policy import aggregate, normalise
from harness.pytest_plugin.assertions import ReviewFailure
from harness.pytest_plugin.render import describe
from harness.suite import CriterionSpec
from harness.text import safe

PYTEST_KIND = "pytest"
"""The ``kind`` recorded for criteria written as test functions."""
MARKER_KEYS = {"name", "gate", "weight", "version", "description", "min_pass_rate", "threshold"}
MAX_EXPLANATION = 4000
WORST_KEPT = 5


def python_spec(nodeid: str, function: Any,
                marker: pytest.Mark | None) -> tuple[dict[str, Any], float]:
    """The criterion a test function stands for, and its score threshold, from its marker."""
    kwargs = dict(marker.kwargs) if marker else {}
    unknown = set(kwargs) - MARKER_KEYS
    args = marker.args if marker else ()
    if unknown or args:
        raise pytest.UsageError(f"{nodeid}: @pytest.mark.criterion takes keyword arguments "
                                f"{sorted(MARKER_KEYS)}; got {sorted(unknown) or args}")
    threshold = float(kwargs.pop("threshold", 0.5))
    doc = (inspect.getdoc(function) or "").split("\n\n")[0].replace("\n", " ")
    kwargs.setdefault("name", function.__name__.removeprefix("test_"))
    kwargs.setdefault("description", doc)
    kwargs["version"] = str(kwargs.get("version", "1"))
    try:
        spec = CriterionSpec(kind=PYTEST_KIND, origin=nodeid, **kwargs)
    except Exception as exc:
        raise pytest.UsageError(f"{nodeid}: @pytest.mark.criterion: {exc}") from None
    return spec.model_dump(mode="json"), threshold


def _stamp(verdict: Verdict, spec: dict[str, Any]) -> Verdict:
    return verdict.model_copy(update={"criterion": spec["name"], "kind": spec["kind"],
                                      "version": spec["version"]})


def result_verdict(spec: dict[str, Any], threshold: float, result: Any) -> Verdict:
    """What a test that did not raise returned: None is a pass; a bool, score or Verdict counts
    as a criterion's result does (:func:`harness.policy.normalise`)."""
    verdict = normalise(True if result is None else result, threshold)
    if verdict.outcome == "fail" and not verdict.explanation:
        verdict.explanation = ("the test returned False" if result is False else
                               f"score {verdict.score:.3f} is below {threshold}")
    return _stamp(verdict, spec)


def exception_verdict(spec: dict[str, Any], exc: BaseException) -> Verdict:
    """An assertion is a ``fail`` whose explanation is its message; anything else an ``error``."""
    if isinstance(exc, ReviewFailure):
        bad = [v for v in exc.decision.verdicts if v.outcome in ("fail", "error")]
        why = "; ".join(f"{v.criterion}: {v.explanation or v.outcome}" for v in bad)
        verdict = Verdict(outcome="fail", score=0.0,
                          evidence=[span for v in bad for span in v.evidence][:50],
                          explanation=(why or str(exc))[:MAX_EXPLANATION])
    elif isinstance(exc, AssertionError | pytest.fail.Exception):
        message = str(exc) or "assertion failed"
        verdict = Verdict(outcome="fail", score=0.0, explanation=message[:MAX_EXPLANATION])
    elif isinstance(exc, pytest.skip.Exception):
        verdict = Verdict(outcome="skipped", explanation=str(exc)[:MAX_EXPLANATION])
    else:
        verdict = Verdict(outcome="error",
                          explanation=f"{type(exc).__name__}: {exc}"[:MAX_EXPLANATION])
    return _stamp(verdict, spec)


def plain_verdict(spec: dict[str, Any], outcome: Outcome, explanation: str) -> Verdict:
    return _stamp(Verdict(outcome=outcome, explanation=explanation[:MAX_EXPLANATION]), spec)


def call_criterion(function: Any, args: dict[str, Any], spec: dict[str, Any], threshold: float,
                   transcript: Transcript) -> Verdict:
    """Run a test function on one transcript (per-criterion mode) and judge the outcome."""
    try:
        result = function(**{**args, "transcript": transcript})
    except (KeyboardInterrupt, pytest.exit.Exception):
        raise
    except BaseException as exc:  # noqa: BLE001 - every other outcome is a verdict
        return exception_verdict(spec, exc)
    return result_verdict(spec, threshold, result)


class Tally:
    """A criterion's outcomes over a corpus: the pass rate and the worst examples."""

    def __init__(self, spec: dict[str, Any], min_pass_rate: float) -> None:
        self.spec = spec
        self.min_pass_rate = min_pass_rate
        self.counts = {"pass": 0, "fail": 0, "error": 0, "skipped": 0}
        self._worst: list[tuple[tuple[int, float], int, Transcript, list[Verdict]]] = []
        self._seq = count()

    def add(self, transcript: Transcript, verdicts: list[Verdict]) -> None:
        outcome, score = aggregate(verdicts)
        self.counts[outcome] += 1
        if outcome in ("fail", "error"):
            badness = (1 if outcome == "error" else 0, 1.0 - (score if score is not None else 0.0))
            entry = (badness, -next(self._seq), transcript, verdicts)
            if len(self._worst) < WORST_KEPT:
                heapq.heappush(self._worst, entry)
            elif entry[:2] > self._worst[0][:2]:
                heapq.heapreplace(self._worst, entry)

    @property
    def decided(self) -> int:
        return self.counts["pass"] + self.counts["fail"] + self.counts["error"]

    @property
    def rate(self) -> float | None:
        return self.counts["pass"] / self.decided if self.decided else None

    @property
    def failed(self) -> bool:
        return self.rate is not None and self.rate < self.min_pass_rate

    def summary(self) -> dict[str, Any]:
        return {**self.counts, "pass_rate": self.rate, "min_pass_rate": self.min_pass_rate}

    def headline(self) -> str:
        name = self.spec["name"]
        if self.rate is None:
            return f"{name}: no transcript decided"
        verdict = "is below" if self.failed else "reaches"
        return (f"{name}: pass rate {self.rate:.1%} ({self.counts['pass']} of {self.decided}) "
                f"{verdict} min_pass_rate {self.min_pass_rate:.1%}")

    def report(self) -> str:
        c = self.counts
        lines = [self.headline(),
                 f"  pass {c['pass']}, fail {c['fail']}, error {c['error']}, "
                 f"skipped {c['skipped']}",
                 "  worst examples:"]
        for _, _, transcript, verdicts in sorted(self._worst, reverse=True):
            outcome = aggregate(verdicts)[0]
            text = describe(self.spec["name"], self.spec["kind"], outcome, transcript.id,
                            transcript.source, verdicts)
            lines.extend("    " + line for line in text.splitlines())
        return "\n".join(safe(line, 1000) if i < 2 else line for i, line in enumerate(lines))
