"""Untrusted text made safe to show: control characters and bidi overrides escaped.

Transcript ids, criterion names, explanations and evidence come from files anyone may have
written. Written raw to a terminal, ``\\x1b`` sequences can clear the screen, set the title or
hide text, and U+202E (right-to-left override) reverses what follows. Every non-printable
character (``str.isprintable``: controls, format characters such as bidi overrides and
zero-width spaces, line and paragraph separators) is shown as its Python escape instead.
"""

from __future__ import annotations


def escape_controls(text: str, keep: str = "") -> str:
    """``text`` with every non-printable character but those in ``keep`` shown escaped."""
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() or c in keep
                   else c.encode("unicode_escape").decode("ascii") for c in text)


def safe(text: str, limit: int = 300) -> str:
    """``text`` with every non-printable character escaped, cut to ``limit`` characters."""
    out = escape_controls(text[: limit + 1])
    return out[:limit] + "…" if len(out) > limit or len(text) > limit else out


def safe_block(text: str, indent: str, limit: int = 2000) -> list[str]:
    """A multi-line explanation, each line made safe and indented."""
    lines = text[:limit].splitlines() or [""]
    shown = [indent + safe(line, 500) for line in lines[:20]]
    if len(lines) > 20 or len(text) > limit:
        shown.append(indent + "…")
    return shown
