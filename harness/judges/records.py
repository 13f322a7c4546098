"""Typed records of judging: one judge call's outcome, and what a verdict records in ``details``.

:class:`JudgeDetails` is dumped into ``Verdict.details`` (``exclude_none``), so these keys are
what the journal holds. Provenance (exports) and the HTML report read exactly these keys, with
:func:`judge_label` and :func:`rubric_hash`:

- ``judge``: the judge that ran, ``PREFIX/MODEL`` as configured (after ``--judge``);
- ``model``: the model the endpoint reported in its answer (may be more precise, e.g. a dated
  snapshot, or a cached answer's model);
- ``rubric_sha256``: first 16 hex digits of the SHA-256 of the rubric template text.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from harness.judges.base import JudgeResponse
from harness.judges.verdicts import ParsedVerdict, SoftScore, SoftSource

RUBRIC_HASH_LEN = 16
"""Hex digits of the rubric's SHA-256 recorded (and computed from configs as a fallback)."""


class CallRecord(BaseModel):
    """Accounting for one judge call, stored on the verdict."""

    model_config = ConfigDict(extra="forbid")

    attempts: int = 0
    """Attempts made (0 for a cache hit)."""
    cached: bool = False
    """No call was made for it: the response came from the cache, or from an identical call in
    flight (whose record holds the spend)."""
    latency_s: float = 0.0
    """Wall time of the successful attempt (0 for a cache hit)."""
    total_s: float = 0.0
    """Wall time including queueing and retries."""
    tokens_in: int = 0
    """Prompt tokens billed."""
    tokens_out: int = 0
    """Completion tokens billed."""
    tokens_cached: int = 0
    """Of ``tokens_in``, those the provider served from its prompt-prefix cache."""
    cost_usd: float | None = None
    """Cost of the call, when the backend knows it (0 when ``cached``)."""
    errors: list[str] = Field(default_factory=list)
    """Messages of the failed attempts, oldest first."""
    batch: str | None = None
    """The batch that answered (``batch: true`` judges), at the batch price."""


class JudgeOutcome(BaseModel):
    """One judge call (one repeat) for one transcript: the answer and what was read from it."""

    model_config = ConfigDict(extra="forbid")

    response: JudgeResponse
    """The judge's answer (from the endpoint or the cache)."""
    record: CallRecord
    """Attempts, cache hit, latency, tokens and cost of the call."""
    parsed: ParsedVerdict
    """The label read from the answer, or why none could be."""
    soft: SoftScore | None = None
    """Label probabilities, when a label was read."""
    asked_with: list[str] | None = None
    """With ``rubrics:``: the criteria the call asked at once (it is billed to the first)."""


class RepeatDetails(BaseModel):
    """One repeat's result, when a criterion asks the judge more than once."""

    model_config = ConfigDict(extra="forbid")

    label: str | None = None
    """The label read, if any."""
    score: float | None = None
    """Its soft score."""
    error: str | None = None
    """Why there is no label (unparseable answer, failed call)."""


class JudgeDetails(BaseModel):
    """What an ``llm_judge`` verdict records in ``Verdict.details``."""

    model_config = ConfigDict(extra="forbid")

    judge: str
    """The judge that ran, ``PREFIX/MODEL`` as configured (after ``--judge``)."""
    model: str | None = None
    """The model the endpoint reported (``None`` when no answer came back)."""
    scheme: str
    """binary, choices or scale."""
    rubric_sha256: str
    """First 16 hex digits of the SHA-256 of the rubric template."""
    cached: bool = False
    """No call was made for any answer (each from the cache, or from an identical call in
    flight)."""
    attempts: int = 0
    """Attempts sent to the endpoint, over all repeats."""
    label: str | list[str] | None = None
    """The label read (a list with several repeats)."""
    probs: dict[str, float] | None = None
    """Mean probability of each label."""
    p_pass: float | None = None
    """Mean probability mass of the passing labels."""
    soft_source: SoftSource | None = None
    """Where the probabilities come from: exact, approx or label."""
    repeats: list[RepeatDetails] | None = None
    """Each repeat's result, with ``repeats`` > 1."""
    stability: float | None = None
    """With ``repeats`` > 1: the share of the repeats whose label agrees with the verdict."""
    errors: list[str] | None = None
    """The failed attempts' messages, when the call failed."""
    batch: str | None = None
    """The batch id that answered, for a ``batch: true`` judge (cost at the batch price)."""
    cached_tokens: int | None = None
    """Prompt tokens of this verdict's calls that the provider served from its prompt-prefix
    cache (``usage.prompt_tokens_details.cached_tokens``, Anthropic's
    ``cache_read_input_tokens``), when it reported any."""
    rubric_set: str | None = None
    """With ``rubrics:``: the suite entry this criterion's rubric came from."""
    asked_with: list[str] | None = None
    """With ``rubrics:``: the criteria one call asked at once; its tokens and cost are recorded
    on the first (the others record none)."""

    def dump(self) -> dict[str, Any]:
        """As stored in ``Verdict.details``."""
        return self.model_dump(mode="json", exclude_none=True)


def judge_label(details: dict[str, Any]) -> str | None:
    """The judge that ran, from a verdict's ``details``: ``PREFIX/`` + the model it reported.

    ``{"judge": "openai/gpt-4o-mini", "model": "gpt-4o-mini-2024-07-18"}`` gives
    ``openai/gpt-4o-mini-2024-07-18``; without a reported model, the configured ``judge``.
    """
    judge, model = details.get("judge"), details.get("model")
    judge = judge if isinstance(judge, str) and judge else None
    model = model if isinstance(model, str) and model else None
    if judge is None:
        return model
    if model is None:
        return judge
    prefix = judge.split("/", 1)[0]
    return model if model.startswith(f"{prefix}/") else f"{prefix}/{model}"


def rubric_hash(details: dict[str, Any]) -> str | None:
    """The rubric hash a verdict's ``details`` record, if any."""
    value = details.get("rubric_sha256")
    return value if isinstance(value, str) and value else None
