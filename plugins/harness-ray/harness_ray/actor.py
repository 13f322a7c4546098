"""The actor of the pool: the suite's engine built once, then blocks of records reviewed by it."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from harness.options import RunOptions
from harness.stages import Finished
from harness.stops import stop_for
from harness.suite import Suite
from harness_ray.blocks import from_decisions, stop_block, to_entries


@dataclass
class ActorSpec:
    """What an actor needs to build the same engine as the driver."""

    suite: Suite
    options: RunOptions
    """The driver's run options; ``judge_share`` divides each judge's window among the actors
    so that the whole pool keeps to the suite's ``max_concurrency`` per judge."""
    max_cost: float | None = None
    """``--max-cost``: USD the whole cluster may spend on judge calls."""
    ledger: Any = None
    """With ``max_cost``: the :class:`~harness_ray.budget.Ledger` actor the judges report to."""


class ReviewBlocks:
    """A Ray Data callable class: one :class:`harness.engine.Engine` per actor, whose event
    loop keeps each judge's window full within a block."""

    def __init__(self, spec: ActorSpec) -> None:
        from harness.engine import Engine
        from harness_ray.budget import ClusterBudget

        os.environ.setdefault("OMP_NUM_THREADS", "1")
        budget = None if spec.max_cost is None else ClusterBudget(spec.ledger, spec.max_cost)
        self.engine = Engine(spec.suite, options=spec.options, budget=budget)

    def __call__(self, block: pa.Table) -> pa.Table:
        decided: list[Finished] = []
        try:
            for batch in self.engine.batches(to_entries(block)):
                decided.extend(batch)
        except Exception as exc:  # noqa: BLE001 - a stop travels as a block; the rest raises
            if (stop := stop_for(exc)) is None:
                raise
            return stop_block(stop, decided)  # the rest of the block is reviewed on --resume
        return from_decisions(decided)
