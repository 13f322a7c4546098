"""An example third-party plugin: criterion kinds that harness itself does not ship.

Installing this distribution is enough: its entry point in the group ``harness`` makes
``kind: max_turns`` and ``kind: repetition`` usable in any suite.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from pydantic import Field

from harness import Criterion, CriterionConfig, Span, Transcript, Verdict, hookimpl


class MaxTurnsConfig(CriterionConfig):
    limit: int = Field(default=10, ge=1)
    """Most messages a conversation may have."""


class MaxTurns(Criterion):
    """At most `limit` messages in the conversation."""

    kind = "max_turns"
    Config = MaxTurnsConfig

    def evaluate(self, transcript: Transcript) -> Verdict:
        n = len(transcript.messages)
        passed = n <= self.config.limit
        return Verdict(outcome="pass" if passed else "fail", score=1.0 if passed else 0.0,
                       explanation=f"{n} messages (limit {self.config.limit})")


class RepetitionConfig(CriterionConfig):
    n: int = Field(default=3, ge=1)
    """Word n-gram length."""
    max_repeat: int = Field(default=3, ge=1)
    """An n-gram seen more often than this in one assistant message fails it."""


class Repetition(Criterion):
    """Assistant messages must not loop: no word n-gram repeated more than `max_repeat` times."""

    kind = "repetition"
    Config = RepetitionConfig

    def evaluate(self, transcript: Transcript) -> Verdict:
        worst: tuple[int, int, str] | None = None
        for index, message in enumerate(transcript.messages):
            if message.role != "assistant":
                continue
            words = message.content.lower().split()
            grams = Counter(
                " ".join(words[i : i + self.config.n])
                for i in range(len(words) - self.config.n + 1)
            )
            if grams:
                gram, count = grams.most_common(1)[0]
                if worst is None or count > worst[0]:
                    worst = (count, index, gram)
        if worst is None or worst[0] <= self.config.max_repeat:
            return Verdict(outcome="pass", score=1.0, explanation="no looping n-gram")
        count, index, gram = worst
        content = transcript.messages[index].content
        start = content.lower().find(gram.split()[0])
        evidence = [Span(message=index, start=max(start, 0),
                         end=max(start, 0) + len(gram), text=gram)] if start >= 0 else []
        return Verdict(outcome="fail", score=0.0, evidence=evidence,
                       explanation=f"'{gram}' repeated {count} times in message {index}")


@hookimpl
def register_criterion_kinds(register: Any) -> None:
    register(MaxTurns)
    register(Repetition)
