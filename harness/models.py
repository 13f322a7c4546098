"""The data model: messages and transcripts in, verdicts and decisions out."""

from __future__ import annotations

import functools
import hashlib
from typing import Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field

Role = Literal["system", "user", "assistant", "tool"]
Outcome = Literal["pass", "fail", "error", "skipped"]
DecisionOutcome = Literal["pass", "fail", "error"]


def _unset(value: Any) -> bool:
    return value is None


class Message(BaseModel):
    """One turn of a conversation."""

    model_config = ConfigDict(extra="forbid")

    role: Role
    """Who speaks: system, user, assistant or tool."""
    content: str
    """The text of the turn."""
    name: str | None = None
    """Optional speaker or tool name."""
    tool_calls: list[dict[str, Any]] | None = None
    """Tool calls the assistant made, in the OpenAI layout."""
    tool_call_id: str | None = None
    """For a tool message: the call it answers."""
    reasoning: str | None = None
    """The assistant's reasoning text, when the generator kept it apart from the answer."""
    weight: float | None = None
    """Training weight of an assistant turn (0 = context only, 1 = trained)."""
    logprobs: dict[str, Any] | None = None
    """The generator's token log-probabilities for this turn, in the OpenAI chat-completions
    layout (``{"content": [{"token", "logprob", "top_logprobs": [...]}]}``); the review ignores
    them, exports carry them."""
    # The fields below are left out of a dump while unset (``exclude_if``), so transcripts
    # without them dump, hash and render (judge prompts, cache keys) as before they existed.
    function_call: dict[str, Any] | None = Field(default=None, exclude_if=_unset)
    """A legacy OpenAI function call on an assistant turn (``{"name", "arguments"}``)."""
    wire: dict[str, Any] | None = Field(default=None, exclude_if=_unset)
    """How the record wrote what the review reads another way, for the exports to write it
    back: ``role`` (``developer`` is reviewed as ``system``, ``function`` as ``tool``),
    ``content`` when it was not text (null, or content parts: reviewed as their text), and
    ``reasoning_key`` (``reasoning_content``: the reasoning's key in the record)."""
    extra: dict[str, Any] | None = Field(default=None, exclude_if=_unset)
    """The message's other keys (``refusal``, ``audio``, a vendor's fields...): the review
    ignores them, exports write them back as they were."""


class Transcript(BaseModel):
    """A conversation under review."""

    model_config = ConfigDict(extra="forbid")

    id: str
    """Stable id: the record's own ``id`` if it has one, else a hash of its content."""
    messages: list[Message]
    """The turns, in order."""
    metadata: dict[str, Any] = Field(default_factory=dict)
    """Anything else the record carried (pair ids, generator settings, labels...)."""
    source: str = ""
    """Where it was read, ``file:line`` (plus ``:chosen``/``:rejected`` for pairs)."""

    def last_assistant(self) -> Message | None:
        """The last assistant message, if any."""
        for message in reversed(self.messages):
            if message.role == "assistant":
                return message
        return None


class Span(BaseModel):
    """A piece of evidence: a character range inside one message."""

    model_config = ConfigDict(extra="forbid")

    message: int
    """Index of the message in the transcript."""
    start: int
    """Start offset (characters) in the message's text."""
    end: int
    """End offset (exclusive)."""
    text: str = ""
    """The text of the span, for readers of the results."""
    field: Literal["content", "reasoning"] = "content"
    """Which text of the message the offsets refer to."""


