"""Counting verdicts: one tally model for the summary, the report, the diff and the exports.

A criterion's pass rate is over its decided verdicts (pass, fail, error: errors count against
it); its mean score is over the verdicts that were not skipped and carry a score. A
message-scoped criterion has a verdict per assistant message, so its counts are of verdicts.

From the verdicts' details, when a criterion has them: ``abstained`` (skipped verdicts that are
abstentions, counted in ``skipped`` too), ``agreement`` (a panel's members: Fleiss' kappa and
Krippendorff's alpha, :mod:`harness.agreement`), ``mean_stability`` (judges with ``repeats``)
``position_bias`` (pairwise criteria: the share of pairs whose verdict flipped with the
order of the candidates) and ``cascade`` (which tier decided, and the second tier's calls that
the first saved).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from harness.agreement import Agreement, member_ratings
from harness.models import Verdict

OUTCOMES = ("pass", "fail", "error", "skipped")


class CriterionTally:
    """Verdict counts, pass rate and mean score of one criterion."""

    __slots__ = ("abstained", "agreement", "counts", "pairs", "pairs_flipped", "score_n",
                 "score_sum", "stability_n", "stability_sum", "tiers")

    def __init__(self) -> None:
        self.counts = dict.fromkeys(OUTCOMES, 0)
        self.score_sum = 0.0
        self.score_n = 0
        self.abstained = 0
        self.agreement: Agreement | None = None
        self.stability_sum = 0.0
        self.stability_n = 0
        self.pairs = 0
        self.pairs_flipped = 0
        self.tiers = {"first": 0, "then": 0}

    def add(self, outcome: str, score: float | None,
            details: Mapping[str, Any] | None = None) -> None:
        self.counts[outcome] += 1
        if score is not None and outcome != "skipped":
            self.score_sum += score
            self.score_n += 1
        if details:
            self._details(outcome, details)

    def _details(self, outcome: str, details: Mapping[str, Any]) -> None:
        if outcome == "skipped" and details.get("abstained") is True:
            self.abstained += 1
        ratings = member_ratings(details)
        if ratings is not None:
            if self.agreement is None:
                self.agreement = Agreement()
            self.agreement.add(ratings)
        stability = details.get("stability")
        if isinstance(stability, int | float):
            self.stability_sum += stability
            self.stability_n += 1
        if details.get("tier") in self.tiers:  # a cascade: which tier decided
            self.tiers[details["tier"]] += 1
        if details.get("pair_first") is True and isinstance(details.get("order_dependent"),
                                                            bool):
            self.pairs += 1
            self.pairs_flipped += details["order_dependent"]

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
        """``pass, fail, error, skipped, pass_rate, mean_score`` (and ``abstained``,
        ``agreement``, ``mean_stability``, ``position_bias`` when seen), as ``summary.json``
        has them."""
        out: dict[str, Any] = {**self.counts, "pass_rate": self.pass_rate,
                               "mean_score": self.mean_score}
        if self.abstained:
            out["abstained"] = self.abstained
        if self.agreement is not None:
            out["agreement"] = self.agreement.as_dict()
        if self.stability_n:
            out["mean_stability"] = self.stability_sum / self.stability_n
        if any(self.tiers.values()):
            out["cascade"] = {"decided_by_first": self.tiers["first"],
                              "decided_by_then": self.tiers["then"],
                              "calls_saved": self.tiers["first"]}
        if self.pairs:
            out["position_bias"] = {"pairs": self.pairs, "order_dependent": self.pairs_flipped,
                                    "rate": self.pairs_flipped / self.pairs}
        return out


class Tallies(dict[str, CriterionTally]):
    """A :class:`CriterionTally` per criterion name, filled from verdicts (objects or dicts)."""

    def __missing__(self, name: str) -> CriterionTally:
        tally = self[name] = CriterionTally()
        return tally

    def add(self, verdicts: Iterable[Verdict | Mapping[str, Any]]) -> None:
        for v in verdicts:
            if isinstance(v, Verdict):
                self[v.criterion].add(v.outcome, v.score, v.details)
            else:
                self[v["criterion"]].add(v["outcome"], v["score"], v.get("details"))

    def row(self, name: str) -> dict[str, Any]:
        """The tally of ``name`` as a dict (all zero when it has no verdict)."""
        return (self[name] if name in self else CriterionTally()).as_dict()


def reliability(tally: CriterionTally) -> str | None:
    """A one-line note of what the verdicts' details say about their reliability (panel
    agreement, abstentions, repeat stability, position bias), or None when they say nothing."""
    row = tally.as_dict()
    parts = []
    agreement = row.get("agreement")
    if agreement:
        kappa, alpha = agreement["fleiss_kappa"], agreement["krippendorff_alpha"]
        parts.append("agreement: Fleiss κ " + ("n/a" if kappa is None else f"{kappa:.2f}")
                     + ", Krippendorff α " + ("n/a" if alpha is None else f"{alpha:.2f}"))
    if row.get("abstained"):
        parts.append(f"{row['abstained']} abstained")
    if row.get("mean_stability") is not None:
        parts.append(f"mean stability {row['mean_stability']:.2f}")
    cascade = row.get("cascade")
    if cascade:
        parts.append(f"cascade: {cascade['decided_by_first']} decided by the first tier, "
                     f"{cascade['decided_by_then']} by the second "
                     f"({cascade['calls_saved']} second-tier calls saved)")
    bias = row.get("position_bias")
    if bias:
        parts.append(f"position bias {bias['rate']:.0%} ({bias['order_dependent']} of "
                     f"{bias['pairs']} pairs)")
    return "; ".join(parts) or None
