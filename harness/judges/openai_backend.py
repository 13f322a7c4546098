"""The ``openai/MODEL`` judge: any OpenAI-compatible chat-completions endpoint.

Works with OpenAI, vLLM, llama.cpp server, Ollama and the like through the official ``openai``
SDK (``pip install 'review-harness[judges]'``). Per-judge options (keys of a ``judge:`` mapping in
the suite; the runner's ``max_concurrency``, ``timeout_s`` and ``max_attempts`` are taken out
first by the ``llm_judge`` criterion):

- ``base_url``: the endpoint (else ``OPENAI_BASE_URL``, else OpenAI's);
- ``api_key_env``: the environment variable holding the key (else ``OPENAI_API_KEY``); keys are
  never written in suites. A custom ``base_url`` without any key sends a placeholder key, since
  local servers usually need none;
- ``logprobs`` (default true) and ``top_logprobs``: ask for token log-probabilities;
- ``price_in_per_mtok`` / ``price_out_per_mtok``: USD per million tokens, to record cost.

The SDK's own retries are off (``max_retries=0``): the runner retries with backoff. Errors map to
:class:`~harness.judges.base.JudgeError`: 408/409/429/5xx, timeouts and connection errors are
retryable (with the server's ``Retry-After`` / ``retry-after-ms``), other 4xx are not.
"""

from __future__ import annotations

import os
from typing import Any

from pydantic import Field

from harness.judges.base import (
    JudgeBackend,
    JudgeError,
    JudgeRequest,
    JudgeResponse,
    TokenLogprob,
)
from harness.judges.sdk import (
    PerLoopClients,
    SDKJudgeOptions,
    short,
    status_error,
)

PLACEHOLDER_KEY = "sk-no-key-needed"


class OpenAIJudgeOptions(SDKJudgeOptions):
    """Suite options of an ``openai/MODEL`` judge."""

    logprobs: bool = True
    """Request token log-probabilities (turn off for endpoints that reject them)."""
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    """Alternatives per token (default: the request's ``top_logprobs``)."""


class OpenAIBackend(JudgeBackend):
    """A chat model behind an OpenAI-compatible endpoint."""

    def __init__(self, model: str, options: dict[str, Any] | None = None):
        try:
            import openai  # noqa: F401
        except ImportError as exc:  # pragma: no cover - depends on the install
            raise JudgeError(
                "the openai judge needs the SDK: pip install 'review-harness[judges]'"
            ) from exc
        self.options = OpenAIJudgeOptions.model_validate(options or {})
        self.model = model
        self.name = f"openai/{model}"
        self.base_url = self.options.base_url or os.environ.get("OPENAI_BASE_URL") or None
        key_env = self.options.api_key_env or "OPENAI_API_KEY"
        self._api_key = os.environ.get(key_env)
        if not self._api_key:
            if self.options.api_key_env:
                raise JudgeError(f"judge {self.name}: environment variable {key_env} is not set")
            if not self.base_url:
                raise JudgeError(
                    f"judge {self.name}: set OPENAI_API_KEY (or api_key_env), or a base_url "
                    "for a local endpoint"
                )
            self._api_key = PLACEHOLDER_KEY
        self._clients = PerLoopClients(self._new_client)

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "model": self.model, "base_url": self.base_url or "openai"}

    def _new_client(self) -> Any:
        from openai import AsyncOpenAI

        return AsyncOpenAI(api_key=self._api_key, base_url=self.base_url, max_retries=0,
                           timeout=None)

    async def complete(self, request: JudgeRequest) -> JudgeResponse:
        import openai
        from openai.types.chat import ChatCompletion

        kwargs: dict[str, Any] = {
            "model": self.model,
            "messages": request.messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        if request.seed is not None:
            kwargs["seed"] = request.seed
        if self.options.logprobs:
            kwargs["logprobs"] = True
            top = self.options.top_logprobs
            kwargs["top_logprobs"] = request.top_logprobs if top is None else top
        try:
            # The SDK's low-level ``post`` (its documented way to call any endpoint) sends the
            # body as is: ``chat.completions.create`` would first run its typed-params transform,
            # which costs more CPU than the rest of the call. Errors, parsing and the response
            # type are the SDK's own either way.
            completion = await self._clients.get().post(
                "/chat/completions", body=kwargs, cast_to=ChatCompletion
            )
        except openai.APIStatusError as exc:
            raise status_error(self.name, exc.status_code, exc.message,
                               exc.response.headers) from exc
        except openai.APITimeoutError as exc:
            raise JudgeError(f"{self.name} timed out", retryable=True) from exc
        except openai.APIConnectionError as exc:
            raise JudgeError(f"cannot reach {self.name}: {exc}", retryable=True) from exc
        except (openai.APIError, ValueError) as exc:  # malformed bodies (not JSON, wrong shape)
            raise JudgeError(f"bad response from {self.name}: {short(str(exc))}") from exc
        try:
            return self._to_response(completion)
        except (AttributeError, TypeError, ValueError, IndexError) as exc:
            raise JudgeError(f"malformed completion from {self.name}: {exc}") from exc

    def _to_response(self, completion: Any) -> JudgeResponse:
        if not getattr(completion, "choices", None):
            raise JudgeError(f"{self.name} returned no choices", retryable=True)
        choice = completion.choices[0]
        text = choice.message.content or ""
        tokens = None
        content = getattr(getattr(choice, "logprobs", None), "content", None)
        if content:
            tokens = [
                TokenLogprob(
                    token=item.token,
                    logprob=item.logprob,
                    top={alt.token: alt.logprob for alt in (item.top_logprobs or [])},
                )
                for item in content
            ]
        usage = getattr(completion, "usage", None)
        tokens_in = getattr(usage, "prompt_tokens", 0) or 0
        tokens_out = getattr(usage, "completion_tokens", 0) or 0
        return JudgeResponse(
            text=text,
            model=getattr(completion, "model", None) or self.model,
            tokens=tokens,
            tokens_in=tokens_in,
            tokens_out=tokens_out,
            cost_usd=self.options.cost(tokens_in, tokens_out),
        )


def make_openai_backend(model: str, options: dict[str, Any]) -> OpenAIBackend:
    """Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, llama.cpp, Ollama)."""
    return OpenAIBackend(model, options)
