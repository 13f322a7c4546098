"""Calling judge backends safely: concurrency limit, timeouts, retries, cache, accounting.

A :class:`JudgeRunner` wraps one :class:`~harness.judges.base.JudgeBackend`. Every criterion that
uses the same judge shares its runner (see :func:`runner_for`), so the backend's concurrency limit
holds for the whole run. Each call:

1. looks the request up in the :class:`~harness.judges.cache.JudgeCache` (a hit makes no call);
2. waits for a slot of the backend's semaphore (and for any ``Retry-After`` pause the server asked
   for on another call);
3. runs ``backend.complete`` under a per-call timeout;
4. on a retryable :class:`~harness.judges.base.JudgeError` or a timeout, sleeps with exponential
   backoff and full jitter (never less than the server's ``Retry-After``) and tries again, up to
   ``max_attempts``; a call that still fails raises :class:`JudgeCallFailed`, which the
   ``llm_judge`` criterion turns into an ``error`` verdict (never a pass or a fail).

Sync code runs many calls at once with :func:`run_all`, which uses one long-lived event loop in a
background thread, so it also works when the caller already runs an event loop.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import weakref
from collections.abc import Awaitable, Callable, Coroutine, Iterable
from concurrent.futures import Future
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from harness.judges.base import JudgeBackend, JudgeError, JudgeRequest, JudgeResponse
from harness.judges.cache import JudgeCache

T = TypeVar("T")


class RetryPolicy(BaseModel):
    """How hard the runner tries before giving up on a call."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    max_attempts: int = Field(default=5, ge=1)
    """Attempts per call, the first one included."""
    timeout_s: float = Field(default=120.0, gt=0)
    """Time allowed for one attempt."""
    base_delay_s: float = Field(default=0.5, ge=0)
    """Backoff before the second attempt; doubles each retry (full jitter: uniform in [0, cap])."""
    max_delay_s: float = Field(default=30.0, ge=0)
    """Upper bound of one backoff sleep (a server's ``Retry-After`` may ask for more)."""
    max_retry_after_s: float = Field(default=300.0, ge=0)
    """Longest ``Retry-After`` honoured; a server asking for more gets this much."""


class CallRecord(BaseModel):
    """Accounting for one judge call, stored on the verdict."""

    model_config = ConfigDict(extra="forbid")

    attempts: int = 0
    """Attempts made (0 for a cache hit)."""
    cached: bool = False
    """The response came from the cache; no call was made."""
    latency_s: float = 0.0
    """Wall time of the successful attempt (0 for a cache hit)."""
    total_s: float = 0.0
    """Wall time including queueing and retries."""
    tokens_in: int = 0
    """Prompt tokens billed."""
    tokens_out: int = 0
    """Completion tokens billed."""
    cost_usd: float | None = None
    """Cost of the call, when the backend knows it (0 for a cache hit)."""
    errors: list[str] = Field(default_factory=list)
    """Messages of the failed attempts, oldest first."""


class JudgeCallFailed(Exception):
    """A judge call failed for good (not retryable, or out of attempts)."""

    def __init__(self, message: str, record: CallRecord):
        super().__init__(message)
        self.record = record


