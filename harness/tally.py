"""Counting verdicts: one tally model for the summary, the report, the diff and the exports.

A criterion's pass rate is over its decided verdicts (pass, fail, error: errors count against
it); its mean score is over the verdicts that were not skipped and carry a score. A
message-scoped criterion has a verdict per assistant message, so its counts are of verdicts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from harness.models import Verdict

OUTCOMES = ("pass", "fail", "error", "skipped")


class CriterionTally:
    """Verdict counts, pass rate and mean score of one criterion."""

    __slots__ = ("counts", "score_n", "score_sum")

    def __init__(self) -> None:
        self.counts = dict.fromkeys(OUTCOMES, 0)
        self.score_sum = 0.0
        self.score_n = 0

    def add(self, outcome: str, score: float | None) -> None:
        self.counts[outcome] += 1
        if score is not None and outcome != "skipped":
            self.score_sum += score
            self.score_n += 1

    @property
    def decided(self) -> int:
        c = self.counts
        return c["pass"] + c["fail"] + c["error"]

    @property
    def pass_rate(self) -> float | None:
        return self.counts["pass"] / self.decided if self.decided else None

    @property
    def mean_score(self) -> float | None:
        return self.score_sum / self.score_n if self.score_n else None

    def as_dict(self) -> dict[str, Any]:
        """``pass, fail, error, skipped, pass_rate, mean_score``, as ``summary.json`` has them."""
        return {**self.counts, "pass_rate": self.pass_rate, "mean_score": self.mean_score}


class Tallies(dict[str, CriterionTally]):
    """A :class:`CriterionTally` per criterion name, filled from verdicts (objects or dicts)."""

    def __missing__(self, name: str) -> CriterionTally:
        tally = self[name] = CriterionTally()
        return tally

    def add(self, verdicts: Iterable[Verdict | Mapping[str, Any]]) -> None:
        for v in verdicts:
            if isinstance(v, Verdict):
                self[v.criterion].add(v.outcome, v.score)
            else:
                self[v["criterion"]].add(v["outcome"], v["score"])

    def row(self, name: str) -> dict[str, Any]:
        """The tally of ``name`` as a dict (all zero when it has no verdict)."""
        return (self[name] if name in self else CriterionTally()).as_dict()
