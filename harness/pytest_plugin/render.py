"""Failure reports for review items: verdicts and evidence as plain, terminal-safe text.

Transcript text is untrusted: control characters (terminal escapes, bidi overrides, newlines in
evidence) are shown escaped, never written raw to the terminal or a JUnit report.
"""

from __future__ import annotations

from collections.abc import Iterable

from harness.models import Verdict
from harness.text import safe, safe_block

MAX_SPANS_SHOWN = 5
"""Evidence spans shown per verdict in a failure report."""


def verdict_lines(verdict: Verdict, indent: str = "  ") -> list[str]:
    """One verdict: outcome, score, explanation and evidence spans."""
    head: str = verdict.outcome
    if verdict.message_index is not None:
        head = f"message {verdict.message_index}: {head}"
    if verdict.score is not None:
        head += f", score {verdict.score:.3f}"
    lines = [indent + head]
    if verdict.explanation:
        lines.append(indent + "explanation:")
        lines.extend(safe_block(verdict.explanation, indent + "  "))
    for span in verdict.evidence[:MAX_SPANS_SHOWN]:
        where = f"message {span.message} [{span.start}:{span.end}]"
        if span.field != "content":
            where += f" ({span.field})"
        lines.append(f'{indent}evidence: {where}: "{safe(span.text, 200)}"')
    if len(verdict.evidence) > MAX_SPANS_SHOWN:
        lines.append(f"{indent}evidence: … {len(verdict.evidence) - MAX_SPANS_SHOWN} more span(s)")
    return lines


def describe(criterion: str, kind: str, outcome: str, transcript_id: str, source: str,
             verdicts: Iterable[Verdict]) -> str:
    """The report of one criterion on one transcript."""
    lines = [f"{criterion} ({kind}): {outcome} for {safe(transcript_id, 120)} "
             f"({safe(source, 200)})"]
    verdicts = list(verdicts)
    shown = [v for v in verdicts if v.outcome != "pass"] or verdicts
    for verdict in shown:
        lines.extend(verdict_lines(verdict))
    return "\n".join(lines)
