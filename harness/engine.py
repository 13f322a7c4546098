"""The execution core: transcripts stream through a compiled plan, decisions come out.

One pipeline serves every caller (``harness run``, :func:`harness.review`, the pytest plugin,
the Ray actors), on the engine's own event loop (:class:`harness.loop.LoopThread`):

1. Records are read and cut into chunks. The plan's synchronous front (regex, python,
   classifier: the cheap front of the cost order) runs on a whole chunk at once
   (:class:`harness.stages.SyncStage`), in worker processes when ``workers > 1``.
2. The plan's tail (LLM judges, any ``is_async`` kind) runs per transcript: each judge keeps its
   own concurrency window full across transcripts, with no barrier between chunks.
3. Decisions come out as they complete (:meth:`Engine.astream`) or in input order
   (:meth:`Engine.review`). At most ``max_in_flight`` records are in flight, so memory is flat.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import pickle
import weakref
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from harness.collector import fewer_collections
from harness.criterion import Criterion, SuiteContext
from harness.models import Decision, InputError, Transcript
from harness.options import RunOptions, default_workers
from harness.plan import Plan, unavailable_errors
from harness.plugins import Registry, get_registry
from harness.policy import decide
from harness.stages import (
    Entry,
    Finished,
    Pending,
    SyncStage,
    WorkerSpec,
    ctrl_c_deferred,
    worker_init,
    worker_run,
)
from harness.suite import Suite, load_suite

if TYPE_CHECKING:
    from harness.judges.budget import CostBudget

__all__ = ["CHUNK_SIZE", "Engine", "decide", "default_workers", "unavailable_errors"]

CHUNK_SIZE = 256
"""Records per chunk of the synchronous stage (and per message to a worker process)."""
IN_PROCESS_CHUNKS = 2
"""Chunks reviewed in-process before worker processes start: small runs never pay for them."""
log = logging.getLogger("harness")


class Engine:
    """A compiled suite: criteria built once, then any number of transcripts reviewed.

    ``options`` (a :class:`~harness.options.RunOptions`), or its fields as keyword arguments,
    say how: ``workers`` > 1 runs the synchronous criteria in that many worker processes, each
    building the same plan (the decisions are identical to ``workers=1``). ``budget`` replaces
    the run's judge spending limit (a cluster's shared one). Close the engine (or use it as a
    context manager) to release judge clients, caches, its event loop and worker processes.
    """

    def __init__(self, suite: Suite | str | Path, registry: Registry | None = None,
                 options: RunOptions | None = None, *, budget: CostBudget | None = None,
                 **overrides: Any) -> None:
        suite = suite if isinstance(suite, Suite) else load_suite(suite)
        options = (options or RunOptions()).replace(**overrides)
        registry = registry or get_registry(options.plugins_dir)
        self.options = options.replace(plugins_dir=registry.plugins_dir)
        self.plan = Plan(suite, registry, self.options, budget=budget)
        self.stage = SyncStage(self.plan, registry.formats)
        self._pool: ProcessPoolExecutor | None = None
        self._in_workers: bool | None = None
        self._closed = False
        # an engine dropped without close(): its clients are closed when it is collected
        self._release = weakref.finalize(self, _release, self.plan)

    @property
    def suite(self) -> Suite:
        return self.plan.suite

    @property
    def registry(self) -> Registry:
        return self.plan.registry

    @property
    def criteria(self) -> list[Criterion]:
        """The suite's criteria, built, in suite order."""
        return self.plan.criteria

    @property
    def context(self) -> SuiteContext:
        return self.plan.context

    # --- the async core -------------------------------------------------------------------------
    def astream(self, entries: Iterable[Entry], *, ordered: bool = False,
                chunk_size: int = CHUNK_SIZE, views: bool = False
                ) -> AsyncIterator[list[Finished]]:
        """Batches of decided transcripts (:class:`~harness.stages.Finished`), for every record
        of ``entries``, computed on the engine's event loop (relayed to a caller on another).

        Each batch holds what was decided since the last one: in completion order, or in input
        order with ``ordered``. ``entries`` are ``(seq, source, payload, skip)`` (see
        :data:`harness.stages.Entry`). With ``views``, each carries its transcript's
        :func:`~harness.outputs.train_view` as read (a run's outputs, written as it goes).
        """
        stream = _Stream(self, entries, ordered, chunk_size, views).run()
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        return stream if running is self.context.loop.current() else \
            self.context.loop.relay(stream)

    def batches(self, entries: Iterable[Entry], *, ordered: bool = False,
                chunk_size: int = CHUNK_SIZE, views: bool = False) -> Iterator[list[Finished]]:
        """:meth:`astream` for synchronous code."""
        return self.context.loop.iterate(
            _Stream(self, entries, ordered, chunk_size, views).run())

    def _workers_ready(self) -> bool:
        """Whether worker processes can run the front: they rebuild the registry, so it must
        be one :func:`~harness.plugins.get_registry` built, and every front kind allows it."""
        if self._in_workers is None:
            front = self.plan.front
            self._in_workers = (self.options.workers > 1 and bool(front)
                                and all(c.in_workers for c in front))
            if self._in_workers and not self.registry.rebuildable:
                log.warning("workers: this registry was built by hand, so worker processes "
                            "could not rebuild it; the criteria run in this process")
                self._in_workers = False
        return self._in_workers

    def _worker_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing

            front = dict.fromkeys(self.plan.owners.get(c.name, (c, 0))[0].name
                                  for c in self.plan.front)
            self._spec = pickle.dumps(WorkerSpec(self.suite, self.options, tuple(front)))
            self._pool = ProcessPoolExecutor(
                self.options.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=worker_init)
        return self._pool

    def _run_in_worker(self, chunk: list[Entry], views: bool = False
                       ) -> asyncio.Future[list[Finished | Pending]]:
        pool = self._worker_pool()
        with ctrl_c_deferred():  # may start a worker process
            future = pool.submit(worker_run, self._spec, chunk, views)
        return asyncio.wrap_future(future)

    # --- sync entry points ----------------------------------------------------------------------
    def review(self, items: Iterable[Transcript | InputError],
               batch_size: int | None = None) -> Iterator[Decision]:
        """Decisions in input order, yielded lazily; ``batch_size`` records are read ahead at a
        time (1 for a generate-and-review loop)."""
        entries: Iterator[Entry] = ((n, getattr(item, "source", ""), item, frozenset())
                   for n, item in enumerate(items))
        for batch in self.batches(entries, ordered=True, chunk_size=batch_size or CHUNK_SIZE):
            for finished in batch:
                yield finished.to_decision()

    def decide_batch(self, items: Sequence[Transcript | InputError]) -> list[Decision]:
        """Decisions for a list of transcripts, in order."""
        return list(self.review(items))

    def stop_workers(self) -> None:
        """End the worker processes (a later review starts new ones)."""
        if self._pool is not None:
            self._pool.shutdown(wait=True, cancel_futures=True)
            self._pool = None

    def close(self) -> None:
        """Release worker processes, judge clients, caches, models and the event loop."""
        if self._closed:
            return
        self._closed = True
        self.stop_workers()
        self._release.detach()
        self.plan.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _release(plan: Plan) -> None:
    with contextlib.suppress(Exception):  # at collection: nothing may escape
        plan.close()


