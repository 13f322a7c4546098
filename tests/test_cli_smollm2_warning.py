"""`local/smollm2` without `mode: choice`: one warning at start, before any model is loaded."""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest
from testutil import write_suite

from harness import Engine

pytest.importorskip("harness_local_models")

CRITERION = ("  - {{name: {name}, kind: llm_judge, "
             "rubric: 'Polite? {{{{ last_assistant }}}}'{extra}}}\n")


def _suite(tmp_path: Path, *criteria: tuple[str, str]) -> Path:
    body = "".join(CRITERION.format(name=name, extra=extra) for name, extra in criteria)
    return write_suite(tmp_path / "suite.yaml", f"name: tiny\njudge: local/smollm2\n"
                                                f"criteria:\n{body}")


def _warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.levelno == logging.WARNING and "VERDICT: <label>" in r.getMessage()]


def test_generate_mode_warns_once_per_judge(tmp_path: Path, caplog) -> None:
    suite = _suite(tmp_path, ("polite", ""), ("helpful", ""))
    with caplog.at_level(logging.WARNING, logger="harness"), Engine(suite) as engine:
        assert engine.criteria  # built, nothing judged: the model is not loaded
    [warning] = _warnings(caplog)
    assert "judge local/smollm2 cannot follow" in warning
    assert "set `mode: choice` on criterion 'polite'" in warning


def test_choice_mode_does_not_warn(tmp_path: Path, caplog) -> None:
    suite = _suite(tmp_path, ("polite", ", mode: choice"))
    with caplog.at_level(logging.WARNING, logger="harness"), Engine(suite):
        pass
    assert _warnings(caplog) == []


def test_the_cli_says_it_on_stderr_at_start(tmp_path: Path) -> None:
    suite = _suite(tmp_path, ("polite", ""))
    empty = tmp_path / "none.jsonl"
    empty.write_text("")
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(suite), str(empty),
                           "-o", str(tmp_path / "run"), "--no-report", "--workers", "1"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("cannot follow the `VERDICT: <label>` format") == 1
    assert "mode: choice" in done.stderr
