"""One computation per key in flight: callers asking for the same key wait for it."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar, cast

T = TypeVar("T")

_ABANDONED = object()
"""What a computation in flight hands the callers waiting for it when it was cancelled."""


class SingleFlight:
    """Computations in flight by ``(event loop, key)`` (a future's waiters belong to its
    loop). Used for judge calls (one call per distinct prompt) and for the rubrics of one call."""

    def __init__(self) -> None:
        self._flights: dict[tuple[asyncio.AbstractEventLoop, str], asyncio.Future[Any]] = {}

    async def run(self, key: str, compute: Callable[[], Awaitable[T]]) -> tuple[T, bool]:
        """``compute()``'s outcome, and whether this caller computed it: a caller that finds
        the same key in flight on its event loop waits for that outcome instead (if that
        caller is cancelled, one of those waiting computes it for all)."""
        loop = asyncio.get_running_loop()
        slot = (loop, key)
        while (flight := self._flights.get(slot)) is not None:
            result = await asyncio.shield(flight)
            if result is not _ABANDONED:
                return cast(T, result), False
        flight = self._flights[slot] = loop.create_future()
        try:
            result = await compute()
        except asyncio.CancelledError:
            flight.set_result(_ABANDONED)  # the others ask again, one of them for all
            raise
        except BaseException as exc:
            flight.set_exception(exc)
            flight.exception()  # retrieved: no warning when no one else waited
            raise
        finally:
            del self._flights[slot]
        flight.set_result(result)
        return result, True
