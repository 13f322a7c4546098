"""The python kind: bool, float and Verdict results; import errors; fail-closed exceptions."""

from __future__ import annotations

import pytest
from testutil import write_suite

from harness import Engine, Message, SuiteError, Transcript, load_suite

CHECKS = '''
from harness import Verdict, Span

def is_short(t, limit=10):
    return len(t.messages[-1].content) <= limit

def half(t):
    return 0.5

def too_big(t):
    return 1.5

def with_evidence(t):
    return Verdict(outcome="fail", score=0.2, explanation="found it",
                   evidence=[Span(message=0, start=0, end=2)])

def boom(t):
    raise RuntimeError("database is down")

def wrong_type(t):
    return "yes"
'''


@pytest.fixture
def make(tmp_path):
    (tmp_path / "mychecks.py").write_text(CHECKS)

    def build(function: str, extra: str = "") -> Engine:
        suite = write_suite(tmp_path / "s.yaml", f"name: s\ncriteria:\n  - name: c\n"
                            f"    kind: python\n    function: mychecks:{function}\n{extra}")
        return Engine(load_suite(suite))

    return build


T = Transcript(id="t", messages=[Message(role="user", content="q"),
                                 Message(role="assistant", content="a short one")])


def only_verdict(engine: Engine):
    return engine.decide_batch([T])[0].verdicts[0]


def test_bool_result(make):
    assert only_verdict(make("is_short")).outcome == "fail"
    v = only_verdict(make("is_short", "    args: {limit: 20}\n"))
    assert (v.outcome, v.score) == ("pass", 1.0)


def test_float_result_against_threshold(make):
    assert only_verdict(make("half")).outcome == "pass"
    v = only_verdict(make("half", "    threshold: 0.6\n"))
    assert (v.outcome, v.score) == ("fail", 0.5)


def test_verdict_result_keeps_evidence_and_gets_its_name(make):
    v = only_verdict(make("with_evidence"))
    assert (v.criterion, v.kind, v.version, v.explanation) == ("c", "python", "1", "found it")
    assert v.evidence[0].end == 2


@pytest.mark.parametrize(("function", "message"), [
    ("boom", "RuntimeError: database is down"),
    ("too_big", "not in [0, 1]"),
    ("wrong_type", "expected bool, float or Verdict"),
])
def test_failures_inside_the_function_are_errors_never_passes(make, function, message):
    decision = make(function).decide_batch([T])[0]
    v = decision.verdicts[0]
    assert v.outcome == "error" and message in v.explanation
    assert decision.outcome == "error" and decision.errored == ["c"]


def test_unimportable_function_is_a_suite_error(make):
    with pytest.raises(SuiteError, match="cannot import mychecks:nope"):
        make("nope")


def test_two_suites_with_their_own_checks_module_do_not_clash(tmp_path):
    engines = []
    for name, verdict in (("one", "True"), ("two", "False")):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "checks.py").write_text(f"def check(t):\n    return {verdict}\n")
        engines.append(Engine(load_suite(write_suite(
            folder / "s.yaml", "name: s\ncriteria:\n  - {name: c, kind: python, "
                               "function: 'checks:check'}\n"))))
    assert [e.decide_batch([T])[0].outcome for e in engines] == ["pass", "fail"]


TRACED = '''
def _lookup(table, key):
    return table[key]


def needs_label(t):
    return _lookup(t.metadata, "label") == "ok"
'''


def test_an_error_keeps_a_short_traceback_of_the_criterions_own_code(tmp_path, cli):
    """The explanation says what went wrong; `details.traceback` says where, in the user's
    code only (no harness frames), as `harness run` writes it to results.parquet."""
    import json

    import pandas as pd
    from testutil import chat, write_jsonl

    (tmp_path / "traced.py").write_text(TRACED)
    suite = write_suite(tmp_path / "s.yaml", "name: s\ncriteria:\n  - name: labelled\n"
                        "    kind: python\n    function: traced:needs_label\n")
    data = write_jsonl(tmp_path / "in.jsonl", [chat("q", "a", id="t1")])
    code, _, err = cli("run", suite, data, "-o", tmp_path / "run", "--no-progress")
    assert code == 0, err
    row = pd.read_parquet(tmp_path / "run" / "results.parquet").iloc[0]
    assert row.outcome == "error" and row.explanation == "KeyError: 'label'"
    trace = json.loads(row.details)["traceback"]
    lines = trace.splitlines()
    assert lines[0] == "Traceback (most recent call last):"
    assert 'File "traced.py", line 7, in needs_label' in trace
    assert 'File "traced.py", line 3, in _lookup' in trace
    assert "return table[key]" in trace and lines[-1] == "KeyError: 'label'"
    assert "python.py" not in trace and "harness" not in trace
