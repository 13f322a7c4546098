"""Python suites: test functions taking `transcript` are criteria, parametrized over the corpus."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from pytest_plugin_helpers import outcomes_by_name, write_corpus

FORMATS = {
    # format: (transcript ids, failing items)
    "openai": (["ok-1", "boiler-2", "leak-3", "ok-4"],
               {"test_no_boilerplate[boiler-2]", "test_no_secret[leak-3]"}),
    "sharegpt": (["ok-1", "boiler-2", "leak-3", "ok-4"],
                 {"test_no_boilerplate[boiler-2]", "test_no_secret[leak-3]"}),
    "parquet": (["ok-1", "boiler-2", "leak-3", "ok-4"],
                {"test_no_boilerplate[boiler-2]", "test_no_secret[leak-3]"}),
    "hh-rlhf": ([f"{c}:{side}" for c in ("ok-1", "boiler-2", "leak-3", "ok-4")
                 for side in ("chosen", "rejected")],
                {"test_no_boilerplate[boiler-2:chosen]", "test_no_secret[leak-3:chosen]"}
                | {f"test_no_boilerplate[{c}:rejected]"
                   for c in ("ok-1", "boiler-2", "leak-3", "ok-4")}),
}


@pytest.mark.parametrize("fmt", list(FORMATS))
def test_each_test_runs_once_per_transcript_of_every_input_format(pytester, project, fmt):
    project()
    corpus = write_corpus(pytester.path, fmt)
    result = pytester.runpytest("test_suite.py", "-v", f"--transcripts={corpus}",
                                f"--input-format={fmt if fmt != 'parquet' else 'auto'}",
                                "--review-out=out")
    ids, failing = FORMATS[fmt]
    outcomes = outcomes_by_name(result)
    expected = {f"test_suite.py::{test}[{tid}]" for tid in ids
                for test in ("test_no_boilerplate", "test_short", "test_no_secret")}
    assert set(outcomes) == expected
    assert {k.split("::")[1] for k, v in outcomes.items() if v == "FAILED"} == failing
    result.assert_outcomes(passed=len(expected) - len(failing), failed=len(failing))
    summary = json.loads((pytester.path / "out" / "summary.json").read_text())
    assert summary["read"] == len(ids)
    assert summary["passed"] == len(ids) - len({f.split("[")[1] for f in failing})


def test_verdicts_carry_the_assertion_message_marker_settings_and_scores(pytester, project):
    project()
    corpus = write_corpus(pytester.path, "openai")
    pytester.runpytest("test_suite.py", f"--transcripts={corpus}", "--review-out=out")
    results = pd.read_parquet(pytester.path / "out" / "results.parquet")
    row = results[(results.transcript_id == "boiler-2")
                  & (results.criterion == "no_boilerplate")].iloc[0]
    assert (row.outcome, row.kind, row.score) == ("fail", "pytest", 0.0)
    assert row.explanation.startswith("boilerplate in the answer")
    short = results[results.criterion == "short"]
    assert set(short.version) == {"3"} and not short.gate.any()
    assert short.set_index("transcript_id").score["ok-4"] == pytest.approx(1.0)
    assert short.set_index("transcript_id").score["boiler-2"] == pytest.approx(40 / 48)
    secret = results[(results.criterion == "no_secret") & (results.transcript_id == "leak-3")]
    evidence = json.loads(secret.iloc[0].evidence)
    assert evidence[0]["text"] == "sk-abcdefghijklmnopqrstuvwx"  # assert_passes' regex span
    meta = json.loads((pytester.path / "out" / "run.json").read_text())
    specs = {c["name"]: c for c in meta["suite"]["criteria"]}
    assert specs["no_boilerplate"]["description"] == "No AI boilerplate in the final answer."
    assert (specs["short"]["weight"], specs["short"]["gate"]) == (2.0, False)


def test_an_exception_other_than_an_assertion_is_an_error_verdict(pytester):
    pytester.makepyfile(test_err="""
        def test_parses(transcript):
            raise ValueError("cannot parse the answer")
        """)
    corpus = write_corpus(pytester.path, "openai")
    result = pytester.runpytest(f"--transcripts={corpus}", "--review-out=out")
    result.assert_outcomes(failed=4)
    decisions = pd.read_parquet(pytester.path / "out" / "decisions.parquet")
    assert set(decisions.outcome) == {"error"}
    results = pd.read_parquet(pytester.path / "out" / "results.parquet")
    assert set(results.outcome) == {"error"}
    assert results.explanation.iloc[0] == "ValueError: cannot parse the answer"
    assert not (pytester.path / "out" / "train.jsonl").read_text()


def test_an_unreadable_record_is_one_item_named_by_its_place(pytester, project):
    project()
    corpus = write_corpus(pytester.path, "openai")
    with corpus.open("a") as fh:
        fh.write('{"messages": [oops\n')
    result = pytester.runpytest("test_suite.py", f"--transcripts={corpus}", "--review-out=out")
    result.assert_outcomes(passed=10, failed=2 + 1)  # one item for the record, not one per test
    result.stdout.fnmatch_lines([
        "*_ input?unreadable:corpus-openai.jsonl:5? _*",
        "unreadable record (input): error for (no id) (*corpus-openai.jsonl:5)",
        "  error",
        "  explanation:",
        "    invalid JSON: *",
        "*FAILED corpus-openai.jsonl::input?unreadable:corpus-openai.jsonl:5?*"])
    errors = (pytester.path / "out" / "errors.jsonl").read_text().splitlines()
    assert [json.loads(e)["kind"] for e in errors] == ["input"]


def test_a_fixture_named_transcript_of_the_users_own_is_left_alone(pytester):
    pytester.makeconftest("""
        import pytest

        @pytest.fixture
        def transcript():
            return "mine"
        """)
    pytester.makepyfile(test_own="""
        def test_own(transcript):
            assert transcript == "mine"
        """)
    corpus = write_corpus(pytester.path, "openai")
    pytester.runpytest(f"--transcripts={corpus}").assert_outcomes(passed=1)


def test_two_criteria_with_one_name_is_a_usage_error(pytester):
    pytester.makepyfile(test_a="def test_x(transcript): pass",
                        test_b="def test_x(transcript): pass")
    corpus = write_corpus(pytester.path, "openai")
    result = pytester.runpytest(f"--transcripts={corpus}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*two criteria are named 'x'*@pytest.mark.criterion(name=...)*"])
