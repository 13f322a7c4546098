"""The installed layout: every package ships, and the built-ins' import name shadows nothing."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from setuptools import find_packages

ROOT = Path(__file__).resolve().parent.parent


def test_every_package_of_harness_is_installed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert set(find_packages(ROOT, include=["harness", "harness.*"])) <= set(config["packages"])
    assert config["package-dir"] == {"harness_criteria": "criteria"}


def test_a_projects_own_criteria_package_does_not_shadow_the_built_ins(
        pytester: pytest.Pytester) -> None:
    """A project with a top-level `criteria/` package (even a `criteria/regex.py`) and a
    conftest.py: the pytest plugin still finds the built-in `regex` kind."""
    pytester.mkpydir("criteria")
    (pytester.path / "criteria" / "regex.py").write_text("BROKEN = True\n")
    pytester.makeconftest("import criteria.regex  # the project's own\n")
    pytester.makefile(".yaml", suite="name: s\ncriteria:\n"
                      "  - {name: no_sorry, kind: regex, pattern: sorry, expect: absent}\n")
    (pytester.path / "data.jsonl").write_text(
        '{"id": "a", "messages": [{"role": "user", "content": "q"}, '
        '{"role": "assistant", "content": "fine"}]}\n')
    result = pytester.runpytest_subprocess("--review-suite=suite.yaml",
                                           "--transcripts=data.jsonl")
    assert "unknown kind" not in result.stdout.str() + result.stderr.str()
    result.assert_outcomes(passed=1)
