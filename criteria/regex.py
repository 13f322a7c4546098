"""The ``regex`` criterion kind: a pattern that must be present in, or absent from, a text."""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import reduce
from typing import Literal

from pydantic import field_validator

from harness.criterion import Criterion, CriterionConfig
from harness.hookspecs import hookimpl
from harness.models import Span, Transcript, Verdict
from harness.suite import SuiteError
from harness.targets import Target, select

FLAGS = {"IGNORECASE": re.IGNORECASE, "I": re.IGNORECASE, "MULTILINE": re.MULTILINE,
         "M": re.MULTILINE, "DOTALL": re.DOTALL, "S": re.DOTALL, "VERBOSE": re.VERBOSE,
         "X": re.VERBOSE, "ASCII": re.ASCII, "A": re.ASCII}
MAX_SPANS = 20
"""Evidence spans kept per verdict."""


class RegexConfig(CriterionConfig):
    pattern: str
    """A Python regular expression."""
    expect: Literal["present", "absent"]
    """``present``: passes when the pattern matches; ``absent``: passes when it never does."""
    flags: list[str] = []
    """Regex flags by name: IGNORECASE, MULTILINE, DOTALL, VERBOSE, ASCII."""
    target: Target = "assistant"
    """Which text to search: assistant, last_assistant, user, system, all, reasoning."""

    @field_validator("flags", mode="before")
    @classmethod
    def _split(cls, value: object) -> object:
        return value.replace("|", ",").split(",") if isinstance(value, str) else value

    @field_validator("flags")
    @classmethod
    def _known(cls, value: list[str]) -> list[str]:
        flags = [f.strip().upper() for f in value if f.strip()]
        unknown = [f for f in flags if f not in FLAGS]
        if unknown:
            raise ValueError(f"unknown flag(s) {unknown}; use {sorted(set(FLAGS) - set('IMSXA'))}")
        return flags


class Regex(Criterion):
    """A regular expression that must be present in (or absent from) the target messages."""

    kind = "regex"
    Config = RegexConfig
    cost = 0

    def __init__(self, spec, config: RegexConfig, context) -> None:
        super().__init__(spec, config, context)
        flags = reduce(lambda a, b: a | b, (FLAGS[f] for f in config.flags), 0)
        try:
            self.regex = re.compile(config.pattern, flags)
        except re.error as exc:
            raise SuiteError(f"{spec.origin}: criterion '{spec.name}' (regex): bad pattern "
                             f"{config.pattern!r}: {exc}") from None

    def describe(self) -> dict[str, str]:
        return {"pattern": self.config.pattern, "expect": self.config.expect}

    def evaluate(self, transcript: Transcript) -> Verdict:
        spans: list[Span] = []
        for index, field, text in select(transcript, self.config.target):
            if self.regex.search(text) is None:  # the common case, as cheap as a bare search
                continue
            for match in self.regex.finditer(text):
                spans.append(Span(message=index, start=match.start(), end=match.end(),
                                  text=match.group(0)[:200], field=field))
                if len(spans) >= MAX_SPANS:
                    break
            if len(spans) >= MAX_SPANS:
                break
        found = bool(spans)
        passed = found if self.config.expect == "present" else not found
        where = self.config.target
        if found:
            explanation = f"/{self.config.pattern}/ matched {len(spans)}" \
                          f"{'+' if len(spans) >= MAX_SPANS else ''} time(s) in {where} text"
        else:
            explanation = f"/{self.config.pattern}/ not found in {where} text"
        return Verdict(outcome="pass" if passed else "fail", score=1.0 if passed else 0.0,
                       evidence=spans, explanation=explanation)


@hookimpl
def register_criterion_kinds(register: Callable[[type[Criterion]], None]) -> None:
    register(Regex)
