"""The driver: connect to Ray, read the inputs with Ray Data, review them on an actor pool.

The run directory stays the driver's: decisions come back through Ray's object store and
:func:`harness.api.run` journals them, so resume, outputs and report are the local run's own.
"""

from __future__ import annotations

import bisect
import logging
import os
import socket
import warnings
from collections.abc import Callable, Iterator
from concurrent.futures.process import BrokenProcessPool
from pathlib import Path
from typing import Any

from harness.engine import Engine
from harness.errors import UsageError
from harness.inputs import Source
from harness.stages import Finished
from harness_ray.actor import ActorSpec, ReviewBlocks
from harness_ray.blocks import measure, read_records, stop_of, to_decisions
from harness_ray.budget import Ledger

NO_RAY = "--engine ray needs Ray: pip install 'review-harness[ray]'"
PASSED_ENV = ("HARNESS_", "OPENAI_", "ANTHROPIC_")
"""Environment variables handed to a remote cluster's actors (judge keys and endpoints)."""
CONNECT_TIMEOUT_S = 5.0
BLOCK_BYTES_MIN = 16 * 1024
ACTOR_RESTARTS = 3
BLOCK_ROW_OVERHEAD = 32
"""Bytes a record costs in a block beyond its payload (seq, source, skip)."""

Batches = Callable[[dict[int, set[int]]], Iterator[list[Finished]]]


def import_ray() -> Any:
    """The ``ray`` module, or a one-line :class:`UsageError` saying how to install it."""
    try:
        import ray
        import ray.data  # noqa: F401 - Ray Data is part of the engine
    except ImportError as exc:
        raise UsageError(f"{NO_RAY} ({exc})") from None
    return ray


def check_reachable(address: str) -> None:
    """A one-line error now, rather than Ray's long retries, when nothing listens at ADDR."""
    host_port = address.removeprefix("ray://").rsplit("/", 1)[0]
    host, _, port = host_port.rpartition(":")
    if not host or not port.isdigit():
        raise UsageError(f"--ray-address {address!r}: expected HOST:PORT, ray://HOST:PORT "
                         "or auto")
    try:
        socket.create_connection((host, int(port)), timeout=CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise UsageError(f"cannot reach the Ray cluster at {address}: "
                         f"{exc.strerror or exc}") from None


def connect(ray: Any, address: str | None) -> bool:
    """Connect to ``address`` (or start a local instance); ``True`` if this call started Ray
    (an already connected process, a notebook or a test, keeps its connection)."""
    if ray.is_initialized():
        return False
    if address and address != "auto":
        check_reachable(address)
    options: dict[str, Any] = {"include_dashboard": False, "logging_level": logging.ERROR,
                               "configure_logging": True}
    if address:
        env = {k: v for k, v in os.environ.items() if k.startswith(PASSED_ENV)}
        options["runtime_env"] = {"env_vars": env}
    try:
        ray.init(address=address, **options)
    except (ConnectionError, RuntimeError, ValueError) as exc:
        where = f"the Ray cluster at {address}" if address else "a local Ray instance"
        message = " ".join(str(exc).split())[:300]
        raise UsageError(f"cannot connect to {where}: {message}") from None
    return True


def start_ray(engine: Engine, sources: list[Source], *, limit: int | None = None,
              address: str | None = None, actors: int | None = None,
              batch_size: int = 1024, max_cost: float | None = None) -> Batches:
    """Connect to Ray and return ``batches(done)`` for :func:`harness.api.run`."""
    ray = import_ray()
    started = connect(ray, address)
    cpus = int(ray.cluster_resources().get("CPU", 1))
    size = actors or max(1, cpus)
    options = engine.options
    suite = engine.suite
    if suite.path is None:  # relative paths of the suite resolve against this folder
        suite = suite.model_copy(update={"path": Path.cwd() / "<suite>"})
    spec = ActorSpec(suite=suite, options=options.replace(
        workers=1, judge_share=size,
        cache_dir=options.cache_dir.resolve() if options.cache_dir else None),
        max_cost=max_cost)
    if max_cost is not None:  # one account for the cluster's judge calls
        spec.ledger = ray.remote(num_cpus=0)(Ledger).remote()

    def batches(done: dict[int, set[int]]) -> Iterator[list[Finished]]:
        try:
            yield from _review(ray, spec, sources, done, size, batch_size, limit)
        finally:
            if started:
                ray.shutdown()

    return batches


def _review(ray: Any, spec: ActorSpec, sources: list[Source], done: dict[int, set[int]],
            actors: int, batch_size: int, limit: int | None) -> Iterator[list[Finished]]:
    import ray.data

    context = ray.data.DataContext.get_current()
    context.enable_progress_bars = False  # harness draws its own bar, from the decisions
    context.print_on_execution_start = False
    context.execution_options.preserve_order = False
    logging.getLogger("ray.data").setLevel(logging.ERROR)
    # Ray Data guesses the inputs of the actor pool from the read tasks (one per file) and
    # warns that actors may idle; the blocks each read task yields keep them all busy
    warnings.filterwarnings("ignore", message="The minimum number of concurrent actors")
    firsts, record_bytes = _first_seqs(ray, sources)
    # Ray Data merges what a read task yields into blocks of this size: about batch_size
    # records each, so that every actor gets blocks to review
    context.target_max_block_size = max(BLOCK_BYTES_MIN, int(record_bytes * batch_size))
    reads = InputFiles(sources, firsts, done, batch_size, limit)
    dataset = ray.data.read_datasource(reads, override_num_blocks=len(sources),
                                       num_cpus=0)  # reading is light: the CPUs go to actors
    dataset = dataset.map_batches(
        ReviewBlocks, fn_constructor_kwargs={"spec": spec},
        compute=ray.data.ActorPoolStrategy(size=actors), batch_size=None,
        batch_format="pyarrow", num_cpus=1,
        # a killed actor is restarted and its block reviewed again; a block that keeps killing
        # its actor (a record that crashes a model) stops the run as a dead worker does locally
        max_restarts=ACTOR_RESTARTS, max_task_retries=ACTOR_RESTARTS)
    try:
        for block in dataset.iter_batches(batch_size=None, batch_format="pyarrow"):
            if decided := to_decisions(block):
                yield decided  # journaled, even beside a stop
            if (stop := stop_of(block)) is not None:
                raise stop
    except Exception as exc:  # noqa: BLE001 - re-raised as what the core knows
        raise _as_core_error(ray, exc) from exc


def _first_seqs(ray: Any, sources: list[Source]) -> tuple[list[int], float]:
    """Where each input's records start in the run's numbering, and the mean size of a record
    in a block (measured by Ray tasks, one per input, with the core's reader)."""
    measured = ray.get([ray.remote(num_cpus=0)(measure).remote(s) for s in sources])
    firsts = [0]
    for records, _ in measured[:-1]:
        firsts.append(firsts[-1] + records)
    total = sum(records for records, _ in measured)
    size = sum(records * mean for records, mean in measured) / max(1, total)
    return firsts, size + BLOCK_ROW_OVERHEAD


def _as_core_error(ray: Any, exc: BaseException) -> BaseException:
    """A cluster that lost the actors stops the run as a dead worker process stops a local one
    (exit 4, ``--resume`` goes on); anything else is raised as it is. (A judge endpoint that
    is down comes back as a stop block: see :func:`harness_ray.blocks.stop_block`.)"""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ray.exceptions.ActorDiedError | ray.exceptions.RaySystemError):
            return BrokenProcessPool(f"a Ray actor died: {seen}")
        seen = getattr(seen, "cause", None) or seen.__cause__
    return exc


