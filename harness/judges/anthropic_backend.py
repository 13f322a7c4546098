"""The ``anthropic/MODEL`` judge: Claude models through the official ``anthropic`` SDK.

Options (keys of a ``judge:`` mapping): ``base_url`` (else ``ANTHROPIC_BASE_URL``),
``api_key_env`` (else ``ANTHROPIC_API_KEY``), ``price_in_per_mtok`` / ``price_out_per_mtok``.
The Messages API returns no log-probabilities, so verdicts from this judge carry the parsed
label's score (``soft_source: label``). The SDK's retries are off; 408/409/429/5xx/529, timeouts
and connection errors are retryable, honouring ``Retry-After``.
"""

from __future__ import annotations

import asyncio
import os
import weakref
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from harness.judges.base import JudgeBackend, JudgeError, JudgeRequest, JudgeResponse
from harness.judges.openai_backend import parse_retry_after


class AnthropicJudgeOptions(BaseModel):
    """Suite options of an ``anthropic/MODEL`` judge."""

    model_config = ConfigDict(extra="forbid")

    base_url: str | None = None
    """API URL (default ``ANTHROPIC_BASE_URL`` or Anthropic's)."""
    api_key_env: str | None = None
    """Environment variable holding the API key (default ``ANTHROPIC_API_KEY``)."""
    price_in_per_mtok: float | None = Field(default=None, ge=0)
    """USD per million input tokens, to record cost."""
    price_out_per_mtok: float | None = Field(default=None, ge=0)
    """USD per million output tokens."""


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
        self.base_url = self.options.base_url or os.environ.get("ANTHROPIC_BASE_URL") or None
        key_env = self.options.api_key_env or "ANTHROPIC_API_KEY"
        self._api_key = os.environ.get(key_env)
        if not self._api_key:
            raise JudgeError(f"judge {self.name}: environment variable {key_env} is not set")
        self._clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, Any]
        self._clients = weakref.WeakKeyDictionary()

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "base_url": self.base_url or "anthropic"}

    def _client(self) -> Any:
        from anthropic import AsyncAnthropic

        loop = asyncio.get_running_loop()
        client = self._clients.get(loop)
        if client is None:
            client = AsyncAnthropic(
                api_key=self._api_key, base_url=self.base_url, max_retries=0, timeout=None
            )
            self._clients[loop] = client
        return client

    async def complete(self, request: JudgeRequest) -> JudgeResponse:
        import anthropic

        system = "\n\n".join(m["content"] for m in request.messages if m["role"] == "system")
        messages = [m for m in request.messages if m["role"] != "system"]
        kwargs: dict[str, Any] = {
            "model": self.model,
            "max_tokens": request.max_tokens,
            "messages": messages,
            "temperature": request.temperature,
        }
        if system:
            kwargs["system"] = system
        try:
            message = await self._client().messages.create(**kwargs)
        except anthropic.APIStatusError as exc:
            status = exc.status_code
            retryable = status in (408, 409, 429) or status >= 500
            raise JudgeError(
                f"HTTP {status} from {self.name}: {exc.message}",
                retryable=retryable,
                retry_after=parse_retry_after(exc.response.headers) if retryable else None,
            ) from exc
        except anthropic.APIConnectionError as exc:  # includes timeouts
            raise JudgeError(f"cannot reach {self.name}: {exc}", retryable=True) from exc
        except (anthropic.APIError, ValueError) as exc:
            raise JudgeError(f"bad response from {self.name}: {exc}") from exc
        text = "".join(
            getattr(block, "text", "") for block in message.content if block.type == "text"
        )
        usage = message.usage
        tokens_in, tokens_out = usage.input_tokens or 0, usage.output_tokens or 0
        cost = None
        opts = self.options
        if opts.price_in_per_mtok is not None or opts.price_out_per_mtok is not None:
            cost = (
                tokens_in * (opts.price_in_per_mtok or 0.0)
                + tokens_out * (opts.price_out_per_mtok or 0.0)
            ) / 1e6
        return JudgeResponse(
            text=text,
            model=message.model or self.model,
            tokens=None,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=cost,
        )


def make_anthropic_backend(model: str, options: dict[str, Any]) -> AnthropicBackend:
    """Factory for ``register_judge_backends``."""
    return AnthropicBackend(model, options)
