"""Calling judge backends safely: concurrency limit, timeouts, retries, circuit breaker, cache.

A :class:`JudgeRunner` wraps one :class:`~harness.judges.base.JudgeBackend`. Every criterion of a
run that uses the same judge shares its runner (``llm_judge`` gets it from the run's
``context.shared``), so the backend's concurrency limit holds for the whole run. Each call:

1. looks the request up in the :class:`~harness.judges.cache.JudgeCache` (a hit makes no call);
2. fails at once with :class:`~harness.judges.base.JudgeUnavailable` while the circuit breaker is
   open (see below);
3. waits for a slot of the backend's semaphore (and for any ``Retry-After`` pause the server asked
   for on another call);
4. runs ``backend.complete`` under a per-attempt timeout;
5. on a retryable :class:`~harness.judges.base.JudgeError` or a timeout, sleeps the server's
   ``Retry-After`` (capped at ``max_retry_after_s``) plus exponential backoff with full jitter,
   and tries again, up to ``max_attempts`` (retries are driven by tenacity; the first attempt
   runs without its per-call bookkeeping, which costs ~50 us of CPU); a call that still fails raises
   :class:`JudgeCallFailed`, which the ``llm_judge`` criterion turns into an ``error`` verdict
   (never a pass or a fail). Only successful answers are cached.

**Circuit breaker.** After ``breaker_after`` consecutive attempts that could not reach the endpoint
(connection refused or reset, DNS failure, timeout), the breaker opens: every call, including those
waiting to retry, raises :class:`~harness.judges.base.JudgeUnavailable` at once instead of
spending its attempts. After ``breaker_cooldown_s`` one call may probe the endpoint; a success
closes the breaker, a failure keeps it open for another cooldown. Any answer from the endpoint
(even an HTTP error) ends a streak of connection failures.

**Batches.** With ``batch`` options whose ``batch`` is true, a call that misses the cache goes to
the running loop's :class:`~harness.judges.batch.Batcher` instead (no concurrency slot, no
per-attempt timeout: a batch takes minutes to hours), keyed by a ``custom_id`` derived from the
cache key; a request the batch did not answer usably is then sent as a normal call, as above.

**Cost.** Every runner of a run shares one :class:`~harness.judges.budget.CostBudget`: each
answer's cost is added to it, and once it reaches ``--max-cost`` no new attempt starts (checked
after the concurrency slot is granted, so queued calls do not slip through).

The runner works on whichever event loop awaits it (one semaphore per loop); :meth:`release` closes
the connections bound to the running loop and :meth:`aclose` everything, when the run ends.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from harness.judges.base import (
    JudgeBackend,
    JudgeError,
    JudgeRequest,
    JudgeResponse,
    JudgeUnavailable,
)
from harness.judges.batch import Batcher, BatchJournal, BatchMiss, BatchOptions
from harness.judges.budget import CostBudget
from harness.judges.cache import JudgeCache, cache_key
from harness.judges.records import CallRecord
from harness.judges.sdk import PerLoopClients

__all__ = ["CallRecord", "JudgeCallFailed", "JudgeRunner", "RetryPolicy"]

T = TypeVar("T")
Window = AbstractAsyncContextManager[Any]
"""What bounds a runner's calls in flight on one event loop (an ``asyncio.Semaphore``)."""


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
    breaker_after: int = Field(default=10, ge=1)
    """Consecutive connection failures (refused, reset, DNS, timeout) that open the breaker."""
    breaker_cooldown_s: float = Field(default=30.0, ge=0)
    """How long an open breaker fails calls at once before letting one probe through."""


class JudgeCallFailed(Exception):
    """A judge call failed for good (not retryable, or out of attempts)."""

    def __init__(self, message: str, record: CallRecord):
        super().__init__(message)
        self.record = record


def _retryable(exc: BaseException) -> bool:
    return isinstance(exc, JudgeError) and exc.retryable and not isinstance(exc, JudgeUnavailable)


