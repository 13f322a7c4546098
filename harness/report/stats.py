"""Statistics for the report, computed in one streamed pass with bounded memory.

Wilson score intervals for pass rates, quantiles that stay exact for small runs and turn into a
log-bucketed histogram (about 1% relative error) for large ones, fixed-bin score histograms,
a co-failure matrix and reservoir samples.
"""

from __future__ import annotations

import math
import random
from collections import Counter
from collections.abc import Hashable, Iterable
from typing import Any, Generic, TypeVar

Z95 = 1.959963984540054
"""The normal quantile for a two-sided 95% interval."""


def wilson(successes: int, n: int, z: float = Z95) -> tuple[float, float] | None:
    """The Wilson score interval for a binomial proportion, or None when ``n`` is 0."""
    if n <= 0:
        return None
    p = successes / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def percentile(sorted_values: list[float], q: float) -> float | None:
    """The ``q``-th percentile (0..100) of sorted values, linear interpolation (numpy default)."""
    if not sorted_values:
        return None
    pos = (len(sorted_values) - 1) * q / 100
    lo = math.floor(pos)
    hi = min(lo + 1, len(sorted_values) - 1)
    return sorted_values[lo] + (sorted_values[hi] - sorted_values[lo]) * (pos - lo)


class Quantiles:
    """Quantiles of a stream: exact up to ``exact_limit`` values, then a log histogram.

    Above the limit, values fall into buckets growing by ``1 + rel_error`` from ``floor``
    (values below it share one bucket), so memory stays bounded whatever the run size.
    """

    def __init__(self, exact_limit: int = 10_000, rel_error: float = 0.01,
                 floor: float = 1e-7) -> None:
        self.exact_limit, self.floor = exact_limit, floor
        self.log_base = math.log1p(rel_error)
        self.values: list[float] | None = []
        self.buckets: Counter[int] = Counter()
        self.count = 0

    def _bucket(self, value: float) -> int:
        return 0 if value <= self.floor else 1 + int(math.log(value / self.floor) / self.log_base)

    def add(self, value: float) -> None:
        self.count += 1
        if self.values is not None:
            self.values.append(value)
            if len(self.values) > self.exact_limit:
                for v in self.values:
                    self.buckets[self._bucket(v)] += 1
                self.values = None
        else:
            self.buckets[self._bucket(value)] += 1

    @property
    def exact(self) -> bool:
        return self.values is not None

    def quantile(self, q: float) -> float | None:
        """The ``q``-th percentile (0..100); approximate (bucket midpoint) for large streams."""
        if self.values is not None:
            return percentile(sorted(self.values), q)
        if not self.count:
            return None
        rank = q / 100 * (self.count - 1)
        seen = 0
        for bucket in sorted(self.buckets):
            seen += self.buckets[bucket]
            if seen > rank:
                if bucket == 0:
                    return self.floor
                lo = self.floor * math.exp((bucket - 1) * self.log_base)
                return lo * math.exp(self.log_base / 2)
        return None


def score_bin(value: float, bins: int = 10) -> int:
    """The bin of a value in [0, 1] among ``bins`` equal bins (1.0 falls in the last)."""
    return min(bins - 1, max(0, int(value * bins)))


def histogram(values: Iterable[float], bins: int = 10) -> list[int]:
    """Counts of values in [0, 1] over ``bins`` equal bins."""
    counts = [0] * bins
    for v in values:
        counts[score_bin(v, bins)] += 1
    return counts


class CoFailures:
    """How often criteria fail together: counts of transcripts failing both of a pair."""

    def __init__(self) -> None:
        self.pairs: Counter[tuple[str, str]] = Counter()

    def add(self, failed: Iterable[str]) -> None:
        names = sorted(set(failed))
        for a in names:
            for b in names:
                self.pairs[(a, b)] += 1

    def matrix(self, names: list[str]) -> list[list[dict[str, Any]]]:
        """Rows of cells: ``count`` failing both and ``rate`` = P(column fails | row fails)."""
        rows = []
        for a in names:
            base = self.pairs[(a, a)]
            rows.append([{"count": self.pairs[(a, b)],
                          "rate": self.pairs[(a, b)] / base if base else None} for b in names])
        return rows


K = TypeVar("K", bound=Hashable)


class Reservoirs(Generic[K]):
    """A uniform sample of at most ``size`` items per key.

    Reservoir sampling with Li's algorithm L: once a reservoir is full, random numbers are
    drawn only for the items it accepts (about ``size * log(n / size)`` of ``n``), so offering
    is cheap on long streams.
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self.rng = random.Random(seed)
        self.seen: Counter[K] = Counter()
        self.samples: dict[K, list[Any]] = {}
        self._next: dict[K, int] = {}
        self._w: dict[K, float] = {}

    def _u(self) -> float:
        return 1.0 - self.rng.random()  # in (0, 1]: safe for log

    def _advance(self, key: K, index: int) -> None:
        self._w[key] *= math.exp(math.log(self._u()) / self.size)
        w = self._w[key]
        skip = math.floor(math.log(self._u()) / math.log1p(-w)) if w < 1.0 else 0
        self._next[key] = index + skip + 1

    def offer(self, key: K, item: Any) -> None:
        index = self.seen[key]
        self.seen[key] = index + 1
        sample = self.samples.get(key)
        if sample is None:
            sample = self.samples[key] = []
        if len(sample) < self.size:
            sample.append(item)
            if len(sample) == self.size:
                self._w[key] = 1.0
                self._advance(key, index)
        elif index == self._next[key]:
            sample[self.rng.randrange(self.size)] = item
            self._advance(key, index)
