"""Calling judge backends safely: concurrency limit, timeouts, retries, circuit breaker, cache.

A :class:`JudgeRunner` wraps one :class:`~harness.judges.base.JudgeBackend`. Every criterion of a
run that uses the same judge shares its runner (``llm_judge`` gets it from the run's
``context.shared``), so the backend's concurrency limit holds for the whole run. Each call:

1. looks the request up in the :class:`~harness.judges.cache.JudgeCache` (a hit makes no call);
2. joins the call already in flight for the same request, if any (one call per distinct prompt:
   identical requests made at the same time share one answer, or one failure, and one cost;
   the cache key identifies them, with or without a cache);
3. fails at once with :class:`~harness.judges.base.JudgeUnavailable` while the circuit breaker is
   open (see :mod:`harness.judges.breaker`);
4. waits for a slot of its in-flight window (``max_concurrency``, narrowed after a 429; see
   :class:`~harness.judges.ratelimit.Window`), for any ``Retry-After`` pause the server asked
   for on another call, and for its rate limits (``requests_per_minute``,
   ``tokens_per_minute``: :mod:`harness.judges.ratelimit`);
5. runs ``backend.complete`` under a per-attempt timeout;
6. on a retryable :class:`~harness.judges.base.JudgeError` or a timeout, sleeps the server's
   ``Retry-After`` (capped at ``max_retry_after_s``) plus exponential backoff with full jitter,
   and tries again, up to ``max_attempts`` (:mod:`harness.judges.retry`, the policy the batch
   client follows too); a call that still fails raises :class:`JudgeCallFailed`, which the
   ``llm_judge`` criterion turns into an ``error`` verdict (never a pass or a fail). Only
   successful answers are cached.

**Circuit breaker.** After ``breaker_after`` failures in a row (attempts that could not reach the
endpoint: connection refused or reset, DNS failure, timeout; calls that failed after all their
attempts: 429, 5xx), the breaker opens: every call, including those waiting to retry, raises
:class:`~harness.judges.base.JudgeUnavailable` at once instead of spending its attempts, and the
engine stops the run. After ``breaker_cooldown_s`` one call may probe the endpoint; a success
closes the breaker, a failure keeps it open for another cooldown. An answer that says the judge
is misconfigured (401, 403, 404) raises :class:`~harness.judges.base.JudgeMisconfigured` at the
first call, and every later call fails at once the same way.

**Batches.** With ``batch`` options whose ``batch`` is true, a call that misses the cache goes to
the running loop's :class:`~harness.judges.batch.Batcher` instead (no concurrency slot, no
per-attempt timeout: a batch takes minutes to hours), keyed by a ``custom_id``, the cache key;
a request the batch did not answer usably is then sent as a normal call, as above.

**Cost.** Every runner of a run shares one :class:`~harness.judges.budget.CostBudget`: each
answer's cost is added to it, and once it reaches ``--max-cost`` no new attempt starts (checked
after the concurrency slot is granted, so queued calls do not slip through).

The runner works on whichever event loop awaits it (one window per loop); :meth:`release` closes
the connections bound to the running loop and :meth:`aclose` everything, when the run ends.
"""

from __future__ import annotations

import asyncio
import random
import threading
import time
import weakref
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TypeVar, cast

from harness.judges.base import (
    JudgeBackend,
    JudgeError,
    JudgeMisconfigured,
    JudgeRateLimited,
    JudgeRequest,
    JudgeResponse,
    JudgeUnavailable,
)
from harness.judges.batch import Batcher, BatchJournal, BatchMiss, BatchOptions
from harness.judges.breaker import CircuitBreaker
from harness.judges.budget import CostBudget
from harness.judges.cache import JudgeCache, cache_key
from harness.judges.http import PerLoopClients
from harness.judges.ratelimit import InFlight, RateLimiter, RateLimits, Window
from harness.judges.records import CallRecord
from harness.judges.retry import Retrying, RetryPolicy
from harness.judges.single_flight import SingleFlight

__all__ = ["CallRecord", "JudgeCallFailed", "JudgeRunner", "RateLimits", "RetryPolicy"]

T = TypeVar("T")


class JudgeCallFailed(Exception):
    """A judge call failed for good (not retryable, or out of attempts)."""

    def __init__(self, message: str, record: CallRecord):
        super().__init__(message)
        self.record = record


