"""Without --transcripts the plugin changes nothing in a pytest run."""

from __future__ import annotations

import pytest
from pytest_plugin_helpers import write_corpus


def test_a_project_without_review_options_runs_as_before(pytester):
    pytester.makepyfile(test_plain="""
        import pytest

        def test_plain():
            assert True

        @pytest.mark.parametrize("transcript", ["given"])
        def test_own_parameter(transcript):
            assert transcript == "given"

        def test_review(transcript):
            raise AssertionError("must not run without a corpus")
        """)
    result = pytester.runpytest("-rs", "-p", "no:cacheprovider")
    result.assert_outcomes(passed=2, skipped=1)
    result.stdout.fnmatch_lines(["*no transcripts to review: pass --transcripts PATH...*"])
    assert "harness" not in result.stdout.str().replace("review-harness", "")
    assert not list(pytester.path.glob("*/journal.jsonl"))


def test_the_plugin_is_registered_through_its_entry_point(pytester):
    result = pytester.runpytest("--help")
    result.stdout.fnmatch_lines(["*harness review*", "*--transcripts=PATH*", "*--review-suite*",
                                 "*--review-mode=*"])


@pytest.mark.parametrize("option", ["--review-suite=suite.yaml", "--review-out=out"])
def test_review_options_without_a_corpus_are_a_usage_error(pytester, option):
    result = pytester.runpytest(option)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*{option.split('=')[0]} needs a corpus: add --transcripts*"])


def test_a_test_file_swallowed_by_transcripts_is_explained(pytester):
    corpus = write_corpus(pytester.path, "openai")
    pytester.makepyfile(test_x="def test_x(transcript): pass")
    result = pytester.runpytest("--transcripts", str(corpus), "test_x.py")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*--transcripts test_x.py: not a transcript file*put test files "
                                 "and folders before it, or write --transcripts=PATH"])