class JudgeRunner:
    """Runs calls to one backend with a concurrency limit, timeouts, retries and a cache."""

    def __init__(
        self,
        backend: JudgeBackend,
        *,
        max_concurrency: int | None = None,
        policy: RetryPolicy | None = None,
        cache: JudgeCache | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        self.backend = backend
        self.max_concurrency = max_concurrency or backend.max_concurrency
        self.policy = policy or RetryPolicy()
        self.cache = cache
        self._rng = rng or random.Random()
        self._sleep = sleep
        # A semaphore belongs to one event loop: keep one per loop that uses this runner.
        self._semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore]
        self._semaphores = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._pause_until = 0.0  # monotonic time before which no new attempt starts
        self.calls = 0
        """Attempts sent to the backend (for tests and reports)."""

    def _semaphore(self) -> asyncio.Semaphore:
        loop = asyncio.get_running_loop()
        with self._lock:
            sem = self._semaphores.get(loop)
            if sem is None:
                sem = self._semaphores[loop] = asyncio.Semaphore(self.max_concurrency)
            return sem

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to sleep after failed attempt number ``attempt`` (1-based)."""
        cap = min(self.policy.max_delay_s, self.policy.base_delay_s * 2 ** (attempt - 1))
        delay = self._rng.uniform(0, cap)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.policy.max_retry_after_s))
        return delay

    async def complete(
        self, request: JudgeRequest, *, repeat: int = 0, cache: JudgeCache | None = None
    ) -> tuple[JudgeResponse, CallRecord]:
        """One completion, from the cache or the backend. Raises :class:`JudgeCallFailed`.

        ``cache`` overrides the runner's own (runners are shared by runs with different caches).
        """
        started = time.monotonic()
        cache = cache if cache is not None else self.cache
        key = None
        if cache is not None:
            key = cache.key(self.backend.identity(), request, repeat=repeat)
            hit = cache.get(key)
            if hit is not None:
                return hit, CallRecord(cached=True, cost_usd=0.0)
        record = CallRecord()

        async def attempt() -> JudgeResponse:
            return await self.backend.complete(request)

        response = await self._with_retries(attempt, record, started)
        record.tokens_in = response.tokens_in
        record.tokens_out = response.tokens_out
        record.cost_usd = response.cost_usd
        if cache is not None and key is not None:
            cache.put(key, response)
        return response, record

    async def continuation_logprobs(
        self,
        request: JudgeRequest,
        prefix: str,
        continuations: list[str],
        *,
        repeat: int = 0,
        cache: JudgeCache | None = None,
        record: CallRecord | None = None,
    ) -> list[float] | None:
        """Exact continuation log-probabilities, if the backend can score them (cached too).

        ``record``, when given, receives the call's accounting (attempts, cache hit, latency).
        """
        if type(self.backend).continuation_logprobs is JudgeBackend.continuation_logprobs:
            return None
        cache = cache if cache is not None else self.cache
        key = None
        if cache is not None:
            key = cache.key(
                self.backend.identity(),
                request,
                repeat=repeat,
                extra={"prefix": prefix, "continuations": continuations},
            )
            hit = cache.get_json(key)
            if hit is not None:
                if record is not None:
                    record.cached = True
                return hit
        record = record if record is not None else CallRecord()

        async def attempt() -> list[float] | None:
            return await self.backend.continuation_logprobs(request, prefix, continuations)

        result = await self._with_retries(attempt, record, time.monotonic())
        if result is not None and cache is not None and key is not None:
            cache.put_json(key, [float(x) for x in result])
        return result

    async def _with_retries(
        self, attempt: Callable[[], Awaitable[T]], record: CallRecord, started: float
    ) -> T:
        policy = self.policy
        sem = self._semaphore()
        for n in range(1, policy.max_attempts + 1):
            retry_after: float | None = None
            async with sem:
                wait = self._pause_until - time.monotonic()
                if wait > 0:
                    await self._sleep(wait)
                record.attempts = n
                self.calls += 1
                t0 = time.monotonic()
                try:
                    result = await asyncio.wait_for(attempt(), policy.timeout_s)
                except TimeoutError:
                    record.errors.append(f"attempt {n}: timed out after {policy.timeout_s:g}s")
                except JudgeError as exc:
                    record.errors.append(f"attempt {n}: {exc}")
                    if not exc.retryable:
                        record.total_s = time.monotonic() - started
                        raise JudgeCallFailed(
                            f"judge {self.backend.name} failed: {exc}", record
                        ) from exc
                    retry_after = exc.retry_after
                    if retry_after is not None:
                        until = time.monotonic() + min(retry_after, policy.max_retry_after_s)
                        self._pause_until = max(self._pause_until, until)
                else:
                    record.latency_s = time.monotonic() - t0
                    record.total_s = time.monotonic() - started
                    return result
            if n < policy.max_attempts:
                await self._sleep(self.backoff(n, retry_after))
        record.total_s = time.monotonic() - started
        last = record.errors[-1] if record.errors else "no attempt made"
        raise JudgeCallFailed(
            f"judge {self.backend.name} failed after {record.attempts} attempts ({last})", record
        )


_RUNNERS: dict[str, JudgeRunner] = {}
_RUNNERS_LOCK = threading.Lock()


def shared_runner(key: str, make: Callable[[], JudgeRunner]) -> JudgeRunner:
    """The process-wide runner stored under ``key`` (built by ``make`` on first use).

    Criteria naming the same judge with the same options share one backend and one runner, so
    the concurrency limit holds across criteria and a local model is loaded once.
    """
    with _RUNNERS_LOCK:
        runner = _RUNNERS.get(key)
        if runner is None:
            runner = _RUNNERS[key] = make()
        return runner


class _LoopThread:
    """One event loop running forever in a daemon thread."""

    def __init__(self) -> None:
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self._run, name="harness-judge-loop", daemon=True)
        self.thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()


_LOOP: _LoopThread | None = None
_LOOP_LOCK = threading.Lock()


def background_loop() -> asyncio.AbstractEventLoop:
    """The shared background event loop (started on first use)."""
    global _LOOP
    with _LOOP_LOCK:
        if _LOOP is None or not _LOOP.thread.is_alive():
            _LOOP = _LoopThread()
        return _LOOP.loop


def run_sync(coro: Coroutine[Any, Any, T]) -> T:
    """Run one coroutine on the background loop and wait for its result."""
    return run_all([coro], return_exceptions=False)[0]


def run_all(
    coros: Iterable[Coroutine[Any, Any, T]], *, return_exceptions: bool = True
) -> list[T | BaseException]:
    """Run coroutines concurrently on the background loop; results in input order.

    With ``return_exceptions`` (the default) a failed coroutine's exception takes its place in
    the list; otherwise the first failure is raised once all have finished. Safe to call from
    sync code running inside another event loop; not from a coroutine on the background loop.
    """
    loop = background_loop()
    if _LOOP is not None and threading.current_thread() is _LOOP.thread:
        raise RuntimeError("run_all called from the judge loop itself; await the calls instead")
    coros = list(coros)
    if not coros:
        return []

    async def gather() -> list[Any]:
        return await asyncio.gather(*coros, return_exceptions=True)

    future: Future[list[Any]] = asyncio.run_coroutine_threadsafe(gather(), loop)
    results = future.result()
    if not return_exceptions:
        for result in results:
            if isinstance(result, BaseException):
                raise result
    return results
