"""Agreement between raters (the members of a panel), accumulated one unit at a time.

A unit is one transcript (or message) that a panel judged; its ratings are the members'
outcomes (``pass``/``fail``; a member that errored or abstained gave no rating).

- Fleiss' kappa: over the units every member rated (a fixed number of raters per unit);
  ``None`` when the units leave no room for chance agreement to differ from 1 (every rating the
  same category) or no unit was complete.
- Krippendorff's alpha (nominal): over every unit with at least two ratings, so it uses the
  units where some member gave none.

Both stream: the state is a few counters per category, never the units.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from typing import Any


class Agreement:
    """Fleiss' kappa and Krippendorff's alpha of a panel, fed unit by unit."""

    __slots__ = ("coincidence", "fleiss_p_sum", "fleiss_totals", "fleiss_units", "raters",
                 "units")

    def __init__(self) -> None:
        self.units = 0
        """Units seen (any number of ratings)."""
        self.raters = 0
        """Raters of the panel (the most ratings any unit was meant to have)."""
        self.fleiss_units: Counter[int] = Counter()
        """Complete units, per number of raters."""
        self.fleiss_p_sum: defaultdict[int, float] = defaultdict(float)
        """Sum of the units' observed agreement P_i, per number of raters."""
        self.fleiss_totals: dict[int, Counter[str]] = {}
        """Ratings per category over the complete units, per number of raters."""
        self.coincidence: defaultdict[tuple[str, str], float] = defaultdict(float)
        """Krippendorff's coincidence matrix (ordered pairs of categories)."""

    def add(self, ratings: Iterable[str | None], raters: int | None = None) -> None:
        """One unit: each rater's category, ``None`` for a rater that gave none.

        ``raters`` is how many raters the unit was meant to have (default: ``len(ratings)``).
        """
        ratings = list(ratings)
        expected = raters if raters is not None else len(ratings)
        given = Counter(r for r in ratings if r is not None)
        m = sum(given.values())
        self.units += 1
        self.raters = max(self.raters, expected)
        if m == expected and m >= 2:
            self.fleiss_units[m] += 1
            self.fleiss_p_sum[m] += (sum(c * c for c in given.values()) - m) / (m * (m - 1))
            self.fleiss_totals.setdefault(m, Counter()).update(given)
        if m >= 2:
            for c, n_c in given.items():
                for k, n_k in given.items():
                    pairs = n_c * (n_c - 1) if c == k else n_c * n_k
                    if pairs:
                        self.coincidence[(c, k)] += pairs / (m - 1)

    def fleiss_kappa(self) -> float | None:
        """Fleiss' kappa over the complete units (of the panel's full size)."""
        m = self.raters
        units = self.fleiss_units.get(m, 0)
        if units == 0:
            return None
        totals = self.fleiss_totals[m]
        p_bar = self.fleiss_p_sum[m] / units
        p_e = sum((n / (units * m)) ** 2 for n in totals.values())
        if p_e >= 1.0:
            return None
        return (p_bar - p_e) / (1.0 - p_e)

    def krippendorff_alpha(self) -> float | None:
        """Krippendorff's alpha (nominal) over the units with two ratings or more."""
        n_c: defaultdict[str, float] = defaultdict(float)
        for (c, _), value in self.coincidence.items():
            n_c[c] += value
        n = sum(n_c.values())
        if n <= 1:
            return None
        observed = sum(v for (c, k), v in self.coincidence.items() if c != k)
        expected = sum(n_c[c] * n_c[k] for c in n_c for k in n_c if c != k)
        if expected == 0:
            return None
        return 1.0 - (n - 1) * observed / expected

    def as_dict(self) -> dict[str, Any]:
        """``units, raters, complete_units, fleiss_kappa, krippendorff_alpha`` (summary.json)."""
        return {"units": self.units, "raters": self.raters,
                "complete_units": self.fleiss_units.get(self.raters, 0),
                "fleiss_kappa": self.fleiss_kappa(),
                "krippendorff_alpha": self.krippendorff_alpha()}


def member_ratings(details: Mapping[str, Any]) -> list[str | None] | None:
    """The members' ratings in a panel verdict's ``details`` (``pass``/``fail``, else None),
    or None when the details are not a panel's."""
    members = details.get("members")
    if not isinstance(members, list) or not members:
        return None
    return [m.get("outcome") if isinstance(m, Mapping) and m.get("outcome") in ("pass", "fail")
            else None for m in members]
