"""The regex kind: evidence spans, flags, targets, expectations, bad patterns."""

from __future__ import annotations

import time

import pytest
import regex
from hypothesis import given, settings
from hypothesis import strategies as st
from testutil import write_suite

from harness import Engine, Message, SuiteError, Transcript, load_suite
from harness.suite import CriterionSpec
from harness_criteria.regex import FLAGS, Regex
from harness_criteria.regex_set import hyperscan


def transcript(*turns: tuple[str, str], reasoning: str | None = None) -> Transcript:
    messages = [Message(role=r, content=c) for r, c in turns]
    if reasoning:
        messages[-1].reasoning = reasoning
    return Transcript(id="t", messages=messages)


def engine_for(tmp_path, body: str) -> Engine:
    suite = write_suite(tmp_path / "s.yaml", "name: s\ncriteria:\n  - name: c\n    kind: regex\n"
                        + "".join(f"    {line}\n" for line in body.strip().splitlines()))
    return Engine(load_suite(suite))


def verdict(engine: Engine, t: Transcript):
    [decision] = engine.decide_batch([t])
    return decision.verdicts[0]


def test_evidence_spans_point_at_the_matches(tmp_path):
    engine = engine_for(tmp_path, "pattern: 'sorry'\nexpect: absent")
    t = transcript(("user", "say sorry"), ("assistant", "I'm sorry. So sorry."))
    v = verdict(engine, t)
    assert v.outcome == "fail" and v.score == 0.0
    assert [(s.message, s.start, s.end) for s in v.evidence] == [(1, 4, 9), (1, 14, 19)]
    assert all(t.messages[s.message].content[s.start:s.end] == "sorry" for s in v.evidence)


def test_present_passes_when_found(tmp_path):
    engine = engine_for(tmp_path, "pattern: '\\d+'\nexpect: present")
    assert verdict(engine, transcript(("user", "?"), ("assistant", "42"))).outcome == "pass"
    assert verdict(engine, transcript(("user", "1"), ("assistant", "none"))).outcome == "fail"


def test_flags(tmp_path):
    engine = engine_for(tmp_path, "pattern: '^no$'\nflags: [IGNORECASE, MULTILINE]\n"
                                  "expect: present")
    assert verdict(engine, transcript(("assistant", "well\nNO\nthen"))).outcome == "pass"
    plain = engine_for(tmp_path, "pattern: '^no$'\nexpect: present")
    assert verdict(plain, transcript(("assistant", "well\nNO\nthen"))).outcome == "fail"


@pytest.mark.parametrize(("target", "expected_messages"), [
    ("assistant", [1, 3]), ("last_assistant", [3]), ("user", [0, 2]), ("all", [0, 1, 2, 3]),
    ("system", []),
])
def test_targets(tmp_path, target, expected_messages):
    engine = engine_for(tmp_path, f"pattern: x\nexpect: present\ntarget: {target}")
    t = transcript(("user", "x"), ("assistant", "x"), ("user", "x"), ("assistant", "x"))
    assert sorted({s.message for s in verdict(engine, t).evidence}) == expected_messages


def test_reasoning_target_searches_reasoning_text(tmp_path):
    engine = engine_for(tmp_path, "pattern: secret\nexpect: absent\ntarget: reasoning")
    t = transcript(("user", "q"), ("assistant", "fine"), reasoning="the secret plan")
    v = verdict(engine, t)
    assert v.outcome == "fail"
    assert (v.evidence[0].field, v.evidence[0].start) == ("reasoning", 4)


def test_bad_pattern_is_a_suite_error(tmp_path):
    with pytest.raises(SuiteError, match=r"criterion 'c' \(regex\): bad pattern"):
        engine_for(tmp_path, "pattern: '(unclosed'\nexpect: absent")


def test_unknown_flag_is_a_suite_error(tmp_path):
    with pytest.raises(SuiteError, match="unknown flag"):
        engine_for(tmp_path, "pattern: x\nexpect: absent\nflags: [IGNORCASE]")


def test_pattern_is_compiled_once_per_suite(tmp_path):
    engine = engine_for(tmp_path, "pattern: x\nexpect: absent")
    compiled = engine.criteria[0].regex
    engine.decide_batch([transcript(("assistant", "x"))] * 3)
    assert engine.criteria[0].regex is compiled


# --- time limit -------------------------------------------------------------------------------

CATASTROPHIC = r"(a|aa)+\1$"
"""Exponential backtracking on a run of a's that does not end the text; the backreference is
beyond Hyperscan, so the pattern is searched with the ``regex`` module, under its time limit."""


