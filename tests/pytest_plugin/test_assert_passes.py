"""assert_passes: registered criteria applied inside an ordinary test."""

from __future__ import annotations

import sys

import pytest
from pytest_plugin_helpers import SUITE_YAML, openai_record

from harness.pytest_plugin import ReviewFailure, assert_passes

NO_SORRY = {"name": "no_sorry", "kind": "regex", "pattern": "sorry", "flags": ["IGNORECASE"],
            "expect": "absent"}


def test_a_passing_transcript_returns_the_decision():
    decision = assert_passes(openai_record("a", "hi", "Hello!"), NO_SORRY)
    assert decision.passed and [v.criterion for v in decision.verdicts] == ["no_sorry"]


def test_a_failing_transcript_raises_with_the_evidence():
    with pytest.raises(ReviewFailure) as info:
        assert_passes(openai_record("b", "hi", "Sorry, I cannot."), [NO_SORRY])
    assert isinstance(info.value, AssertionError)
    assert info.value.decision.failed == ["no_sorry"]
    assert str(info.value).splitlines() == [
        "transcript 'b' did not pass (fail: no_sorry)",
        "no_sorry (regex): fail for b (<assert_passes>)",
        "  fail, score 0.000",
        "  explanation:",
        "    /sorry/ matched 1 time(s) in assistant text",
        '  evidence: message 1 [0:5]: "Sorry"',
    ]


def test_a_suite_file_applies_its_whole_decision_policy(tmp_path, monkeypatch):
    # a module name of its own: an imported `checks` would shadow the other tests' one
    (tmp_path / "suite.yaml").write_text(SUITE_YAML.replace("checks:", "ap_checks:"))
    (tmp_path / "ap_checks.py").write_text("def ends_with_assistant(t):\n    return True\n\n"
                                           "def conciseness(t):\n    return 1.0\n")
    monkeypatch.delitem(sys.modules, "ap_checks", raising=False)
    assert_passes(openai_record("c", "q", "fine"), tmp_path / "suite.yaml")
    with pytest.raises(ReviewFailure, match="no_secret_leak"):
        assert_passes(openai_record("d", "q", "sk-abcdefghijklmnopqrstuvwx"),
                      str(tmp_path / "suite.yaml"))
    sys.modules.pop("ap_checks", None)


def test_a_bad_criterion_is_a_clear_error():
    with pytest.raises(Exception, match="unknown kind 'nope'"):
        assert_passes(openai_record("e", "q", "a"), {"kind": "nope"})
