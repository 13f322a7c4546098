"""The driver: connect to Ray, read the inputs with Ray Data, review them on an actor pool.

The run directory stays the driver's: decisions come back through Ray's object store and
:func:`harness.api.run` journals them, so resume, outputs and report are the local run's own.
"""

from __future__ import annotations

import bisect
import logging
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.engine import Engine
from harness.errors import UsageError
from harness.inputs import Source
from harness.stages import Finished
from harness.suite import Suite
from harness_ray.actor import ActorSpec, ReviewBlocks
from harness_ray.blocks import read_decisions
from harness_ray.connect import connect, import_ray
from harness_ray.coordinator import Coordinator
from harness_ray.numbering import Numbering
from harness_ray.preflight import Marker, actor_env, check_nodes, job_env, other_nodes
from harness_ray.reading import (
    InputFiles,
    InputNotVisible,
    InputRead,
    count_prefix,
    local_stat,
)

ACTORS_START_S = 600
"""How long the actor pool may take to start (a cluster short of CPUs never starts it)."""
Batches = Callable[[dict[int, set[int]]], Iterator[list[Finished]]]


@dataclass
class RayRun:
    """What the driver set up for one run."""

    ray: Any
    spec: ActorSpec
    actors: int
    batch_size: int
    env: dict[str, Any]
    node: str | None
    """The driver's node, where the inputs are read (``None``: anywhere)."""
    marker: Marker | None
    started: bool


def start_ray(engine: Engine, sources: list[Source], *, address: str | None = None,
              actors: int | None = None, batch_size: int = 1024,
              max_cost: float | None = None) -> Batches:
    """Connect to Ray, check the cluster, and return ``batches(done)`` for
    :func:`harness.api.run`."""
    ray = import_ray()
    started = connect(ray, address, job_env(_with_path(engine.suite)))
    try:
        run = _setup(ray, engine, sources, actors, batch_size, max_cost, started)
    except BaseException:
        if started:
            ray.shutdown()
        raise
    # what run.json records: the engine and its actors (the driver's --workers only finalize)
    engine.options = engine.options.replace(engine="ray", actors=run.actors)

    def batches(done: dict[int, set[int]]) -> Iterator[list[Finished]]:
        try:
            yield from _review(run, sources, done)
        finally:
            if run.marker is not None:
                run.marker.remove()
            if run.started:
                ray.shutdown()

    return batches


def _setup(ray: Any, engine: Engine, sources: list[Source], actors: int | None,
           batch_size: int, max_cost: float | None, started: bool) -> RayRun:
    size = actors or max(1, int(ray.cluster_resources().get("CPU", 1)))
    options = engine.options
    suite = _with_path(engine.suite)
    cache_dir = options.cache_dir.resolve() if options.cache_dir else None
    nodes = other_nodes(ray)
    env = actor_env()
    marker = None
    if nodes and cache_dir is not None and engine.context.judge_runners():
        marker = Marker.write(cache_dir)
    try:
        if nodes:
            check_nodes(ray, nodes, env, marker, suite)
    except BaseException:
        if marker is not None:
            marker.remove()
        raise
    coordinator = ray.remote(num_cpus=0, max_restarts=0)(Coordinator).remote()
    columns = {n: s.messages_column for n, s in enumerate(sources)
               if s.messages_column != options.messages_column}
    spec = ActorSpec(suite=suite, options=options.replace(workers=1, cache_dir=cache_dir),
                     coordinator=coordinator, max_cost=max_cost, columns=columns,
                     marker=marker)
    node = None if _is_client(ray) else ray.get_runtime_context().get_node_id()
    return RayRun(ray, spec, size, batch_size, env, node, marker, started)


def _with_path(suite: Suite) -> Suite:
    """The suite with a path (relative paths in it resolve against this folder)."""
    if suite.path is not None:
        return suite
    return suite.model_copy(update={"path": Path.cwd() / "<suite>"})


def _is_client(ray: Any) -> bool:
    """Whether this driver reaches the cluster through Ray Client (``ray://``)."""
    try:
        return bool(ray.util.client.ray.is_connected())
    except Exception:  # noqa: BLE001
        return False


