"""The generator and the supervisor: models named and configured exactly like judges.

A value is ``PREFIX/MODEL`` or a mapping ``{name: PREFIX/MODEL, <options>}``; the backend comes
from the judge backends registry (``openai/...``, ``anthropic/...``, the embedded ``local/...``),
the runner keys (``max_concurrency``, ``timeout_s``, ``max_attempts``, ...) configure a
:class:`~harness.judges.runner.JudgeRunner` and the rest goes to the backend. Every call goes
through that runner: cached in the run's judge cache, concurrent up to ``max_concurrency``,
retried with backoff, behind a circuit breaker, and its tokens and cost are counted.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from harness.errors import UsageError
from harness.judges.base import JudgeRequest, JudgeResponse, TokenLogprob
from harness.judges.cache import JudgeCache
from harness.judges.ratelimit import RATE_KEYS, RateLimits
from harness.judges.runner import JudgeRunner, RetryPolicy
from harness.plugins import Registry
from harness_criteria.llm_judge import RETRY_KEYS, RUNNER_KEYS, judge_name

AgentValue = str | dict[str, Any]


@dataclass
class Usage:
    """What one agent's calls cost, for the summary."""

    calls: int = 0
    """Calls answered (cache hits included)."""
    cached: int = 0
    """Calls answered from the cache (no request sent)."""
    tokens_in: int = 0
    tokens_out: int = 0
    cost_usd: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {"calls": self.calls, "cached": self.cached, "tokens_in": self.tokens_in,
                "tokens_out": self.tokens_out, "cost_usd": round(self.cost_usd, 6)}


@dataclass
class Agent:
    """One model playing a part (``generator`` or ``supervisor``) through a judge runner."""

    role: str
    name: str
    runner: JudgeRunner
    cache: JudgeCache | None
    usage: Usage = field(default_factory=Usage)

    async def complete(self, messages: list[dict[str, str]], *, max_tokens: int,
                       temperature: float = 0.0, seed: int | None = None,
                       top_logprobs: int = 0) -> JudgeResponse:
        """One chat completion (a final assistant message is continued, where the backend can).

        Raises :class:`~harness.judges.runner.JudgeCallFailed` when the call fails for good and
        :class:`~harness.judges.base.JudgeUnavailable` when the endpoint is down.
        """
        request = JudgeRequest(messages=messages, max_tokens=max_tokens,
                               temperature=temperature, seed=seed, top_logprobs=top_logprobs)
        response, record = await self.runner.complete(
            request, cache=self.cache, accept=lambda r: bool(r.text.strip()))
        self.usage.calls += 1
        self.usage.cached += record.cached
        self.usage.tokens_in += record.tokens_in
        self.usage.tokens_out += record.tokens_out
        self.usage.cost_usd += record.cost_usd or 0.0
        return response


def resolve(role: str, given: AgentValue | None,
            suite_value: AgentValue | None) -> tuple[str, dict[str, Any]] | None:
    """The agent's name and options: the one given (a name keeps the options the suite gives
    for that same name) over the suite's ``generator:``/``supervisor:``; None when neither."""
    if isinstance(given, dict):
        suite_value, given = given, None
    cli = given
    if cli is not None:
        name = _checked(role, cli)
        if isinstance(suite_value, dict) and suite_value.get("name") == name:
            return name, {k: v for k, v in suite_value.items() if k != "name"}
        return name, {}
    if suite_value is None:
        return None
    name = _checked(role, suite_value)
    options = ({k: v for k, v in suite_value.items() if k != "name"}
               if isinstance(suite_value, dict) else {})
    return name, options


def _checked(role: str, value: AgentValue) -> str:
    try:
        return judge_name(value)
    except ValueError as exc:
        raise UsageError(f"{role}: {exc}") from None


def build_agent(role: str, name: str, options: dict[str, Any], registry: Registry,
                cache: JudgeCache | None) -> Agent:
    """An agent on the judge backend ``name`` names, with a runner built from ``options``."""
    prefix, model = name.split("/", 1)
    factory = registry.judges.get(prefix)
    if factory is None:
        known = ", ".join(sorted(registry.judges)) or "none"
        raise UsageError(f"{role} {name!r}: unknown backend {prefix!r} (known: {known})")
    backend_opts = {k: v for k, v in options.items() if k not in RUNNER_KEYS}
    try:
        policy = RetryPolicy(**{k: options[k] for k in RETRY_KEYS if k in options})
        rates = RateLimits(**{k: options[k] for k in RATE_KEYS if k in options})
        backend = factory(model, backend_opts)
    except Exception as exc:  # noqa: BLE001 - a bad option or a missing key is a usage error
        raise UsageError(f"{role} {name!r}: {exc}") from None
    runner = JudgeRunner(backend, max_concurrency=options.get("max_concurrency"), policy=policy,
                         rate_limits=rates)
    return Agent(role, name, runner, cache)


def openai_logprobs(tokens: list[TokenLogprob] | None) -> dict[str, Any] | None:
    """A response's token log-probabilities in the OpenAI chat-completions layout."""
    if not tokens:
        return None
    return {"content": [
        {"token": t.token, "logprob": t.logprob,
         "top_logprobs": [{"token": k, "logprob": v}
                          for k, v in sorted(t.top.items(), key=lambda kv: -kv[1])]}
        for t in tokens]}
