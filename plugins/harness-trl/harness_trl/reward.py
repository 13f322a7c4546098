"""The review as a reward: ``reward_function(suite)`` for TRL's ``GRPOTrainer``.

Each prompt and its completion become one transcript (a string prompt is a user message, a
string completion an assistant message; conversational ones are used as they are), reviewed by
one :class:`harness.Engine` kept for the whole training: the suite is compiled once, the judges'
answers are cached (``cache_dir``), their concurrency limits hold across calls, and their cost
is counted (``max_cost`` stops the training, as ``harness run --max-cost`` stops a run).

The reward of a completion is its decision's: the decision ``score`` when it passes (1.0 when
no criterion gives a score), ``fail_reward`` when it fails, ``error_reward`` when the review
errs (``None``: TRL counts it as missing).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.engine import Engine
from harness.judges.budget import limit_cost
from harness.models import Decision, Message, Transcript
from harness.outputs import add_usage
from harness.plugins import Registry, get_registry
from harness.suite import Suite

_MESSAGE_KEYS = set(Message.model_fields)


def _messages(value: Any, role: str) -> list[dict[str, Any]]:
    if isinstance(value, str):
        return [{"role": role, "content": value}]
    return [{k: v for k, v in m.items() if k in _MESSAGE_KEYS} for m in value]


def as_transcript(prompt: Any, completion: Any, transcript_id: str) -> Transcript:
    """One prompt and its completion as a transcript."""
    return Transcript(id=transcript_id, messages=[
        Message(**m) for m in _messages(prompt, "user") + _messages(completion, "assistant")])


class ReviewReward:
    """A callable ``(prompts, completions, **kwargs) -> list[float | None]``; see the module."""

    __name__ = "harness_review"  # TRL names the reward after it in its logs

    def __init__(self, engine: Engine, *, fail_reward: float = 0.0,
                 error_reward: float | None = None, owns_engine: bool = False) -> None:
        self.engine = engine
        self.fail_reward = fail_reward
        self.error_reward = error_reward
        self._owns_engine = owns_engine
        self.calls = 0
        """Times the reward was asked (one per batch of completions)."""
        self.reviewed = 0
        self.outcomes = {"pass": 0, "fail": 0, "error": 0}
        self.usage: dict[str, Any] = {"tokens_in": 0, "tokens_out": 0, "cost_usd": None}
        """The judges' tokens and cost over every review so far (cost ``None`` until a judge
        with prices answers)."""
        self.last_decisions: list[Decision] = []

    def reward_of(self, decision: Decision) -> float | None:
        """The reward a decision gives."""
        if decision.outcome == "pass":
            return 1.0 if decision.score is None else float(decision.score)
        if decision.outcome == "fail":
            return self.fail_reward
        return self.error_reward

    def __call__(self, prompts: list[Any], completions: list[Any],
                 **kwargs: Any) -> list[float | None]:
        self.calls += 1
        transcripts = [as_transcript(p, c, f"reward-{self.calls}-{i}")
                       for i, (p, c) in enumerate(zip(prompts, completions, strict=True))]
        decisions = list(self.engine.review(transcripts, batch_size=len(transcripts)))
        self.last_decisions = decisions
        for d in decisions:
            self.reviewed += 1
            self.outcomes[d.outcome] += 1
            for v in d.verdicts:
                add_usage(self.usage, v.model_dump(include={"tokens_in", "tokens_out",
                                                            "cost_usd"}))
        rewards = [self.reward_of(d) for d in decisions]
        log_metric = kwargs.get("log_metric")
        if callable(log_metric) and decisions:
            log_metric("harness/pass_rate",
                       sum(d.outcome == "pass" for d in decisions) / len(decisions))
        return rewards

    def close(self) -> None:
        """Close the engine, if this reward built it."""
        if self._owns_engine:
            self.engine.close()


def reward_function(
    suite: Suite | Engine | str | Path,
    *,
    fail_reward: float = 0.0,
    error_reward: float | None = None,
    registry: Registry | None = None,
    plugins_dir: str | Path | None = None,
    judge: str | None = None,
    cache_dir: str | Path | None = None,
    max_cost: float | None = None,
) -> ReviewReward:
    """The review of ``suite`` (a suite file, a :class:`Suite`, or an open :class:`Engine`,
    shared as it is) as a reward function for ``GRPOTrainer(reward_funcs=...)``.

    ``judge`` replaces every judge (``--judge``), ``cache_dir`` keeps the judges' answers,
    ``max_cost`` (USD) makes judge calls past it raise (the training stops).
    """
    if isinstance(suite, Engine):
        engine, owns = suite, False
    else:
        engine = Engine(suite, registry or get_registry(plugins_dir), judge=judge,
                        cache_dir=cache_dir)
        owns = True
    limit_cost(engine.context, max_cost)
    return ReviewReward(engine, fail_reward=fail_reward, error_reward=error_reward,
                        owns_engine=owns)
