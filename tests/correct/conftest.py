"""Fixtures for correction tests (see ``correctutil``)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from correctutil import Models, serve  # noqa: E402


@pytest.fixture
def models() -> Iterator[Models]:
    """A real local chat server playing the generator and the supervisor."""
    yield from serve()
