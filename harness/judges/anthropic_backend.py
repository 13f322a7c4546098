"""The ``anthropic/MODEL`` judge: Claude models through the official ``anthropic`` SDK.

Options (keys of a ``judge:`` mapping): ``base_url`` (else ``ANTHROPIC_BASE_URL``),
``api_key_env`` (else ``ANTHROPIC_API_KEY``), ``price_in_per_mtok`` / ``price_out_per_mtok``,
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

from harness.judges.base import JudgeBackend, JudgeError, JudgeRequest, JudgeResponse
from harness.judges.http import HTTPJudgeOptions, PerLoopClients, status_error


class AnthropicJudgeOptions(HTTPJudgeOptions):
    """Suite options of an ``anthropic/MODEL`` judge."""

    send_temperature: bool = False
    """Send the request's ``temperature`` (older models only; newer ones reject it)."""


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
        self._clients = PerLoopClients(self._new_client)

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "base_url": self.base_url or "anthropic"}

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

        return AsyncAnthropic(api_key=self._api_key, base_url=self.base_url, max_retries=0,
                              timeout=None)

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
            kwargs["system"] = system
        try:
            message = await (await self._clients.get()).messages.create(**kwargs)
        except anthropic.APIStatusError as exc:
            raise status_error(self.name, exc.status_code, exc.message,
                               exc.response.headers) from exc
        except anthropic.APIConnectionError as exc:  # includes timeouts
            raise JudgeError(f"cannot reach {self.name}: {exc}", retryable=True,
                             connection=True) from exc
        except (anthropic.APIError, ValueError) as exc:
            raise JudgeError(f"bad response from {self.name}: {exc}") from exc
        text = "".join(
            getattr(block, "text", "") for block in message.content if block.type == "text"
        )
        if not text:  # nothing to parse; a later attempt may well answer (never cached)
            raise JudgeError(f"{self.name} returned no text", retryable=True)
        usage = message.usage
        tokens_in, tokens_out = usage.input_tokens or 0, usage.output_tokens or 0
        return JudgeResponse(
            text=text,
            model=message.model or self.model,
            tokens=None,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=self.options.cost(tokens_in, tokens_out),
        )


def make_anthropic_backend(model: str, options: dict[str, Any]) -> AnthropicBackend:
    """Claude models through the Anthropic API (no logprobs: scores come from the label)."""
    return AnthropicBackend(model, options)
