"""The ``anthropic/MODEL`` judge: Claude models through the official ``anthropic`` SDK.

Options (keys of a ``judge:`` mapping): ``base_url`` (else ``ANTHROPIC_BASE_URL``; one with
credentials in it is refused), ``api_key_env`` (else ``ANTHROPIC_API_KEY``), ``headers`` (header
-> environment variable holding its value; with them, the key is sent only when ``api_key_env``
names it), ``query`` (query parameters sent with every call), ``price_in_per_mtok`` /
``price_out_per_mtok``,
``send_temperature`` (default false: the Messages API deprecated ``temperature``, models from
Claude Opus 4.7 on answer 400 to it and SDK 2.x dropped the parameter; turn it on for older
models to make the criterion's ``temperature`` apply).
The Messages API returns no log-probabilities, so verdicts from this judge carry the parsed
label's score (``soft_source: label``). The SDK's retries are off; 408/409/429/5xx/529, timeouts
and connection errors are retryable, honouring ``Retry-After``; 401/403/404 stop the run
(:class:`~harness.judges.base.JudgeMisconfigured`).
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field

from harness.judges.base import JudgeBackend, JudgeError, JudgeRequest, JudgeResponse
from harness.judges.http import (
    HTTPJudgeOptions,
    PerLoopClients,
    base_query,
    check_endpoint,
    short,
    status_error,
    without_query,
)

PLACEHOLDER_KEY = "unused"
"""The SDK needs a key; with ``headers`` (and no key) they authenticate instead."""
CACHE_WRITE_FACTOR = 1.25
"""Anthropic's price of a five-minute prompt-cache write, relative to the input price."""


class AnthropicJudgeOptions(HTTPJudgeOptions):
    """Suite options of an ``anthropic/MODEL`` judge."""

    send_temperature: bool = False
    """Send the request's ``temperature`` (older models only; newer ones reject it)."""
    prompt_cache: bool = True
    """Mark the system message (the stable part of a judge prompt) for Anthropic's prompt
    cache."""
    price_cache_write_per_mtok: float | None = Field(default=None, ge=0)
    """USD per million prompt tokens written to the prompt cache (default: 1.25 times
    ``price_in_per_mtok``)."""

    def write_price(self) -> float:
        """USD per million tokens written to the prompt cache."""
        if self.price_cache_write_per_mtok is not None:
            return self.price_cache_write_per_mtok
        return CACHE_WRITE_FACTOR * (self.price_in_per_mtok or 0.0)


class AnthropicBackend(JudgeBackend):
    """A Claude model behind the Anthropic Messages API."""

    def __init__(self, model: str, options: dict[str, Any] | None = None):
        try:
            import anthropic  # noqa: F401
        except ImportError as exc:
            raise JudgeError("the anthropic judge needs the SDK: pip install anthropic") from exc
        self.options = AnthropicJudgeOptions.model_validate(options or {})
        self.model = model
        self.name = f"anthropic/{model}"
        check_endpoint(self.name, self.options.base_url)
        if not self.options.base_url:
            check_endpoint(self.name, os.environ.get("ANTHROPIC_BASE_URL"), "ANTHROPIC_BASE_URL")
        self.base_url = self.options.base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        self._headers = self.options.header_values(self.name)
        self.query = self.options.query_params(self.name) if self.options.query else dict(
            base_query(self.base_url))
        key_env = self.options.api_key_env or (None if self._headers else "ANTHROPIC_API_KEY")
        self._api_key = os.environ.get(key_env) if key_env else None
        if not self._api_key:
            if key_env:
                raise JudgeError(f"judge {self.name}: environment variable {key_env} is not "
                                 "set")
            self._api_key = PLACEHOLDER_KEY  # the headers authenticate
        self._clients = PerLoopClients(self._new_client)

    def identity(self) -> dict[str, Any]:
        found: dict[str, Any] = {"name": self.name, "model": self.model,
                                 "base_url": self.base_url or "anthropic"}
        if self.options.query:  # only when set: the cache keys of other judges stay as they were
            found["query"] = self.query
        if self.options.headers:  # their names (the values are secrets)
            found["headers"] = sorted(self.options.headers)
        return found

    def has_prices(self) -> bool:
        return self.options.priced

    async def release(self) -> None:
        """Close the running event loop's client (before that loop ends)."""
        await self._clients.release()

    async def aclose(self) -> None:
        """Close every client this backend opened."""
        await self._clients.aclose()

    def _new_client(self) -> Any:
        from anthropic import AsyncAnthropic

        return AsyncAnthropic(api_key=self._api_key,
                              base_url=without_query(self.base_url) if self.base_url else None,
                              max_retries=0, timeout=None,
                              default_headers=self._headers or None,
                              default_query=self.query or None)

    async def complete(self, request: JudgeRequest) -> JudgeResponse:
        import anthropic

        system = "\n\n".join(m["content"] for m in request.messages if m["role"] == "system")
        messages = [m for m in request.messages if m["role"] != "system"]
        kwargs: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "messages": messages,
        }
        if self.options.send_temperature:  # no longer a named parameter of the SDK's create()
            kwargs["extra_body"] = {"temperature": request.temperature}
        if system:
            kwargs["system"] = ([{"type": "text", "text": system,
                                  "cache_control": {"type": "ephemeral"}}]
                                if self.options.prompt_cache else system)
        try:
            message = await (await self._clients.get()).messages.create(**kwargs)
        except anthropic.APIStatusError as exc:
            raise status_error(self.name, exc.status_code, exc.message,
                               exc.response.headers) from exc
        except anthropic.APIConnectionError as exc:  # includes timeouts
            raise JudgeError(f"cannot reach {self.name}: {short(str(exc))}", retryable=True,
                             connection=True) from exc
        except (anthropic.APIError, ValueError) as exc:
            raise JudgeError(f"bad response from {self.name}: {short(str(exc))}") from exc
        text = "".join(
            getattr(block, "text", "") for block in message.content if block.type == "text"
        )
        if not text:  # nothing to parse; a later attempt may well answer (never cached)
            raise JudgeError(f"{self.name} returned no text", retryable=True)
        usage = message.usage
        read = getattr(usage, "cache_read_input_tokens", None) or 0
        written = getattr(usage, "cache_creation_input_tokens", None) or 0
        tokens_in = (usage.input_tokens or 0) + read + written  # every prompt token
        tokens_out = usage.output_tokens or 0
        cost = self.options.cost(tokens_in - written, tokens_out, read)
        if cost is not None and written:
            cost += written * self.options.write_price() / 1e6
        return JudgeResponse(
            text=text,
            model=message.model or self.model,
            tokens=None,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            tokens_cached=read,
            cost_usd=cost,
        )


def make_anthropic_backend(model: str, options: dict[str, Any]) -> AnthropicBackend:
    """Claude models through the Anthropic API (no logprobs: scores come from the label)."""
    return AnthropicBackend(model, options)
