"""Which text of a transcript a criterion looks at."""

from __future__ import annotations

from typing import Literal

from harness.models import Transcript

Target = Literal["assistant", "last_assistant", "user", "system", "all", "reasoning"]
Field = Literal["content", "reasoning"]


def select(transcript: Transcript, target: Target) -> list[tuple[int, Field, str]]:
    """The texts a target names, as ``(message index, field, text)``, in transcript order."""
    messages = transcript.messages
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


def text_of(transcript: Transcript, target: Target, separator: str = "\n\n") -> str:
    """The selected texts joined into one string (for classifiers and judges)."""
    return separator.join(text for _, _, text in select(transcript, target))
