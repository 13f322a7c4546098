"""Fixtures for the pytest-plugin tests.

The plugin is tested from the outside with ``pytester``: each test writes a small project and
runs pytest in it, as a user would.
"""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from pytest_plugin_helpers import CHECKS_PY, PY_SUITE, SUITE_YAML  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def _load_pandas_parquet_once(tmp_path_factory: pytest.TempPathFactory) -> None:
    """pytester's in-process runs drop modules first imported inside them; pandas' Arrow
    extension types cannot be registered twice, so load them all before any run."""
    import pandas as pd

    path = tmp_path_factory.mktemp("warm") / "t.parquet"
    pd.DataFrame({"a": [1], "b": [[{"x": "y"}]]}).to_parquet(path)
    pd.read_parquet(path)


@pytest.fixture
def project(pytester: pytest.Pytester) -> Callable[..., Path]:
    """Write the suite, its checks and the Python suite into the pytester folder."""

    def make(suite: str = SUITE_YAML) -> Path:
        pytester.makefile(".yaml", suite=suite)
        pytester.makepyfile(checks=CHECKS_PY, test_suite=PY_SUITE)
        return pytester.path

    return make