class _Stream:
    """One pass of an engine over some records (:meth:`Engine.astream`).

    The producer reads on only while the consumer waits for decisions (a caller that stops after
    one is never read ahead of), runs the front a chunk at a time (here, or in worker processes
    while the next chunk is read), and starts the tail of each transcript as a task. At most
    ``max_in_flight`` records are between reading and handing out.
    """

    def __init__(self, engine: Engine, entries: Iterable[Entry], ordered: bool,
                 chunk_size: int, views: bool = False) -> None:
        self.engine = engine
        self.entries = entries
        self.ordered = ordered
        self.views = views
        bound = engine.options.max_in_flight
        self.chunk_size = max(1, min(chunk_size, bound))
        self.bound = bound
        self.remaining: dict[int, int] = {}  # record seq -> transcripts not yet handed out
        self.order: deque[int] = deque()  # records in input order, for ``ordered``
        self.held: dict[int, list[Finished]] = {}  # ordered: decided, waiting for earlier ones
        self.tasks: set[asyncio.Task[None]] = set()
        self.failure: list[BaseException] = []

    async def run(self) -> AsyncIterator[list[Finished]]:
        self.out: asyncio.Queue[Any] = asyncio.Queue()
        self.slots = asyncio.Semaphore(self.bound)
        self.wanted = asyncio.Event()  # the consumer is waiting for decisions
        producer = asyncio.get_running_loop().create_task(self.produce())
        collecting = fewer_collections()
        collecting.__enter__()
        try:
            ended = False
            while not ended:
                self.wanted.set()
                items = [await self.out.get()]
                self.wanted.clear()
                while not self.out.empty():
                    items.append(self.out.get_nowait())
                ready, stop, ended = self.sort(items)
                if ready:
                    yield ready
                if stop is not None:
                    raise stop
            if self.failure:
                raise self.failure[0]
        finally:
            producer.cancel()
            for task in list(self.tasks):
                task.cancel()
            await asyncio.gather(producer, *self.tasks, return_exceptions=True)
            collecting.__exit__(None, None, None)

    def sort(self, items: list[Any]) -> tuple[list[Finished], BaseException | None, bool]:
        """What of ``items`` can be handed out now; the first failure; whether all is done."""
        ready: list[Finished] = []
        stop: BaseException | None = None
        ended = False
        for item in items:
            if item is None:
                ended = True
            elif isinstance(item, BaseException):
                stop = stop or item  # the decisions ready beside it are handed out first
            else:
                self.arrived(item, ready)
        return ready, stop, ended

    def arrived(self, item: Finished, ready: list[Finished]) -> None:
        seq = item.seq
        self.remaining[seq] = 0 if item.sub < 0 else self.remaining[seq] - 1
        if not self.ordered:
            if item.sub >= 0:
                ready.append(item)
            if self.remaining[seq] <= 0:
                del self.remaining[seq]
                self.slots.release()
            return
        kept = self.held.setdefault(seq, [])
        if item.sub >= 0:
            kept.append(item)
        while self.order and self.remaining.get(self.order[0], -1) == 0:
            head = self.order.popleft()
            del self.remaining[head]
            ready.extend(sorted(self.held.pop(head, []), key=lambda f: f.sub))
            self.slots.release()

    async def produce(self) -> None:
        pending: deque[asyncio.Future[list[Finished | Pending]]] = deque()
        try:
            chunk: list[Entry] = []
            submitted = 0
            source = iter(self.entries)
            while True:
                # read on only while the consumer waits for more
                while not self.out.empty() or not self.wanted.is_set():
                    await (asyncio.sleep(0) if self.wanted.is_set() else self.wanted.wait())
                entry = next(source, None)
                if entry is None:
                    break
                await self.slots.acquire()
                self.order.append(entry[0])
                chunk.append(entry)
                if len(chunk) >= self.chunk_size:
                    submitted += 1
                    await self.submit(chunk, submitted, pending)
                    chunk = []
            if chunk:
                submitted += 1
                await self.submit(chunk, submitted, pending)
            while pending:
                self.take(await pending.popleft())
            while self.tasks:
                await asyncio.gather(*list(self.tasks))
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self.failure.append(exc)
        finally:
            for fut in pending:
                fut.cancel()
            self.out.put_nowait(None)

    async def submit(self, chunk: list[Entry], number: int,
                     pending: deque[asyncio.Future[list[Finished | Pending]]]) -> None:
        """Run the front on a chunk: here, or in a worker process."""
        engine = self.engine
        if number > IN_PROCESS_CHUNKS and engine._workers_ready():
            pending.append(engine._run_in_worker(chunk, self.views))
            while len(pending) > 2 * engine.options.workers:  # keep every worker busy, no more
                self.take(await pending.popleft())
            while pending and pending[0].done():
                self.take(pending.popleft().result())
            return
        while pending:  # keep input order between in-process and pooled chunks
            self.take(await pending.popleft())
        self.take(await engine.stage.run(chunk, self.views))
        await asyncio.sleep(0)  # let judge calls progress between chunks

    def take(self, results: list[Finished | Pending]) -> None:
        loop = asyncio.get_running_loop()
        for r in results:
            self.remaining[r.seq] = r.count
            if isinstance(r, Finished):
                self.out.put_nowait(r)
            else:
                task = loop.create_task(self.finish(r))
                self.tasks.add(task)
                task.add_done_callback(self.tasks.discard)

    async def finish(self, p: Pending) -> None:
        """The plan's tail for one transcript."""
        plan = self.engine.plan
        ident = (p.transcript.id, p.transcript.source)  # before any criterion sees it
        try:
            verdicts = await plan.run_tail(p.transcript, p.verdicts, p.blocked)
            decision = plan.decide(p.transcript, verdicts, ident)
        except BaseException as exc:  # noqa: BLE001 - handed to the consumer
            self.out.put_nowait(exc)
            return
        self.out.put_nowait(Finished.of(p.seq, p.sub, p.count, decision, view=p.view))
