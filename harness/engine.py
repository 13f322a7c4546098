"""The execution core: transcripts stream through a suite's criteria, decisions come out.

One pipeline serves every caller (``harness run``, :func:`harness.review`, the pytest plugin):

1. Records are read and cut into chunks. The suite's synchronous criteria (regex, python,
   classifier: the cheap front of the cost order) run on a whole chunk at once
   (:class:`harness.stages.SyncStage`), in worker processes when ``workers > 1``.
2. The rest (LLM judges, any ``is_async`` kind) runs per transcript on the engine's event loop:
   each judge keeps its own concurrency window full across transcripts, with no barrier between
   chunks. A gate that failed skips the expensive criteria after it.
3. Decisions come out as they complete (:meth:`Engine.astream`) or in input order
   (:meth:`Engine.review`). At most ``max_in_flight`` records are in flight, so memory is flat.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import queue
import threading
import time
from collections import deque
from collections.abc import AsyncIterator, Iterable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Any

from harness.criterion import Criterion, SuiteContext
from harness.models import Decision, InputError, Transcript, Verdict
from harness.plugins import Registry, get_registry
from harness.policy import (
    INPUT_CRITERION,
    aggregate,
    blocks_expensive,
    decide,
    input_error_decision,
    to_verdict,
    weighted_mean,
)
from harness.stages import (
    Entry,
    Finished,
    Pending,
    StageSpec,
    SyncStage,
    evaluate,
    skipped_verdict,
    worker_init,
    worker_run,
)
from harness.suite import CriterionSpec, Suite, SuiteError, load_suite, validate_config

__all__ = [
    "INPUT_CRITERION", "Engine", "aggregate", "blocks_expensive", "decide", "evaluate",
    "input_error_decision", "to_verdict", "weighted_mean",
]

CHUNK_SIZE = 256
"""Records per chunk of the synchronous stage (and per message to a worker process)."""
NO_SKIP: frozenset[int] = frozenset()
IN_PROCESS_CHUNKS = 2
"""Chunks reviewed in-process before worker processes start: small runs never pay for them."""


def default_workers() -> int:
    """The machine's cores (those this process may use)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