class InputFiles:
    """A Ray Data datasource: one read task per input, blocks of records numbered as the local
    engine numbers them (the class is built on first use: Ray Data is imported only here)."""

    def __new__(cls, sources: list[Source], firsts: list[int], done: dict[int, set[int]],
                rows: int, limit: int | None = None) -> Any:
        from ray.data.block import BlockMetadata
        from ray.data.datasource import Datasource, ReadTask

        class _InputFiles(Datasource):
            def estimate_inmemory_data_size(self) -> int | None:
                return None

            def get_read_tasks(self, parallelism: int, per_task_row_limit: int | None = None,
                               data_context: Any = None) -> list[ReadTask]:
                tasks, keys = [], sorted(done)
                for n, (source, first) in enumerate(zip(sources, firsts, strict=True)):
                    if limit is not None and first >= limit:
                        break
                    end = firsts[n + 1] if n + 1 < len(firsts) else None
                    meta = BlockMetadata(num_rows=None, size_bytes=None, exec_stats=None,
                                         input_files=(source.name,))
                    read = _reader(source, first, _slice(done, keys, first, end), rows, limit)
                    tasks.append(ReadTask(read, meta))
                return tasks

        return _InputFiles()


def _slice(done: dict[int, set[int]], keys: list[int], first: int,
           end: int | None) -> dict[int, set[int]]:
    """The part of ``done`` (``keys``: its keys, sorted) from ``first`` up to ``end``."""
    lo = bisect.bisect_left(keys, first)
    hi = len(keys) if end is None else bisect.bisect_left(keys, end)
    return {k: done[k] for k in keys[lo:hi]}


def _reader(source: Source, first: int, done: dict[int, set[int]], rows: int,
            limit: int | None) -> Callable[..., Any]:
    return lambda: read_records(source, first, done, rows, limit)
