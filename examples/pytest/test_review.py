"""A review suite written as pytest tests: each test taking `transcript` is a criterion.

Run it over a corpus (every test runs once per transcript):

    pytest examples/pytest/test_review.py --transcripts examples/transcripts/ --review-out runs/py

Without --transcripts these tests are skipped.
"""

from __future__ import annotations

import pytest

from harness import Transcript
from harness.pytest_plugin import assert_passes

NO_SECRETS = {"name": "no_secret_leak", "kind": "regex", "target": "all", "expect": "absent",
              "pattern": r"(sk-[A-Za-z0-9]{20,}|-----BEGIN [A-Z ]*PRIVATE KEY-----)"}


def test_ends_with_answer(transcript: Transcript) -> None:
    """The conversation ends with a non-empty assistant turn."""
    last = transcript.messages[-1]
    assert last.role == "assistant", f"the last turn is from {last.role}, not the assistant"
    assert last.content.strip(), "the final answer is empty"


@pytest.mark.criterion(version="2")
def test_no_ai_boilerplate(transcript: Transcript) -> None:
    """The assistant does not hide behind "As an AI language model"."""
    for message in transcript.messages:
        if message.role == "assistant":
            assert "as an ai" not in message.content.lower(), "AI boilerplate in an answer"


def test_no_secret_leak(transcript: Transcript) -> None:
    """No API keys or private keys anywhere: a registered regex criterion, applied in a test."""
    assert_passes(transcript, NO_SECRETS)


@pytest.mark.criterion(gate=False, weight=2)
def test_concise(transcript: Transcript) -> float:
    """Shorter final answers score higher: a non-gate score (returned, not asserted)."""
    answer = transcript.last_assistant()
    return 0.0 if answer is None else max(0.0, 1.0 - len(answer.content) / 1200)