class Engine:
    """A compiled suite: criteria built once, then any number of transcripts reviewed.

    ``workers`` > 1 runs the synchronous criteria in that many worker processes, each building
    the suite once (needs a registry from :func:`get_registry`, which workers rebuild); the
    decisions are identical to ``workers=1``. Close the engine (or use it as a context manager)
    to release judge clients, caches and worker processes.
    """

    def __init__(
        self,
        suite: Suite | str | Path,
        registry: Registry | None = None,
        *,
        judge: str | None = None,
        all_criteria: bool = False,
        cache_dir: str | Path | None = None,
        workers: int = 1,
        max_in_flight: int = 4096,
        input_format: str = "auto",
        only: Sequence[str] | None = None,
    ) -> None:
        self.suite = suite if isinstance(suite, Suite) else load_suite(suite)
        self.registry = registry or get_registry()
        self.judge = judge
        self.all_criteria = all_criteria
        self.cache_dir = Path(cache_dir) if cache_dir else None
        self.workers = max(1, int(workers))
        self.max_in_flight = max(1, int(max_in_flight))
        self.input_format = input_format
        if self.suite.threshold is not None and all(c.gate for c in self.suite.criteria):
            raise SuiteError(f"{self.suite.path}: `threshold` needs at least one non-gate "
                             "criterion (gate: false) to average")
        self.context = SuiteContext(
            registry=self.registry,
            suite_dir=self.suite.directory,
            variables=self.suite.variables,
            judge=self.suite.judge,
            judge_override=judge,
            cache_dir=self.cache_dir,
        )
        specs = [s for s in self.suite.criteria if only is None or s.name in only]
        self.criteria = [self._build(spec) for spec in specs]
        self.order = sorted(self.criteria, key=lambda c: c.cost)  # stable: suite order in a tier
        front = 0
        while front < len(self.order) and not self.order[front].is_async:
            front += 1
        self.stage = SyncStage(self.order[:front], self.suite, self.registry.formats,
                               input_format, all_criteria, has_tail=front < len(self.order),
                               specs=[c.spec for c in self.criteria])
        self.tail = _stages(self.order[front:])
        self.rank = {c.name: n for n, c in enumerate(self.criteria)}
        self._pool: ProcessPoolExecutor | None = None
        self._closed = False

    def _build(self, spec: CriterionSpec) -> Criterion:
        cls = self.registry.kinds.get(spec.kind)
        if cls is None:
            known = ", ".join(sorted(self.registry.kinds))
            raise SuiteError(f"{spec.origin}: criterion '{spec.name}': unknown kind "
                             f"'{spec.kind}' (known kinds: {known})")
        config = validate_config(spec, cls.Config)
        try:
            return cls(spec, config, self.context)
        except SuiteError:
            raise
        except Exception as exc:
            raise SuiteError(
                f"{spec.origin}: criterion '{spec.name}' ({spec.kind}): {exc}") from exc

    # --- the async core -------------------------------------------------------------------------
    async def astream(
        self, entries: Iterable[Entry], *, ordered: bool = False, chunk_size: int = CHUNK_SIZE
    ) -> AsyncIterator[list[Finished]]:
        """Batches of decided transcripts (:class:`Finished`), for every record of ``entries``.

        Each batch holds what was decided since the last one: in completion order, or in input
        order with ``ordered``. ``entries`` are ``(seq, source, payload, skip)`` (see
        :data:`harness.stages.Entry`).
        """
        loop = asyncio.get_running_loop()
        out: asyncio.Queue[Any] = asyncio.Queue()
        slots = asyncio.Semaphore(self.max_in_flight)
        chunk_size = max(1, min(chunk_size, self.max_in_flight))
        remaining: dict[int, int] = {}  # record seq -> transcripts not yet handed out
        order: deque[int] = deque()
        tasks: set[asyncio.Task[Any]] = set()
        failure: list[BaseException] = []
        wanted = asyncio.Event()  # the consumer is waiting for decisions

        async def finish(p: Pending) -> None:
            try:
                decision = await self._finish(p)
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                out.put_nowait(exc)
                return
            out.put_nowait(Finished.of(p.seq, p.sub, p.count, decision))

        def take(results: list[Finished | Pending]) -> None:
            for r in results:
                remaining[r.seq] = r.count
                if isinstance(r, Finished):
                    out.put_nowait(r)
                else:
                    task = loop.create_task(finish(r))
                    tasks.add(task)
                    task.add_done_callback(tasks.discard)

        async def produce() -> None:
            pending: deque[asyncio.Future[list[Finished | Pending]]] = deque()
            chunk: list[Entry] = []
            submitted = 0
            try:
                source = iter(entries)
                while True:
                    # read on only while the consumer waits for more: a caller that stops
                    # after a decision (a generate-review loop) is never read ahead of
                    while not out.empty() or not wanted.is_set():
                        await (asyncio.sleep(0) if wanted.is_set() else wanted.wait())
                    entry = next(source, None)
                    if entry is None:
                        break
                    await slots.acquire()
                    order.append(entry[0])
                    chunk.append(entry)
                    if len(chunk) >= chunk_size:
                        submitted += 1
                        await self._submit(chunk, submitted, pending, take)
                        chunk = []
                if chunk:
                    submitted += 1
                    await self._submit(chunk, submitted, pending, take)
                while pending:
                    take(await pending.popleft())
                while tasks:
                    await asyncio.gather(*list(tasks))
            except BaseException as exc:  # noqa: BLE001 - handed to the consumer
                failure.append(exc)
            finally:
                for fut in pending:
                    fut.cancel()
                out.put_nowait(None)

        producer = loop.create_task(produce())
        held: dict[int, list[Finished]] = {}  # ordered: decided, waiting for earlier records
        try:
            ended = False
            while not ended:
                wanted.set()
                items = [await out.get()]
                wanted.clear()
                while not out.empty():
                    items.append(out.get_nowait())
                ready: list[Finished] = []
                stop: BaseException | None = None
                for item in items:
                    if item is None:
                        ended = True
                        continue
                    if isinstance(item, BaseException):
                        stop = stop or item  # the decisions ready beside it are handed out first
                        continue
                    seq = item.seq
                    remaining[seq] = 0 if item.sub < 0 else remaining[seq] - 1
                    if not ordered:
                        if item.sub >= 0:
                            ready.append(item)
                        if remaining[seq] <= 0:
                            del remaining[seq]
                            slots.release()
                        continue
                    kept = held.setdefault(seq, [])
                    if item.sub >= 0:
                        kept.append(item)
                    while order and remaining.get(order[0], -1) == 0:
                        head = order.popleft()
                        del remaining[head]
                        ready.extend(sorted(held.pop(head, []), key=lambda f: f.sub))
                        slots.release()
                if ready:
                    yield ready
                if stop is not None:
                    raise stop
            if failure:
                raise failure[0]
        finally:
            producer.cancel()
            for task in list(tasks):
                task.cancel()
            await asyncio.gather(producer, *tasks, return_exceptions=True)

    async def _submit(self, chunk: list[Entry], number: int,
                      pending: deque[asyncio.Future[list[Finished | Pending]]],
                      take: Any) -> None:
        """Run the synchronous stage on a chunk: here, or in a worker process."""
        if self.workers > 1 and number > IN_PROCESS_CHUNKS and self._reproducible():
            pool = self._worker_pool()
            pending.append(asyncio.wrap_future(pool.submit(worker_run, chunk)))
            while len(pending) > 2 * self.workers:  # keep every worker busy, no more
                take(await pending.popleft())
            while pending and pending[0].done():
                take(pending.popleft().result())
            return
        while pending:  # keep input order between in-process and pooled chunks
            take(await pending.popleft())
        take(self.stage.run(chunk))
        await asyncio.sleep(0)  # let judge calls progress between chunks

    def _reproducible(self) -> bool:
        same = self.registry is get_registry(self.registry.plugins_dir)
        criteria = self.stage.criteria
        return same and bool(criteria) and all(c.in_workers for c in criteria)

    def _worker_pool(self) -> ProcessPoolExecutor:
        if self._pool is None:
            import multiprocessing

            spec = StageSpec(suite=self.suite, plugins_dir=self.registry.plugins_dir,
                             judge=self.judge, all_criteria=self.all_criteria,
                             cache_dir=self.cache_dir, input_format=self.input_format,
                             sync=[c.name for c in self.stage.criteria],
                             names=[c.name for c in self.criteria],
                             has_tail=self.stage.has_tail)
            self._pool = ProcessPoolExecutor(
                self.workers, mp_context=multiprocessing.get_context("spawn"),
                initializer=worker_init, initargs=(spec,))
        return self._pool

    async def _finish(self, p: Pending) -> Decision:
        """The criteria after the synchronous stage, for one transcript."""
        verdicts, blocked = p.verdicts, p.blocked
        tid, source = p.transcript.id, p.transcript.source  # before any criterion sees it
        for stage in self.tail:
            runs = []
            for criterion in stage:
                if criterion.expensive and blocked and not self.all_criteria:
                    verdicts.append(skipped_verdict(criterion, blocked))
                else:
                    runs.append(criterion)
            if len(runs) == 1:  # no task to spawn for the common case of one judge
                found = [await _run_async(runs[0], p.transcript)]
            else:
                found = await asyncio.gather(*(_run_async(c, p.transcript) for c in runs))
            for criterion, vs in zip(runs, found, strict=True):
                verdicts.extend(vs)
                if not blocked and blocks_expensive(criterion) and \
                        aggregate(vs)[0] in ("fail", "error"):
                    blocked = criterion.name
        verdicts.sort(key=lambda v: self.rank[v.criterion])
        return decide(p.transcript, verdicts, self.stage.specs, self.suite.threshold,
                      (tid, source))

    # --- sync entry points ----------------------------------------------------------------------
    def review(self, items: Iterable[Transcript | InputError],
               batch_size: int | None = None) -> Iterator[Decision]:
        """Decisions in input order, yielded lazily; ``batch_size`` items go through the
        synchronous criteria together (default ``CHUNK_SIZE``, at most the in-flight bound; 1
        for a generate-and-review loop)."""
        entries = ((n, getattr(item, "source", ""), item, NO_SKIP) for n, item in enumerate(items))
        for batch in drive(self.astream(entries, ordered=True,
                                        chunk_size=batch_size or CHUNK_SIZE)):
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
        """Release worker processes, judge clients, caches and models this engine holds."""
        if self._closed:
            return
        self._closed = True
        self.stop_workers()
        resources = list(self.context.resources.values())
        self.context.resources.clear()
        aclose = [r.aclose for r in resources if hasattr(r, "aclose")]
        if aclose:
            drive_coro(_close_all(aclose))
        for r in resources:
            if not hasattr(r, "aclose") and hasattr(r, "close"):
                r.close()

    def __enter__(self) -> Engine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


