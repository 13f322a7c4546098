"""The Python API: harness.review over objects, raw records and files."""

from __future__ import annotations

from testutil import EXAMPLES, chat, write_jsonl

import harness

SUITE = EXAMPLES / "suite.yaml"


def test_review_files_yields_a_decision_per_transcript():
    path = EXAMPLES / "transcripts" / "openai.jsonl"
    decisions = list(harness.review(SUITE, path))
    assert len(decisions) == sum(1 for line in path.read_text().splitlines() if line.strip())
    by_id = {d.transcript_id: d for d in decisions}
    assert by_id["chat-001"].passed
    assert by_id["chat-003"].failed == ["no_ai_boilerplate"]
    assert by_id["chat-005"].failed == ["no_secret_leak"]
    assert by_id["chat-009"].failed == ["ends_with_answer"]
    assert {d.outcome for d in decisions if d.errored == ["input"]} == {"error"}


def test_review_raw_records_and_objects_together():
    records = [chat("q", "As an AI language model, no."), chat("q", "Sure: 4.")]
    obj = harness.Transcript(id="obj", messages=[harness.Message(role="user", content="q"),
                                                 harness.Message(role="assistant", content="ok")])
    outcomes = [d.outcome for d in harness.review(SUITE, [*records, obj, {"bogus": 1}])]
    assert outcomes == ["fail", "pass", "pass", "error"]


def test_generation_loop_keeps_only_passing(tmp_path):
    engine = harness.Engine(SUITE)
    candidates = (chat("q", "As an AI model I can't" if i % 2 else f"answer {i}")
                  for i in range(10))
    kept = [d for d in harness.review(engine, candidates, batch_size=1) if d.passed]
    assert len(kept) == 5


def test_review_accepts_a_single_path(tmp_path):
    path = write_jsonl(tmp_path / "one.jsonl", [chat("q", "a")])
    assert [d.outcome for d in harness.review(SUITE, path)] == ["pass"]