def test_catastrophic_pattern_times_out_as_an_error_and_the_run_goes_on(tmp_path):
    engine = engine_for(tmp_path, f"pattern: '{CATASTROPHIC}'\nexpect: absent\ntimeout_s: 0.05")
    slow = transcript(("user", "q"), ("assistant", "a" * 40 + "b"))
    fine = transcript(("user", "q"), ("assistant", "nothing to see"))
    started = time.perf_counter()
    decisions = engine.decide_batch([slow, fine])
    assert time.perf_counter() - started < 10
    v = decisions[0].verdicts[0]
    assert v.outcome == "error" and "timed out" in v.explanation and "0.05s" in v.explanation
    assert decisions[0].outcome == "error"
    assert decisions[1].outcome == "pass"


@pytest.mark.skipif(hyperscan is None, reason="no Hyperscan wheel for this platform")
def test_a_pattern_hyperscan_scans_is_decided_in_linear_time(tmp_path):
    """The same backtracking trap without the lookahead: scanned in linear time, not found,
    well within the time limit (no backtracking, so no time-out)."""
    engine = engine_for(tmp_path, "pattern: '(a|aa)+$'\nexpect: absent\ntimeout_s: 0.05")
    slow = transcript(("user", "q"), ("assistant", "a" * 40 + "b"))
    v = engine.decide_batch([slow])[0].verdicts[0]
    assert v.outcome == "pass" and "not found" in v.explanation


def test_time_limit_is_per_transcript_and_has_a_default(tmp_path):
    engine = engine_for(tmp_path, "pattern: x\nexpect: absent")
    assert engine.criteria[0].config.timeout_s == 1.0
    with pytest.raises(SuiteError, match="timeout_s"):
        engine_for(tmp_path, "pattern: x\nexpect: absent\ntimeout_s: 0")


# --- the required-literal pre-check never changes an outcome ----------------------------------

PATTERNS = [
    ("as an ai (language )?model", ["IGNORECASE"]), ("sk-[A-Za-z0-9]{5,}", []),
    (r"\b(sorry|apologi[sz]e)\b", ["IGNORECASE"]), ("kelvin", ["IGNORECASE"]),
    ("kelvin", ["IGNORECASE", "ASCII"]), ("straße", ["IGNORECASE"]), ("(?i:SK)-x", []),
    ("^end$", ["MULTILINE"]), ("a.b", ["DOTALL"]), ("s k -", ["VERBOSE"]), ("ab(?=c)", []),
    ("(?r)ab.*cd", []), ("(?:abc){e<=1}", []), ("x(?:abc){e<=1}", []), (r"\d+", []),
    ("(?V1)(?i)strasse", []), ("(?fi)strasse", []), ("(sorry|my bad|apologi[sz]e)", ["I"]),
    ("(?:ab|a?)c", []), ("(ab)+|(?i:SORRY)", []), ("a(?<=xa)", []), ("(?!sk)s", []),
    (r"(a|aa)+$", []),
]
TEXTS = ["As an AI language model, no.", "AS AN AI MODEL", "key sk-abcdef12", "SK-x", "sorry!",
         "\u212aELVIN", "kelvin", "STRASSE", "straße", "x\nend\ny", "a\nb", "sk-", "abc",
         "ab cd", "abd", "", "plain text 42", "Sk-x", "ſorry", "MY BAD", "APOLOGISE", "c",
         "xa", "ababc", "xabd", "xbc"]


@pytest.mark.parametrize(("pattern", "flags"), PATTERNS)
def test_pre_check_agrees_with_a_plain_search(pattern, flags):
    criterion, compiled = regex_and_plain(pattern, flags)
    for text in TEXTS:
        expected = compiled.search(text) is not None
        got = criterion.evaluate(transcript(("assistant", text))).outcome == "pass"
        assert got == expected, (pattern, text)


def regex_and_plain(pattern: str, flags: list[str]):
    config = Regex.Config(pattern=pattern, flags=flags, expect="present")
    criterion = Regex(CriterionSpec(name="c", kind="regex"), config, None)
    return criterion, regex.compile(pattern, sum(FLAGS[f] for f in config.flags))


def test_pre_check_is_used_for_literals_and_alternations():
    assert regex_and_plain("sk-[a-z]+", [])[0].may_match is not None
    assert regex_and_plain(r"\b(sorry|apologi[sz]e)\b", ["I"])[0].may_match is not None
    assert regex_and_plain(r"\d+|x", [])[0].may_match is None


@settings(max_examples=300, deadline=None)
@given(pattern=st.sampled_from(PATTERNS), text=st.lists(st.one_of(
    st.sampled_from(TEXTS), st.text(alphabet="abcdkKsSyrnoAB \u212a\u017f\u00df\u0130-\n",
                                    max_size=6)), max_size=4).map("".join))
def test_pre_check_agrees_with_a_plain_search_on_any_text(pattern, text):
    criterion, compiled = regex_and_plain(*pattern)
    got = criterion.evaluate(transcript(("assistant", text))).outcome == "pass"
    assert got == (compiled.search(text) is not None)