class JudgeRunner:
    """Runs calls to one backend with a concurrency limit, timeouts, retries, a circuit breaker
    and a cache."""

    def __init__(
        self,
        backend: JudgeBackend,
        *,
        max_concurrency: int | None = None,
        policy: RetryPolicy | None = None,
        cache: JudgeCache | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
        budget: CostBudget | None = None,
        batch: BatchOptions | None = None,
        journal_dir: str | Path | None = None,
    ):
        self.backend = backend
        self.max_concurrency = max_concurrency or backend.max_concurrency
        self.policy = policy or RetryPolicy()
        self.cache = cache
        self.budget = budget if budget is not None else CostBudget()
        """The run's spending limit, shared by its runners."""
        self.batch = batch if batch is not None and batch.batch else None
        """Batch options, when calls go through the endpoint's batch API."""
        self.journal: BatchJournal | None = None
        self._batchers: PerLoopClients | None = None
        if self.batch is not None:
            client = backend.batch_client()
            if client is None:
                raise ValueError(f"judge {backend.name} has no batch API: remove `batch: true`")
            self.journal = BatchJournal(journal_dir)
            self._batchers = PerLoopClients(
                lambda: Batcher(backend.name, client, self.batch, self.journal,
                                backoff=self.backoff, max_attempts=self.policy.max_attempts,
                                breaker_after=self.policy.breaker_after, sleep=self._sleep),
                lambda batcher: batcher.aclose())
        self._rng = rng or random.Random()
        self._sleep = sleep
        self.make_window: Callable[[], AbstractAsyncContextManager[Any]] | None = None
        """Makes an event loop's concurrency window in place of an ``asyncio.Semaphore`` of
        ``max_concurrency`` (an engine sharing one window with others: the Ray actors)."""
        # A semaphore belongs to one event loop: keep one per loop that uses this runner.
        self._semaphores: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Window]
        self._semaphores = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._pause_until = 0.0  # monotonic time before which no new attempt starts
        # Attempts 2..max_attempts (the first runs without tenacity's per-call bookkeeping,
        # ~50 us of CPU, since most calls need no retry).
        self._retrying = AsyncRetrying(
            stop=stop_after_attempt(max(1, self.policy.max_attempts - 1)),
            wait=self._wait,
            retry=retry_if_exception(_retryable),
            sleep=self._sleep,
            reraise=True,
        )
        self._streak = 0  # consecutive connection failures
        self._open_since: float | None = None  # monotonic time the breaker opened
        self._probe_at = 0.0  # monotonic time after which one probe may go through
        self._probing = False
        self.calls = 0
        """Attempts sent to the backend (for tests and reports)."""

    # --- breaker ------------------------------------------------------------------------------
    @property
    def breaker_open(self) -> bool:
        """Whether calls currently fail at once with :class:`JudgeUnavailable`."""
        return self._open_since is not None

    def _check_breaker(self, claim: bool = True) -> bool:
        """Raise :class:`JudgeUnavailable` while open; ``True`` if this attempt is the probe
        (with ``claim``: one attempt may probe once the cooldown is over)."""
        if self._open_since is None:
            return False
        if self._probing or time.monotonic() < self._probe_at:
            raise JudgeUnavailable(
                f"judge {self.backend.name} is unavailable: {self._streak} consecutive "
                "connection failures opened its circuit breaker", retryable=False,
                connection=True,
            )
        if claim:
            self._probing = True
        return claim

    def _connection_failed(self) -> None:
        self._streak += 1
        if self._open_since is not None or self._streak >= self.policy.breaker_after:
            if self._open_since is None:
                self._open_since = time.monotonic()
            self._probe_at = time.monotonic() + self.policy.breaker_cooldown_s

    def _answered(self, success: bool) -> None:
        self._streak = 0
        if success:
            self._open_since = None
        elif self._open_since is not None:
            self._probe_at = time.monotonic() + self.policy.breaker_cooldown_s

    # --- retries ------------------------------------------------------------------------------
    def _semaphore(self) -> Window:
        loop = asyncio.get_running_loop()
        sem = self._semaphores.get(loop)
        if sem is None:
            with self._lock:
                sem = self._semaphores.get(loop)
                if sem is None:
                    sem = self._semaphores[loop] = (
                        self.make_window() if self.make_window is not None
                        else asyncio.Semaphore(self.max_concurrency))
        return sem

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to sleep after failed attempt number ``attempt`` (1-based).

        Full jitter, uniform in [0, min(max_delay_s, base_delay_s * 2 ** (attempt - 1))], added
        to the server's ``Retry-After`` (capped at ``max_retry_after_s``) when it sent one, so
        calls told to wait the same time do not all come back at once.
        """
        cap = min(self.policy.max_delay_s, self.policy.base_delay_s * 2 ** (attempt - 1))
        delay = self._rng.uniform(0, cap)
        if retry_after is not None:
            delay += min(retry_after, self.policy.max_retry_after_s)
        return delay

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        # tenacity counts from the second attempt (see _with_retries)
        return self.backoff(state.attempt_number + 1, getattr(exc, "retry_after", None))

    async def complete(
        self,
        request: JudgeRequest,
        *,
        repeat: int = 0,
        cache: JudgeCache | None = None,
        accept: Callable[[JudgeResponse], bool] | None = None,
    ) -> tuple[JudgeResponse, CallRecord]:
        """One completion, from the cache or the backend.

        Raises :class:`JudgeCallFailed` (the call failed for good) or
        :class:`~harness.judges.base.JudgeUnavailable` (the breaker is open). ``cache``
        overrides the runner's own. Only a successful answer is written to the cache, and only
        if ``accept(response)`` says it is usable (e.g. it has a parseable verdict), so a
        re-run asks again for anything else.
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
        custom_id = None
        response = None
        if self._batchers is not None:
            self.budget.check()
            custom_id = key or cache_key(self.backend.identity(), request, repeat=repeat)
            batcher: Batcher = await self._batchers.get()
            try:
                response, record.batch = await batcher.submit(custom_id, request)
                record.attempts = 1
                record.latency_s = record.total_s = time.monotonic() - started
            except BatchMiss as miss:  # failed, expired, unusable: asked as a normal call
                record.errors.append(str(miss))
        if response is None:
            response = await self._with_retries(lambda: self.backend.complete(request), record,
                                                started)
        record.tokens_in = response.tokens_in
        record.tokens_out = response.tokens_out
        record.cost_usd = response.cost_usd
        self.budget.add(response.cost_usd)
        if cache is not None and key is not None and (accept is None or accept(response)):
            cache.put(key, response)
        if custom_id is not None:
            batcher.delivered(custom_id)
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

        def attempt() -> Awaitable[list[float] | None]:
            return self.backend.continuation_logprobs(request, prefix, continuations)

        result = await self._with_retries(attempt, record, time.monotonic())
        if result is not None and cache is not None and key is not None:
            cache.put_json(key, [float(x) for x in result])
        return result

    async def _attempt(
        self, attempt: Callable[[], Awaitable[T]], record: CallRecord, sem: Window
    ) -> T:
        self._check_breaker(claim=False)  # fail at once rather than queue for a slot
        async with sem:
            self.budget.check()  # after the wait for a slot: queued calls do not slip through
            probe = self._check_breaker()
            try:
                wait = self._pause_until - time.monotonic()
                if wait > 0:
                    await self._sleep(wait)
                record.attempts += 1
                n = record.attempts
                self.calls += 1
                t0 = time.monotonic()
                try:
                    async with asyncio.timeout(self.policy.timeout_s):
                        result = await attempt()
                except TimeoutError:
                    record.errors.append(f"attempt {n}: timed out after {self.policy.timeout_s:g}s")
                    self._connection_failed()
                    raise JudgeError(f"judge {self.backend.name} timed out", retryable=True,
                                     connection=True) from None
                except JudgeError as exc:
                    record.errors.append(f"attempt {n}: {exc}")
                    if exc.connection:
                        self._connection_failed()
                    else:
                        self._answered(success=False)
                    if exc.retryable and exc.retry_after is not None:
                        until = time.monotonic() + min(exc.retry_after,
                                                       self.policy.max_retry_after_s)
                        self._pause_until = max(self._pause_until, until)
                    raise
                self._answered(success=True)
                record.latency_s = time.monotonic() - t0
                return result
            finally:
                if probe:
                    self._probing = False

    async def _with_retries(
        self, attempt: Callable[[], Awaitable[T]], record: CallRecord, started: float
    ) -> T:
        sem = self._semaphore()
        try:
            try:
                result = await self._attempt(attempt, record, sem)
            except JudgeError as exc:
                if not _retryable(exc) or self.policy.max_attempts < 2:
                    raise
                await self._sleep(self.backoff(1, exc.retry_after))
                result = await self._retrying.copy()(self._attempt, attempt, record, sem)
        except JudgeUnavailable:
            raise
        except JudgeError as exc:
            record.total_s = time.monotonic() - started
            if exc.retryable:
                last = record.errors[-1] if record.errors else str(exc)
                raise JudgeCallFailed(f"judge {self.backend.name} failed after "
                                      f"{record.attempts} attempts ({last})", record) from exc
            raise JudgeCallFailed(f"judge {self.backend.name} failed: {exc}", record) from exc
        record.total_s = time.monotonic() - started
        return result

    # --- lifecycle ----------------------------------------------------------------------------
    async def release(self) -> None:
        """Close the backend's connections bound to the running event loop (before it ends)."""
        with self._lock:
            self._semaphores.pop(asyncio.get_running_loop(), None)
        if self._batchers is not None:
            await self._batchers.release()
        await self.backend.release()

    async def aclose(self) -> None:
        """Close everything the backend holds (called by the engine when the run ends)."""
        if self._batchers is not None:
            await self._batchers.aclose()
        await self.backend.aclose()
        if self.journal is not None:
            self.journal.close()
