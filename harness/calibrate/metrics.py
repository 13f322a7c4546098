"""Agreement between harness's verdicts and human labels: pure functions, plain Python.

Outcomes are ``"pass"`` and ``"fail"``; ``fail`` is the positive class (precision and recall
of ``fail`` answer "of what harness rejects, how much should go?" and "of what should go, how
much does harness catch?"). Scores are probabilities of passing, so higher is better.

Bootstrap intervals resample the compared pairs with replacement (``B`` resamples drawn with a
seeded numpy generator, vectorised) and take the 2.5th and 97.5th percentiles; a resample where
a metric is undefined (no predicted fail for precision, one class only for kappa or AUC) is left
out of that metric's interval.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

BOOTSTRAP = 1000
"""Default number of bootstrap resamples."""
CI_LEVEL = 95.0


@dataclass(frozen=True)
class Confusion:
    """Counts of (human label, harness outcome) pairs, human first: ``pass_fail`` is a
    transcript people pass and harness fails (a false positive for ``fail``)."""

    pass_pass: int = 0
    pass_fail: int = 0
    fail_pass: int = 0
    fail_fail: int = 0

    @classmethod
    def of(cls, pairs: Sequence[tuple[str, str]]) -> Confusion:
        """From ``(human, harness)`` pairs of ``"pass"``/``"fail"``."""
        counts = {"pass_pass": 0, "pass_fail": 0, "fail_pass": 0, "fail_fail": 0}
        for human, machine in pairs:
            counts[f"{human}_{machine}"] += 1
        return cls(**counts)

    @property
    def n(self) -> int:
        return self.pass_pass + self.pass_fail + self.fail_pass + self.fail_fail

    @property
    def agree(self) -> int:
        return self.pass_pass + self.fail_fail

    def as_dict(self) -> dict[str, dict[str, int]]:
        """``{"human_pass": {"pass": .., "fail": ..}, "human_fail": {...}}``."""
        return {"human_pass": {"pass": self.pass_pass, "fail": self.pass_fail},
                "human_fail": {"pass": self.fail_pass, "fail": self.fail_fail}}


def agreement(c: Confusion) -> float | None:
    """Share of pairs where harness and the human agree."""
    return c.agree / c.n if c.n else None


def cohen_kappa(c: Confusion) -> float | None:
    """Cohen's kappa: agreement beyond what the two marginals give by chance.

    ``(p_o - p_e) / (1 - p_e)``; None when chance agreement is 1 (both sides used one label
    only) or nothing was compared.
    """
    n = c.n
    if not n:
        return None
    human_pass, machine_pass = c.pass_pass + c.pass_fail, c.pass_pass + c.fail_pass
    p_o = c.agree / n
    p_e = (human_pass * machine_pass + (n - human_pass) * (n - machine_pass)) / (n * n)
    if p_e >= 1.0:
        return None
    return (p_o - p_e) / (1.0 - p_e)


def precision_fail(c: Confusion) -> float | None:
    """Of the transcripts harness fails, the share people fail too."""
    predicted = c.fail_fail + c.pass_fail
    return c.fail_fail / predicted if predicted else None


def recall_fail(c: Confusion) -> float | None:
    """Of the transcripts people fail, the share harness fails too."""
    actual = c.fail_fail + c.fail_pass
    return c.fail_fail / actual if actual else None


CONFUSION_METRICS: dict[str, Callable[[Confusion], float | None]] = {
    "agreement": agreement, "kappa": cohen_kappa,
    "precision_fail": precision_fail, "recall_fail": recall_fail,
}


def ranks(values: Sequence[float]) -> list[float]:
    """1-based ranks, ties sharing their average rank."""
    order = sorted(range(len(values)), key=values.__getitem__)
    out = [0.0] * len(values)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and values[order[j + 1]] == values[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def roc_auc(scores: Sequence[float], human_pass: Sequence[bool]) -> float | None:
    """Area under the ROC curve of the score as a predictor of the human ``pass``.

    The probability that a transcript people pass scores higher than one they fail (ties
    count half): the Mann-Whitney U over both counts. None without both classes.
    """
    n_pass = sum(human_pass)
    n_fail = len(human_pass) - n_pass
    if not n_pass or not n_fail:
        return None
    r = ranks(scores)
    rank_sum = sum(rk for rk, p in zip(r, human_pass, strict=True) if p)
    return (rank_sum - n_pass * (n_pass + 1) / 2) / (n_pass * n_fail)


def best_threshold(scores: Sequence[float], human_pass: Sequence[bool],
                   reference: float = 0.5) -> tuple[float, int] | None:
    """The threshold ``t`` ("pass when score >= t") that agrees with the most labels.

    Candidates are the observed scores (a threshold between two of them agrees exactly as the
    upper one does); among equally good ones, the one nearest ``reference``. Returns
    ``(t, agreeing pairs)``, None when there are no scores.
    """
    if not scores:
        return None
    pairs = sorted(zip(scores, human_pass, strict=True))
    total_pass = sum(human_pass)
    best: tuple[int, float, float] | None = None  # (agree, -distance, t)
    below_fail = below_pass = 0  # human fail / pass among the scores under the candidate
    i = 0
    while i < len(pairs):
        t = pairs[i][0]
        agree = below_fail + (total_pass - below_pass)
        key = (agree, -abs(t - reference), t)
        if best is None or key[:2] > best[:2]:
            best = key
        while i < len(pairs) and pairs[i][0] == t:
            below_pass += pairs[i][1]
            below_fail += not pairs[i][1]
            i += 1
    assert best is not None
    return best[2], best[0]


def spearman(x: Sequence[float], y: Sequence[float]) -> float | None:
    """Spearman's rank correlation (Pearson's r of the tie-averaged ranks); None when fewer
    than 3 pairs or either side is constant."""
    if len(x) < 3:
        return None
    rx, ry = ranks(x), ranks(y)
    mx, my = sum(rx) / len(rx), sum(ry) / len(ry)
    sxy = sum((a - mx) * (b - my) for a, b in zip(rx, ry, strict=True))
    sxx = sum((a - mx) ** 2 for a in rx)
    syy = sum((b - my) ** 2 for b in ry)
    if sxx == 0 or syy == 0:
        return None
    return sxy / math.sqrt(sxx * syy)


def seeded(seed: int | str) -> np.random.Generator:
    """A numpy generator from any seed (``"0:helpful"``: the run's seed and a row's name)."""
    digest = hashlib.sha256(str(seed).encode("utf-8")).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def interval(values: np.ndarray) -> list[float] | None:
    """The percentile interval of bootstrap values, NaN (undefined) left out; None if empty."""
    values = values[~np.isnan(values)]
    if not values.size:
        return None
    tail = (100.0 - CI_LEVEL) / 2
    lo, hi = np.percentile(values, [tail, 100.0 - tail])  # linear interpolation
    return [float(lo), float(hi)]


def _ratio(num: np.ndarray, den: np.ndarray) -> np.ndarray:
    out = np.full(num.shape, np.nan)
    np.divide(num, den, out=out, where=den != 0)
    return out


def bootstrap_confusion(c: Confusion, rng: np.random.Generator,
                        resamples: int = BOOTSTRAP) -> dict[str, list[float] | None]:
    """Bootstrap intervals of every confusion metric.

    Drawing ``n`` pairs with replacement only matters through the cells they fall in, so each
    resample is one multinomial draw of ``n`` over the four cells with their frequencies: the
    same distribution as resampling pairs, vectorised.
    """
    n = c.n
    if not n or not resamples:
        return {name: None for name in CONFUSION_METRICS}
    cells = [c.pass_pass, c.pass_fail, c.fail_pass, c.fail_fail]
    draws = rng.multinomial(n, [x / n for x in cells], size=resamples).astype(float)
    pp, pf, fp, ff = draws.T
    human_pass, machine_pass = pp + pf, pp + fp
    chance = (human_pass * machine_pass + (n - human_pass) * (n - machine_pass)) / (n * n)
    values = {
        "agreement": (pp + ff) / n,
        "kappa": _ratio((pp + ff) / n - chance, np.where(chance >= 1.0, 0.0, 1.0 - chance)),
        "precision_fail": _ratio(ff, ff + pf),
        "recall_fail": _ratio(ff, ff + fp),
    }
    return {name: interval(values[name]) for name in CONFUSION_METRICS}


def bootstrap_auc(scores: Sequence[float], human_pass: Sequence[bool], rng: np.random.Generator,
                  resamples: int = BOOTSTRAP, chunk: int = 100) -> list[float] | None:
    """Bootstrap interval of :func:`roc_auc`, resampling (score, label) pairs.

    A resample is a multinomial count per pair; its AUC is computed from those counts over the
    distinct scores (pairs of people's pass and fail weighted by their counts, ties half), a
    chunk of resamples at a time.
    """
    n = len(scores)
    if not n or not resamples:
        return None
    order = np.argsort(np.asarray(scores, dtype=float), kind="stable")
    sorted_scores = np.asarray(scores, dtype=float)[order]
    is_pass = np.asarray(human_pass, dtype=bool)[order]
    starts = np.flatnonzero(np.r_[True, sorted_scores[1:] != sorted_scores[:-1]])
    values = []
    for done in range(0, resamples, chunk):
        size = min(chunk, resamples - done)
        counts = rng.multinomial(n, np.full(n, 1.0 / n), size=size).astype(float)
        passes = np.add.reduceat(counts * is_pass, starts, axis=1)  # per distinct score
        fails = np.add.reduceat(counts * ~is_pass, starts, axis=1)
        fails_below = np.cumsum(fails, axis=1) - fails
        wins = (passes * (fails_below + 0.5 * fails)).sum(axis=1)
        values.append(_ratio(wins, passes.sum(axis=1) * fails.sum(axis=1)))
    return interval(np.concatenate(values))
