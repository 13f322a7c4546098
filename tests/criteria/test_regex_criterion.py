"""The regex kind: evidence spans, flags, targets, expectations, bad patterns."""

from __future__ import annotations

import pytest
from testutil import write_suite

from harness import Engine, Message, SuiteError, Transcript, load_suite


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
