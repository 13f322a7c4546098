"""The ``regex`` criterion kind: a pattern that must be present in, or absent from, a text.

Patterns run on the third-party ``regex`` module (version 0: the syntax and behaviour of
``re``) so that each transcript gets a time limit (``timeout_s``): a pattern that backtracks
catastrophically gives an ``error`` verdict instead of hanging the run.

A timed search costs a few microseconds more than an untimed one (the module reads a clock
each time), which would dominate a regex suite. So most texts never reach it: when the pattern
has a required literal (``sk-`` in ``sk-[A-Za-z0-9]{20,}``, as computed by the ``regex``
module's own compiler, which relies on it too), a text without that literal cannot match and
is skipped after a plain substring test (linear time, no backtracking). Only texts that contain
it, and patterns without one, pay for the timed search.

Many criteria of this kind can be judged together (:meth:`Regex.group`, ``regex_set.py``): one
Hyperscan scan of each text for all their patterns decides which of them need that search.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from functools import reduce
from typing import TYPE_CHECKING, Any, Literal, cast

import regex
from pydantic import Field, field_validator

from harness.criterion import Criterion, CriterionConfig, SuiteContext
from harness.hookspecs import hookimpl
from harness.models import Span, Transcript, Verdict, trusted
from harness.suite import CriterionSpec, SuiteError
from harness.targets import Target, select

if TYPE_CHECKING:
    from harness_criteria.regex_set import RegexGroup

FLAGS = {"IGNORECASE": regex.IGNORECASE, "I": regex.IGNORECASE, "MULTILINE": regex.MULTILINE,
         "M": regex.MULTILINE, "DOTALL": regex.DOTALL, "S": regex.DOTALL,
         "VERBOSE": regex.VERBOSE, "X": regex.VERBOSE, "ASCII": regex.ASCII, "A": regex.ASCII}
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
    timeout_s: float = Field(default=1.0, gt=0)
    """Time limit for the searches of one transcript; past it the verdict is ``error``."""

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


def parse(pattern: str, flags: int = 0) -> tuple[Any, Any]:
    """The ``regex`` module's own parse of a pattern, optimised as its compiler optimises it:
    ``(tree, info)``, with ``info.flags`` the pattern's global flags (inline ones included).

    The module's internals are private: callers treat any exception as "not known".
    """
    from regex import _regex_core as core

    core.DEFAULT_VERSION = regex.DEFAULT_VERSION  # as regex.compile sets it (version 0)
    while True:
        source = core.Source(pattern)
        info = core.Info(flags, source.char_type, {})
        source.ignore_space = bool(info.flags & regex.VERBOSE)
        try:
            parsed = core._parse_pattern(source, info)
            break
        except core._UnscopedFlagSet:
            flags = info.global_flags
    if not info.flags & (regex.ASCII | regex.LOCALE | regex.UNICODE):
        info.flags |= regex.UNICODE  # a str pattern's default, as regex.compile adds it
    reverse = bool(info.flags & regex.REVERSE)
    parsed.fix_groups(pattern, reverse, False)
    return parsed.optimise(info, reverse).pack_characters(info), info


def required_literals(pattern: str, flags: int = 0) -> list[tuple[str, bool]] | None:
    """Literals one of which every match of the pattern contains, each with whether it is
    matched case-insensitively: ``[("sorry", True), ("apologi", True)]`` for
    ``(?i)\\b(sorry|apologi[sz]e)\\b``.

    Read from the ``regex`` module's own parse of the pattern (:func:`parse`). ``None`` when
    there are none, when they need full case folding, or when the module's internals (private,
    so handled defensively) are not what this expects: the caller then searches every text.
    """
    try:
        from regex import _regex_core as core

        parsed, _ = parse(pattern, flags)
        found = _needed(parsed, core)
    except Exception:  # noqa: BLE001 - an optimisation only: without it, every text is searched
        return None
    if not found or any(not text or flags & ~regex.IGNORECASE for text, flags in found):
        return None  # empty, or full case folding (one character may match two)
    return [(text, bool(flags & regex.IGNORECASE)) for text, flags in found]


def _needed(node: Any, core: Any) -> list[tuple[str, int]] | None:
    """Literals (with case flags) one of which every match of ``node`` contains, or ``None``.

    Conservative: a node kind not named here contributes nothing.
    """
    kind = type(node)
    if kind in (core.String, core.Literal):
        return [("".join(map(chr, node.characters)), node.case_flags)]
    if kind is core.Character:
        return [(chr(node.value), node.case_flags)] if node.positive and not node.zerowidth \
            else None
    if kind in (core.Group, core.Atomic):
        return _needed(node.subpattern, core)
    if kind in (core.GreedyRepeat, core.LazyRepeat, core.PossessiveRepeat):
        return _needed(node.subpattern, core) if node.min_count >= 1 else None
    if kind is core.Branch:
        alternatives = []
        for branch in node.branches:
            found = _needed(branch, core)
            if not found:
                return None
            alternatives += found
        return alternatives
    if kind is core.Sequence:  # any item's literals will do: take the most selective
        options = [found for item in node.items if (found := _needed(item, core))]
        return max(options, key=lambda o: (min(len(t) for t, _ in o), -len(o)), default=None)
    return None


def literal_test(literals: list[tuple[str, bool]] | None) -> Callable[[str], bool] | None:
    """A linear-time test "may this text match?": does it contain one of the literals."""
    if not literals:
        return None
    exact = [t for t, ignore_case in literals if not ignore_case]
    folded = [t.lower() for t, ignore_case in literals if ignore_case]
    if not folded:
        if len(exact) == 1:
            text = exact[0]
            return lambda s: text in s
        return lambda s: any(t in s for t in exact)
    # In ASCII text, an ASCII letter matches only its two cases: lower() then `in` is exact.
    # Elsewhere a literal search, case-insensitive in Unicode mode whatever the pattern's
    # encoding flag: never stricter than the pattern (K matches the Kelvin sign, s the long s).
    ascii_only = all(t.isascii() for t in folded)
    finder = regex.compile("|".join(map(regex.escape, folded)),
                           regex.IGNORECASE | regex.UNICODE).search

    def may_match(s: str) -> bool:
        if any(t in s for t in exact):
            return True
        if ascii_only and s.isascii():
            lowered = s.lower()
            return any(t in lowered for t in folded)
        return finder(s) is not None

    return may_match


class Regex(Criterion):
    """A regular expression that must be present in (or absent from) the target messages."""

    kind = "regex"
    Config = RegexConfig
    config: RegexConfig
    cost = 0

    def __init__(self, spec: CriterionSpec, config: RegexConfig, context: SuiteContext) -> None:
        super().__init__(spec, config, context)
        flags = reduce(lambda a, b: a | b, (FLAGS[f] for f in config.flags), 0)
        try:
            self.regex = regex.compile(config.pattern, flags)
        except (regex.error, ValueError) as exc:
            raise SuiteError(f"{spec.origin}: criterion '{spec.name}' (regex): bad pattern "
                             f"{config.pattern!r}: {exc}") from None
        self.flags = flags
        """The configuration's flags (the pattern may set more inline)."""
        self.may_match = literal_test(required_literals(config.pattern, flags))
        self._not_found = self._verdict([])

    def not_found(self) -> Verdict:
        """The verdict :meth:`evaluate` gives where the pattern is not found: one object,
        shared (a regex group hands it out for every transcript its scan cleared; the plan
        stamps a copy once per batch)."""
        return self._not_found

    def evaluate(self, transcript: Transcript) -> Verdict:
        limit = self.config.timeout_s
        may_match, search = self.may_match, self.regex.search
        deadline = 0.0
        spans: list[Span] = []
        try:
            for index, field, text in select(transcript, self.config.target, self.spec.scope):
                if may_match is not None and not may_match(text):
                    continue  # the common case: the required literal is not there
                if not deadline:
                    deadline = time.perf_counter() + limit
                if search(text, timeout=_left(deadline)) is None:
                    continue
                for match in self.regex.finditer(text, timeout=_left(deadline)):
                    spans.append(Span(message=index, start=match.start(), end=match.end(),
                                      text=match.group(0)[:200], field=field))
                    if len(spans) >= MAX_SPANS:
                        break
                if len(spans) >= MAX_SPANS:
                    break
        except TimeoutError:
            return Verdict(outcome="error",
                           explanation=f"/{self.config.pattern}/ timed out: searching this "
                                       f"transcript took over {limit:g}s (timeout_s)")
        return self._verdict(spans)

    def _verdict(self, spans: list[Span]) -> Verdict:
        """The verdict on a transcript whose searches found ``spans`` (maybe none)."""
        found = bool(spans)
        passed = found if self.config.expect == "present" else not found
        where = self.config.target
        if found:
            explanation = f"/{self.config.pattern}/ matched {len(spans)}" \
                          f"{'+' if len(spans) >= MAX_SPANS else ''} time(s) in {where} text"
        else:
            explanation = f"/{self.config.pattern}/ not found in {where} text"
        # values this method made: built without validation (the hot path of regex suites)
        return trusted(Verdict, outcome="pass" if passed else "fail",
                       score=1.0 if passed else 0.0, evidence=spans, explanation=explanation)

    @classmethod
    def group(cls, criteria: Sequence[Criterion]) -> RegexGroup:
        """The criteria judged together, each text scanned once for all their patterns
        (:class:`~harness_criteria.regex_set.RegexGroup`)."""
        from harness_criteria.regex_set import RegexGroup

        return RegexGroup(cast("Sequence[Regex]", criteria))  # the plan groups one kind


def _left(deadline: float) -> float:
    """Seconds left before the deadline (a sliver past it, so the search times out at once)."""
    return max(deadline - time.perf_counter(), 1e-6)


@hookimpl
def register_criterion_kinds(register: Callable[[type[Criterion]], None]) -> None:
    register(Regex)
