"""What the HTTP judges (``openai``, ``anthropic``) share: options, errors, per-loop clients."""

from __future__ import annotations

import asyncio
import email.utils
import os
import re
import time
import weakref
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field

from harness.judges.base import JudgeError, JudgeMisconfigured, JudgeRateLimited
from harness.redact import is_secret_param, redact_text, redact_url, url_secrets


class HTTPJudgeOptions(BaseModel):
    """Suite options every HTTP judge accepts."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    """API URL (default: the SDK's environment variable, else the vendor's)."""
    api_key_env: str | None = None
    """Environment variable holding the API key (keys are never written in suites)."""
    price_in_per_mtok: float | None = Field(default=None, ge=0)
    """USD per million prompt tokens, to record cost."""
    price_out_per_mtok: float | None = Field(default=None, ge=0)
    """USD per million completion tokens."""
    price_cached_input_per_mtok: float | None = Field(default=None, ge=0)
    """USD per million prompt tokens served from the provider's prompt-prefix cache (default:
    ``price_in_per_mtok``, as if nothing were cached)."""
    headers: dict[str, str] = Field(default_factory=dict)
    """Headers sent with every call: header name -> the environment variable holding its value
    (``{api-key: AZURE_OPENAI_KEY}``); values are read at load and never written anywhere."""
    query: dict[str, str] = Field(default_factory=dict)
    """Query parameters sent with every call (``{api-version: "2024-10-21"}``); written in
    ``run.json`` like the rest of the suite, so a secret-looking name is refused."""

    def header_values(self, judge: str) -> dict[str, str]:
        """The ``headers`` with their values read from the environment; :class:`JudgeError`
        naming every variable that is not set."""
        values, missing = {}, []
        for header, env in self.headers.items():
            if not _HEADER_NAME.fullmatch(header):
                raise JudgeError(f"judge {judge}: headers: {header!r} is not a header name")
            value = os.environ.get(env)
            if value is None:
                missing.append(f"{env} (for header {header})")
            else:
                values[header] = value
        if missing:
            raise JudgeError(f"judge {judge}: headers: environment variable(s) not set: "
                             f"{', '.join(missing)}; `headers` maps a header to the variable "
                             "holding its value")
        return values

    def query_params(self, judge: str) -> dict[str, str]:
        """The ``query`` parameters (merged after those of ``base_url``); :class:`JudgeError`
        for a secret-looking one (it would be written with the suite)."""
        params = dict(base_query(self.base_url))
        params.update(self.query)
        secret = [name for name in self.query if is_secret_param(name)]
        if secret:
            raise JudgeError(f"judge {judge}: query: {', '.join(map(repr, secret))} looks like "
                             "a secret, and `query` is written into run.json; send it as a "
                             "header whose value comes from an environment variable instead: "
                             "headers: {HEADER: ENV_VAR}")
        return params

    @property
    def priced(self) -> bool:
        """Whether a price is set (else ``cost_usd`` stays empty)."""
        return (self.price_in_per_mtok is not None or self.price_out_per_mtok is not None
                or self.price_cached_input_per_mtok is not None)

    def cost(self, tokens_in: int, tokens_out: int, tokens_cached: int = 0) -> float | None:
        """The call's cost, when prices are given: of ``tokens_in`` prompt tokens,
        ``tokens_cached`` at the cached price, the rest at the input price."""
        if not self.priced:
            return None
        price_in = self.price_in_per_mtok or 0.0
        cached = min(tokens_cached, tokens_in)
        price_cached = (price_in if self.price_cached_input_per_mtok is None
                        else self.price_cached_input_per_mtok)
        return ((tokens_in - cached) * price_in + cached * price_cached
                + tokens_out * (self.price_out_per_mtok or 0.0)) / 1e6


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")


def check_endpoint(judge: str, url: str | None, where: str = "base_url") -> None:
    """:class:`JudgeError` when ``url`` carries credentials (``user:password@``, a
    secret-looking query parameter): they would be written wherever the URL is, and aiohttp
    cannot send URL credentials beside the key. The message shows the URL redacted."""
    found = url_secrets(url) if url else []
    if not found:
        return
    what = ", ".join("user:password@" if f == "userinfo" else f"query parameter {f!r}"
                     for f in found)
    raise JudgeError(
        f"judge {judge}: {where} {redact_url(url or '')} carries credentials ({what}); a URL is "
        "written into run.json and report.html, so harness refuses them there: keep the key in "
        "an environment variable and name it with api_key_env (sent as a bearer token), or send "
        "it as a header read from an environment variable: headers: {HEADER: ENV_VAR}")


def base_query(url: str | None) -> list[tuple[str, str]]:
    """The query parameters written in a ``base_url`` (sent with every call)."""
    return parse_qsl(urlsplit(url).query, keep_blank_values=True) if url else []


def without_query(url: str) -> str:
    """``url`` without its query string and fragment."""
    return urlunsplit(urlsplit(url)._replace(query="", fragment=""))


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


def is_retryable_status(status: int) -> bool:
    """408/409/429 and 5xx are worth retrying; other 4xx are not."""
    return status in (408, 409, 429) or status >= 500


MISCONFIGURED = {
    401: "check its API key (the variable api_key_env names)",
    403: "check that its API key may use this model and endpoint",
    404: "check its base_url (the API root, e.g. ending in /v1) and its model name",
}
"""Statuses that say the judge is misconfigured, and what to check."""


def status_error(judge: str, status: int, message: str, headers: Any) -> JudgeError:
    """An HTTP error as a :class:`JudgeError`: 408/409/429/5xx retryable, with Retry-After (429 a
    :class:`JudgeRateLimited`); 401/403/404 a :class:`JudgeMisconfigured` (no call of this judge
    can succeed)."""
    if status in MISCONFIGURED:
        return JudgeMisconfigured(f"HTTP {status} from {judge} ({short(message, 120)}): "
                                  f"{MISCONFIGURED[status]}")
    retryable = is_retryable_status(status)
    return (JudgeRateLimited if status == 429 else JudgeError)(
        f"HTTP {status} from {judge}: {short(message)}",
        retryable=retryable,
        retry_after=parse_retry_after(headers) if retryable else None,
    )


def short(message: str, limit: int = 300) -> str:
    """One line of at most ``limit`` characters, URLs in it redacted."""
    message = redact_text(" ".join(str(message).split()))
    return message if len(message) <= limit else message[: limit - 1] + "…"


class PerLoopClients:
    """One client per event loop: a client's connections are bound to the loop they ran on.

    ``make()`` builds a client; ``close_client(client)`` is awaited to close one (its
    ``close()`` by default). A client is closed, on its own loop, when that loop shuts down its
    async generators (``asyncio.run`` and the engine's loops do, before closing), or earlier by
    :meth:`release` (the running loop's client) or :meth:`aclose` / :meth:`close` (all).
    """

    def __init__(
        self,
        make: Callable[[], Any],
        close_client: Callable[[Any], Awaitable[Any]] | None = None,
    ) -> None:
        self._make = make
        self._close_client = close_client or (lambda client: client.close())
        # loop -> (client, guard): the guard is an async generator registered with the loop,
        # whose ``finally`` closes the client when the loop finalises its async generators.
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, tuple[Any, Any]] = (
            weakref.WeakKeyDictionary())

    async def get(self) -> Any:
        """The running loop's client (built on first use)."""
        loop = asyncio.get_running_loop()
        entry = self._clients.get(loop)
        if entry is None:
            client = self._make()
            guard = self._guard(client)
            await guard.__anext__()  # registers it with the loop's async-generator hooks
            entry = self._clients[loop] = (client, guard)
        return entry[0]

    async def _guard(self, client: Any) -> AsyncIterator[None]:
        try:
            yield
        finally:
            await self._close_client(client)

    async def release(self) -> None:
        """Close the running loop's client, if any."""
        entry = self._clients.pop(asyncio.get_running_loop(), None)
        if entry is not None:
            await entry[1].aclose()

    def _take_all(self) -> list[tuple[asyncio.AbstractEventLoop, tuple[Any, Any]]]:
        items = list(self._clients.items())
        self._clients.clear()
        return items

    async def aclose(self) -> None:
        """Close every client: the running loop's here, other running loops' on their loop
        (clients of loops that are not running were closed with them, or cannot be)."""
        running = asyncio.get_running_loop()
        for loop, (_, guard) in self._take_all():
            if loop is running:
                await guard.aclose()
            elif loop.is_running():
                asyncio.run_coroutine_threadsafe(guard.aclose(), loop)

    def close(self) -> None:
        """Close every client from sync code (see :meth:`aclose`)."""
        for loop, (_, guard) in self._take_all():
            if loop.is_closed():
                continue
            if loop.is_running():
                asyncio.run_coroutine_threadsafe(guard.aclose(), loop)
            else:
                loop.run_until_complete(guard.aclose())