async def _close_all(closers: list[Any]) -> None:
    await asyncio.gather(*(c() for c in closers), return_exceptions=True)


def _stages(criteria: list[Criterion]) -> list[list[Criterion]]:
    """Criteria grouped so that each group runs concurrently; a new group starts after a
    criterion whose failure skips the expensive ones after it (same result as running in
    order)."""
    stages: list[list[Criterion]] = []
    current: list[Criterion] = []
    for criterion in criteria:
        current.append(criterion)
        if blocks_expensive(criterion):
            stages.append(current)
            current = []
    if current:
        stages.append(current)
    return stages


def unavailable_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that stop the run instead of becoming an error verdict (endpoint down)."""
    try:
        from harness.judges.base import JudgeUnavailable
    except ImportError:
        return ()
    return (JudgeUnavailable,)


async def _run_async(criterion: Criterion, transcript: Transcript) -> list[Verdict]:
    """One criterion's verdicts for one transcript, awaited (one per message for that scope)."""
    if not criterion.is_async:  # a synchronous criterion after an async one in cost order
        return evaluate(criterion, [transcript])[0]
    if criterion.spec.scope == "message":
        units = [(m, transcript.model_copy(update={"messages": transcript.messages[: m + 1]}))
                 for m, message in enumerate(transcript.messages) if message.role == "assistant"]
    else:
        units = [(None, transcript)]
    stop = unavailable_errors()
    started = time.perf_counter()
    results: list[Any]
    if len(units) == 1:
        try:
            results = [await criterion.evaluate_async(units[0][1])]
        except Exception as exc:  # noqa: BLE001 - becomes the verdict (or stops the run)
            results = [exc]
    else:
        results = await asyncio.gather(*(criterion.evaluate_async(u) for _, u in units),
                                       return_exceptions=True)
    each = round((time.perf_counter() - started) / max(len(units), 1), 7)
    verdicts = []
    for (m, _), result in zip(units, results, strict=True):
        if stop and isinstance(result, stop):
            raise result
        if isinstance(result, BaseException) and not isinstance(result, Exception):
            raise result  # KeyboardInterrupt, cancellation
        verdict = to_verdict(result, criterion)
        if not verdict.latency_s:
            verdict.latency_s = each
        verdict.message_index = m
        verdicts.append(verdict)
    return verdicts


