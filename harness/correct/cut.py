"""Where a transcript goes wrong, and how the supervisor's interruption is spliced in.

A transcript is *correctable* when every failed verdict is message-scoped and sits on an
assistant message (no errored verdict, no transcript-level failure). It is cut at the first
failed assistant message that is still trained (a turn masked by an earlier round is context):

- ``turn`` style: the failed message is kept at ``weight: 0``, the interruption follows as a
  ``user`` turn ``No, <why>``, and the generator's continuation is a new assistant turn;
- ``inline`` style: the failed message is split right after the failing evidence span. The
  prefix (up to the span's end) stays as an assistant message at ``weight: 0``; a new assistant
  message holds the interruption ``No, <why>`` and the generator's continuation of it, trained.
  A span in the ``reasoning`` puts the interruption in the reasoning. A failure with no evidence
  span on that message is corrected in ``turn`` style.

Whether a corrected transcript is *corrected* is the review's own decision: the policy
(:func:`harness.policy.decide`) leaves verdicts on masked turns out, so it passes when
everything that is trained passes.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from harness.models import Message, Span, Transcript, Verdict
from harness.policy import masked_turns

Style = Literal["turn", "inline"]
THINK_OPEN, THINK_CLOSE = "<think>\n", "</think>"
"""How reasoning is shown to the generator when it continues an interruption in its reasoning."""


masked = masked_turns
"""Indices of the assistant messages at weight 0 (context only): the policy's rule."""


def not_correctable(transcript: Transcript, verdicts: list[Verdict]) -> str | None:
    """Why this failing transcript cannot be corrected, or None when it can."""
    if any(v.outcome == "error" for v in verdicts):
        return "a criterion errored"
    messages = transcript.messages
    for v in verdicts:
        if v.outcome != "fail":
            continue
        if v.message_index is None:
            return f"{v.criterion} failed on the whole transcript"
        if not 0 <= v.message_index < len(messages) or \
                messages[v.message_index].role != "assistant":
            return f"{v.criterion} failed on a message that is not the assistant's"
    return None


@dataclass
class Failure:
    """The first failed, trained assistant message and the verdicts that failed it."""

    index: int
    verdicts: list[Verdict]

    @property
    def span(self) -> Span | None:
        """The first evidence span on that message (where an inline interruption goes)."""
        spans = [s for v in self.verdicts for s in v.evidence
                 if s.message == self.index and s.end > 0]
        return min(spans, key=lambda s: s.end) if spans else None


def first_failure(transcript: Transcript, verdicts: list[Verdict]) -> Failure | None:
    """The first trained assistant message with a failed message-scoped verdict."""
    hidden = masked(transcript)
    failed = sorted({v.message_index for v in verdicts if v.outcome == "fail"
                     and v.message_index is not None and v.message_index not in hidden})
    for index in failed:
        if transcript.messages[index].role == "assistant":
            return Failure(index, [v for v in verdicts
                                   if v.outcome == "fail" and v.message_index == index])
    return None


@dataclass
class Cut:
    """A transcript cut at its failure: what the generator is asked, and how to splice the
    answer back."""

    style: Style
    head: list[Message]
    """The messages kept before the continuation (the masked failure and, for ``turn``, the
    interruption)."""
    interruption: str
    """``No, <why>``."""
    prompt: list[dict[str, str]]
    """The chat messages sent to the generator (a final assistant message is continued)."""
    field: Literal["content", "reasoning"] = "content"
    split_at: int | None = None
    """Inline: the character offset the failed message was split at."""

    def splice(self, text: str, logprobs: dict[str, Any] | None) -> list[Message]:
        """The corrected transcript's messages, the continuation ``text`` added."""
        text = text.strip()
        if self.style == "turn":
            return [*self.head, Message(role="assistant", content=text, weight=1,
                                        logprobs=logprobs)]
        if self.field == "content":
            return [*self.head, Message(role="assistant", content=f"{self.interruption} {text}",
                                        weight=1, logprobs=logprobs)]
        more, close, answer = text.partition(THINK_CLOSE)
        reasoning = f"{self.interruption} {more.strip()}".strip() if close else self.interruption
        return [*self.head, Message(role="assistant", reasoning=reasoning,
                                    content=answer.strip() if close else text, weight=1)]


def chat(messages: list[Message]) -> list[dict[str, str]]:
    """Messages as plain chat messages for a model (role and content only)."""
    return [{"role": m.role, "content": m.content} for m in messages]


def cut(transcript: Transcript, failure: Failure, interruption: str, style: Style) -> Cut:
    """Cut ``transcript`` at ``failure`` and place ``interruption`` (see the module doc)."""
    before = transcript.messages[:failure.index]
    failed = transcript.messages[failure.index]
    span = failure.span
    if style == "inline" and span is not None:
        if span.field == "reasoning" and failed.reasoning:
            at = min(span.end, len(failed.reasoning))
            prefix = failed.reasoning[:at]
            head = [*before, failed.model_copy(update={"reasoning": prefix, "content": "",
                                                       "weight": 0.0, "logprobs": None})]
            shown = f"{THINK_OPEN}{prefix} {interruption} "
            return Cut("inline", head, interruption,
                       [*chat(before), {"role": "assistant", "content": shown}],
                       field="reasoning", split_at=at)
        at = min(span.end, len(failed.content))
        prefix = failed.content[:at]
        head = [*before, failed.model_copy(update={"content": prefix, "weight": 0.0,
                                                   "logprobs": None})]
        return Cut("inline", head, interruption,
                   [*chat(before), {"role": "assistant", "content": f"{prefix} {interruption} "}],
                   split_at=at)
    head = [*before, failed.model_copy(update={"weight": 0.0}),
            Message(role="user", content=interruption)]
    return Cut("turn", head, interruption, chat(head))
