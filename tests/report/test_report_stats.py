"""Statistics of the report: Wilson intervals, quantiles, co-failures, reservoir samples."""

from __future__ import annotations

import random
from collections import Counter

import pytest

from harness.report.stats import (
    CoFailures,
    Quantiles,
    Reservoirs,
    histogram,
    percentile,
    wilson,
)


def test_wilson_matches_the_textbook_values() -> None:
    lo, hi = wilson(8, 10)
    assert (lo, hi) == pytest.approx((0.4902, 0.9433), abs=1e-4)
    lo, hi = wilson(0, 20)
    assert lo == 0.0 and hi == pytest.approx(0.1611, abs=1e-4)
    lo, hi = wilson(20, 20)
    assert hi == 1.0 and lo == pytest.approx(0.8389, abs=1e-4)
    assert wilson(0, 0) is None


def test_percentile_interpolates_like_numpy() -> None:
    values = sorted([3.0, 1.0, 4.0, 1.0, 5.0, 9.0, 2.0, 6.0])
    assert percentile(values, 50) == pytest.approx(3.5)
    assert percentile(values, 95) == pytest.approx(7.95)
    assert percentile([], 50) is None


def test_quantiles_are_exact_for_small_streams_and_close_for_large_ones() -> None:
    q = Quantiles(exact_limit=100)
    for v in range(1, 101):
        q.add(v / 1000)
    assert q.exact and q.quantile(50) == pytest.approx(0.0505)
    rng = random.Random(1)
    values = [rng.lognormvariate(-6, 1.5) for _ in range(50_000)]
    big = Quantiles(exact_limit=1000)
    for v in values:
        big.add(v)
    assert not big.exact and len(big.buckets) < 3000
    for p in (50, 95):
        assert big.quantile(p) == pytest.approx(percentile(sorted(values), p), rel=0.02)


def test_histogram_puts_one_in_the_last_bin() -> None:
    assert histogram([0.0, 0.05, 0.5, 0.99, 1.0], bins=10) == [2, 0, 0, 0, 0, 1, 0, 0, 0, 2]


def test_cofailures_count_pairs_and_conditional_rates() -> None:
    co = CoFailures()
    for failed in (["a", "b"], ["a"], ["b", "c"], ["a", "b"], []):
        co.add(failed)
    m = co.matrix(["a", "b", "c"])
    assert [[c["count"] for c in row] for row in m] == [[3, 2, 0], [2, 3, 1], [0, 1, 1]]
    assert m[0][1]["rate"] == pytest.approx(2 / 3) and m[2][1]["rate"] == 1.0


def test_reservoirs_stay_bounded_and_sample_uniformly() -> None:
    hits: Counter[int] = Counter()
    for seed in range(300):
        r = Reservoirs(size=10, seed=seed)
        for i in range(100):
            r.offer("k", i)
        assert len(r.samples["k"]) == 10 and r.seen["k"] == 100
        hits.update(r.samples["k"])
    # every item is kept with probability 10/100: 30 times in 300 draws on average
    assert min(hits.values()) > 10 and max(hits.values()) < 55
    assert hits[0] + hits[1] + hits[2] + hits[97] + hits[98] + hits[99] > 100
