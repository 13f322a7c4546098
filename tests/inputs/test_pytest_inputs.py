"""The pytest plugin's --transcripts reads inputs by the same rule as `harness run`
(harness.inputs.resolve_inputs): folders, globs, .json files; the same usage errors."""

from __future__ import annotations

import json

import pytest
from testutil import chat, write_jsonl

from harness.inputs import resolve_inputs
from harness.pytest_plugin.corpus import expand_paths

SUITE = "name: t\ncriteria:\n" \
        "  - {name: no_sorry, kind: regex, pattern: sorry, expect: absent}\n"


@pytest.fixture
def corpus(pytester: pytest.Pytester):
    pytester.makefile(".yaml", suite=SUITE)
    (pytester.path / "data" / "sub").mkdir(parents=True)
    write_jsonl(pytester.path / "data" / "a.jsonl", [chat("q", "fine", id="a1")])
    write_jsonl(pytester.path / "data" / "sub" / "b.jsonl", [chat("q", "sorry", id="b1")])
    (pytester.path / "data" / "c.json").write_text(json.dumps([chat("q", "ok", id="c1"),
                                                               chat("q", "ok", id="c2")]))
    (pytester.path / "data" / "notes.md").write_text("not a transcript file\n")
    (pytester.path / "empty").mkdir()
    return pytester


def test_a_folder_and_a_glob_through_the_shared_resolver(corpus):
    result = corpus.runpytest("--review-suite=suite.yaml", "--transcripts=data", "-v",
                              "-p", "no:cacheprovider")
    result.assert_outcomes(passed=3, failed=1)
    result.stdout.fnmatch_lines(["*no_sorry?a1? PASSED*", "*no_sorry?c1? PASSED*",
                                 "*no_sorry?c2? PASSED*", "*no_sorry?b1? FAILED*"])
    # a glob too, by the same function (`harness run` calls it for its INPUTs)
    sources = expand_paths(["data/*.json", "data/**/*.jsonl"], corpus.path)
    assert sources == resolve_inputs(["data/*.json", "data/**/*.jsonl"])
    assert [s.name for s in sources] == ["data/c.json", "data/a.jsonl", "data/sub/b.jsonl"]


@pytest.mark.parametrize(("spec", "message"), [
    ("empty", "*--transcripts: input folder empty holds no file harness can read*"),
    ("data/*.parquet", "*--transcripts: input pattern data/*.parquet matches no file*"),
    ("missing.jsonl", "*--transcripts: input file not found: missing.jsonl*"),
])
def test_the_same_usage_errors_as_harness_run(corpus, spec, message):
    result = corpus.runpytest("--review-suite=suite.yaml", f"--transcripts={spec}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([message])
