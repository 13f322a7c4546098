"""Per-criterion mode: one item per criterion over the corpus, failing below min_pass_rate."""

from __future__ import annotations

import json

import pytest
from pytest_plugin_helpers import outcomes_by_name, write_corpus


def test_one_item_per_criterion_fails_below_its_min_pass_rate(pytester, project):
    project()
    corpus = write_corpus(pytester.path, "openai")
    result = pytester.runpytest("--review-suite=suite.yaml", f"--transcripts={corpus}", "-v",
                                "--review-mode=criterion", "--junitxml=junit.xml")
    # no_ai_boilerplate 75% >= 50%; no_secret_leak 75% < 90%; the others pass everything
    assert outcomes_by_name(result) == {
        "corpus-openai.jsonl::input[corpus]": "PASSED",  # every record could be read
        "suite.yaml::no_ai_boilerplate": "PASSED", "suite.yaml::no_secret_leak": "FAILED",
        "suite.yaml::ends_with_answer": "PASSED", "suite.yaml::concise": "PASSED"}
    result.stdout.fnmatch_lines([
        "no_secret_leak: pass rate 75.0% (3 of 4) is below min_pass_rate 90.0%",
        "  pass 3, fail 1, error 0, skipped 0",
        "  worst examples:",
        "    no_secret_leak (regex): fail for leak-3 (*corpus-openai.jsonl:3)",
        "      fail, score 0.000",
        "*",
        "*",
        '      evidence: message 1 [4:31]: "sk-abcdefghijklmnopqrstuvwx"',
    ])
    result.stdout.fnmatch_lines([
        "*= harness criteria =*",
        "no_ai_boilerplate: pass rate 75.0% (pass 3, fail 1, error 0), min 50.0% ok",
        "no_secret_leak: pass rate 75.0% (pass 3, fail 1, error 0), min 90.0% BELOW",
    ])
    assert "Traceback" not in result.stdout.str()
    junit = (pytester.path / "junit.xml").read_text()
    assert '<property name="pass_rate" value="0.75"' in junit


def test_the_default_rate_applies_to_criteria_without_one(pytester, project):
    project()
    corpus = write_corpus(pytester.path, "openai")
    result = pytester.runpytest("--review-suite=suite.yaml", f"--transcripts={corpus}",
                                "--review-mode=criterion", "--review-min-pass-rate=0.5",
                                "-k", "ends_with_answer or concise")
    result.assert_outcomes(passed=2, deselected=3)


def test_python_criteria_run_over_the_corpus_in_one_item(pytester):
    pytester.makepyfile(test_rates="""
        import pytest

        @pytest.mark.criterion(min_pass_rate=0.7)
        def test_no_boilerplate(transcript):
            assert "as an ai" not in transcript.last_assistant().content.lower(), "boilerplate"

        @pytest.mark.criterion(min_pass_rate=0.8)
        def test_no_key(transcript):
            assert "sk-" not in transcript.last_assistant().content, "a key"
        """)
    corpus = write_corpus(pytester.path, "openai")
    result = pytester.runpytest(f"--transcripts={corpus}", "--review-mode=criterion", "-v",
                                "--review-out=out")
    assert outcomes_by_name(result) == {"corpus-openai.jsonl::input[corpus]": "PASSED",
                                        "test_rates.py::test_no_boilerplate": "PASSED",
                                        "test_rates.py::test_no_key": "FAILED"}
    result.stdout.fnmatch_lines(["no_key: pass rate 75.0% (3 of 4) is below min_pass_rate 80.0%",
                                 "*worst examples:",
                                 "    no_key (pytest): fail for leak-3 (*)",
                                 "      fail, score 0.000",
                                 "      explanation:",
                                 "        a key"])
    summary = json.loads((pytester.path / "out" / "summary.json").read_text())
    assert (summary["read"], summary["passed"], summary["failed"]) == (4, 2, 2)


@pytest.mark.parametrize("mode_args", [[], ["-n", "2"]], ids=["in-process", "xdist"])
def test_criterion_mode_writes_the_same_run_directory_as_transcript_mode(pytester, project,
                                                                        mode_args):
    project()
    corpus = write_corpus(pytester.path, "hh-rlhf")
    common = ["--review-suite=suite.yaml", f"--transcripts={corpus}", "-p", "no:cacheprovider"]
    pytester.runpytest(*common, "--review-out=items")
    pytester.runpytest(*common, *mode_args, "--review-mode=criterion", "--review-out=crit")
    for name in ("train.jsonl", "rejected.jsonl", "errors.jsonl", "journal.jsonl"):
        items = (pytester.path / "items" / name).read_text()
        crit = (pytester.path / "crit" / name).read_text()
        if name == "journal.jsonl":  # latencies differ
            items, crit = (
                [{**json.loads(line)["decision"], "verdicts": None} for line in text.splitlines()]
                for text in (items, crit))
        assert items == crit, name
    assert not (pytester.path / "crit" / ".pytest-parts").exists()


def test_unreadable_records_fail_the_session_in_criterion_mode(pytester, project):
    project()
    lines = ['{"messages": [{"role": "user", "content": "q"}, '
             '{"role": "assistant", "content": "fine"}]}'] + ["{broken"] * 10
    (pytester.path / "bad.jsonl").write_text("\n".join(lines) + "\n")
    result = pytester.runpytest("--review-suite=suite.yaml", "--transcripts=bad.jsonl",
                                "--review-mode=criterion")
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(["*10 unreadable record(s) in the corpus:",
                                 "*bad.jsonl:2: invalid JSON*"])
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] >= 1 and "Traceback" not in result.stdout.str()


def test_pytest_decides_the_saved_corpus_as_the_engine(pytester):
    """The fixture of decisions tests/test_engine_core.py holds the engine to: a pytest run in
    per-criterion mode gives the same decisions and verdicts."""
    import gzip
    import sys
    from pathlib import Path

    import pandas as pd

    tests = Path(__file__).resolve().parents[1]
    sys.path.insert(0, str(tests))
    import core_corpus

    core_corpus.write(pytester.path)
    result = pytester.runpytest("--review-suite=suite.yaml", "--transcripts=corpus.jsonl",
                                "--review-mode=criterion", "--review-out=run",
                                "--review-min-pass-rate=0", "-p", "no:cacheprovider")
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # the corpus has unreadable records
    with gzip.open(tests / "fixtures" / "core_decisions.jsonl.gz", "rt") as fh:
        expected = [json.loads(line) for line in fh]
    decisions = pd.read_parquet(pytester.path / "run" / "decisions.parquet")
    got = [{"id": d.transcript_id.rsplit("/", 1)[-1], "outcome": d.outcome,
            "failed": list(d.failed), "errored": list(d.errored)}
           for d in decisions.itertuples()]
    assert got == [{k: e[k] for k in ("id", "outcome", "failed", "errored")} for e in expected]
