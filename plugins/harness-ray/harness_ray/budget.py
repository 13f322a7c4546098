"""``--max-cost`` across a cluster: one ledger, in the run's coordinator actor.

Each actor's engine is built with a :class:`ClusterBudget` in place of the local
:class:`~harness.judges.budget.CostBudget`. Adding an answer's cost never waits: the actor's
:class:`~harness_ray.window.Link` reports it to the coordinator in the background (at once,
unless a report is already on its way) and learns the cluster's total from the reply. A call
starts only while that total, with this actor's costs not yet counted in it, is below the limit.
Near the limit (less left than twice what a full judge window of the most expensive answer so
far would cost), a call first waits for a fresh total. As on one machine, calls already sent
finish and are recorded, so the total may pass the limit by what was in flight: at most each
judge's ``max_concurrency`` over the whole cluster (the windows are cluster-wide).
"""

from __future__ import annotations

from harness.judges.budget import BudgetSpent, CostBudget
from harness_ray.window import Link

NEAR_WINDOWS = 2
"""How many full windows of the costliest answer so far count as near the limit."""


class ClusterBudget(CostBudget):
    """A :class:`CostBudget` whose total is the whole cluster's (see the module doc)."""

    def __init__(self, link: Link, limit: float) -> None:
        super().__init__(limit)
        self.link = link
        self.costliest = 0.0
        link.budget = self

    def add(self, cost: float | None) -> None:
        if not cost:
            return
        super().add(cost)
        self.costliest = max(self.costliest, cost)
        self.link.spend(cost)

    def near(self) -> bool:
        """Whether less is left than what the calls in flight could still spend."""
        if self.limit is None:
            return False
        left = self.limit - self.link.spent
        return left < NEAR_WINDOWS * max(1, self.link.capacity) * self.costliest

    def check(self) -> None:
        if self.limit is not None and self.link.spent >= self.limit:
            raise BudgetSpent(
                f"--max-cost ${self.limit:g} reached: the cluster's judge calls recorded "
                f"${self.link.spent:.4f}; no new judge call was started", connection=False)