class JudgeRunner:
    """Runs calls to one backend with a concurrency limit, rate limits, timeouts, retries, a
    circuit breaker and a cache."""

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
        rate_limits: RateLimits | None = None,
        rate_period_s: float | None = None,
    ):
        self.backend = backend
        self.max_concurrency = max_concurrency or backend.max_concurrency
        self.policy = policy or RetryPolicy()
        self.cache = cache
        self.budget = budget if budget is not None else CostBudget()
        """The run's spending limit, shared by its runners."""
        self.retrying = Retrying(self.policy, rng=rng, sleep=sleep)
        """The retry policy of this judge's calls (and of its batch client's requests)."""
        self.breaker = CircuitBreaker(backend.name, self.policy.breaker_after,
                                      self.policy.breaker_cooldown_s)
        self.limiter = (RateLimiter(rate_limits, period_s=rate_period_s)
                        if rate_limits is not None and rate_limits.limited else None)
        """The judge's rate limits, or ``None`` (``rate_period_s``: the length of their minute,
        for tests)."""
        self.batch = batch if batch is not None and batch.batch else None
        """Batch options, when calls go through the endpoint's batch API."""
        self.journal: BatchJournal | None = None
        self._batchers: PerLoopClients | None = None
        if self.batch is not None:
            client = backend.batch_client()
            if client is None:
                raise ValueError(f"judge {backend.name} has no batch API: remove `batch: true`")
            options, journal = self.batch, BatchJournal(journal_dir)
            self.journal = journal
            self._batchers = PerLoopClients(
                lambda: Batcher(backend.name, client, options, journal,
                                retrying=self.retrying, breaker_after=self.policy.breaker_after),
                lambda batcher: batcher.aclose())
        self.make_window: Callable[[], InFlight] | None = None
        """Makes an event loop's in-flight window in place of an adaptive :class:`Window` of
        ``max_concurrency`` (an engine sharing one window with others: the Ray actors)."""
        # A window's waiters belong to one event loop: keep one per loop that uses this runner.
        self._windows: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, InFlight]
        self._windows = weakref.WeakKeyDictionary()
        self._lock = threading.Lock()
        self._pause_until = 0.0  # monotonic time before which no new attempt starts
        # (event loop, cache key) -> the future of the call in flight for that request
        self._flights = SingleFlight()
        self.calls = 0
        """Attempts sent to the backend (for tests and reports)."""
        self.rate_limited = 0
        """Attempts the endpoint refused for its rate limit (429)."""

    @property
    def breaker_open(self) -> bool:
        """Whether calls currently fail at once with :class:`JudgeUnavailable`."""
        return self.breaker.open

    def window(self) -> InFlight:
        """The running event loop's in-flight window."""
        loop = asyncio.get_running_loop()
        window = self._windows.get(loop)
        if window is None:
            with self._lock:
                window = self._windows.get(loop)
                if window is None:
                    window = self._windows[loop] = (
                        self.make_window() if self.make_window is not None
                        else Window(self.max_concurrency))
        return window

    # --- calls ----------------------------------------------------------------------------------
    async def complete(
        self,
        request: JudgeRequest,
        *,
        repeat: int = 0,
        cache: JudgeCache | None = None,
        accept: Callable[[JudgeResponse], bool] | None = None,
    ) -> tuple[JudgeResponse, CallRecord]:
        """One completion, from the cache, the identical call in flight, or the backend.

        Raises :class:`JudgeCallFailed` (the call failed for good) or
        :class:`~harness.judges.base.JudgeUnavailable` (the breaker is open). ``cache``
        overrides the runner's own. Only a successful answer is written to the cache, and only
        if ``accept(response)`` says it is usable (e.g. it has a parseable verdict), so a
        re-run asks again for anything else. An answer shared with an identical call in flight
        comes with a record like a cache hit's (``cached``, no cost: that call paid).
        """
        cache = cache if cache is not None else self.cache
        key = cache_key(self.backend.identity(), request, repeat=repeat)
        if cache is not None and (hit := cache.get(key)) is not None:
            return hit, CallRecord(cached=True, cost_usd=0.0)
        (response, record), led = await self._flights.run(
            key, lambda: self._complete(key, request, cache, accept))
        return response, (record if led else CallRecord(cached=True, cost_usd=0.0))

    async def _complete(
        self,
        key: str,
        request: JudgeRequest,
        cache: JudgeCache | None,
        accept: Callable[[JudgeResponse], bool] | None,
    ) -> tuple[JudgeResponse, CallRecord]:
        started = time.monotonic()
        record = CallRecord()
        response = None
        if self._batchers is not None:
            self.budget.check()
            batcher: Batcher = await self._batchers.get()
            try:
                response, record.batch = await batcher.submit(key, request)
                record.attempts = 1
                record.latency_s = record.total_s = time.monotonic() - started
            except BatchMiss as miss:  # failed, expired, unusable: asked as a normal call
                record.errors.append(str(miss))
        if response is None:
            response = await self._call(lambda: self.backend.complete(request), record, started,
                                        request)
        record.tokens_in = response.tokens_in
        record.tokens_out = response.tokens_out
        record.tokens_cached = response.tokens_cached
        record.cost_usd = response.cost_usd
        self.budget.add(response.cost_usd)
        if cache is not None and (accept is None or accept(response)):
            cache.put(key, response)
        if self._batchers is not None:
            batcher.delivered(key)
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
        """Exact continuation log-probabilities, if the backend can score them (cached, and
        shared with an identical call in flight, too).

        ``record``, when given, receives the call's accounting (attempts, cache hit, latency).
        """
        if type(self.backend).continuation_logprobs is JudgeBackend.continuation_logprobs:
            return None
        cache = cache if cache is not None else self.cache
        key = cache_key(self.backend.identity(), request, repeat=repeat,
                        extra={"prefix": prefix, "continuations": continuations})
        if cache is not None and (hit := cache.get_json(key)) is not None:
            if record is not None:
                record.cached = True
            return cast("list[float]", hit)
        own = record if record is not None else CallRecord()

        async def call() -> list[float] | None:
            result = await self._call(
                lambda: self.backend.continuation_logprobs(request, prefix, continuations),
                own, time.monotonic(), request)
            if result is not None and cache is not None:
                cache.put_json(key, [float(x) for x in result])
            return result

        result, led = await self._flights.run(key, call)
        if not led:
            own.cached = True
        return result

    async def _call(
        self,
        attempt: Callable[[], Awaitable[T]],
        record: CallRecord,
        started: float,
        request: JudgeRequest,
    ) -> T:
        """``attempt()`` with retries; :class:`JudgeCallFailed` once it fails for good."""
        tokens = self.limiter.estimate(request) if self.limiter is not None else 0
        try:
            return await self.retrying(self._attempt, attempt, record, self.window(), request,
                                       tokens)
        except JudgeUnavailable:
            raise
        except JudgeError as exc:
            if exc.retryable:
                if not exc.connection:  # answers worth a retry, to the last attempt
                    self.breaker.failed(str(exc))
                last = record.errors[-1] if record.errors else str(exc)
                raise JudgeCallFailed(f"judge {self.backend.name} failed after "
                                      f"{record.attempts} attempts ({last})", record) from exc
            raise JudgeCallFailed(f"judge {self.backend.name} failed: {exc}", record) from exc
        finally:
            record.total_s = time.monotonic() - started

    async def _attempt(
        self,
        attempt: Callable[[], Awaitable[T]],
        record: CallRecord,
        window: InFlight,
        request: JudgeRequest,
        tokens: int,
    ) -> T:
        """One attempt, in a slot of the window, once pauses and rate limits allow it."""
        self.breaker.check(claim=False)  # fail at once rather than queue for a slot
        await window.acquire()
        try:
            self.budget.check()  # after the wait for a slot: queued calls do not slip through
            probe = self.breaker.check(claim=True)
            try:
                if self.limiter is not None or self._pause_until > time.monotonic():
                    await self._wait_to_send(tokens)
                return await self._send(attempt, record, window, request, tokens)
            finally:
                if probe:
                    self.breaker.probed()
        finally:
            window.release()

    async def _wait_to_send(self, tokens: int) -> None:
        """Sleep out the ``Retry-After`` pause, then what the rate limits ask (a call cancelled
        meanwhile gives its reservation back)."""
        wait = self._pause_until - time.monotonic()
        if wait > 0:
            await self.retrying.sleep(wait)
        if self.limiter is not None and (wait := self.limiter.reserve(tokens)) > 0:
            try:
                await self.retrying.sleep(wait)
            except BaseException:
                self.limiter.cancel(tokens)
                raise

    async def _send(
        self,
        attempt: Callable[[], Awaitable[T]],
        record: CallRecord,
        window: InFlight,
        request: JudgeRequest,
        tokens: int,
    ) -> T:
        """Send the attempt under the timeout; tell the window, the breaker and the limiter."""
        record.attempts += 1
        self.calls += 1
        epoch = window.epoch
        t0 = time.monotonic()
        try:
            async with asyncio.timeout(self.policy.timeout_s):
                result = await attempt()
        except TimeoutError:
            timed_out = JudgeError(f"judge {self.backend.name} timed out after "
                                   f"{self.policy.timeout_s:g}s", retryable=True,
                                   connection=True)
            self._failed(timed_out, record)
            raise timed_out from None
        except JudgeError as exc:
            if isinstance(exc, JudgeRateLimited):
                self.rate_limited += 1
                window.throttled(epoch)
                if self.limiter is not None:
                    self.limiter.settle(tokens, 0)  # refused: it spent no tokens
            self._failed(exc, record)
            raise
        self.breaker.answered(success=True)
        window.succeeded()
        if (self.limiter is not None and isinstance(result, JudgeResponse)
                and (used := result.tokens_in + result.tokens_out)):
            self.limiter.settle(tokens, used, result.tokens_in, request)
        record.latency_s = time.monotonic() - t0
        return result

    def _failed(self, exc: JudgeError, record: CallRecord) -> None:
        """Record a failed attempt, tell the breaker, and pause every call if the server asked."""
        record.errors.append(f"attempt {record.attempts}: {exc}")
        if isinstance(exc, JudgeMisconfigured):
            self.breaker.halt(str(exc))
        elif exc.connection:
            self.breaker.failed(str(exc))
        elif exc.retryable:
            self.breaker.refused()
        else:
            self.breaker.answered(success=False)
        if exc.retryable and exc.retry_after is not None:
            until = time.monotonic() + min(exc.retry_after, self.policy.max_retry_after_s)
            self._pause_until = max(self._pause_until, until)

    # --- lifecycle ----------------------------------------------------------------------------
    async def release(self) -> None:
        """Close the backend's connections bound to the running event loop (before it ends)."""
        with self._lock:
            self._windows.pop(asyncio.get_running_loop(), None)
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
