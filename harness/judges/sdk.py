"""What the SDK-backed judges (``openai``, ``anthropic``) share: options, errors, clients."""

from __future__ import annotations

import asyncio
import email.utils
import time
import weakref
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from harness.judges.base import JudgeError


class SDKJudgeOptions(BaseModel):
    """Suite options every SDK-backed judge accepts."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    """API URL (default: the SDK's environment variable, else the vendor's)."""
    api_key_env: str | None = None
    """Environment variable holding the API key (keys are never written in suites)."""
    price_in_per_mtok: float | None = Field(default=None, ge=0)
    """USD per million prompt tokens, to record cost."""
    price_out_per_mtok: float | None = Field(default=None, ge=0)
    """USD per million completion tokens."""

    def cost(self, tokens_in: int, tokens_out: int) -> float | None:
        """The call's cost, when prices are given."""
        if self.price_in_per_mtok is None and self.price_out_per_mtok is None:
            return None
        return (tokens_in * (self.price_in_per_mtok or 0.0)
                + tokens_out * (self.price_out_per_mtok or 0.0)) / 1e6


def parse_retry_after(headers: Any) -> float | None:
    """Seconds from ``retry-after-ms`` or ``Retry-After`` (seconds or an HTTP date)."""
    if headers is None:
        return None
    value = headers.get("retry-after-ms")
    if value:
        try:
            return max(0.0, float(value) / 1000.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - time.time())


def status_error(judge: str, status: int, message: str, headers: Any) -> JudgeError:
    """An HTTP error as a :class:`JudgeError`: 408/409/429/5xx retryable, with Retry-After."""
    retryable = status in (408, 409, 429) or status >= 500
    return JudgeError(
        f"HTTP {status} from {judge}: {short(message)}",
        retryable=retryable,
        retry_after=parse_retry_after(headers) if retryable else None,
    )


def short(message: str, limit: int = 300) -> str:
    """One line of at most ``limit`` characters."""
    message = " ".join(str(message).split())
    return message if len(message) <= limit else message[: limit - 1] + "…"


class PerLoopClients:
    """One SDK client per event loop: a client's connections are bound to the loop they ran on."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make = make
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any] = (
            weakref.WeakKeyDictionary())

    def get(self) -> Any:
        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = self._clients[loop] = self._make()
        return client
