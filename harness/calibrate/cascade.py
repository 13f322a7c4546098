"""``harness calibrate RUN --labels FILE --tune-cascade NAME``: the band of a cascade, chosen
against human labels.

From a run in which both tiers judged the labelled transcripts (``band: [0, 1]``), every band
``[lo, hi]`` over the first tier's scores gives a verdict per transcript (the second tier's
inside the band, the first's outside) and a share of second-tier calls. The curve keeps, for
each share of calls, the band that agrees best with the labels; the best band under
``--max-calls`` is the answer, with a bootstrap interval of its agreement.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from harness.calibrate import metrics
from harness.calibrate.labels import Label
from harness.errors import UsageError
from harness.rundir import check_complete, iter_journal

GRID = 41
"""Candidate band edges: quantiles of the first tier's scores (and 0 and 1)."""
CURVE = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1.0)
"""Shares of second-tier calls the curve is shown at."""


@dataclass(frozen=True)
class Case:
    """One labelled transcript: the first tier's score and verdict, the second's, the label."""

    score: float
    first: bool
    then: bool
    human: bool


def cases(run_dir: Path, labels: Sequence[Label], name: str) -> list[Case]:
    """The labelled transcripts both tiers of cascade ``name`` judged."""
    meta = check_complete(run_dir)
    kinds = {c["name"]: c["kind"] for c in meta.get("suite", {}).get("criteria", [])}
    if kinds.get(name) != "cascade":
        known = ", ".join(n for n, k in kinds.items() if k == "cascade") or "none"
        raise UsageError(f"--tune-cascade {name!r}: the suite has no cascade of that name "
                         f"(cascades: {known})")
    wanted = {lab.transcript_id: lab.value == "pass" for lab in labels
              if lab.criterion in (None, name) and lab.value != "skip"}
    found, half = [], 0
    for entry in iter_journal(run_dir, render=lambda item: None):
        d = entry["decision"]
        human = wanted.get(d["transcript_id"])
        verdict = next((v for v in d["verdicts"] if v["criterion"] == name), None)
        if human is None or verdict is None:
            continue
        tiers = (verdict["details"] or {}).get("tiers", {})
        first, then = tiers.get("first"), tiers.get("then")
        if first is None or first.get("score") is None or first["outcome"] not in ("pass", "fail"):
            continue
        if then is None or then["outcome"] not in ("pass", "fail"):
            half += 1
            continue
        found.append(Case(first["score"], first["outcome"] == "pass",
                          then["outcome"] == "pass", human))
    if half:
        raise UsageError(f"{half} labelled transcripts were judged by the first tier of {name} "
                         "alone: run the suite with `band: [0, 1]` (both tiers on every "
                         "transcript) to tune the band")
    if not found:
        raise UsageError(f"no labelled transcript of the run was judged by both tiers of {name}")
    return found


def _inside(scores: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """The cascade's own routing rule, on arrays (harness_criteria.cascade.in_band)."""
    return ((scores > lo) | (lo == 0.0)) & ((scores < hi) | (hi == 1.0))


def tune(found: list[Case], max_calls: float = 1.0, seed: int = 0,
         resamples: int = metrics.BOOTSTRAP) -> dict[str, Any]:
    """The agreement / calls curve and the best band under ``max_calls``."""
    scores = np.array([c.score for c in found])
    first = np.array([c.first for c in found])
    then = np.array([c.then for c in found])
    human = np.array([c.human for c in found])
    edges = np.unique(np.concatenate([[0.0, 1.0], np.quantile(scores, np.linspace(0, 1, GRID))]))
    bands = []
    for i, lo in enumerate(edges):
        for hi in edges[i:]:
            inside = _inside(scores, lo, hi)
            right = np.where(inside, then, first) == human
            bands.append((float(right.mean()), float(inside.mean()), float(lo), float(hi), right))
    best = _best(bands, max_calls)
    if best is None:
        raise UsageError(f"--max-calls {max_calls:g}: no band sends so few transcripts on")
    ci = None
    if resamples:
        picks = metrics.seeded(seed).integers(0, len(found), size=(resamples, len(found)))
        ci = metrics.interval(best[4][picks].mean(axis=1))
    curve = [{"max_calls": share, "agreement": top[0], "calls": top[1], "band": [top[2], top[3]]}
             for share in CURVE if (top := _best(bands, share)) is not None]
    return {"compared": len(found), "first_alone": float((first == human).mean()),
            "then_alone": float((then == human).mean()), "max_calls": max_calls,
            "band": [best[2], best[3]], "agreement": best[0], "agreement_ci": ci,
            "calls": best[1], "curve": curve}


def _best(bands: list[Any], share: float) -> Any:
    """The band that agrees best among those sending at most ``share`` of the transcripts on
    (the fewer calls on a tie), or ``None``."""
    return max((b for b in bands if b[1] <= share + 1e-12), key=lambda b: (b[0], -b[1]),
               default=None)
