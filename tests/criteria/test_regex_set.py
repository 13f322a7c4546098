"""A regex group (one scan for every pattern) gives every criterion's own verdicts."""

from __future__ import annotations

import functools
import importlib.util
import json

import core_corpus
import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st

from harness import Message, Transcript
from harness.inputs.reader import parse_record
from harness.models import Verdict
from harness.plan import units
from harness.plugins import get_registry
from harness.suite import CriterionSpec
from harness_criteria.regex import FLAGS, Regex
from harness_criteria.regex_set import RegexGroup, expression

PATTERNS = [  # (pattern, flags): what suites gate on, then Unicode, anchors and odd syntax
    (r"as an ai (language )?model", ["IGNORECASE"]),
    (r"\b(sorry|apologi[sz]e)\b", ["IGNORECASE"]),
    (r"I (cannot|can't|can not) (help|assist)", ["I"]),
    (r"as of my (knowledge|training) cutoff", ["IGNORECASE"]),
    (r"sk-[A-Za-z0-9]{20,}", []),
    (r"\bAKIA[0-9A-Z]{4}\b", []),
    (r"-----BEGIN [A-Z ]*PRIVATE KEY-----", []),
    (r"\b\d{3}-\d{2}-\d{4}\b", []),
    (r"[\w.+-]+@[\w-]+\.[\w.]+", []),
    (r"https?://\S+", []),
    (r"\bpassword\s*[:=]", ["IGNORECASE"]),
    (r"\b(stupid|idiot)\b", []),
    (r"^\s*$", ["MULTILINE"]),
    (r"^#{1,3} \w", ["MULTILINE"]),
    (r"\A\s*(Sure|Certainly)[,!]", []),
    (r"[.!?]\Z", []),
    (r"^ok$", []),
    (r"a.b", ["DOTALL"]),
    (r"a.b", []),
    (" \\b kill \\b  # a word\n | mur der ", ["VERBOSE", "IGNORECASE"]),
    (r"\bcolou?r\b", ["ASCII", "IGNORECASE"]),
    (r"\w+\d", ["ASCII"]),
    (r"\W\s\S\D", []),
    (r"\B_\w", []),
    (r"x{2,}|y{,2}z", []),
    ("kelvin", ["IGNORECASE"]),
    ("kelvin", ["IGNORECASE", "ASCII"]),
    ("straße", ["IGNORECASE"]),
    ("\u017f|\u0130", ["IGNORECASE"]),
    (r"\d\d", []),
    (r"[^\W\d_]+é", ["I"]),
    (r"\p{Greek}+|[[:punct:]]{2}", []),
    (r"(?i:SK)-x|a(?i)b", []),
    (r"[^a-z\s]{3}", []),
    (r"\bé\b", []),
    (r"\N{GREEK SMALL LETTER SIGMA}", ["IGNORECASE"]),
    ("ab(?=c)|(?<!x)yz|(?>ab|a)c|x*+y", []),
    (r"(\w)\1", []),  # the rest are judged alone: backreference, fuzzy, full case, reversed
    ("(?:abc){e<=1}", []),
    ("(?fi)strasse", []),
    ("(?r)ab.*cd", []),
]
ALONE = {r"(\w)\1", "(?:abc){e<=1}", "(?fi)strasse", "(?r)ab.*cd"}
needs_hyperscan = pytest.mark.skipif(importlib.util.find_spec("hyperscan") is None,
                                     reason="no Hyperscan wheel here: every pattern alone")
TARGETS = ["assistant", "last_assistant", "user", "system", "all", "reasoning"]
WORDS = ["sorry", "As an AI language model", "sk-" + "a1" * 12, "AKIA1234", "STRASSE",
         "stra\u00dfe", "\u212aelvin", "\u017forry", "abc", "ab cd", "yz", "xyz", "ok", "OK",
         "a@b.co", "http://x", "123-45-6789", "Sure,", "# T", "## \u00e9", "PASSWORD:",
         "\u03c3\u03a3\u03c2", "\u0663\u0664", "colour", "Kill", "I can't help", "x_y", "\u00e9"]
CHARS = "abcdkKsSyrnoxz AB019_-.!?\n\t\x0b\x1c\u212a\u017f\u00df\u0130\u0131\u00e9\u00c9" \
        "\u03c3\u0663\u00a0\u2028\u0301\U0001f600"