class Verdict(BaseModel):
    """One criterion's judgement of one transcript (or of one message, for message scope)."""

    model_config = ConfigDict(extra="forbid")

    criterion: str = ""
    """Name of the criterion in the suite (filled in by the engine)."""
    version: str = ""
    """Version of the criterion (filled in by the engine)."""
    kind: str = ""
    """Criterion kind (filled in by the engine)."""
    outcome: Outcome
    """pass, fail, error (the criterion could not decide) or skipped (not run)."""
    score: float | None = Field(default=None, ge=0.0, le=1.0)
    """Score in [0, 1] (a probability where the criterion has one), or none."""
    evidence: list[Span] = Field(default_factory=list)
    """Spans of the transcript that support the outcome."""
    explanation: str = ""
    """Why: a human-readable reason, the judge's explanation or the error message."""
    raw: str | None = None
    """Raw model output, for judges."""
    message_index: int | None = None
    """For message-scoped criteria: the assistant message judged."""
    latency_s: float = 0.0
    """Wall time spent on this verdict."""
    cost_usd: float | None = None
    """Money spent on this verdict, when known."""
    tokens_in: int | None = None
    """Prompt tokens, for model-based criteria."""
    tokens_out: int | None = None
    """Completion tokens, for model-based criteria."""
    details: dict[str, Any] = Field(default_factory=dict)
    """Kind-specific extras (judge model, rubric hash, top labels...)."""

    @property
    def passed(self) -> bool:
        return self.outcome == "pass"


class Decision(BaseModel):
    """The suite's decision about one transcript."""

    model_config = ConfigDict(extra="forbid")

    transcript_id: str
    """The transcript decided."""
    source: str = ""
    """Where the transcript was read."""
    outcome: DecisionOutcome
    """pass, fail, or error (a gate could not be decided)."""
    score: float | None = None
    """Weighted mean score of the scored verdicts."""
    threshold_score: float | None = None
    """With a suite ``threshold``: the weighted mean of the non-gate scores it was compared
    with (what decides a ``threshold`` failure, unlike ``score``, which gates count in)."""
    verdicts: list[Verdict] = Field(default_factory=list)
    """Every verdict, in suite order."""
    failed: list[str] = Field(default_factory=list)
    """Names of the criteria that failed (and decided the outcome)."""
    errored: list[str] = Field(default_factory=list)
    """Names of the criteria that errored."""

    @property
    def passed(self) -> bool:
        return self.outcome == "pass"


class InputError(BaseModel):
    """A record that could not be read; it is counted as errored and the run goes on."""

    model_config = ConfigDict(extra="forbid")

    source: str
    """``file:line`` of the record."""
    reason: str
    """What is wrong with it."""
    transcript_id: str | None = None
    """The id, if one could be read."""


M = TypeVar("M", bound=BaseModel)


def trusted(cls: type[M], /, **fields: Any) -> M:
    """A model built from values the caller made and knows to be valid, with no validation.

    For the engine's hot path (a verdict or a decision per transcript and criterion), where
    ``model_validate`` costs more than the criterion itself and ``model_construct`` more still.
    """
    static, factories = _defaults_of(cls)
    values = static.copy()
    if factories:
        for name, make in factories.items():
            if name not in fields:
                values[name] = make()
    values.update(fields)
    obj = cls.__new__(cls)
    _set(obj, "__dict__", values)
    _set(obj, "__pydantic_fields_set__", set(fields))
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


_set = object.__setattr__  # past pydantic's own __setattr__


def plain_message(role: Role, content: str) -> Message:
    """``trusted(Message, role=role, content=content)``, for the readers' hot path (a third of
    its cost: no keyword arguments to gather, no defaults to look up)."""
    values = _MESSAGE_DEFAULTS.copy()
    values["role"] = role
    values["content"] = content
    obj = _new_message(Message)
    _set(obj, "__dict__", values)
    _set(obj, "__pydantic_fields_set__", {"role", "content"})
    _set(obj, "__pydantic_extra__", None)
    _set(obj, "__pydantic_private__", None)
    return obj


Compacted = dict[int, tuple[BaseModel, dict[str, Any]]]
"""Nested models already compacted, by identity (a batch's shared verdicts: done once)."""


def compact_json(model: BaseModel, memo: Compacted | None = None) -> bytes:
    """The model as JSON without the fields that hold their default (the journal's form: a
    decision's verdicts repeat a dozen empty fields otherwise). :func:`with_defaults` restores
    them. Plain values go straight to orjson (the hot path); anything else (a criterion's
    ``details`` holding an object) through pydantic's serializer, which knows more types.
    ``memo`` keeps nested models' compact forms for the next call (while they do not change)."""
    try:
        return orjson.dumps(_compact(model, memo))
    except TypeError:
        return model.model_dump_json(exclude_defaults=True).encode()


