"""Per-transcript mode: a non-gate criterion's item follows the decision policy.

It reports its score and fails only when the transcript fails the suite's `threshold` and its
own score is below that threshold; below its own pass threshold alone, it passes.
"""

from __future__ import annotations

import json

from pytest_plugin_helpers import openai_record, outcomes_by_name, write_jsonl

SUITE = """
name: policy
threshold: 0.75
criteria:
  - {name: no_sorry, kind: regex, pattern: sorry, expect: absent}
  - {name: first, kind: python, function: "scores:first", gate: false}
  - {name: second, kind: python, function: "scores:second", gate: false, weight: 3}
"""
SCORES = """
import re

def _numbers(transcript):
    return [float(x) for x in re.findall(r"\\d\\.\\d+|\\d", transcript.messages[-1].content)]

def first(transcript):
    return _numbers(transcript)[0]

def second(transcript):
    return _numbers(transcript)[1]
"""
ANSWERS = {
    "keep-1": "0.45 1.0",       # first is below its own 0.5, the mean (0.86) passes
    "drop-2": "0.6 0.6",        # mean 0.6: both scores are below the suite threshold
    "drop-3": "0.2 0.8",        # mean 0.65: only first is below the suite threshold
    "gate-4": "sorry 0.1 1.0",  # the gate fails the transcript, not the scores
}


def test_non_gate_items_fail_only_with_the_transcript(pytester) -> None:
    pytester.makefile(".yaml", suite=SUITE)
    pytester.makepyfile(scores=SCORES)
    corpus = write_jsonl(pytester.path / "corpus.jsonl",
                         [openai_record(cid, "q", answer) for cid, answer in ANSWERS.items()])
    result = pytester.runpytest("--review-suite=suite.yaml", f"--transcripts={corpus}",
                                "--review-out=run", "-v")
    outcomes = outcomes_by_name(result)
    failed = sorted(name.split("::")[1] for name, o in outcomes.items() if o == "FAILED")
    assert failed == ["first[drop-2]", "first[drop-3]", "no_sorry[gate-4]", "second[drop-2]"]
    assert outcomes["suite.yaml::first[keep-1]"] == "PASSED"   # below its own threshold only
    assert outcomes["suite.yaml::first[gate-4]"] == "PASSED"   # the gate's item says why
    result.stdout.fnmatch_lines([
        "first (python): pass for drop-2 (*corpus.jsonl:2)",
        "  pass, score 0.600",
        "  the transcript fails the suite threshold 0.75: the non-gate mean is 0.600, "
        "and this score 0.600 is below it",
    ])
    summary = json.loads((pytester.path / "run" / "summary.json").read_text())
    assert (summary["passed"], summary["failed"]) == (1, 3)  # the same policy decided
    # the verdict itself is unchanged: first on keep-1 is a fail at its own threshold
    assert summary["criteria"]["first"]["fail"] == 3


def test_without_a_threshold_non_gate_items_only_report(pytester) -> None:
    pytester.makefile(".yaml", suite=SUITE.replace("threshold: 0.75\n", ""))
    pytester.makepyfile(scores=SCORES)
    corpus = write_jsonl(pytester.path / "corpus.jsonl",
                         [openai_record(cid, "q", answer) for cid, answer in ANSWERS.items()])
    result = pytester.runpytest("--review-suite=suite.yaml", f"--transcripts={corpus}",
                                "--junitxml=junit.xml")
    result.assert_outcomes(passed=11, failed=1)  # only the gate on gate-4
    junit = (pytester.path / "junit.xml").read_text()
    assert 'name="score" value="0.4500"' in junit  # first on keep-1: reported, not failed