text = st.lists(st.one_of(st.sampled_from(WORDS), st.text(alphabet=CHARS, max_size=8)),
                max_size=5).map("".join)
message = st.builds(lambda role, content, reasoning: Message(
    role=role, content=content, reasoning=reasoning if role == "assistant" else None),
    st.sampled_from(["system", "user", "assistant"]), text, st.none() | text)
transcripts = st.lists(st.builds(lambda ms: Transcript(id="t", messages=ms),
                                 st.lists(message, max_size=5)), min_size=1, max_size=4)
configs = st.lists(st.tuples(st.sampled_from(PATTERNS), st.sampled_from(["present", "absent"]),
                             st.sampled_from(TARGETS)), min_size=1, max_size=6)


def criterion(pattern: str, flags: list[str], expect: str = "present",
              target: str = "assistant", scope: str = "transcript", name: str = "c",
              timeout_s: float = 60) -> Regex:
    config = Regex.Config(pattern=pattern, flags=flags, expect=expect, target=target,
                          timeout_s=timeout_s)
    return Regex(CriterionSpec(name=name, kind="regex", scope=scope), config, None)


@functools.cache
def group_of(configs: tuple) -> RegexGroup:
    return Regex.group([criterion(p, list(f), e, t) for (p, f), e, t in configs])


def result(verdict: Verdict | BaseException) -> object:
    if isinstance(verdict, BaseException):
        return type(verdict), str(verdict)
    return verdict.model_dump(), verdict.__pydantic_fields_set__


def assert_as_alone(group: RegexGroup, batch: list[Transcript]) -> None:
    got = group.evaluate_batch(batch)
    assert len(got) == len(group.criteria)
    for c, verdicts in zip(group.criteria, got, strict=True):
        assert [result(v) for v in verdicts] == [result(c.evaluate(t)) for t in batch], \
            (c.config.pattern, c.config.flags, c.config.target)


@settings(max_examples=400, deadline=None)
@given(configs=configs, batch=transcripts)
def test_a_group_judges_as_each_criterion_alone(configs, batch):
    configs = tuple(((p, tuple(f)), e, t) for (p, f), e, t in configs)
    assert_as_alone(group_of(configs), batch)


@needs_hyperscan
def test_only_what_hyperscan_cannot_stand_for_is_judged_alone():
    group = Regex.group([criterion(p, f) for p, f in PATTERNS])
    assert isinstance(group, RegexGroup)
    assert {c.config.pattern for c in group.alone} == ALONE


def test_every_real_world_pattern_meets_every_sample_text():
    group = Regex.group([criterion(p, f, target="all") for p, f in PATTERNS])
    batch = [Transcript(id="t", messages=[Message(role="user", content=w)]) for w in WORDS]
    batch.append(Transcript(id="t", messages=[Message(role="user", content=w) for w in WORDS]))
    assert_as_alone(group, batch)


@needs_hyperscan
def test_a_pattern_hyperscan_refuses_is_judged_alone():
    group = Regex.group([criterion("(?:a{1000}){1000}|b", []), criterion("c", [])])
    assert [c.config.pattern for c in group.alone] == ["(?:a{1000}){1000}|b"]
    batch = [Transcript(id="t", messages=[Message(role="assistant", content=text)])
             for text in ("b", "c", "a")]
    assert_as_alone(group, batch)
    assert [v.outcome for v in group.evaluate_batch(batch)[0]] == ["pass", "fail", "fail"]


def test_texts_that_are_not_utf8_are_searched_by_each_criterion():
    group = Regex.group([criterion("sorry", ["I"]), criterion(r"\d", [], expect="absent")])
    batch = [Transcript(id="t", messages=[Message(role="assistant", content="\ud800 Sorry 1")])]
    assert_as_alone(group, batch)
    assert group.evaluate_batch(batch)[0][0].outcome == "pass"


# --- the translation never loses a match --------------------------------------------------------
ALL = "".join(map(chr, [*range(0xD800), *range(0xE000, 0x110000)]))


def hyperscan_matches(pattern: str, flags: int, utf8: bool, data: str) -> bool:
    found: list[bool] = []
    database(pattern, flags, utf8).scan(data.encode(),
                                        match_event_handler=lambda *_: found.append(True))
    return bool(found)


