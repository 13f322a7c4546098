"""The seed loop's criterion: the assistant turn states the asked product as a true equation."""

from __future__ import annotations

import re

from harness import Span, Transcript, Verdict

QUESTION = re.compile(r"(\d+)\s*[×x*]\s*(\d+)")
EQUATION = re.compile(r"(\d+)\s*[×x*]\s*(\d+)\s*=\s*(\d+)")


def states_the_product(transcript: Transcript) -> Verdict:
    """The last assistant turn states ``a × b = c`` for the question's ``a`` and ``b`` (either
    order), and every such equation in it is true. Evidence: the wrong equations."""
    question = next(m.content for m in transcript.messages if m.role == "user")
    asked = QUESTION.search(question)
    if asked is None:
        return Verdict(outcome="error", explanation="the question asks no product a × b")
    a, b = int(asked.group(1)), int(asked.group(2))
    index = max(i for i, m in enumerate(transcript.messages) if m.role == "assistant")
    text = transcript.messages[index].content
    stated = [m for m in EQUATION.finditer(text)
              if {int(m.group(1)), int(m.group(2))} == {a, b}]
    wrong = [m for m in stated if int(m.group(3)) != a * b]
    if wrong:
        first = wrong[0]
        return Verdict(outcome="fail", score=0.0,
                       evidence=[Span(message=index, start=m.start(), end=m.end(),
                                      text=m.group(0)) for m in wrong],
                       explanation=f"{a} × {b} is {a * b}, not {first.group(3)}.")
    if not stated:
        return Verdict(outcome="fail", score=0.0,
                       explanation=f"state the result as an equation: {a} × {b} = ?")
    return Verdict(outcome="pass", score=1.0, explanation=f"{a} × {b} = {a * b} stated")
