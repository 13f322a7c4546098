"""The ``openai/MODEL`` judge: any OpenAI-compatible chat-completions endpoint.

Works with OpenAI, vLLM, llama.cpp server, Ollama and the like. It speaks the chat-completions
protocol directly over :mod:`aiohttp` (one pooled session per event loop, bodies through
:mod:`orjson`): the ``openai`` SDK's HTTP stack cost several milliseconds of CPU per call, this
client a fraction of one. Per-judge options (keys of a ``judge:`` mapping in the suite; the
runner's keys such as ``max_concurrency``, ``timeout_s`` and ``max_attempts`` are taken out first
by the ``llm_judge`` criterion):

- ``base_url``: the endpoint (else ``OPENAI_BASE_URL``, else OpenAI's); one with credentials in
  it (``user:password@``, ``?api_key=``) is refused, since URLs are written with the suite;
- ``api_key_env``: the environment variable holding the key (else ``OPENAI_API_KEY``); keys are
  never written in suites. A custom ``base_url`` without any key sends a placeholder key, since
  local servers usually need none;
- ``headers``: header -> environment variable holding its value (Azure OpenAI's ``api-key``, a
  gateway's own); with them, ``OPENAI_API_KEY`` is sent only when ``api_key_env`` names it;
- ``query``: query parameters sent with every call (Azure OpenAI's ``api-version``);
- ``logprobs`` (default true) and ``top_logprobs``: ask for token log-probabilities;
- ``price_in_per_mtok`` / ``price_out_per_mtok``: USD per million tokens, to record cost;
  ``price_cached_input_per_mtok``: for the prompt tokens the endpoint served from its prefix
  cache (``usage.prompt_tokens_details.cached_tokens``; default: the input price).

With ``batch: true`` (see :mod:`harness.judges.batch`) the calls go through the endpoint's files
and batches API instead (:mod:`harness.judges.openai_batch`).

The backend never retries by itself: the runner does, with backoff. Errors map to
:class:`~harness.judges.base.JudgeError`: 408/409/429/5xx and connection errors are retryable
(with the server's ``Retry-After`` / ``retry-after-ms``), connection errors also count towards the
runner's circuit breaker; 401/403/404 raise :class:`~harness.judges.base.JudgeMisconfigured` (the
run stops); other 4xx are not retryable; a body that is not a chat completion is a
non-retryable error. An answer with no choices or no text (``content: null``) is a retryable
failure: it is never returned, so never cached. ``HTTP(S)_PROXY`` is honoured when set.
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING, Any

import aiohttp
import orjson
from pydantic import Field, ValidationError

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

if TYPE_CHECKING:
    from harness.judges.openai_batch import OpenAIBatchClient

PLACEHOLDER_KEY = "sk-no-key-needed"
OPENAI_URL = "https://api.openai.com/v1"
_PROXY_VARS = ("HTTPS_PROXY", "HTTP_PROXY", "ALL_PROXY", "https_proxy", "http_proxy", "all_proxy")


class OpenAIJudgeOptions(HTTPJudgeOptions):
    """Suite options of an ``openai/MODEL`` judge."""

    logprobs: bool = True
    """Request token log-probabilities (turn off for endpoints that reject them)."""
    top_logprobs: int | None = Field(default=None, ge=0, le=20)
    """Alternatives per token (default: the request's ``top_logprobs``)."""


class OpenAIBackend(JudgeBackend):
    """A chat model behind an OpenAI-compatible endpoint."""

    def __init__(self, model: str, options: dict[str, Any] | None = None):
        self.options = OpenAIJudgeOptions.model_validate(options or {})
        self.model = model
        self.name = f"openai/{model}"
        check_endpoint(self.name, self.options.base_url)
        if not self.options.base_url:
            check_endpoint(self.name, os.environ.get("OPENAI_BASE_URL"), "OPENAI_BASE_URL")
        self.base_url = self.options.base_url or os.environ.get("OPENAI_BASE_URL") or None
        extra_headers = self.options.header_values(self.name)
        self.query = self.options.query_params(self.name) if self.options.query else dict(
            base_query(self.base_url))
        """Query parameters sent with every call (``query``, and those of ``base_url``)."""
        # with `headers`, they authenticate: OPENAI_API_KEY is only sent when named
        key_env = self.options.api_key_env or (None if extra_headers else "OPENAI_API_KEY")
        api_key = os.environ.get(key_env) if key_env else None
        if not api_key:
            if self.options.api_key_env:
                raise JudgeError(f"judge {self.name}: environment variable {key_env} is not set")
            if not self.base_url:
                raise JudgeError(
                    f"judge {self.name}: set OPENAI_API_KEY (or api_key_env), or a base_url "
                    "for a local endpoint"
                )
            api_key = None if extra_headers else PLACEHOLDER_KEY
        base = without_query(self.base_url) if self.base_url else OPENAI_URL
        self.url = base.rstrip("/") + "/chat/completions"
        self._headers = {
            **({"Authorization": f"Bearer {api_key}"} if api_key else {}),
            "Content-Type": "application/json",
            "Accept": "application/json",
            **extra_headers,
        }
        self._sessions = PerLoopClients(self._new_session)

    def identity(self) -> dict[str, Any]:
        found: dict[str, Any] = {"name": self.name, "model": self.model,
                                 "base_url": self.base_url or "openai"}
        if self.options.query:  # only when set: the cache keys of other judges stay as they were
            found["query"] = self.query
        if self.options.headers:  # their names (the values are secrets)
            found["headers"] = sorted(self.options.headers)
        return found

    def _new_session(self) -> aiohttp.ClientSession:
        # No limit on connections (the runner's semaphore is the limit); timeouts are the
        # runner's too, so none here.
        connector = aiohttp.TCPConnector(limit=0, ttl_dns_cache=300)
        return aiohttp.ClientSession(
            connector=connector,
            headers=self._headers,
            timeout=aiohttp.ClientTimeout(total=None),
            trust_env=any(os.environ.get(v) for v in _PROXY_VARS),
            raise_for_status=False,
        )

    async def release(self) -> None:
        """Close the running event loop's session (before that loop ends)."""
        await self._sessions.release()

    async def aclose(self) -> None:
        """Close every session this backend opened."""
        await self._sessions.aclose()

    def has_prices(self) -> bool:
        return self.options.priced

    def batch_client(self) -> OpenAIBatchClient:
        """The endpoint's files and batches API (``batch: true``)."""
        from harness.judges.openai_batch import OpenAIBatchClient

        return OpenAIBatchClient(self)

    def body(self, request: JudgeRequest) -> bytes:
        """The JSON body of a request."""
        return orjson.dumps(self.payload(request))

    def payload(self, request: JudgeRequest) -> dict[str, Any]:
        """A request as the chat-completions body (a dict)."""
        payload: dict[str, Any] = {
            "model": self.model,
            "messages": request.messages,
            "max_tokens": request.max_tokens,
            "temperature": request.temperature,
        }
        if request.seed is not None:
            payload["seed"] = request.seed
        if self.options.logprobs:
            top = self.options.top_logprobs
            payload["logprobs"] = True
            payload["top_logprobs"] = request.top_logprobs if top is None else top
        return payload

    async def complete(self, request: JudgeRequest) -> JudgeResponse:
        session = await self._sessions.get()
        try:
            async with session.post(self.url, data=self.body(request),
                                    params=self.query or None) as resp:
                raw = await resp.read()
                status, headers = resp.status, resp.headers
        except aiohttp.ClientConnectionError as exc:  # refused, reset, DNS, disconnected
            raise JudgeError(
                f"cannot reach {self.name}: {type(exc).__name__}: {short(str(exc))}",
                retryable=True, connection=True,
            ) from exc
        except aiohttp.ClientPayloadError as exc:  # the body was cut off
            raise JudgeError(f"incomplete answer from {self.name}: {short(str(exc))}",
                             retryable=True, connection=True) from exc
        except aiohttp.ClientError as exc:  # an answer that is not HTTP
            raise JudgeError(f"bad answer from {self.name}: {type(exc).__name__}: "
                             f"{short(str(exc))}", retryable=True) from exc
        if status >= 400:
            raise status_error(self.name, status, _error_message(raw), headers)
        if status >= 300:
            raise JudgeError(f"HTTP {status} from {self.name}: {short(_error_message(raw))}")
        try:
            data = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            head = short(raw.decode(errors="replace"), 80)
            raise JudgeError(f"bad response from {self.name}: not JSON ({head!r})") from exc
        return self._to_response(data)

    def to_response(self, data: Any) -> JudgeResponse:
        """A chat-completion body (decoded) as a response; ``JudgeError`` if unusable."""
        return self._to_response(data)

    def _to_response(self, data: Any) -> JudgeResponse:
        if not isinstance(data, dict):
            raise JudgeError(f"malformed completion from {self.name}: not a JSON object")
        choices = data.get("choices")
        if not choices:
            raise JudgeError(f"{self.name} returned no choices", retryable=True)
        try:
            choice = choices[0]
            text = choice["message"].get("content")
            logprobs = choice.get("logprobs")
            content = logprobs.get("content") if logprobs else None
            usage = data.get("usage") or {}
            tokens_in = usage.get("prompt_tokens") or 0
            tokens_out = usage.get("completion_tokens") or 0
            cached = (usage.get("prompt_tokens_details") or {}).get("cached_tokens") or 0
            if not text:  # null or empty: nothing to parse (a refusal, a server hiccup)
                reason = choice.get("finish_reason")
                raise JudgeError(
                    f"{self.name} returned no text (content {text!r}, finish_reason {reason!r})",
                    retryable=True,
                )
            return JudgeResponse.model_validate({
                "text": text,
                "model": data.get("model") or self.model,
                "tokens": [
                    {"token": item["token"], "logprob": item["logprob"],
                     "top": {a["token"]: a["logprob"] for a in item.get("top_logprobs") or ()}}
                    for item in content
                ] if content else None,
                "tokens_in": tokens_in,
                "tokens_out": tokens_out,
                "tokens_cached": cached,
                "cost_usd": self.options.cost(tokens_in, tokens_out, cached),
            })
        except JudgeError:
            raise
        except (AttributeError, KeyError, TypeError, IndexError, ValidationError) as exc:
            raise JudgeError(
                f"malformed completion from {self.name}: {type(exc).__name__}: {short(str(exc))}"
            ) from exc


def _error_message(raw: bytes) -> str:
    """The ``error.message`` of an error body, else the body's text."""
    try:
        data = orjson.loads(raw)
        message = data["error"]["message"] if isinstance(data.get("error"), dict) else data
        return str(message)
    except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError):
        return raw.decode(errors="replace") or "(empty body)"


def make_openai_backend(model: str, options: dict[str, Any]) -> OpenAIBackend:
    """Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, llama.cpp, Ollama)."""
    return OpenAIBackend(model, options)
