"""Rate limits of one judge: requests and tokens per minute, and the adaptive in-flight window.

**The limiter.** With ``requests_per_minute`` and/or ``tokens_per_minute`` set, a call takes
from a :class:`TokenBucket` per limit before it is sent (after its concurrency slot): one
request, and the tokens it may spend, estimated from the prompt (:meth:`RateLimiter.estimate`).
A bucket holds one minute's worth and refills continuously, as the providers' own do. Taking
is a reservation: the bucket may go below zero, and the caller sleeps until it would have held
the amount, so calls go out in the order they asked, each after one sleep. When the answer
comes, the estimate is corrected by the usage it reports (the difference refunded or charged;
an answer that reports none keeps its estimate); a call refused with a 429 spent no tokens;
any other failed attempt (a 5xx, a timeout, an unusable answer) keeps its estimate, as it may
have been counted. The limits are one runner's (one judge of one run): runs or processes
sharing an account should split them.

**The window.** :class:`Window` is the runner's concurrency limit on one event loop: at most
``size`` calls in flight, ``size`` between 1 and ``max_concurrency``. A 429 halves it
(multiplicative decrease, once per round: a 429 to a call sent before the last decrease does
not decrease it again), and each call that succeeds adds ``1 / size`` (additive increase: one
slot per window of successes), so a run that meets an endpoint's limit settles just under it.
Without 429s the window stays at ``max_concurrency``. Another engine may put its own
:class:`InFlight` in its place (``JudgeRunner.make_window``: the Ray actors share one window
across a cluster).
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Protocol

from pydantic import BaseModel, ConfigDict, Field

from harness.judges.base import JudgeRequest

__all__ = ["MINUTE_S", "RATE_KEYS", "InFlight", "RateLimiter", "RateLimits", "TokenBucket",
           "Window"]

MINUTE_S = 60.0
"""Seconds in the minute of ``*_per_minute`` when a limiter is built without ``period_s``
(tests and benchmarks shorten it, to see a limit at work in seconds)."""


class RateLimits(BaseModel):
    """A judge's rate limits (keys of its suite mapping); ``None``: not limited."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    requests_per_minute: int | None = Field(default=None, gt=0)
    """Calls sent per minute, at most (every attempt counts)."""
    tokens_per_minute: int | None = Field(default=None, gt=0)
    """Prompt and completion tokens per minute, at most (estimated before a call, corrected by
    the usage its answer reports)."""

    @property
    def limited(self) -> bool:
        """Whether any limit is set."""
        return self.requests_per_minute is not None or self.tokens_per_minute is not None


RATE_KEYS = frozenset(RateLimits.model_fields)
"""Keys of a judge mapping that set its rate limits."""


