"""``--max-cost`` across a cluster: one ledger actor that every actor's judges report to.

Each actor's engine is built with a :class:`ClusterBudget` in place of the local
:class:`~harness.judges.budget.CostBudget`: an answer's cost is added to the ledger, which
returns what the whole cluster has spent, and a call starts only while that is below the limit.
As on one machine, calls already sent finish and are recorded, so the total may pass the limit
by what was in flight: at most each judge's ``max_concurrency`` over the whole cluster.
"""

from __future__ import annotations

from typing import Any

from harness.judges.budget import BudgetSpent, CostBudget


class Ledger:
    """The cluster's spending, in a Ray actor of its own (made with ``ray.remote``)."""

    def __init__(self) -> None:
        self.spent = 0.0

    def add(self, cost: float) -> float:
        self.spent += cost
        return self.spent


class ClusterBudget(CostBudget):
    """A :class:`CostBudget` whose total is the whole cluster's (see the module doc)."""

    def __init__(self, ledger: Any, limit: float) -> None:
        super().__init__(limit)
        self.ledger = ledger
        self.everywhere = 0.0
        """USD the cluster recorded, as of this actor's last answer."""

    def add(self, cost: float | None) -> None:
        if not cost:
            return
        import ray

        super().add(cost)
        self.everywhere = max(self.everywhere, ray.get(self.ledger.add.remote(cost)))

    def check(self) -> None:
        if self.limit is not None and self.everywhere >= self.limit:
            raise BudgetSpent(
                f"--max-cost ${self.limit:g} reached: the cluster's judge calls recorded "
                f"${self.everywhere:.4f}; no new judge call was started", connection=False)
