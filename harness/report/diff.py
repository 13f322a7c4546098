"""Comparing two runs: decisions that flipped and why, per-criterion deltas, suite changes.

What changed in the suite (threshold, gates, weights, criterion settings, judges, rubrics) and
the cause of each flip come from :mod:`harness.report.suite_diff`.

Transcripts are matched by id (the n-th occurrence of an id with the n-th, should a run hold
duplicates). Run A is held as one small tuple per transcript; run B is streamed.

The result is for showing: every string in it that comes from the runs (transcript ids and
sources, suite and criterion names, explanations, folders) has its control and bidi characters
escaped (``harness.text.escape_controls``), so that printing it cannot drive the terminal.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

from harness.policy import aggregate, counted
from harness.report.stats import wilson
from harness.report.suite_diff import Attribution, SuiteSide, suite_changes
from harness.rundir import JOURNAL, iter_journal, read_meta
from harness.tally import CriterionTally, Tallies
from harness.text import escape_controls

MAX_FLIPS = 1000
"""Flipped decisions listed in full (all are counted)."""


def criterion_outcomes(verdicts: list[dict[str, Any]]) -> dict[str, tuple[str, float | None]]:
    """Each criterion's outcome and score over its verdicts (the engine's own rule)."""
    grouped: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for v in verdicts:
        grouped[v["criterion"]].append(v)
    return {name: aggregate(vs) for name, vs in grouped.items()}


class _Side:
    """Counts of one run."""

    def __init__(self) -> None:
        self.totals = {"read": 0, "passed": 0, "failed": 0, "errored": 0}
        self.tallies = Tallies()

    def add(self, decision: dict[str, Any],
            transcript: dict[str, Any] | None = None) -> dict[str, tuple[str, float | None]]:
        """Count a decision; its criteria's outcomes as the decision saw them (verdicts on
        masked turns left out, :func:`harness.policy.counted`)."""
        self.totals["read"] += 1
        key = {"pass": "passed", "fail": "failed", "error": "errored"}[decision["outcome"]]
        self.totals[key] += 1
        self.tallies.add(decision["verdicts"])
        return criterion_outcomes(counted(decision["verdicts"], transcript))

    def rate(self, name: str) -> tuple[float | None, tuple[float, float] | None, int]:
        tally = self.tallies.get(name) or CriterionTally()
        return tally.pass_rate, wilson(tally.counts["pass"], tally.decided), tally.decided

    def mean(self, name: str) -> float | None:
        tally = self.tallies.get(name)
        return tally.mean_score if tally else None


def _shown(value: Any, keep: str = "") -> Any:
    """A string from a run, safe to print (others as they are)."""
    return escape_controls(value, keep) if isinstance(value, str) else value


def _run_info(run_dir: Path) -> dict[str, Any]:
    if not (run_dir / JOURNAL).is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no {JOURNAL})")
    suite = read_meta(run_dir).get("suite", {})
    return {"dir": str(run_dir), "suite": suite.get("name"), "version": suite.get("version"),
            "criteria": [c["name"] for c in suite.get("criteria", [])]}


def _shown_info(info: dict[str, Any]) -> dict[str, Any]:
    return {**{k: _shown(v) for k, v in info.items()},
            "criteria": [_shown(c) for c in info["criteria"]]}


def compare(run_a: str | Path, run_b: str | Path, max_flips: int = MAX_FLIPS) -> dict[str, Any]:
    """Flipped decisions, per-criterion deltas and totals of run B against run A."""
    run_a, run_b = Path(run_a), Path(run_b)
    info_a, info_b = _run_info(run_a), _run_info(run_b)
    a, b = _Side(), _Side()
    suite_a, suite_b = SuiteSide(read_meta(run_a)), SuiteSide(read_meta(run_b))
    attribution = Attribution(suite_a, suite_b, suite_changes(suite_a, suite_b))
    causes: Counter[str] = Counter()
    held: dict[tuple[str, int], tuple[str, str, dict[str, tuple[str, float | None]]]] = {}
    seen: Counter[str] = Counter()
    for entry in iter_journal(run_a):
        d = entry["decision"]
        outcomes = a.add(d, entry["transcript"])
        suite_a.see(d["verdicts"])
        tid = d["transcript_id"]
        held[(tid, seen[tid])] = (d["outcome"], d["source"], outcomes)
        seen[tid] += 1
    seen.clear()
    flips: list[dict[str, Any]] = []
    flip_counts: Counter[tuple[str, str]] = Counter()
    verdict_flips: dict[str, Counter[tuple[str, str]]] = defaultdict(Counter)
    matched = only_b = 0
    for entry in iter_journal(run_b):
        d = entry["decision"]
        outcomes = b.add(d, entry["transcript"])
        suite_b.see(d["verdicts"])
        tid = d["transcript_id"]
        key = (tid, seen[tid])
        seen[tid] += 1
        if key not in held:
            only_b += 1
            continue
        matched += 1
        a_outcome, _source, a_outcomes = held.pop(key)
        changed: list[dict[str, Any]] = []
        for name in sorted(set(a_outcomes) | set(outcomes)):
            before = a_outcomes.get(name, ("absent", None))[0]
            after = outcomes.get(name, ("absent", None))[0]
            if before != after:
                verdict_flips[name][(before, after)] += 1
                changed.append({"criterion": name, "a": before, "b": after})
        if a_outcome != d["outcome"] and not changed:
            # no outcome moved: the scores that did are what flipped the decision
            changed = [{"criterion": name, "a": a_outcomes[name][0], "b": outcomes[name][0],
                        "score_a": a_outcomes[name][1], "score_b": outcomes[name][1]}
                       for name in sorted(set(a_outcomes) & set(outcomes))
                       if a_outcomes[name][1] != outcomes[name][1]]
        if a_outcome != d["outcome"]:
            flip_counts[(a_outcome, d["outcome"])] += 1
            cause = attribution.cause((tid, d["source"]), a_outcomes, outcomes, d["outcome"])
            causes[cause] += 1
            if len(flips) < max_flips:
                flipped = {c["criterion"] for c in changed}
                explanations = {_shown(v["criterion"]): _shown(v["explanation"], keep="\n")
                                for v in d["verdicts"]
                                if v["criterion"] in flipped and v["explanation"]}
                shown = [{**c, "criterion": _shown(c["criterion"])} for c in changed]
                flips.append({"id": _shown(tid), "source": _shown(d["source"]), "a": a_outcome,
                              "b": d["outcome"], "changed": shown, "cause": cause,
                              "explanations": explanations})
    names = list(dict.fromkeys(info_a["criteria"] + info_b["criteria"]))
    criteria = []
    for name in names:
        rate_a, ci_a, n_a = a.rate(name)
        rate_b, ci_b, n_b = b.rate(name)
        vf = verdict_flips.get(name, Counter())
        criteria.append({
            "name": _shown(name),
            "in_a": name in info_a["criteria"], "in_b": name in info_b["criteria"],
            "rate_a": rate_a, "ci_a": ci_a, "n_a": n_a, "rate_b": rate_b, "ci_b": ci_b,
            "n_b": n_b,
            "delta": None if rate_a is None or rate_b is None else rate_b - rate_a,
            "mean_a": a.mean(name), "mean_b": b.mean(name),
            "pass_to_fail": vf[("pass", "fail")], "fail_to_pass": vf[("fail", "pass")],
            "other_flips": sum(n for k, n in vf.items()
                               if k not in (("pass", "fail"), ("fail", "pass"))),
        })
    return {
        "a": {**_shown_info(info_a), "totals": a.totals},
        "b": {**_shown_info(info_b), "totals": b.totals},
        "matched": matched, "only_a": len(held), "only_b": only_b,
        "flipped": sum(flip_counts.values()),
        "flip_counts": {f"{x}->{y}": n for (x, y), n in sorted(flip_counts.items())},
        "flips": flips, "flips_listed": len(flips), "criteria": criteria,
        "suite_changes": suite_changes(suite_a, suite_b),
        "flip_causes": [{"cause": c, "flips": n} for c, n in causes.most_common()],
    }
