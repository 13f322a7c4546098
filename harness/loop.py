"""One event loop per engine, that every synchronous caller goes through.

Judge clients, semaphores and batchers are bound to the loop they first ran on, so an engine
owns one :class:`EngineLoop`: its decisions are computed there, and a criterion's synchronous
``evaluate`` runs its async work there (``context.loop.run(coro)``). The loop runs in the
thread that drives the engine (the main thread of a CLI run, so a python criterion's time limit
works), or in a helper thread when that thread already runs an event loop of its own (a
notebook, an async server). One thread drives an engine at a time. Nothing else creates a loop.
"""

from __future__ import annotations

import asyncio
import contextlib
import threading
from collections.abc import AsyncIterator, Coroutine, Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

T = TypeVar("T")


class EngineLoop:
    """An event loop made on first use and closed by :meth:`close`."""

    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None
        self._helper: ThreadPoolExecutor | None = None
        self._lock = threading.Lock()

    def _get(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None or self._loop.is_closed():
                self._loop = asyncio.new_event_loop()
            return self._loop

    def current(self) -> asyncio.AbstractEventLoop | None:
        """The loop, if it was made."""
        return self._loop

    def run(self, coro: Coroutine[Any, Any, T]) -> T:
        """Run ``coro`` on the loop until it is done (from synchronous code).

        An interrupt (Ctrl-C) cancels it and lets it unwind before it propagates."""
        loop = self._get()
        if loop.is_running():
            coro.close()
            raise RuntimeError("this engine's event loop is busy: a synchronous call from "
                               "code it is running (await the async API instead), or from a "
                               "second thread (use one engine per thread)")
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            return _until_complete(loop, coro)
        with self._lock:  # this thread runs another loop: drive ours from a helper thread
            if self._helper is None:
                self._helper = ThreadPoolExecutor(1, thread_name_prefix="harness-engine")
        return self._helper.submit(_until_complete, loop, coro).result()

    def iterate(self, agen: AsyncIterator[T]) -> Iterator[T]:
        """The items of an async generator run on the loop, for a synchronous caller."""
        try:
            while True:
                try:
                    yield self.run(_next(agen))
                except StopAsyncIteration:
                    return
        finally:
            self.run(_aclose(agen))

    async def relay(self, agen: AsyncIterator[T]) -> AsyncIterator[T]:
        """The items of an async generator run on the loop, for a caller on another loop."""
        try:
            while True:
                try:
                    yield await asyncio.to_thread(self.run, _next(agen))
                except StopAsyncIteration:
                    return
        finally:
            await asyncio.to_thread(self.run, _aclose(agen))

    def close(self, *closers: Coroutine[Any, Any, Any]) -> None:
        """Await ``closers`` on the loop (what is bound to it), then close it."""
        loop = self._loop
        if loop is None or loop.is_closed():
            for c in closers:
                c.close()
        else:
            async def finish() -> None:
                await asyncio.gather(*closers, return_exceptions=True)
                await loop.shutdown_asyncgens()

            self.run(finish())
            loop.close()
        if self._helper is not None:
            self._helper.shutdown(wait=True)
            self._helper = None


def _until_complete(loop: asyncio.AbstractEventLoop, coro: Coroutine[Any, Any, T]) -> T:
    task = loop.create_task(coro)
    try:
        return loop.run_until_complete(task)
    except BaseException:
        if not task.done():
            task.cancel()
            with contextlib.suppress(BaseException):
                loop.run_until_complete(task)
        raise


async def _next(agen: AsyncIterator[T]) -> T:
    return await agen.__anext__()


async def _aclose(agen: AsyncIterator[Any]) -> None:
    aclose = getattr(agen, "aclose", None)
    if aclose is not None:
        await aclose()
