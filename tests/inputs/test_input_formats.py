"""Each input format, auto-detection per record, the format override, gz and Parquet."""

from __future__ import annotations

import gzip
import json

import pandas as pd
import pytest
from testutil import EXAMPLES, chat, write_jsonl

from harness import get_registry
from harness.inputs import read_transcripts
from harness.models import InputError, Transcript


@pytest.fixture
def formats():
    return get_registry().formats


def read(paths, formats, fmt="auto"):
    return list(read_transcripts(paths, formats, fmt))


def test_openai_record(tmp_path, formats):
    record = {"id": "a1", "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
        {"role": "assistant", "content": "Hello", "weight": 0, "reasoning_content": "greet"},
    ], "metadata": {"model": "gen-1"}, "split": "train"}
    [t] = read([write_jsonl(tmp_path / "a.jsonl", [record])], formats)
    assert t.id == "a1"
    assert [m.role for m in t.messages] == ["system", "user", "assistant"]
    assert t.messages[1].content == "Hi"
    assert t.messages[2].weight == 0 and t.messages[2].reasoning == "greet"
    assert t.metadata == {"model": "gen-1", "split": "train"}
    assert t.source.endswith("a.jsonl:1")


def test_sharegpt_record(tmp_path, formats):
    record = {"conversations": [{"from": "system", "value": "sys"}, {"from": "human", "value": "q"},
                                {"from": "gpt", "value": "a"}]}
    [t] = read([write_jsonl(tmp_path / "s.jsonl", [record])], formats)
    assert [(m.role, m.content) for m in t.messages] == [
        ("system", "sys"), ("user", "q"), ("assistant", "a")]
    assert t.id.startswith("t-")  # no id: a content hash


def test_hh_rlhf_pair_gives_two_linked_transcripts(tmp_path, formats):
    record = {"chosen": "\n\nHuman: hi\n\nAssistant: hello!\n\nHuman: bye\n\nAssistant: bye!",
              "rejected": "\n\nHuman: hi\n\nAssistant: go away"}
    chosen, rejected = read([write_jsonl(tmp_path / "h.jsonl", [record])], formats)
    assert chosen.id.endswith(":chosen") and rejected.id.endswith(":rejected")
    assert chosen.metadata["pair_id"] == rejected.metadata["pair_id"]
    assert chosen.id == f"{chosen.metadata['pair_id']}:chosen"
    assert [m.content for m in chosen.messages] == ["hi", "hello!", "bye", "bye!"]
    assert rejected.messages[-1].role == "assistant"
    assert chosen.source.endswith("h.jsonl:1:chosen")


def test_content_ids_are_stable_and_distinct(tmp_path, formats):
    path = write_jsonl(tmp_path / "c.jsonl", [chat("q", "a"), chat("q", "b"), chat("q", "a")])
    first, second, third = read([path], formats)
    assert first.id == third.id != second.id
    assert [t.id for t in read([path], formats)] == [first.id, second.id, third.id]


def test_auto_detection_is_per_record(tmp_path, formats):
    path = write_jsonl(tmp_path / "mixed.jsonl", [
        chat("q", "a"),
        {"conversations": [{"from": "human", "value": "q"}, {"from": "gpt", "value": "a"}]},
        {"chosen": "\n\nHuman: q\n\nAssistant: a", "rejected": "\n\nHuman: q\n\nAssistant: b"},
    ])
    items = read([path], formats)
    assert len(items) == 4 and all(isinstance(i, Transcript) for i in items)


def test_format_override_rejects_other_shapes(tmp_path, formats):
    path = write_jsonl(tmp_path / "m.jsonl", [
        chat("q", "a"), {"conversations": [{"from": "human", "value": "q"}]}])
    ok, bad = read([path], formats, "openai")
    assert isinstance(ok, Transcript)
    assert isinstance(bad, InputError) and "messages" in bad.reason


def test_unknown_format_name_is_an_error(tmp_path, formats):
    with pytest.raises(ValueError, match="unknown input format"):
        read([write_jsonl(tmp_path / "x.jsonl", [chat("q", "a")])], formats, "alpaca")


def test_gzip_is_detected_by_content(tmp_path, formats):
    path = tmp_path / "c.jsonl.gz"
    with gzip.open(path, "wt") as fh:
        fh.write(json.dumps(chat("q", "a")) + "\n" + "{oops\n")
    t, err = read([path], formats)
    assert t.messages[1].content == "a"
    assert isinstance(err, InputError) and err.source.endswith("c.jsonl.gz:2")


def test_parquet_with_messages_column(tmp_path, formats):
    path = tmp_path / "t.parquet"
    pd.DataFrame({
        "id": ["p1", "p2", "p3"],
        "messages": [
            [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}],
            [{"role": "user", "content": "q2"}, {"role": "assistant", "content": "b"}],
            [{"role": "robot", "content": "?"}],
        ],
        "topic": ["x", "y", "z"],
    }).to_parquet(path)
    p1, p2, bad = read([path], formats)
    assert (p1.id, p1.messages[1].content, p1.metadata["topic"]) == ("p1", "a", "x")
    assert p2.source.endswith("t.parquet:2")
    assert isinstance(bad, InputError) and bad.source.endswith("t.parquet:3")
    assert "robot" in bad.reason and bad.transcript_id == "p3"


def test_parquet_with_json_text_messages(tmp_path, formats):
    path = tmp_path / "j.parquet"
    pd.DataFrame({"messages": [json.dumps(chat("q", "a")["messages"])]}).to_parquet(path)
    [t] = read([path], formats)
    assert t.messages[0].content == "q"


def test_bundled_examples_cover_all_three_formats(formats):
    items = read(sorted((EXAMPLES / "transcripts").glob("*.jsonl")), formats)
    transcripts = [i for i in items if isinstance(i, Transcript)]
    assert any(":chosen" in t.id for t in transcripts)
    assert any(t.source.startswith(str(EXAMPLES / "transcripts" / "sharegpt")) for t in transcripts)
    assert len(transcripts) >= 24
    assert sum(isinstance(i, InputError) for i in items) >= 4
