"""An actor's side of the cluster-wide judge windows and ledger (:mod:`harness_ray.coordinator`).

Each judge runner of an actor's engine gets a :class:`SharedWindow` in place of its adaptive
:class:`harness.judges.ratelimit.Window`: a call waits for one of the slots this actor holds,
and a slot freed goes to the next call waiting here, with no round trip. The actor's
:class:`Link` talks to the coordinator in the background, on the engine's event loop: it asks
for slots when calls wait for one, gives back the slots it no longer needs (or holds beyond its
share, once others ask), and reports what the judge calls cost.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections import deque
from typing import Any

from harness.judges.base import JudgeUnavailable

PERIOD_S = 0.05
"""How often an actor that holds slots (or has calls waiting, or unreported cost) syncs."""


class SharedWindow:
    """One judge's in-flight window on this actor (an ``InFlight`` of the runner): its size is
    the coordinator's share, not narrowed by a 429 (the runner's retries and
    ``Retry-After`` pauses still apply)."""

    epoch = 0

    def __init__(self, link: Link, key: str, capacity: int) -> None:
        self.link = link
        self.key = key
        self.capacity = capacity
        self.held = 0
        """Slots the coordinator gave this actor."""
        self.busy = 0
        """Slots in use by a call."""
        self.share = capacity
        """The share of the window this actor should keep to (the coordinator's last word)."""
        self.fresh = True
        self.waiters: deque[asyncio.Future[None]] = deque()
        link.windows[key] = self

    async def acquire(self) -> None:
        if self.link.failure is not None:
            raise self.link.failure
        await self._acquire()
        try:
            await self.link.before_call()
        except BaseException:
            self.release()
            raise

    async def _acquire(self) -> None:
        if self.busy < self.usable and not self.waiters:
            self.busy += 1
            return
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.waiters.append(waiter)
        self.link.wake()
        try:
            await waiter
        except asyncio.CancelledError:
            if waiter.done() and not waiter.cancelled():
                self.release()  # handed a slot just as it was cancelled
            else:
                with contextlib.suppress(ValueError):
                    self.waiters.remove(waiter)
            raise

    async def __aenter__(self) -> None:
        await self.acquire()

    async def __aexit__(self, *exc: object) -> None:
        self.release()

    def succeeded(self) -> None:
        """Nothing to widen: the coordinator sizes the share."""

    def throttled(self, epoch: int) -> bool:
        return False

    @property
    def usable(self) -> int:
        return min(self.held, self.share)

    def release(self) -> None:
        self.busy -= 1
        self.hand_out()

    def hand_out(self) -> None:
        """Free slots to the calls waiting, within this actor's share."""
        while self.waiters and self.busy < self.usable:
            waiter = self.waiters.popleft()
            if not waiter.done():
                self.busy += 1
                waiter.set_result(None)

    def fail(self, exc: BaseException) -> None:
        while self.waiters:
            waiter = self.waiters.popleft()
            if not waiter.done():
                waiter.set_exception(exc)

    @property
    def wanting(self) -> bool:
        """Calls wait and no slot is free for them here."""
        return bool(self.waiters) and self.busy >= self.usable

    @property
    def active(self) -> bool:
        return self.held > 0 or bool(self.waiters)

    def report(self) -> tuple[int, int, int, bool]:
        """``(capacity, demand, returned, fresh)`` for a sync; the slots returned are no longer
        held (idle ones, and those beyond the share once they are idle)."""
        demand = self.busy + len(self.waiters)
        keep = max(self.busy, min(self.share, demand))
        returned = max(0, self.held - keep)
        self.held -= returned
        fresh, self.fresh = self.fresh, False
        return self.capacity, min(demand, self.capacity), returned, fresh

    def granted(self, grant: int, share: int) -> None:
        self.held += grant
        self.share = share
        self.hand_out()


class Link:
    """This actor's conversation with the coordinator (see the module doc)."""

    def __init__(self, coordinator: Any, actor: str) -> None:
        self.coordinator = coordinator
        self.actor = actor
        self.windows: dict[str, SharedWindow] = {}
        self.total = 0.0
        """What the cluster had spent at the last sync."""
        self.sending = 0.0
        """Cost reported by the sync in flight."""
        self.unreported = 0.0
        self.budget: Any = None
        """The actor's :class:`~harness_ray.budget.ClusterBudget`, if any."""
        self._wanted: asyncio.Event | None = None
        self._pump: asyncio.Task[None] | None = None
        self._syncing: asyncio.Task[None] | None = None
        self.failure: BaseException | None = None

    @property
    def spent(self) -> float:
        """The cluster's spending as this actor knows it."""
        return self.total + self.sending + self.unreported

    @property
    def capacity(self) -> int:
        return sum(w.capacity for w in self.windows.values())

    def spend(self, cost: float) -> None:
        self.unreported += cost
        self.wake()

    def wake(self) -> None:
        """Sync now (on the running loop), unless a sync is already on its way."""
        if self._pump is None or self._pump.done():
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # no loop here: the next sync of the engine's loop reports
                return
            self._wanted = asyncio.Event()
            self._pump = loop.create_task(self.pump())
        self._wanted.set()  # type: ignore[union-attr]

    async def before_call(self) -> None:
        """Before a judge call starts (its slot taken): near the cost limit, a fresh total."""
        if self.budget is not None and self.budget.near():
            if self._syncing is not None and not self._syncing.done():
                await asyncio.shield(self._syncing)  # it may have left before the last report
            await self.sync()

    async def pump(self) -> None:
        assert self._wanted is not None
        while True:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wanted.wait(), PERIOD_S)
            self._wanted.clear()
            if self.unreported or any(w.active for w in self.windows.values()):
                await self.sync()

    async def sync(self) -> None:
        """One exchange with the coordinator (or the one in flight, if any)."""
        if self._syncing is None or self._syncing.done():
            self._syncing = asyncio.get_running_loop().create_task(self._exchange())
        await asyncio.shield(self._syncing)

    async def _exchange(self) -> None:
        report = {key: w.report() for key, w in self.windows.items()}
        self.sending, self.unreported = self.unreported, 0.0
        try:
            reply, total = await self.coordinator.sync.remote(self.actor, report, self.sending)
        except Exception as exc:  # noqa: BLE001 - every judge call of the actor stops on it
            self.failure = JudgeUnavailable(f"the Ray run's coordinator is gone ({exc})",
                                            retryable=False, connection=True)
            for window in self.windows.values():
                window.fail(self.failure)
            return
        finally:
            self.sending = 0.0
        self.total = max(self.total, total)
        for key, (grant, share) in reply.items():
            self.windows[key].granted(grant, share)

    async def finish(self) -> None:
        """At the end of a block: everything back to the coordinator, costs reported."""
        if self._syncing is not None and not self._syncing.done():
            await asyncio.shield(self._syncing)
        for window in self.windows.values():
            window.share = 0
        if self.unreported or any(w.held for w in self.windows.values()):
            await self.sync()
