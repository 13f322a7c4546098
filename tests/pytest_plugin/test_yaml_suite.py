"""YAML suites collected by pytest: items `suite::criterion[transcript-id]`, evidence reports."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET

import pytest
from pytest_plugin_helpers import openai_record, outcomes_by_name, write_corpus, write_jsonl


def test_items_are_named_suite_criterion_transcript_and_show_evidence(pytester, project):
    project()
    corpus = write_corpus(pytester.path, "openai")
    result = pytester.runpytest("--review-suite=suite.yaml", f"--transcripts={corpus}", "-v")
    outcomes = outcomes_by_name(result)
    assert len(outcomes) == 16  # 4 criteria x 4 transcripts; test_suite.py is not collected
    assert outcomes["suite.yaml::no_ai_boilerplate[boiler-2]"] == "FAILED"
    assert outcomes["suite.yaml::no_secret_leak[leak-3]"] == "FAILED"
    assert outcomes["suite.yaml::concise[ok-1]"] == "PASSED"
    result.stdout.fnmatch_lines([
        "*_ no_ai_boilerplate?boiler-2? _*",
        "no_ai_boilerplate (regex): fail for boiler-2 (*corpus-openai.jsonl:2)",
        "  fail, score 0.000",
        "  explanation:",
        "    /as an ai (language )?model/ matched 1 time(s) in assistant text",
        '  evidence: message 1 [0:23]: "As an AI language model"',
    ])
    assert "Traceback" not in result.stdout.str()
    assert "def runtest" not in result.stdout.str()


def test_test_paths_given_with_a_suite_run_both(pytester, project):
    project()
    corpus = write_corpus(pytester.path, "openai")
    result = pytester.runpytest("test_suite.py", "--review-suite=suite.yaml",
                                f"--transcripts={corpus}")
    result.assert_outcomes(passed=10 + 14, failed=2 + 2)


def test_untrusted_text_is_escaped_in_reports(pytester, project):
    project()
    answer = "As an AI model\x1b[2J\x1b]0;pwned\x07 \u202eevil"
    corpus = write_jsonl(pytester.path / "bad.jsonl",
                         [openai_record("esc-1", "hi", answer)])
    pytester.makefile(".yaml", evil="""
        name: evil
        criteria:
          - name: no_model
            kind: regex
            pattern: "As an AI model.*"
            expect: absent
        """)
    result = pytester.runpytest("--review-suite=evil.yaml", f"--transcripts={corpus}")
    result.assert_outcomes(failed=1)
    out = result.stdout.str()
    assert "\x1b" not in out and "\u202e" not in out and "\x07" not in out
    assert r'"As an AI model\x1b[2J\x1b]0;pwned\x07 \u202eevil"' in out


def test_k_selects_criteria_and_transcripts(pytester, project):
    project()
    corpus = write_corpus(pytester.path, "openai")
    result = pytester.runpytest("--review-suite=suite.yaml", f"--transcripts={corpus}",
                                "-v", "-k", "no_secret_leak and not ok-4", "--review-out=out")
    result.assert_outcomes(passed=2, failed=1, deselected=13)
    summary = json.loads((pytester.path / "out" / "summary.json").read_text())
    assert (summary["read"], summary["passed"], summary["failed"]) == (3, 2, 1)
    assert list(summary["criteria"]) == ["no_secret_leak"]


def test_exitfirst_stops_and_undecided_transcripts_are_not_written(pytester, project):
    project()
    corpus = write_corpus(pytester.path, "openai")
    result = pytester.runpytest("--review-suite=suite.yaml", f"--transcripts={corpus}", "-x",
                                "--review-out=out")
    result.assert_outcomes(passed=1, failed=1)
    result.stdout.fnmatch_lines(["0 transcripts decided: 0 passed, 0 failed, 0 errored",
                                 "2 transcript(s) not decided: not all their selected criteria*"])
    result.stdout.fnmatch_lines(["*stopping after 1 failures*"])
    assert (pytester.path / "out" / "journal.jsonl").read_text() == ""


def test_last_failed_reruns_only_the_failed_transcripts(pytester, project):
    project()
    corpus = write_corpus(pytester.path, "openai")
    args = ["--review-suite=suite.yaml", f"--transcripts={corpus}", "-v", "-p", "cacheprovider"]
    pytester.runpytest(*args).assert_outcomes(passed=14, failed=2)
    result = pytester.runpytest(*args, "--lf", "--review-out=out")
    result.assert_outcomes(failed=2, deselected=14)
    assert set(outcomes_by_name(result)) == {"suite.yaml::no_ai_boilerplate[boiler-2]",
                                             "suite.yaml::no_secret_leak[leak-3]"}
    decisions = [json.loads(line)["decision"]
                 for line in (pytester.path / "out" / "journal.jsonl").read_text().splitlines()]
    assert {(d["transcript_id"], tuple(d["failed"])) for d in decisions} == {
        ("boiler-2", ("no_ai_boilerplate",)), ("leak-3", ("no_secret_leak",))}
    # fix the corpus: the re-run passes, and the next --lf has nothing left to re-run
    write_jsonl(corpus, [openai_record("ok-1", "q", "a"), openai_record("boiler-2", "q", "No."),
                         openai_record("leak-3", "q", "Use your own key."),
                         openai_record("ok-4", "q", "b")])
    pytester.runpytest(*args, "--lf").assert_outcomes(passed=2, deselected=14)
    pytester.runpytest(*args, "--lf").assert_outcomes(passed=16)


def test_junit_xml_has_one_testcase_per_criterion_and_transcript(pytester, project):
    project()
    corpus = write_corpus(pytester.path, "openai")
    pytester.runpytest("test_suite.py", "--review-suite=suite.yaml", f"--transcripts={corpus}",
                       "--junitxml=junit.xml")
    cases = ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")
    by_name = {c.get("name"): c for c in cases}
    assert len(by_name) == 16 + 12
    failed = by_name["no_secret_leak[leak-3]"]
    failure = failed.find("failure")
    assert failure is not None
    assert 'evidence: message 1 [4:31]: "sk-abcdefghijklmnopqrstuvwx"' in failure.text
    props = {p.get("name"): p.get("value") for p in failed.iter("property")}
    assert props == {"criterion": "no_secret_leak", "transcript_id": "leak-3",
                     "source": f"{corpus}:3", "verdict": "fail", "score": "0.0000"}
    assert by_name["test_no_boilerplate[boiler-2]"].find("failure") is not None
    assert by_name["test_short[ok-1]"].find("failure") is None


def test_an_invalid_suite_is_a_collection_error_naming_file_and_key(pytester):
    pytester.makefile(".yaml", suite="""
        name: broken
        criteria:
          - name: r
            kind: regex
            patern: "x"
            expect: absent
        """)
    corpus = write_corpus(pytester.path, "openai")
    result = pytester.runpytest("--review-suite=suite.yaml", f"--transcripts={corpus}")
    assert result.ret == pytest.ExitCode.INTERRUPTED
    result.stdout.fnmatch_lines(["*suite.yaml: criterion 'r' (kind regex): *unknown key 'patern'*"])


def test_an_unreadable_record_is_one_error_item_not_one_per_criterion(pytester, project):
    project()
    corpus = write_corpus(pytester.path, "openai")
    with corpus.open("a") as fh:
        fh.write('{"messages": [{"role": "narrator", "content": "x"}]}\n')
    result = pytester.runpytest("--review-suite=suite.yaml", f"--transcripts={corpus}", "-v",
                                "--review-out=out")
    outcomes = outcomes_by_name(result)
    assert outcomes["corpus-openai.jsonl::input[unreadable:corpus-openai.jsonl:5]"] == "FAILED"
    assert len(outcomes) == 16 + 1
    result.stdout.fnmatch_lines([
        "unreadable record (input): error for (no id) (*corpus-openai.jsonl:5)",
        "  error",
        "  explanation:",
        "    openai: messages[0]: unknown role 'narrator'",
    ])
    result.stdout.fnmatch_lines(["5 transcripts decided: 2 passed, 2 failed, 1 errored",
                                 "1 unreadable record(s): see *errors.jsonl"])