def drive(agen: AsyncIterator[Any]) -> Iterator[Any]:
    """Iterate an async generator from sync code: on a new event loop in this thread, or in a
    helper thread when this thread already runs a loop (a notebook, an async server)."""
    try:
        asyncio.get_running_loop()
    except RuntimeError:
        loop = asyncio.new_event_loop()
        try:
            while True:
                try:
                    yield loop.run_until_complete(agen.__anext__())
                except StopAsyncIteration:
                    return
        finally:
            loop.run_until_complete(agen.aclose())
            loop.run_until_complete(loop.shutdown_asyncgens())
            loop.close()
    else:
        yield from _drive_in_thread(agen)


_END = object()


def _drive_in_thread(agen: AsyncIterator[Any]) -> Iterator[Any]:
    q: queue.Queue[Any] = queue.Queue(maxsize=1024)
    stop = threading.Event()

    async def pump() -> None:
        try:
            async for item in agen:
                while not stop.is_set():
                    try:
                        q.put(item, timeout=0.1)
                        break
                    except queue.Full:
                        await asyncio.sleep(0)
                if stop.is_set():
                    break
        except BaseException as exc:  # noqa: BLE001 - handed to the caller
            q.put(exc)
        finally:
            await agen.aclose()
            q.put(_END)

    thread = threading.Thread(target=asyncio.run, args=(pump(),), name="harness-engine",
                              daemon=True)
    thread.start()
    try:
        while (item := q.get()) is not _END:
            if isinstance(item, BaseException):
                raise item
            yield item
    finally:
        stop.set()
        while thread.is_alive():
            with contextlib.suppress(queue.Empty):
                q.get(timeout=0.1)
        thread.join()


def drive_coro(coro: Any) -> Any:
    """Run one coroutine to its end from sync code (see :func:`drive`)."""

    async def once() -> Any:
        yield await coro

    return next(iter(drive(once())))