@functools.cache
def database(pattern: str, flags: int, utf8: bool):
    hyperscan = pytest.importorskip("hyperscan")
    mode = hyperscan.HS_FLAG_SINGLEMATCH | hyperscan.HS_FLAG_ALLOWEMPTY | \
        hyperscan.HS_FLAG_MULTILINE | (hyperscan.HS_FLAG_UTF8 if utf8 else 0)
    db = hyperscan.Database(mode=hyperscan.HS_MODE_BLOCK)
    db.compile(expressions=[expression(pattern, flags, utf8).encode()], flags=[mode])
    return db


@pytest.mark.parametrize(("scoped", "flags"), [
    ("", regex.IGNORECASE), ("", regex.IGNORECASE | regex.ASCII), ("", 0), ("(?i:{})", 0)])
def test_case_variants_of_a_character_are_all_kept(scoped, flags):
    letters = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ\u00df\u00e9\u03c3\u0131"
    for letter in letters:
        pattern = (scoped or "{}").format(regex.escape(letter))
        for variant in set(regex.findall(pattern, ALL, flags=flags)):
            assert hyperscan_matches(pattern, flags, True, variant), (pattern, variant)


@pytest.mark.parametrize("pattern", [r"\w", r"\W", r"\d", r"\D", r"\s", r"\S", ".", "[^a]",
                                     r"\p{L}", "[[:punct:]]", "[a-z]", r"\b.", r".\B."])
@pytest.mark.parametrize("flags", [0, regex.IGNORECASE, regex.ASCII, regex.DOTALL])
def test_classes_and_boundaries_are_exact_on_ascii(pattern, flags):
    for c in map(chr, range(128)):
        for data in (c, "a" + c, c + "_"):
            expected = regex.search(pattern, data, flags=flags) is not None
            assert hyperscan_matches(pattern, flags, False, data) == expected, (pattern, data)
            if expected:
                assert hyperscan_matches(pattern, flags, True, data), (pattern, data)


# --- time limit ---------------------------------------------------------------------------------
def test_a_search_that_times_out_is_an_error_as_alone():
    c = criterion("(a|aa)+$", [], expect="absent", timeout_s=0.05)
    slow = Transcript(id="t", messages=[Message(role="assistant", content="a" * 40 + "b\na")])
    [[verdict]] = Regex.group([c]).evaluate_batch([slow])
    assert verdict.outcome == "error" and "timed out" in verdict.explanation


@needs_hyperscan
def test_a_text_the_scan_clears_is_never_searched(monkeypatch):
    """Where the scan proves there is no match, no backtracking search runs: the verdict is the
    true one even where the criterion alone would time out."""
    c = criterion("(a|aa)+$", [], expect="absent", timeout_s=0.05)
    slow = Transcript(id="t", messages=[Message(role="assistant", content="a" * 40 + "b")])
    assert c.evaluate(slow).outcome == "error"
    group = Regex.group([c])
    monkeypatch.setattr(c, "evaluate", lambda _: pytest.fail("searched"))
    [[verdict]] = group.evaluate_batch([slow])
    assert verdict.outcome == "pass" and verdict.explanation == "/(a|aa)+$/ not found in " \
                                                                "assistant text"


# --- the core corpus ----------------------------------------------------------------------------
def test_the_core_corpus_is_judged_as_by_each_criterion_alone():
    formats = get_registry().formats
    batch = []
    for line in core_corpus.records():
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        parsed = parse_record(record, "corpus", formats)
        batch += parsed if isinstance(parsed, list) else []
    assert len(batch) == 3258  # of its 3,352 decisions, 94 are unreadable records
    specs = {
        "no_boilerplate": ("as an ai (language )?model", ["IGNORECASE"], "assistant", "transcript"),
        "no_secret": ("sk-[A-Za-z0-9]{20,}", [], "all", "transcript"),
        "per_turn_polite": (r"\b(stupid|idiot)\b", [], "last_assistant", "message"),
    }
    built = {name: criterion(p, f, "absent", t, scope, name)
             for name, (p, f, t, scope) in specs.items()}
    assert_as_alone(Regex.group([built["no_boilerplate"], built["no_secret"]]), batch)
    turns = [unit for t in batch for _, unit in units(built["per_turn_polite"], t)]
    assert_as_alone(Regex.group(list(built.values())), turns)


def test_flags_of_the_criterion_reach_the_scan():
    assert expression("x", FLAGS["IGNORECASE"], False) == r"[\x58\x78]"
