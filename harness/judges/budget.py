"""A run's spending limit on judge calls (``harness run --max-cost USD``).

Every :class:`~harness.judges.runner.JudgeRunner` of a run shares one :class:`CostBudget` (its
``context.budget``). A runner checks it right before it sends a call (after waiting
for its concurrency slot, so calls queued behind the limit never start) and adds each answer's
``cost_usd`` to it. Once the cost recorded in this process reaches the limit, calls raise
:class:`BudgetSpent`: like an endpoint that is down, it stops the run (state ``stopped``, what
was decided is kept) rather than recording an error verdict, and ``--resume`` goes on with a new
budget. Calls already sent finish and are recorded, so the total may pass the limit by what was
in flight: at most ``max_concurrency`` calls per judge, or one batch for a ``batch: true`` judge.
"""

from __future__ import annotations

import threading
from typing import TYPE_CHECKING

from harness.judges.base import JudgeUnavailable

if TYPE_CHECKING:
    from harness.criterion import SuiteContext


class BudgetSpent(JudgeUnavailable):
    """The run's ``--max-cost`` is reached: no new judge call starts."""

    @property
    def stop_reason(self) -> str:
        """What a stopped run's summary says."""
        return str(self)


class CostBudget:
    """The cost of the judge calls made so far, and the limit that stops new ones."""

    def __init__(self, limit: float | None = None) -> None:
        self.limit = limit
        """USD; ``None``: no limit."""
        self.spent = 0.0
        """USD recorded by this process's calls (cache hits cost nothing)."""
        self._lock = threading.Lock()

    def add(self, cost: float | None) -> None:
        """Record one answer's cost."""
        if cost:
            with self._lock:
                self.spent += cost

    def check(self) -> None:
        """Raise :class:`BudgetSpent` once the limit is reached."""
        if self.limit is not None and self.spent >= self.limit:
            raise BudgetSpent(
                f"--max-cost ${self.limit:g} reached: judge calls recorded ${self.spent:.4f}; "
                "no new judge call was started", connection=False,
            )


def cost_budget(context: SuiteContext) -> CostBudget:
    """The run's budget (its context's, made on first use)."""
    if context.budget is None:
        context.budget = CostBudget()
    return context.budget


def unpriced_judges(context: SuiteContext) -> list[str]:
    """Names of the run's judges whose calls carry no cost (no prices set), sorted."""
    return sorted({r.backend.name for r in context.judge_runners()
                   if not r.backend.has_prices()})


def limit_cost(context: SuiteContext, max_cost: float | None) -> None:
    """Set the run's ``--max-cost`` (``None`` leaves it as it is).

    Raises ``ValueError`` when a judge records no cost (no prices set): the limit would never
    be reached.
    """
    if max_cost is None:
        return
    if max_cost < 0:
        raise ValueError(f"--max-cost must be a number of USD >= 0, got {max_cost:g}")
    unpriced = unpriced_judges(context)
    if unpriced:
        raise ValueError(
            f"--max-cost needs the judges' prices, or their cost is never recorded: set "
            f"price_in_per_mtok and price_out_per_mtok on {', '.join(unpriced)} "
            "(see the judge options in the README)")
    cost_budget(context).limit = max_cost
