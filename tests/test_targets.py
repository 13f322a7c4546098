"""harness.targets: which texts a target selects, for transcript and message scope."""

from __future__ import annotations

import pytest

from harness import Message, Transcript
from harness.targets import select, text_of


def conversation() -> Transcript:
    messages = [Message(role="system", content="sys"), Message(role="user", content="u1"),
                Message(role="assistant", content="a1", reasoning="r1"),
                Message(role="user", content="u2"),
                Message(role="assistant", content="a2", reasoning="r2")]
    return Transcript(id="t", messages=messages)


@pytest.mark.parametrize(("target", "expected"), [
    ("assistant", [(2, "content", "a1"), (4, "content", "a2")]),
    ("last_assistant", [(4, "content", "a2")]),
    ("reasoning", [(2, "reasoning", "r1"), (4, "reasoning", "r2")]),
    ("user", [(1, "content", "u1"), (3, "content", "u2")]),
])
def test_transcript_scope_is_unchanged(target, expected):
    assert select(conversation(), target) == expected
    assert select(conversation(), target, "transcript") == expected


@pytest.mark.parametrize(("target", "expected"), [
    ("assistant", [(2, "content", "a1")]),
    ("last_assistant", [(2, "content", "a1")]),
    ("reasoning", [(2, "reasoning", "r1")]),
    ("user", [(1, "content", "u1")]),
    ("system", [(0, "content", "sys")]),
    ("all", [(0, "content", "sys"), (1, "content", "u1"), (2, "content", "a1")]),
])
def test_message_scope_selects_only_the_message_under_review(target, expected):
    t = conversation()
    prefix = t.model_copy(update={"messages": t.messages[:3]})  # what the engine hands over
    assert select(prefix, target, scope="message") == expected


def test_message_scope_later_turn_does_not_see_earlier_assistant_turns():
    t = conversation()
    assert select(t, "assistant", scope="message") == [(4, "content", "a2")]
    assert select(t, "reasoning", scope="message") == [(4, "reasoning", "r2")]


def test_message_scope_without_reasoning_selects_nothing():
    t = conversation()
    t.messages[4].reasoning = None
    assert select(t, "reasoning", scope="message") == []


def test_text_of_keeps_its_call_forms_and_takes_a_scope():
    t = conversation()
    assert text_of(t, "assistant") == "a1\n\na2"
    assert text_of(t, "assistant", " | ") == "a1 | a2"
    assert text_of(t, "assistant", scope="message") == "a2"
    assert text_of(t, "user", "\n", "message") == "u1\nu2"
