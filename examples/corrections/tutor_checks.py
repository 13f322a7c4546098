"""Python criteria of the corrections suite (importable because they sit next to it)."""

from __future__ import annotations

import re

from harness import Span, Transcript, Verdict

EQUATION = re.compile(
    r"(\d+(?:\.\d+)?)\s*([+×x*/÷-])\s*(\d+(?:\.\d+)?)\s*=\s*(\d+(?:\.\d+)?)")
OPS = {"+": lambda a, b: a + b, "-": lambda a, b: a - b, "×": lambda a, b: a * b,
       "x": lambda a, b: a * b, "*": lambda a, b: a * b, "/": lambda a, b: a / b,
       "÷": lambda a, b: a / b}


def arithmetic_checks_out(transcript: Transcript) -> Verdict:
    """Every equation in the last assistant turn holds (to 0.005). Score: the share that do."""
    index = max(i for i, m in enumerate(transcript.messages) if m.role == "assistant")
    text = transcript.messages[index].content
    wrong, fixes, total = [], [], 0
    for match in EQUATION.finditer(text):
        a, op, b, c = match.groups()
        total += 1
        if op in "/÷" and float(b) == 0:
            ok, fix = False, "division by zero"
        else:
            value = OPS[op](float(a), float(b))
            ok, fix = abs(value - float(c)) <= 0.005, f"{a} {op} {b} is {value:g}"
        if not ok:
            wrong.append(Span(message=index, start=match.start(), end=match.end(),
                              text=match.group(0)))
            fixes.append(fix)
    if not wrong:
        return Verdict(outcome="pass", score=1.0,
                       explanation=f"{total} equation(s), all correct")
    return Verdict(outcome="fail", score=1 - len(wrong) / total, evidence=wrong,
                   explanation=f"{len(wrong)} of {total} equation(s) wrong: "
                               + "; ".join(f"{s.text} ({fix})"
                                           for s, fix in zip(wrong, fixes, strict=True)))


def ends_with_assistant(transcript: Transcript) -> bool:
    last = transcript.messages[-1]
    return last.role == "assistant" and bool(last.content.strip())
