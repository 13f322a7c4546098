"""Python criteria of the corrections suite (importable because they sit next to it)."""

from __future__ import annotations

import re

from harness import Span, Transcript, Verdict

EQUATION = re.compile(
    r"(\d+(?:\.\d+)?)\s*([+×x*/÷-])\s*(\d+(?:\.\d+)?)\s*=\s*(\d+(?:\.\d+)?)")
RETRACTED = re.compile(r"\s*(?:is|was)\s+(?:not correct|incorrect|wrong)", re.IGNORECASE)
"""After an equation: the turn quotes a mistake to retract it, it does not state it."""
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "×": lambda a, b: a * b,
       "x": lambda a, b: a * b, "*": lambda a, b: a * b, "/": lambda a, b: a / b,
       "÷": lambda a, b: a / b}


def arithmetic_checks_out(transcript: Transcript) -> Verdict:
    """Every equation the last assistant turn states holds (to 0.005); one it retracts ("... =
    32 is wrong") is not stated. Score: the share that hold."""
    index = max(i for i, m in enumerate(transcript.messages) if m.role == "assistant")
    text = transcript.messages[index].content
    wrong, fixes, total = [], [], 0
    for match in EQUATION.finditer(text):
        a, op, b, c = match.groups()
        if RETRACTED.match(text, match.end()):
            continue
        total += 1
        if op in "/÷" and float(b) == 0:
            ok, fix = False, "division by zero"
        else:
            value = OPS[op](float(a), float(b))
            ok, fix = abs(value - float(c)) <= 0.005, f"{a} {op} {b} is {value:g}, not {c}"
        if not ok:
            wrong.append(Span(message=index, start=match.start(), end=match.end(),
                              text=match.group(0)))
            fixes.append(fix)
    if not wrong:
        return Verdict(outcome="pass", score=1.0,
                       explanation=f"{total} equation(s), all correct")
    return Verdict(outcome="fail", score=1 - len(wrong) / total, evidence=wrong,
                   explanation=f"{len(wrong)} of {total} equation(s) wrong: "
                               + "; ".join(fixes))


def ends_with_assistant(transcript: Transcript) -> bool:
    last = transcript.messages[-1]
    return last.role == "assistant" and bool(last.content.strip())
