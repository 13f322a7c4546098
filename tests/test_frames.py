"""harness.review_frame: a DataFrame of transcripts in, a DataFrame of decisions out."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from testutil import EXAMPLES, chat

import harness

SUITE = EXAMPLES / "suite.yaml"
ANSWERS = ["Sure: 4.", "As an AI language model, I cannot.", "The key is sk-abcdefghijklmnop1234",
           "It is 12.", "Here you go: done.", "Thanks for asking; 7.", "As an AI, no."]


def _frame() -> pd.DataFrame:
    records = [chat(f"question {i}", a) for i, a in enumerate(ANSWERS)]
    return pd.DataFrame({"messages": [r["messages"] for r in records],
                         "note": range(len(records))},
                        index=[f"r{i}" for i in reversed(range(len(records)))])


def test_one_row_per_transcript_in_order_with_the_input_index():
    frame = _frame()
    out = harness.review_frame(frame, SUITE)
    assert list(out.index) == list(frame.index)
    expected = list(harness.review(SUITE, [{"id": label, "messages": m}
                                           for label, m in frame["messages"].items()]))
    assert list(out["transcript_id"]) == [d.transcript_id for d in expected]
    assert list(out["outcome"]) == [d.outcome for d in expected]
    assert list(out["score"]) == pytest.approx([d.score for d in expected])
    assert list(out["failed"]) == [d.failed for d in expected]
    criteria = [c.name for c in harness.load_suite(SUITE).criteria]
    assert [c for c in out.columns if c.endswith(".outcome")] == [f"{n}.outcome"
                                                                  for n in criteria]
    failing = out.loc["r5"]              # "As an AI language model..."
    assert failing["outcome"] == "fail" and failing["no_ai_boilerplate.outcome"] == "fail"
    assert failing["no_ai_boilerplate.score"] == 0.0
    [span] = json.loads(failing["evidence"])["no_ai_boilerplate"]
    assert span["text"].lower().startswith("as an ai") and span["message"] == 1


def test_small_chunks_give_the_same_frame():
    frame = _frame()
    pd.testing.assert_frame_equal(harness.review_frame(frame, SUITE, batch_size=2),
                                  harness.review_frame(frame, SUITE))


def test_messages_from_parquet_and_json_text_and_an_id_column(tmp_path):
    frame = _frame().reset_index(names="conversation")
    frame.to_parquet(tmp_path / "t.parquet")
    from_parquet = pd.read_parquet(tmp_path / "t.parquet")        # messages as numpy arrays
    as_text = frame.assign(messages=frame["messages"].map(json.dumps))
    a = harness.review_frame(from_parquet, SUITE, id_column="conversation")
    b = harness.review_frame(as_text, SUITE, id_column="conversation")
    pd.testing.assert_frame_equal(a, b)
    assert list(a["transcript_id"]) == list(frame["conversation"])


def test_an_unreadable_row_is_an_error_row_and_the_others_are_decided():
    frame = pd.DataFrame({"conv": ["not json", [{"role": "user", "content": "q"},
                                                {"role": "assistant", "content": "4."}], 17]},
                         index=[7, 8, 9])
    out = harness.review_frame(frame, SUITE, messages_column="conv")
    assert list(out["outcome"]) == ["error", "pass", "error"]
    assert list(out["errored"]) == [["input"], [], ["input"]]
    assert list(out["transcript_id"]) == ["7", "8", "9"]
    assert "not valid JSON" in json.loads(out.loc[7, "explanations"])["input"]


def test_a_missing_column_is_named():
    with pytest.raises(KeyError, match="no column 'conversation'.*messages_column="):
        harness.review_frame(_frame(), SUITE, messages_column="conversation")


def test_an_open_engine_is_reused_and_left_open():
    with harness.Engine(SUITE) as engine:
        first = harness.review_frame(_frame(), engine)
        again = harness.review_frame(_frame(), engine)
    pd.testing.assert_frame_equal(first, again)
