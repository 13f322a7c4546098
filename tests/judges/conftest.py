"""Fixtures for judge tests: a real chat-completions server on a random local port."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from chat_server import ChatServer  # noqa: E402


@pytest.fixture
def chat_server() -> Iterator[ChatServer]:
    """A started :class:`ChatServer`; stopped after the test."""
    server = ChatServer().start()
    try:
        yield server
    finally:
        server.stop()