class TokenBucket:
    """``capacity`` units that refill continuously, ``capacity`` per ``period_s``.

    :meth:`take` reserves: it takes at once, even below zero, and says how long to wait until
    the bucket would have held the amount; :meth:`give` puts units back (or, negative, takes
    more). Not locked: :class:`RateLimiter` is.
    """

    def __init__(
        self, capacity: float, period_s: float, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        if capacity <= 0 or period_s <= 0:
            raise ValueError("a bucket needs a positive capacity and period")
        self.capacity = float(capacity)
        self.rate = self.capacity / period_s
        """Units added per second."""
        self._clock = clock
        self._level = self.capacity
        self._at = clock()

    def level(self) -> float:
        """Units in the bucket now (negative while reservations wait)."""
        now = self._clock()
        self._level = min(self.capacity, self._level + (now - self._at) * self.rate)
        self._at = now
        return self._level

    def take(self, amount: float) -> float:
        """Take ``amount`` (at most the capacity); the seconds until the bucket would have held
        it (0: at once)."""
        self._level = self.level() - min(amount, self.capacity)
        return -self._level / self.rate if self._level < 0 else 0.0

    def give(self, amount: float) -> None:
        """Put ``amount`` back (a refund), up to the capacity; negative takes more."""
        self._level = min(self.capacity, self.level() + amount)


class RateLimiter:
    """The buckets of one judge's :class:`RateLimits` (see the module docstring)."""

    def __init__(
        self,
        limits: RateLimits,
        *,
        period_s: float | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        period = MINUTE_S if period_s is None else period_s
        rpm, tpm = limits.requests_per_minute, limits.tokens_per_minute
        self.requests = TokenBucket(rpm, period, clock=clock) if rpm else None
        """One unit per attempt sent, or ``None``."""
        self.tokens = TokenBucket(tpm, period, clock=clock) if tpm else None
        """Estimated, then reported, tokens, or ``None``."""
        self._per_byte = 0.25
        self._lock = threading.Lock()

    def estimate(self, request: JudgeRequest) -> int:
        """Tokens ``request`` may spend: its prompt's UTF-8 bytes times the tokens per byte seen
        in answers so far (never under 1/4: about 4 bytes a token in English, 3 a token of
        Chinese), 4 a message, and ``max_tokens``; at most the bucket's capacity (a larger call
        waits for a full bucket); 0 without a token limit."""
        if self.tokens is None:
            return 0
        tokens = (int(prompt_bytes(request) * self._per_byte) + 4 * len(request.messages)
                  + request.max_tokens)
        return min(tokens, int(self.tokens.capacity))

    def reserve(self, tokens: int) -> float:
        """Take one request and ``tokens`` (an :meth:`estimate`); the seconds to wait before
        sending."""
        with self._lock:
            wait = self.requests.take(1) if self.requests is not None else 0.0
            if self.tokens is not None:
                wait = max(wait, self.tokens.take(tokens))
        return wait

    def cancel(self, tokens: int) -> None:
        """A reserved call that was not sent: give its request and tokens back."""
        with self._lock:
            if self.requests is not None:
                self.requests.give(1)
            if self.tokens is not None:
                self.tokens.give(tokens)

    def settle(self, tokens: int, used: int, prompt_tokens: int = 0,
               request: JudgeRequest | None = None) -> None:
        """A call that reserved ``tokens`` spent ``used`` (as its answer reports): refund or
        charge the difference. With its ``request`` and ``prompt_tokens``, learn the tokens per
        byte of this endpoint's prompts (only upwards of 1/4: an estimate too high costs
        nothing once refunded, one too low a 429)."""
        if self.tokens is None:
            return
        with self._lock:
            self.tokens.give(tokens - used)
            if request is not None and prompt_tokens > 0 and (size := prompt_bytes(request)):
                seen = prompt_tokens / size
                self._per_byte = max(0.25, 0.9 * self._per_byte + 0.1 * seen)


def prompt_bytes(request: JudgeRequest) -> int:
    """The UTF-8 size of a request's messages' contents."""
    size = 0
    for message in request.messages:
        content = message.get("content") or ""
        size += len(content) if content.isascii() else len(content.encode())
    return size


class InFlight(Protocol):
    """What bounds one judge's calls in flight on one event loop (:class:`Window`)."""

    epoch: int
    """Changes when the window shrinks (see :meth:`throttled`)."""

    async def acquire(self) -> None:
        """Wait for a slot."""

    def release(self) -> None:
        """Give a slot back."""

    def succeeded(self) -> None:
        """A call in a slot succeeded."""

    def throttled(self, epoch: int) -> bool:
        """A call sent at ``epoch`` met a 429: whether the window shrank."""


class Window:
    """The in-flight window of one judge on one event loop (see the module docstring)."""

    def __init__(self, maximum: int) -> None:
        self.maximum = max(1, maximum)
        self.size = float(self.maximum)
        """Calls allowed in flight (its whole part), between 1 and ``maximum``."""
        self.in_flight = 0
        self.epoch = 0
        """Decreases so far: a call remembers it when sent, so that the 429s of one round
        decrease the window once."""
        self._slots = self.maximum
        self._waiters: deque[asyncio.Future[None]] = deque()

    async def acquire(self) -> None:
        """Wait for a slot (first come, first served)."""
        if self.in_flight < self._slots and not self._waiters:
            self.in_flight += 1
            return
        waiter = asyncio.get_running_loop().create_future()
        self._waiters.append(waiter)
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():  # granted as it was cancelled
                self.release()
            raise

    def release(self) -> None:
        """Give a slot back."""
        self.in_flight -= 1
        if self._waiters:
            self._wake()

    def succeeded(self) -> None:
        """A call succeeded: grow by ``1 / size``, up to ``maximum``."""
        if self.size < self.maximum:
            self.size = min(float(self.maximum), self.size + 1.0 / self.size)
            self._slots = int(self.size)
            if self._waiters:
                self._wake()

    def throttled(self, epoch: int) -> bool:
        """A call sent at ``epoch`` was refused for the endpoint's rate limit (a 429): halve
        the window, down to 1, unless it was decreased since that call was sent. Whether it
        decreased."""
        if epoch != self.epoch:
            return False
        self.epoch += 1
        self.size = max(1.0, self.size / 2)
        self._slots = int(self.size)
        return True

    def _wake(self) -> None:
        while self._waiters and self.in_flight < self._slots:
            waiter = self._waiters.popleft()
            if not waiter.done():  # a cancelled waiter is skipped
                self.in_flight += 1
                waiter.set_result(None)
