"""Fixtures shared by the tests."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from harness.cli import main

pytest_plugins = ["pytester"]  # the pytest plugin is tested from the outside


@pytest.fixture
def cli(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Run ``harness ARGS...`` in-process; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse usage errors
            code = int(exc.code or 0)
        out, err = capsys.readouterr()
        return code, out, err

    return run
