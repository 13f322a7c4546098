"""The one retry policy of judge calls: live calls (the runner) and the batch client's requests.

A call is retried while it fails with a retryable :class:`~harness.judges.base.JudgeError`
(408/409/429/5xx, a reset, a timeout, an empty answer), up to ``max_attempts`` attempts. Before
each retry it sleeps the server's ``Retry-After`` (capped at ``max_retry_after_s``) plus
exponential backoff with full jitter. tenacity drives the attempts; the first one runs before
tenacity is involved (its per-call bookkeeping costs ~25 us of CPU, and most calls need no
retry), and is handed to it as attempt 1 when it failed, so tenacity's stop and wait see every
attempt.
"""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception, stop_after_attempt

from harness.judges.base import JudgeError, JudgeUnavailable

__all__ = ["RetryPolicy", "Retrying", "retryable"]

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
    breaker_after: int = Field(default=10, ge=1)
    """Failures in a row that open the circuit breaker: attempts that could not reach the
    endpoint (refused, reset, DNS, timeout), calls that failed after all their attempts."""
    breaker_cooldown_s: float = Field(default=30.0, ge=0)
    """How long an open breaker fails calls at once before letting one probe through."""


def retryable(exc: BaseException) -> bool:
    """Whether a failed attempt is worth another (a down endpoint's breaker error is not)."""
    return isinstance(exc, JudgeError) and exc.retryable and not isinstance(exc, JudgeUnavailable)


class Retrying:
    """Runs an attempt function under a :class:`RetryPolicy` (see the module docstring)."""

    def __init__(
        self,
        policy: RetryPolicy,
        *,
        rng: random.Random | None = None,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ) -> None:
        self.policy = policy
        self.sleep = sleep
        """How every wait is slept (tests may pass a fake clock)."""
        self._rng = rng or random.Random()
        self._tenacity = AsyncRetrying(
            stop=stop_after_attempt(policy.max_attempts), wait=self._wait,
            retry=retry_if_exception(retryable), sleep=sleep, reraise=True)

    def backoff(self, attempt: int, retry_after: float | None) -> float:
        """Seconds to sleep after failed attempt number ``attempt`` (1-based).

        Full jitter, uniform in [0, min(max_delay_s, base_delay_s * 2 ** (attempt - 1))], added
        to the server's ``Retry-After`` (capped at ``max_retry_after_s``) when it sent one, so
        calls told to wait the same time do not all come back at once.
        """
        policy = self.policy
        delay = self._rng.uniform(0, min(policy.max_delay_s,
                                         policy.base_delay_s * 2 ** (attempt - 1)))
        if retry_after is not None:
            delay += min(retry_after, policy.max_retry_after_s)
        return delay

    def _wait(self, state: RetryCallState) -> float:
        exc = state.outcome.exception() if state.outcome is not None else None
        return self.backoff(state.attempt_number, getattr(exc, "retry_after", None))

    async def __call__(
        self, attempt: Callable[..., Awaitable[T]], *args: Any, attempts: int | None = None
    ) -> T:
        """``await attempt(*args)``, retried; ``attempts`` overrides ``max_attempts``.

        Raises the last attempt's error once it is not retryable or the attempts are spent.
        """
        try:
            return await attempt(*args)
        except JudgeError as exc:
            if not retryable(exc):
                raise
            first: JudgeError | None = exc
        retrying = (self._tenacity.copy() if attempts is None
                    else self._tenacity.copy(stop=stop_after_attempt(attempts)))
        async for state in retrying:
            with state:
                if first is not None:  # attempt 1, made above: its failure, for tenacity
                    failed, first = first, None
                    raise failed
                return await attempt(*args)
        raise AssertionError("unreachable")  # pragma: no cover - tenacity returns or raises
