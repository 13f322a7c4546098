"""Running judge coroutines from sync tests, each on a fresh event loop (closed cleanly)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Iterable
from typing import Any, TypeVar

T = TypeVar("T")


def arun(coro: Awaitable[T], *closing: Any) -> T:
    """Await ``coro`` on a fresh loop, then release what ``closing`` holds on that loop."""

    async def main() -> T:
        try:
            return await coro
        finally:
            for obj in closing:
                await obj.release()

    return asyncio.run(main())


def arun_all(coros: Iterable[Awaitable[Any]], *closing: Any) -> list[Any]:
    """Await ``coros`` concurrently on a fresh loop; exceptions take their result's place."""

    async def gather() -> list[Any]:
        return await asyncio.gather(*coros, return_exceptions=True)

    return arun(gather(), *closing)
