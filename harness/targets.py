"""Which text of a transcript a criterion looks at."""

from __future__ import annotations

from typing import Literal

from harness.models import Transcript

Target = Literal["assistant", "last_assistant", "user", "system", "all", "reasoning"]
Field = Literal["content", "reasoning"]
Scope = Literal["transcript", "message"]


def select(
    transcript: Transcript, target: Target, scope: Scope = "transcript"
) -> list[tuple[int, Field, str]]:
    """The texts a target names, as ``(message index, field, text)``, in transcript order.

    With ``scope="message"`` the transcript is the conversation up to the message under review
    (its last message): ``assistant`` and ``last_assistant`` then select that message alone,
    ``reasoning`` its reasoning alone, so an earlier turn's text is never held against it.
    The other targets (``user``, ``system``, ``all``) still see the whole prefix, as context.
    """
    messages = transcript.messages
    if scope == "message" and target in ("assistant", "last_assistant", "reasoning"):
        if not messages or messages[-1].role != "assistant":
            return []
        index, last = len(messages) - 1, messages[-1]
        if target == "reasoning":
            return [(index, "reasoning", last.reasoning)] if last.reasoning else []
        return [(index, "content", last.content)]
    if target == "last_assistant":
        for index in range(len(messages) - 1, -1, -1):
            if messages[index].role == "assistant":
                return [(index, "content", messages[index].content)]
        return []
    if target == "reasoning":
        return [
            (i, "reasoning", m.reasoning)
            for i, m in enumerate(messages)
            if m.role == "assistant" and m.reasoning
        ]
    if target == "all":
        return [(i, "content", m.content) for i, m in enumerate(messages)]
    return [(i, "content", m.content) for i, m in enumerate(messages) if m.role == target]


def text_of(
    transcript: Transcript, target: Target, separator: str = "\n\n",
    scope: Scope = "transcript",
) -> str:
    """The selected texts joined into one string (for classifiers and judges)."""
    return separator.join(text for _, _, text in select(transcript, target, scope))
