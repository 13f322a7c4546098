"""The judge backend protocol: what an ``llm_judge`` criterion asks of a model.

A backend talks to one model. It only has to implement :meth:`JudgeBackend.complete`; retries,
timeouts, concurrency limits and caching are applied around it by the core, so a backend raises
:class:`JudgeError` (``retryable=True`` for 429/5xx/timeouts, with ``retry_after`` when the server
sent one, ``connection=True`` when the endpoint could not be reached or did not answer in time)
and never retries by itself. When an endpoint keeps failing, the runner's circuit breaker opens
and calls raise :class:`JudgeUnavailable` at once; an answer that says the judge is misconfigured
(401, 403, 404) raises :class:`JudgeMisconfigured`, which stops the run at once.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field

if TYPE_CHECKING:
    from harness.judges.batch import BatchClient


class JudgeRequest(BaseModel):
    """One chat completion the judge is asked for."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    messages: list[dict[str, str]]
    """Chat messages, each ``{"role": ..., "content": ...}``."""
    max_tokens: int = 512
    """Upper bound on generated tokens."""
    temperature: float = 0.0
    """Sampling temperature; 0 is greedy."""
    seed: int | None = None
    """Sampling seed, where the backend supports one (also the repeat index for the cache)."""
    top_logprobs: int = 5
    """How many alternatives per generated token to return with log-probabilities."""


class TokenLogprob(BaseModel):
    """One generated token with its log-probability and the top alternatives at its position."""

    token: str
    """The token's text."""
    logprob: float
    """Natural log-probability of this token."""
    top: dict[str, float] = Field(default_factory=dict)
    """Alternative token texts at this position with their log-probabilities."""


class JudgeResponse(BaseModel):
    """What a backend returns for one request."""

    text: str
    """The generated text."""
    model: str
    """The model that answered, as the backend names it."""
    tokens: list[TokenLogprob] | None = None
    """Per generated token log-probabilities, when the backend returns them."""
    tokens_in: int = 0
    """Prompt tokens billed."""
    tokens_out: int = 0
    """Completion tokens billed."""
    tokens_cached: int = 0
    """Of ``tokens_in``, those served from the provider's prompt-prefix cache."""
    cost_usd: float | None = None
    """Cost of the call, when known (cached prompt tokens at the cached price)."""


class JudgeError(Exception):
    """A judge call failed. ``retryable`` failures are retried with backoff by the core.

    ``connection`` marks failures to reach the endpoint at all (refused, reset, DNS, timeout):
    they feed the runner's circuit breaker.
    """

    def __init__(
        self,
        message: str,
        *,
        retryable: bool = False,
        retry_after: float | None = None,
        connection: bool = False,
    ):
        super().__init__(message)
        self.retryable = retryable
        self.retry_after = retry_after
        self.connection = connection


class JudgeRateLimited(JudgeError):
    """The endpoint refused the call for its rate limit (HTTP 429): retried after its
    ``Retry-After``, and the runner narrows its window of calls in flight."""


class JudgeUnavailable(JudgeError):
    """The judge's endpoint is down (the runner's circuit breaker is open).

    Not a verdict on a transcript: ``llm_judge`` lets it propagate so the engine can stop the
    run, which is resumable once the endpoint is back.
    """

    @property
    def stop_reason(self) -> str:
        """What a stopped run's summary says."""
        return f"judge unavailable: {self}"


class JudgeMisconfigured(JudgeUnavailable):
    """The endpoint refused the judge's call as no retry would change (HTTP 401, 403, 404): a
    wrong key, ``base_url`` or model. Every call would be refused alike, so the run stops at the
    first one (resumable once fixed); the message names the judge, the status and what to
    check."""

    @property
    def stop_reason(self) -> str:
        """What a stopped run's summary says."""
        return f"judge misconfigured: {self}"


class JudgeBackend(ABC):
    """One model behind one endpoint."""

    name: str = ""
    """The judge's full name, ``PREFIX/MODEL``."""
    max_concurrency: int = 8
    """Calls in flight at once (a suite's ``max_concurrency`` overrides it)."""
    follows_verdict_format: bool = True
    """Whether the model ends its answers with ``VERDICT: <label>`` as asked; when not, a
    criterion using it without ``mode: choice`` warns at start."""

    @abstractmethod
    async def complete(self, request: JudgeRequest) -> JudgeResponse:
        """Run one chat completion. Raise :class:`JudgeError` on failure."""

    async def continuation_logprobs(
        self, request: JudgeRequest, prefix: str, continuations: list[str]
    ) -> list[float] | None:
        """Exact ``log P(continuation | request.messages, assistant text so far = prefix)``.

        Summed over each continuation's whole token sequence. Backends that cannot score
        arbitrary continuations (hosted APIs) return ``None``; the caller then works from
        :attr:`JudgeResponse.tokens`.
        """
        return None

    def identity(self) -> dict[str, Any]:
        """What identifies this backend's answers in the cache (model, endpoint, ...)."""
        return {"name": self.name}

    def has_prices(self) -> bool:
        """Whether answers carry their cost (hosted judges need prices; local ones are free)."""
        return True

    def batch_client(self) -> BatchClient | None:
        """The endpoint's batch API (``batch: true``), or ``None`` when it has none."""
        return None

    async def release(self) -> None:  # noqa: B027 - optional hook, nothing to close by default
        """Close what is bound to the running event loop (connections), before it ends."""

    async def aclose(self) -> None:  # noqa: B027 - optional hook, nothing to close by default
        """Close everything the backend holds (the run is over)."""
