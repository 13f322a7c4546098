"""The actor of the pool: the suite's engine built once, then blocks of records reviewed by it."""

from __future__ import annotations

import os
import socket
import sys
from dataclasses import dataclass, field
from functools import partial
from typing import Any

import pyarrow as pa

from harness.engine import Engine
from harness.judges.runner import JudgeRunner
from harness.options import RunOptions
from harness.stages import Finished
from harness.stops import RunStopped, Stop, stop_for
from harness.suite import Suite
from harness_ray.blocks import Records, broken_block, decisions
from harness_ray.budget import ClusterBudget
from harness_ray.preflight import Marker, cache_not_shared
from harness_ray.window import Link, SharedWindow

BLOCK_STARTS = 4
"""Times a block may be started (by a restarted actor) before it stops the run."""


@dataclass
class ActorSpec:
    """What an actor needs to build the same engine as the driver."""

    suite: Suite
    options: RunOptions
    """The driver's run options."""
    coordinator: Any
    """The run's :class:`~harness_ray.coordinator.Coordinator` actor (judge windows, ledger,
    block attempts)."""
    max_cost: float | None = None
    """``--max-cost``: USD the whole cluster may spend on judge calls."""
    columns: dict[int, str] = field(default_factory=dict)
    """Inputs whose Parquet/Arrow chat column is not ``options.messages_column``."""
    marker: Marker | None = None
    """On a cluster of several nodes, the driver's mark in the judge cache folder."""
    actors: int = 1
    """Actors of the run: each keeps to its share of a judge's rate limits."""


class ReviewBlocks:
    """A Ray Data callable class: one :class:`harness.engine.Engine` per actor, whose event
    loop keeps each judge's window full within a block."""

    def __init__(self, spec: ActorSpec) -> None:
        import ray

        os.environ.setdefault("OMP_NUM_THREADS", "1")
        sys.stdout = sys.stderr  # a criterion's prints never land in the driver's stdout
        self.spec = spec
        self.broken: str | None = None
        actor = ray.get_runtime_context().get_actor_id() or f"pid-{os.getpid()}"
        self.link = Link(spec.coordinator, actor)
        budget = None if spec.max_cost is None else ClusterBudget(self.link, spec.max_cost)
        if spec.marker is not None and not spec.marker.seen():  # a node that joined later
            self.broken = cache_not_shared(spec.marker)
            return
        try:
            self.engine = Engine(spec.suite, options=spec.options, budget=budget)
        except Exception as exc:  # noqa: BLE001 - said once, in one line, by the driver
            self.broken = (f"a Ray actor on {socket.gethostname()} cannot build the suite: "
                           f"{' '.join(str(exc).split()) or type(exc).__name__}")
            return
        for key, value in self.engine.context.resources.items():
            if isinstance(value, JudgeRunner):
                value.make_window = partial(SharedWindow, self.link, key,
                                            value.max_concurrency)
                if value.limiter is not None:
                    value.limiter.split(spec.actors)

    def __call__(self, block: pa.Table) -> pa.Table:
        import ray

        if self.broken is not None:
            return broken_block(self.broken)
        records = Records(block, self.spec.options.messages_column)
        keys = records.keys()
        if (column := self.spec.columns.get(keys[0][0])) is not None:
            records = Records(block, column)
        if (stop := self._restarted_too_often(ray, records, keys)) is not None:
            return decisions([], [], stop)
        decided: list[Finished] = []
        try:
            # with train views: the driver writes a fresh run's outputs as decisions come
            for batch in self.engine.batches(records.entries(), views=True):
                decided.extend(batch)
        except Exception as exc:  # noqa: BLE001 - a stop travels as a block; the rest raises
            if (stop := stop_for(exc)) is None:
                raise
            return decisions(keys, decided, stop)  # the rest: on --resume
        finally:
            self.engine.context.loop.run(self.link.finish())
        return decisions(keys, decided)

    def _restarted_too_often(self, ray: Any, records: Records,
                             keys: list[tuple[int, int, int]]) -> RunStopped | None:
        """A stop when this block was started too often: it kills its actor."""
        file, first, _ = keys[0]
        starts = ray.get(self.spec.coordinator.started.remote(f"{file}:{first}"))
        if starts <= BLOCK_STARTS:
            return None
        sources = [source for _, source, _, _ in records.entries()]
        where = f"{sources[0]} to {sources[-1]}" if sources else f"input {file}"
        return RunStopped(Stop.WORKER_DIED, f"the records {where} killed their Ray actor "
                          f"{BLOCK_STARTS} times (a record that crashes a model, or the "
                          "actor out of memory); what was decided is kept")
