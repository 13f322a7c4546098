"""The actor of the pool: the suite built once, then blocks of records reviewed by the core."""

from __future__ import annotations

import asyncio
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from harness.engine import unavailable_errors
from harness.stages import Finished
from harness.suite import Suite
from harness_ray.blocks import from_decisions, stop_block, to_entries
from harness_ray.budget import share_budget

JUDGE_RUNNER = "judge-runner:"
"""Key prefix of the judge runners in an engine's shared resources."""


@dataclass
class ActorSpec:
    """What an actor needs to build the same engine as the driver."""

    suite: Suite
    plugins_dir: str | None
    judge: str | None
    all_criteria: bool
    cache_dir: str | None
    input_format: str
    max_in_flight: int
    actors: int
    """Actors in the pool: each judge's concurrency window is divided among them."""
    cwd: str
    """The driver's folder (relative paths of a suite resolve against it where it exists)."""
    max_cost: float | None = None
    """``--max-cost``: USD the whole cluster may spend on judge calls."""
    ledger: Any = None
    """With ``max_cost``: the :class:`~harness_ray.budget.Ledger` actor the judges report to."""


def share_windows(engine: Any, actors: int) -> None:
    """Give each judge ``max_concurrency // actors`` calls in flight (at least one), so the
    whole pool keeps to the suite's ``max_concurrency`` per judge, as a local run does."""
    for key, runner in engine.context.resources.items():
        if key.startswith(JUDGE_RUNNER) and hasattr(runner, "max_concurrency"):
            runner.max_concurrency = max(1, runner.max_concurrency // max(1, actors))


class ReviewBlocks:
    """A Ray Data callable class: one :class:`harness.engine.Engine` per actor, one event loop
    that keeps each judge's window full within a block."""

    def __init__(self, spec: ActorSpec) -> None:
        from harness.engine import Engine
        from harness.plugins import get_registry

        if Path(spec.cwd).is_dir():
            os.chdir(spec.cwd)
        os.environ.setdefault("OMP_NUM_THREADS", "1")
        self.engine = Engine(spec.suite, get_registry(spec.plugins_dir), judge=spec.judge,
                             all_criteria=spec.all_criteria, cache_dir=spec.cache_dir,
                             workers=1, max_in_flight=spec.max_in_flight,
                             input_format=spec.input_format)
        share_windows(self.engine, spec.actors)
        if spec.max_cost is not None:
            share_budget(self.engine, spec.ledger, spec.max_cost)
        self.loop = asyncio.new_event_loop()

    def __call__(self, block: pa.Table) -> pa.Table:
        decided: list[Finished] = []
        try:
            self.loop.run_until_complete(self._review(block, decided))
        except unavailable_errors() as exc:  # the rest of the block is reviewed on --resume
            return stop_block(str(exc), decided)
        return from_decisions(decided)

    async def _review(self, block: pa.Table, decided: list[Finished]) -> None:
        async for batch in self.engine.astream(to_entries(block)):
            decided.extend(batch)
