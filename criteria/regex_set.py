"""One scan for every pattern: many ``regex`` criteria judged together (:meth:`Regex.group`).

The patterns of the group are compiled into one Hyperscan database. For each transcript, the
texts its criteria target are joined (each followed by ``\\n``) and scanned once, in linear
time, however many patterns there are. The scan is a prefilter: a pattern it does not report
cannot match any of those texts, so its criterion's verdict is "not found" without another
search; a pattern it reports may match, and its criterion then judges the transcript exactly as
it does alone (:meth:`Regex.evaluate`: required literal, timed search, evidence spans). Every
verdict is the one the criterion gives alone; most are only cheaper to reach.

A pattern reaches Hyperscan through the ``regex`` module's own parse of it (``parse``), never
through its source text (the two syntaxes differ), translated node by node into an expression
that matches at least wherever the pattern can:

- characters and classes become explicit sets read from the ``regex`` module itself: their
  ASCII members exactly and, for texts that are not all ASCII, every non-ASCII character (only
  its own case variants for a literal character), so that no Unicode class or case folding
  loses a match;
- ``^``, ``$``, ``\\A`` and ``\\Z`` become line anchors, so a match at the edge of a text stays
  one in the joined texts; ``\\b`` and ``\\B`` are kept for ASCII texts (where both engines
  agree) and dropped for the others; lookarounds and other assertions are dropped (without a
  condition an expression only matches more); repeats become greedy (unbounded past
  ``MAX_REPEAT``), atomic groups plain;
- backreferences, fuzzy matching, conditionals, recursion, ``\\X``, named lists, full case
  folding and reversed searches are not translated, nor is what Hyperscan refuses to compile
  (repeats of repeats past its limits): such a criterion is judged alone, on every transcript.

So there are two databases, one for transcripts whose texts are all ASCII (scanned as bytes),
one for the others (UTF-8). A group holds Hyperscan scratch space: use it from one thread.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any, cast

import regex
from regex import _regex

from harness.criterion import Column, Result
from harness.models import Transcript, Verdict
from harness.targets import select

if TYPE_CHECKING:
    from harness_criteria.regex import Regex

hyperscan: Any
try:
    import hyperscan
except ImportError:  # pragma: no cover - no wheel for this platform: each criterion alone
    hyperscan = None

NON_ASCII = r"\x{80}-\x{d7ff}\x{e000}-\x{10ffff}"
"""Every character of UTF-8 text that is not ASCII (class items)."""
NEVER = r"\x80"
"""An expression that matches nothing in ASCII text."""
FULL_IGNORECASE = regex.FULLCASE | regex.IGNORECASE
MAX_REPEAT = 1000
"""Repeats bounded above this become unbounded (and at least this many) in the scan."""


class Untranslatable(Exception):
    """A pattern the scan cannot stand in for: its criterion is judged alone."""


def expression(pattern: str, flags: int, utf8: bool) -> str:
    """A Hyperscan expression (for ``HS_FLAG_MULTILINE``, and ``HS_FLAG_UTF8`` if ``utf8``)
    that matches at least wherever ``pattern`` can match in a text (an ASCII text unless
    ``utf8``). Raises :class:`Untranslatable`, or whatever the ``regex`` module's private
    internals raise when they are not what this expects."""
    from harness_criteria.regex import parse

    parsed, info = parse(pattern, flags)
    if info.flags & regex.REVERSE:
        raise Untranslatable("a reversed search")
    return _Translator(info, utf8).node(parsed)


class _Translator:
    """The nodes of a parsed pattern as Hyperscan syntax (see the module docstring)."""

    def __init__(self, info: Any, utf8: bool) -> None:
        from regex import _regex_core as core

        self.core, self.utf8 = core, utf8
        self.flags = info.flags | (info.flags & (regex.VERSION0 | regex.VERSION1)
                                   or regex.DEFAULT_VERSION)
        self.sets = (core.Character, core.Property, core.Range, core.SetUnion, core.SetInter,
                     core.SetDiff, core.SetSymDiff, core.Any, core.AnyAll, core.AnyU)

    def node(self, node: Any) -> str:
        core, kind = self.core, type(node)
        if kind is core.Sequence:
            return "".join(map(self.node, node.items))
        if kind is core.Branch:
            return "(?:" + "|".join(map(self.node, node.branches)) + ")"
        if kind in (core.Group, core.Atomic):
            body = self.node(node.subpattern)
            return f"(?:{body})" if body else ""
        if kind in (core.GreedyRepeat, core.LazyRepeat, core.PossessiveRepeat):
            body = self.node(node.subpattern)
            least, most = node.min_count, node.max_count
            if most is None or most > MAX_REPEAT:  # Hyperscan refuses large bounded repeats
                least, most = min(least, MAX_REPEAT), ""
            return f"(?:{body}){{{least},{most}}}" if body else ""
        if kind in (core.String, core.Literal):
            return "".join(self.chars(core.Character(c, case_flags=node.case_flags))
                           for c in node.characters)
        if kind in self.sets:
            return "" if getattr(node, "zerowidth", False) else self.chars(node)
        if kind is core.Boundary:
            return "" if self.utf8 else ("\\b" if node.positive else "\\B")
        if kind in (core.StartOfString, core.StartOfLine):
            return "^"
        if kind in (core.EndOfString, core.EndOfStringLine, core.EndOfLine):
            return "$"
        if kind is core.LookAround or issubclass(kind, core.ZeroWidthBase):
            return ""  # an assertion: without it the expression only matches more
        raise Untranslatable(kind.__name__)

    def chars(self, node: Any) -> str:
        """One character that ``node`` matches, as a class."""
        case = getattr(node, "case_flags", 0)
        if case & FULL_IGNORECASE == FULL_IGNORECASE:
            raise Untranslatable("full case folding")  # one character may match two
        matches = self.matcher(node)
        members = [c for c in range(128) if matches(chr(c))]
        if not self.utf8:
            return _class(members, "") if members else NEVER
        if type(node) is self.core.Character and node.positive:
            cases = _regex.get_all_cases(self.flags | case, node.value) \
                if case & regex.IGNORECASE else [node.value]
            others = "".join(f"\\x{{{c:x}}}" for c in sorted(set(cases))
                             if c >= 128 and not 0xD800 <= c <= 0xDFFF)
        else:
            others = NON_ASCII
        if not members and not others:
            raise Untranslatable("a character that valid UTF-8 does not hold")
        return _class(members, others)

    def matcher(self, node: Any) -> Callable[[str], Any]:
        """``match`` of a pattern made of ``node`` alone, compiled by the ``regex`` module."""
        core = self.core
        code = core._flatten_code(node.compile(False) + [(core.OP.SUCCESS,)])
        match: Callable[[str], Any] = _regex.compile(
            "", self.flags, code, {}, {}, {}, [], 0, (), 0, 0).match
        return match


def _class(members: list[int], others: str) -> str:
    """A class of the ASCII characters ``members`` (ascending) plus the items ``others``."""
    items, start = [], 0
    for i, c in enumerate(members):
        if i + 1 == len(members) or members[i + 1] != c + 1:
            low = members[start]
            items.append(f"\\x{low:02x}" if low == c else f"\\x{low:02x}-\\x{c:02x}")
            start = i + 1
    return "[" + "".join(items) + others + "]"


class _Scan:
    """One Hyperscan database over the patterns of a group that it can express, for ASCII
    texts or for UTF-8 ones: which criteria may match a text, and which must search alone."""

    def __init__(self, criteria: Sequence[Regex], utf8: bool) -> None:
        self.users: list[list[int]] = []
        """Per expression of the database, the criteria (indices) whose pattern it stands for."""
        self.alone: list[int] = []
        """The criteria the database cannot stand for."""
        self.db: Any = None
        if hyperscan is None:
            self.alone = list(range(len(criteria)))
            return
        mode = hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_ALLOWEMPTY \
            | hyperscan.HS_FLAG_MULTILINE | (hyperscan.HS_FLAG_UTF8 if utf8 else 0)
        users: dict[bytes, list[int]] = {}
        for n, criterion in enumerate(criteria):
            try:
                text = expression(criterion.config.pattern, criterion.flags, utf8).encode()
            except Exception:  # noqa: BLE001 - judged alone: the verdict never depends on this
                self.alone.append(n)
                continue
            users.setdefault(text, []).append(n)
        try:
            self.db = _database(list(users), mode) if users else None
        except Exception:  # noqa: BLE001 - Hyperscan refuses one: find it, judge it alone
            for text in list(users):
                try:
                    _database([text], mode)
                except Exception:  # noqa: BLE001
                    self.alone += users.pop(text)
            try:
                self.db = _database(list(users), mode) if users else None
            except Exception:  # noqa: BLE001 - too much together: every criterion alone
                self.alone, users = list(range(len(criteria))), {}
        self.users = list(users.values())

    def hits(self, data: bytes) -> list[int]:
        """The expressions (ids) that match somewhere in ``data``."""
        found: list[int] = []
        self.db.scan(data, match_event_handler=lambda n, *_: found.append(n))
        return found


def _database(expressions: list[bytes], mode: int) -> Any:
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(expressions=expressions, ids=list(range(len(expressions))),
               elements=len(expressions), flags=[mode] * len(expressions))
    return db


class RegexGroup:
    """``regex`` criteria judged together over a batch of transcripts: each text they target
    is scanned once for all their patterns (see the module docstring)."""

    def __init__(self, criteria: Sequence[Regex]) -> None:
        self.criteria = list(criteria)
        self.targets = list(dict.fromkeys((c.config.target, c.spec.scope)
                                          for c in self.criteria))
        """The distinct ``(target, scope)`` of the criteria: their texts are scanned."""
        self.ascii = _Scan(self.criteria, utf8=False)
        self.utf8 = _Scan(self.criteria, utf8=True)
        self.none = _Scan([], utf8=False)
        """For texts that are not UTF-8: every criterion searches alone."""

    @property
    def alone(self) -> list[Regex]:
        """The criteria that search every transcript alone (their pattern is not scanned)."""
        both = set(self.ascii.alone) | set(self.utf8.alone)
        return [c for n, c in enumerate(self.criteria) if n in both]

    def evaluate_batch(self, transcripts: Sequence[Transcript]
                       ) -> list[list[Result | BaseException]]:
        """Each criterion's verdict on each transcript (``[criterion][transcript]``), each
        equal to what ``criterion.evaluate(transcript)`` returns (an exception it raised in
        its place)."""
        out: list[list[Result | BaseException]] = []
        for criterion, searched in zip(self.criteria, self.searched(transcripts), strict=True):
            not_found = criterion.not_found
            out.append([searched[i] if i in searched else not_found()
                        for i in range(len(transcripts))])
        return out

    def evaluate_columns(self, transcripts: Sequence[Transcript]) -> list[Column]:
        """:meth:`evaluate_batch` as columns: each criterion's "not found" verdict, and its
        verdicts on the transcripts it had to search."""
        return [Column(c.not_found(), cast("dict[int, Result | BaseException]", found))
                for c, found in zip(self.criteria, self.searched(transcripts), strict=True)]

    def searched(self, transcripts: Sequence[Transcript]
                 ) -> list[dict[int, Verdict | BaseException]]:
        """Per criterion, its verdicts on the transcripts (by index in the batch) that it had
        to search; on every other one its pattern cannot match: the verdict is
        ``criterion.not_found()``."""
        criteria = self.criteria
        found: list[dict[int, Verdict | BaseException]] = [{} for _ in criteria]
        everyone = range(len(criteria))
        for i, transcript in enumerate(transcripts):
            texts = self._texts(transcript)
            if not texts:
                continue  # no text to search: no pattern can match
            joined = "\n".join(texts) + "\n"  # no text starts after the last newline (no ^)
            scan = self.ascii if joined.isascii() else self.utf8
            try:
                data = joined.encode()
            except UnicodeEncodeError:  # lone surrogates: not UTF-8, so no scan
                scan = self.none
            todo: Iterable[int] = everyone if scan.db is None else scan.alone
            if scan.db is not None and (hits := scan.hits(data)):
                todo = [*todo, *(n for hit in hits for n in scan.users[hit])]
            for n in todo:
                found[n][i] = _evaluate(criteria[n], transcript)
        return found

    def _texts(self, transcript: Transcript) -> list[str]:
        """Every text some criterion of the group targets, once each."""
        if len(self.targets) == 1:
            return [text for _, _, text in select(transcript, *self.targets[0])]
        texts = {}
        for target, scope in self.targets:
            for index, field, text in select(transcript, target, scope):
                texts[index, field] = text
        return list(texts.values())


def _evaluate(criterion: Regex, transcript: Transcript) -> Verdict | BaseException:
    try:
        return criterion.evaluate(transcript)
    except Exception as exc:  # noqa: BLE001 - an error for this transcript alone
        return exc