def _reads(run: RayRun, sources: list[Source], done: dict[int, set[int]]) -> tuple[
        list[InputRead], list[int]]:
    """A read per input, and the first ``seq`` of the inputs counted up front (those holding
    a decided record, or the last record ``--limit`` lets through)."""
    limit = run.spec.options.limit
    keys = sorted(done)
    bound = max(keys[-1] if keys else -1, (limit - 1) if limit is not None else -1)
    firsts = count_prefix(sources, bound) if bound >= 0 else [0]
    reads = []
    for n, source in enumerate(sources):
        first = firsts[n] if n < len(firsts) else None
        if limit is not None and first is not None and first >= limit:
            break
        own: dict[int, frozenset[int]] = {}
        if first is not None and keys:
            end = firsts[n + 1] if n + 1 < len(firsts) else keys[-1] + 1
            lo, hi = bisect.bisect_left(keys, first), bisect.bisect_left(keys, end)
            own = {seq - first: frozenset(done[seq]) for seq in keys[lo:hi]}
        stop = None if limit is None or first is None else limit - first
        reads.append(InputRead(n, source, run.batch_size, local_stat(source), own, stop))
    return reads, firsts


def _review(run: RayRun, sources: list[Source], done: dict[int, set[int]]
            ) -> Iterator[list[Finished]]:
    import ray.data

    reads, firsts = _reads(run, sources, done)
    if not reads:
        return
    numbering = Numbering(len(reads), firsts)
    dataset = _dataset(run, reads)
    try:
        for block in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            decided = read_decisions(block)
            if decided.broken is not None:
                raise UsageError(decided.broken)
            for file, records in decided.ends:
                numbering.ended(file, records)
            if ready := numbering.number(decided.decisions):
                yield ready  # journaled, even beside a stop
            if decided.stop is not None:
                raise decided.stop
    except Exception as exc:  # noqa: BLE001 - re-raised as what the core knows
        raise _as_core_error(ray, exc) from exc
    if numbering.held:  # every input ended, so nothing can wait
        raise RuntimeError(f"{numbering.held} decisions of the Ray engine were not numbered")


def _dataset(run: RayRun, reads: list[InputRead]) -> Any:
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # harness draws its own bar, from the decisions
    context.print_on_execution_start = False
    # decisions come back in input order: an input's seq is known by the time they do
    context.execution_options.preserve_order = True
    # every actor ready before the first block goes out, so that blocks spread over them all
    # (rather than queue at the first actor that started)
    context.wait_for_min_actors_s = ACTORS_START_S
    # a block is one row (lists of batch_size records): Ray Data, which merges what a task
    # yields into blocks of this size and cuts larger ones, takes each as it is
    context.target_max_block_size = 1
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    # Ray Data guesses the inputs of the actor pool from the read tasks (one per file) and
    # warns that actors may idle; the blocks each read task yields keep them all busy
    warnings.filterwarnings("ignore", message="The minimum number of concurrent actors")
    placed = {"label_selector": {"ray.io/node-id": run.node}} if run.node else {}
    dataset = run.ray.data.read_datasource(
        InputFiles(reads), override_num_blocks=len(reads),
        num_cpus=0,  # reading is light: the CPUs go to actors
        **placed)  # read where the driver reads: its inputs are there
    return dataset.map_batches(
        ReviewBlocks, fn_constructor_kwargs={"spec": run.spec},
        # a block queued behind the one under review: no actor waits between blocks
        compute=run.ray.data.ActorPoolStrategy(size=run.actors,
                                                max_tasks_in_flight_per_actor=2),
        batch_size=None,
        batch_format="pyarrow", num_cpus=1, runtime_env=run.env)


def _as_core_error(ray: Any, exc: BaseException) -> BaseException:
    """A cluster that lost the actors stops the run as a dead worker process stops a local one
    (exit 4, ``--resume`` goes on); an input a read task cannot see is a one-line error;
    anything else is raised as it is. (A judge endpoint that is down comes back as a stop
    block: see :func:`harness_ray.blocks.stop_block`.)"""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ray.exceptions.GetTimeoutError):
            return UsageError(f"the Ray cluster did not start the actors asked for (1 CPU "
                              f"each) within {ACTORS_START_S} s: ask fewer with --ray-actors")
        if isinstance(seen, InputNotVisible | UsageError):
            return UsageError(f"{seen}; what was decided is kept: --resume goes on")
        if isinstance(seen, ray.exceptions.ActorDiedError | ray.exceptions.RaySystemError):
            return BrokenProcessPool(f"a Ray actor died: {seen}")
        seen = getattr(seen, "cause", None) or seen.__cause__
    return exc
