"""The circuit breaker of one judge endpoint: stop calling an endpoint that keeps failing.

It counts failures in a row: an attempt that could not reach the endpoint (connection refused or
reset, DNS failure, timeout), or a call that failed after all its attempts (429, 5xx, an empty
answer, to the last attempt). After ``after`` of them the breaker opens: every call, including
those waiting to retry, fails at once with :class:`~harness.judges.base.JudgeUnavailable`
instead of spending its attempts. After ``cooldown_s`` one call may probe the endpoint; a success
closes the breaker, a failure keeps it open for another cooldown. A success ends a streak; so does
an answer that no retry would change (a 400 for one prompt: the endpoint is up).

A judge found misconfigured (:class:`~harness.judges.base.JudgeMisconfigured`: 401, 403, 404)
halts it for good: every later call fails at once with the same reason.
"""

from __future__ import annotations

import time

from harness.judges.base import JudgeMisconfigured, JudgeUnavailable
from harness.judges.http import short


class CircuitBreaker:
    """See the module docstring. One per judge runner; used from the runner's event loop(s)."""

    def __init__(self, judge: str, after: int, cooldown_s: float) -> None:
        self.judge = judge
        self.after = after
        self.cooldown_s = cooldown_s
        self._streak = 0
        self._reason: str | None = None  # why it opened, while open
        self._probe_at = 0.0  # monotonic time after which one probe may go through
        self._probing = False
        self._halted: str | None = None  # a misconfiguration: open for good

    @property
    def open(self) -> bool:
        """Whether calls currently fail at once."""
        return self._reason is not None or self._halted is not None

    def check(self, *, claim: bool) -> bool:
        """Raise :class:`JudgeUnavailable` while open; ``True`` if this attempt is the probe
        (with ``claim``, one attempt may probe once the cooldown is over)."""
        if self._halted is not None:
            raise JudgeMisconfigured(self._halted)
        if self._reason is None:
            return False
        if self._probing or time.monotonic() < self._probe_at:
            raise JudgeUnavailable(self._reason, connection=True)
        self._probing = claim
        return claim

    def probed(self) -> None:
        """The probe's attempt is over (whatever came of it)."""
        self._probing = False

    def failed(self, why: str) -> None:
        """One more failure in a row (see the module docstring); ``why`` is its message."""
        self._streak += 1
        if self._reason is None and self._streak >= self.after:
            self._reason = (f"judge {self.judge} is unavailable: {self._streak} failures in a "
                            f"row opened its circuit breaker (the last: {short(why, 200)})")
        if self._reason is not None:
            self._probe_at = time.monotonic() + self.cooldown_s

    def refused(self) -> None:
        """An answer worth retrying (429, 5xx): counted once the call has no attempt left,
        by :meth:`failed`; an open breaker's probe that gets one stays open."""
        if self._reason is not None:
            self._probe_at = time.monotonic() + self.cooldown_s

    def answered(self, *, success: bool) -> None:
        """The endpoint answered: a success closes the breaker; either ends a streak."""
        self._streak = 0
        if success:
            self._reason = None
        else:
            self.refused()

    def halt(self, reason: str) -> None:
        """Open for good: the judge is misconfigured (``reason`` says how)."""
        self._halted = reason