class DecisionJSON:
    """:func:`compact_json` of the decisions that differ from ``decision`` only in their
    ``transcript_id`` and ``source``, made by putting those two into its JSON."""

    _ID, _SOURCE = "\x00transcript_id\x00", "\x00source\x00"

    def __init__(self, decision: Decision) -> None:
        self.parts: tuple[bytes, bytes, bytes, bool] | None = None
        self.shape: bytes | None = None
        if not decision.source:  # a default source is left out of the JSON
            return
        fields = _compact(decision)
        fields["transcript_id"], fields["source"] = self._ID, self._SOURCE
        try:
            blob = orjson.dumps(fields)
        except TypeError:  # compact_json takes pydantic's path: no template
            return
        marks = orjson.dumps(self._ID), orjson.dumps(self._SOURCE)
        if blob.count(marks[0]) != 1 or blob.count(marks[1]) != 1:
            return  # a verdict's text holds a mark: no template
        at = [blob.index(m) for m in marks]
        first = 0 if at[0] < at[1] else 1
        a, b = marks[first], marks[1 - first]
        head, rest = blob.split(a)
        mid, tail = rest.split(b)
        self.parts = head, mid, tail, first == 0
        self.shape = hashlib.blake2b(b"\0".join((head, mid, tail)), digest_size=16).digest()
        """The same for two decisions that differ only in their id and source."""

    def of(self, transcript_id: str, source: str) -> bytes | None:
        """The JSON, or ``None`` where :func:`compact_json` must make it."""
        if self.parts is None or not source:
            return None
        head, mid, tail, id_first = self.parts
        a, b = (transcript_id, source) if id_first else (source, transcript_id)
        try:
            return head + orjson.dumps(a) + mid + orjson.dumps(b) + tail
        except TypeError:  # a lone surrogate: compact_json's own path
            return None


def _compact(model: BaseModel, memo: Compacted | None = None) -> dict[str, Any]:
    static, factories = _defaults_of(type(model))
    out: dict[str, Any] = {}
    for name, value in model.__dict__.items():
        if name in factories:
            if not value:  # the empty list or dict a factory makes
                continue
            if isinstance(value, list) and isinstance(value[0], BaseModel):
                value = [_compact(v) if memo is None else _compacted(v, memo) for v in value]
        elif name in static and value == static[name]:
            continue
        out[name] = value
    return out


def _compacted(model: BaseModel, memo: Compacted) -> dict[str, Any]:
    known = memo.get(id(model))
    if known is None or known[0] is not model:
        known = memo[id(model)] = (model, _compact(model))
    return known[1]


def with_defaults(cls: type[BaseModel], data: dict[str, Any]) -> dict[str, Any]:
    """``data`` (a :func:`compact_json` dict) with every field of ``cls`` it left out, nested
    decisions, verdicts and spans included."""
    static, factories = _defaults_of(cls)
    out = {**static, **{k: f() for k, f in factories.items() if k not in data}, **data}
    if cls is Decision:
        out["verdicts"] = [with_defaults(Verdict, v) for v in out["verdicts"]]
    elif cls is Verdict:
        out["evidence"] = [with_defaults(Span, e) for e in out["evidence"]]
    return out


@functools.cache
def _defaults_of(cls: type[BaseModel]) -> tuple[dict[str, Any], dict[str, Any]]:
    """A model's default values, and the factories of those made afresh."""
    static, factories = {}, {}
    for name, info in cls.model_fields.items():
        if info.default_factory is not None:
            factories[name] = info.default_factory
        elif not info.is_required():
            static[name] = info.default
    return static, factories


_MESSAGE_DEFAULTS = _defaults_of(Message)[0]
_new_message = Message.__new__
