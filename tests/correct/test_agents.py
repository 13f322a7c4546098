"""Generator and supervisor are named like judges, on the command line or in the suite."""

from __future__ import annotations

from pathlib import Path

import pytest

from harness.correct.agents import build_agent, resolve
from harness.errors import UsageError
from harness.plugins import get_registry
from harness.suite import SuiteError, load_suite


def test_the_suite_declares_generator_and_supervisor(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ngenerator: {name: openai/g, base_url: 'http://127.0.0.1:9/v1', "
                     "max_concurrency: 3}\nsupervisor: local/smollm2\ncriteria: []\n")
    loaded = load_suite(suite)
    name, options = resolve("generator", None, loaded.generator)
    assert (name, options["max_concurrency"]) == ("openai/g", 3)
    # a name on the command line keeps the options the suite gives that name, not another's
    assert resolve("generator", "openai/g", loaded.generator)[1] == options
    assert resolve("generator", "openai/h", loaded.generator) == ("openai/h", {})
    assert resolve("supervisor", None, None) is None
    agent = build_agent("generator", name, options, get_registry(), None)
    assert agent.runner.max_concurrency == 3 and agent.name == "openai/g"


def test_bad_names_and_values_are_clear_errors(tmp_path: Path) -> None:
    suite = tmp_path / "s.yaml"
    suite.write_text("name: s\ngenerator: 5\n")
    with pytest.raises(SuiteError, match="generator"):
        load_suite(suite)
    with pytest.raises(UsageError, match="PREFIX/MODEL"):
        resolve("generator", "gpt", None)
    with pytest.raises(UsageError, match="unknown backend 'nope'"):
        build_agent("generator", "nope/x", {}, get_registry(), None)
