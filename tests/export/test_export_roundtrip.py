"""Every export round-trips what its format can carry, and counts in the card what it cannot.

Agentic records (tools, tool calls, legacy function calls, ``developer`` and ``function`` roles,
``content: null``, reasoning, content parts, fields harness does not know) go through a review
and come out of ``train.jsonl`` and every ``harness export`` format as they went in.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from exportutil import read_jsonl, review_into, write_jsonl

from harness.export import export_run

SUITE = """\
name: roundtrip
version: "1"
criteria:
  - name: no_secret
    kind: regex
    pattern: "sk-[A-Za-z0-9]{20,}"
    expect: absent
    target: all
"""

WEATHER = {"type": "function", "function": {
    "name": "get_weather", "description": "Weather in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                   "required": ["city"]}}}
TIME = {"type": "function", "function": {
    "name": "get_time", "description": "Local time in a city",
    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}
CALL = {"id": "call_1", "type": "function",
        "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}


def agentic(rid: str, tools: list[dict[str, Any]]) -> dict[str, Any]:
    return {"id": rid, "tools": tools, "messages": [
        {"role": "developer", "content": "Use the tools."},
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": None, "tool_calls": [CALL],
         "reasoning_content": "I should call the weather tool."},
        {"role": "tool", "tool_call_id": "call_1", "content": "18 C, sunny"},
        {"role": "assistant", "content": "18 C and sunny in Paris."},
    ]}


LEGACY = {"id": "legacy", "functions": [WEATHER["function"]], "messages": [
    {"role": "system", "content": "Use the functions."},
    {"role": "user", "content": "Weather in Rome?"},
    {"role": "assistant", "content": None,
     "function_call": {"name": "get_weather", "arguments": "{\"city\": \"Rome\"}"}},
    {"role": "function", "name": "get_weather", "content": "21 C"},
    {"role": "assistant", "content": "21 C in Rome.", "reasoning": "The function said 21 C."},
]}
PARTS = {"id": "parts", "messages": [
    {"role": "user", "content": [{"type": "text", "text": "What is in this picture?"},
                                 {"type": "image_url",
                                  "image_url": {"url": "https://example.com/cat.png"}}]},
    {"role": "assistant", "content": "A cat.", "refusal": None, "annotations": [{"n": 1}]},
]}
RECORDS = [agentic("weather", [WEATHER]), agentic("weather-and-time", [WEATHER, TIME]),
           LEGACY, PARTS]
"""Four different records: the first two differ only in their tools."""


def with_weights(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The record's messages as a chat export writes them: assistant turns at weight 1, and
    null-valued keys the record gave only for form left out."""
    out = []
    for m in copy.deepcopy(messages):
        m = {k: v for k, v in m.items() if v is not None or k == "content"}
        if m["role"] == "assistant":
            m["weight"] = 1
        out.append(m)
    return out


@pytest.fixture(scope="module")
def agentic_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("agentic")
    suite = root / "suite.yaml"
    suite.write_text(SUITE)
    inputs = write_jsonl(root / "agentic.jsonl", RECORDS)
    run_dir = root / "run"
    summary = review_into(run_dir, suite, [inputs])
    assert summary["passed"] == len(RECORDS)
    return run_dir


def by_id(rows: list[dict[str, Any]], key: str = "transcript_id") -> dict[str, dict[str, Any]]:
    return {r["metadata"][key] if "metadata" in r else r[key]: r for r in rows}


def openai_only(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages with the keys OpenAI's fine-tuning accepts (train.jsonl's own rule)."""
    keys = {"role", "content", "name", "tool_calls", "tool_call_id", "function_call", "weight"}
    return [{k: v for k, v in m.items() if k in keys} for m in messages]


def test_train_jsonl_keeps_tools_roles_null_content_and_calls(agentic_run):
    """train.jsonl is OpenAI's fine-tuning format: everything of it is kept (tools, developer
    and function roles, null content, content parts, tool and function calls); reasoning and
    keys OpenAI does not accept are for `harness export`."""
    lines = read_jsonl(agentic_run / "train.jsonl")
    assert len(lines) == len(RECORDS)  # the two records differing in tools are both kept
    assert lines[0] == {"tools": [WEATHER], "messages": openai_only(RECORDS[0]["messages"])}
    assert lines[0]["messages"][0]["role"] == "developer"
    assert lines[0]["messages"][2]["content"] is None
    assert lines[1]["tools"] == [WEATHER, TIME]
    assert lines[2] == {"functions": LEGACY["functions"],
                        "messages": openai_only(LEGACY["messages"])}
    assert lines[2]["messages"][3] == {"role": "function", "name": "get_weather",
                                       "content": "21 C"}
    assert lines[3] == {"messages": [PARTS["messages"][0],
                                     {"role": "assistant", "content": "A cat."}]}


def test_openai_export_round_trips_agentic_records(agentic_run, tmp_path):
    out = tmp_path / "sft.jsonl"
    result = export_run(agentic_run, out, "openai")
    rows = by_id(read_jsonl(out))
    assert result["duplicates"] == 0 and result["examples"] == len(RECORDS)
    for record in RECORDS:
        row = rows[record["id"]]
        assert row["messages"] == with_weights(record["messages"]), record["id"]
        for key in ("tools", "functions"):
            assert row.get(key) == record.get(key), (record["id"], key)
    assert result.get("not_carried", {}) == {}
    assert "| not carried by" not in Path(result["card"]).read_text()


def test_messages_only_keeps_the_tools_and_counts_the_keys_openai_rejects(agentic_run,
                                                                         tmp_path):
    out = tmp_path / "sft.jsonl"
    result = export_run(agentic_run, out, "openai", {"messages_only": True})
    rows = read_jsonl(out)
    assert set(rows[0]) == {"messages", "tools"} and rows[0]["tools"] == [WEATHER]
    assert rows[0]["messages"] == with_weights(openai_only(RECORDS[0]["messages"]))
    assert result["not_carried"] == {
        "reasoning (OpenAI fine-tuning has no field for it)": 3,
        "message field `annotations`": 1}


def test_parquet_tool_calls_are_typed_and_the_card_counts_what_parquet_cannot_carry(
        agentic_run, tmp_path):
    out = tmp_path / "sft.parquet"
    result = export_run(agentic_run, out, "parquet")
    table = pq.read_table(out)
    calls = table.schema.field("messages").type.value_type.field("tool_calls").type
    assert str(calls.value_type) == ("struct<id: string, type: string, function: "
                                     "struct<name: string, arguments: string>>")
    rows = {r["transcript_id"]: r for r in table.to_pylist()}
    weather = rows["weather"]["messages"]
    assert [m["role"] for m in weather] == ["developer", "user", "assistant", "tool",
                                            "assistant"]
    assert weather[2]["content"] is None
    assert weather[2]["tool_calls"] == [CALL]
    assert weather[2]["reasoning"] == "I should call the weather tool."
    assert weather[3]["tool_call_id"] == "call_1"
    tools = rows["weather-and-time"]["tools"]
    assert [t["function"]["name"] for t in tools] == ["get_weather", "get_time"]
    assert json.loads(tools[0]["function"]["parameters"]) == WEATHER["function"]["parameters"]
    legacy = rows["legacy"]["messages"]
    assert legacy[2]["function_call"] == LEGACY["messages"][2]["function_call"]
    assert (legacy[3]["role"], legacy[3]["name"]) == ("function", "get_weather")
    assert rows["legacy"]["functions"][0]["name"] == "get_weather"
    # what a Parquet message has no column for is counted, never dropped silently
    assert result["not_carried"] == {"content parts that are not text": 1,
                                     "message field `annotations`": 1}
    card = Path(result["card"]).read_text()
    assert "| not carried by parquet: content parts that are not text | 1 |" in card
    assert "| not carried by parquet: message field `annotations` | 1 |" in card


def test_prompt_completion_carries_tools_and_tool_call_completions(agentic_run, tmp_path):
    out = tmp_path / "pc.jsonl"
    export_run(agentic_run, out, "prompt-completion")
    rows = [r for r in read_jsonl(out) if r["transcript_id"] == "weather"]
    assert [r["completion_index"] for r in rows] == [2, 4]
    call_turn = rows[0]["completion"][0]
    assert call_turn == {"role": "assistant", "content": None, "tool_calls": [CALL],
                         "reasoning_content": "I should call the weather tool."}
    assert rows[0]["prompt"][0] == {"role": "developer", "content": "Use the tools."}
    assert all(r["tools"] == [WEATHER] for r in rows)


def test_distill_writes_no_empty_completion_for_a_tool_call_turn(agentic_run, tmp_path):
    out = tmp_path / "distill.jsonl"
    result = export_run(agentic_run, out, "distill")
    rows = read_jsonl(out)
    assert all(r["completion"] for r in rows)
    assert {(r["transcript_id"], r["completion_index"]) for r in rows} >= {
        ("weather", 4), ("legacy", 4)}
    assert not any(r["completion_index"] == 2 for r in rows)  # the three call turns
    assert result["not_carried"]["tool-call turns (a distill completion is text)"] == 3
    assert result["not_carried"]["reasoning of a completion"] == 1
    card = Path(result["card"]).read_text()
    assert "tool-call turns (a distill completion is text) | 3 |" in card


def test_pairs_carry_the_tools(tmp_path):
    good = agentic("good", [WEATHER])
    bad = agentic("bad", [WEATHER])
    bad["messages"][-1]["content"] = "Your key is sk-" + "a" * 24
    for r in (good, bad):
        r["metadata"] = {"pair_id": "p1"}
    root = tmp_path
    (root / "suite.yaml").write_text(SUITE)
    review_into(root / "run", root / "suite.yaml", [write_jsonl(root / "in.jsonl", [good, bad])])
    out = root / "pairs.jsonl"
    export_run(root / "run", out, "pairs")
    [pair] = read_jsonl(out)
    assert pair["tools"] == [WEATHER]
    assert "not_carried" not in pair
    assert pair["prompt"][0]["role"] == "developer"
    assert pair["prompt"][2]["tool_calls"] == [CALL]


def test_records_differing_only_in_a_dropped_field_are_not_merged(tmp_path):
    """Two records that differ in their legacy function call, their role or their reasoning
    are two training examples."""
    base = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": None,
                                                "function_call": {"name": "a", "arguments": "{}"}}]
    other = copy.deepcopy(base)
    other[1]["function_call"]["name"] = "b"
    reasoned = [{"role": "user", "content": "hi"},
                {"role": "assistant", "content": "ok", "reasoning": "one"}]
    reasoned2 = copy.deepcopy(reasoned)
    reasoned2[1]["reasoning"] = "two"
    records = [{"id": str(i), "messages": m} for i, m in enumerate(
        [base, other, reasoned, reasoned2,
         [{"role": "system", "content": "s"}, {"role": "user", "content": "u"},
          {"role": "assistant", "content": "a"}],
         [{"role": "developer", "content": "s"}, {"role": "user", "content": "u"},
          {"role": "assistant", "content": "a"}]])]
    (tmp_path / "suite.yaml").write_text(SUITE)
    summary = review_into(tmp_path / "run", tmp_path / "suite.yaml",
                          [write_jsonl(tmp_path / "in.jsonl", records)])
    # train.jsonl has no reasoning (OpenAI's format): the two that differ only there are one
    assert summary["train_duplicates"] == 1
    assert len(read_jsonl(tmp_path / "run" / "train.jsonl")) == 5
    for fmt, name in (("openai", "o.jsonl"), ("parquet", "o.parquet"),
                      ("prompt-completion", "pc.jsonl")):
        result = export_run(tmp_path / "run", tmp_path / name, fmt)
        assert result["duplicates"] == 0, fmt


def test_hugging_face_datasets_loads_the_typed_tool_calls(agentic_run, tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    out = tmp_path / "sft.parquet"
    export_run(agentic_run, out, "parquet")
    ds = datasets.load_dataset("parquet", data_files=str(out), split="train",
                               cache_dir=str(tmp_path / "cache"))
    first = ds[0]
    assert first["transcript_id"] == "weather"
    assert first["messages"][2]["tool_calls"] == [CALL]
    assert json.loads(first["record_metadata"]) == {}


def test_a_parquet_export_reads_back_as_the_records_it_holds(agentic_run, tmp_path):
    """Reviewing the exported Parquet file gives the train.jsonl lines the records gave (what
    Parquet could not carry, counted in the card, aside): tools with their schemas, calls."""
    out = tmp_path / "sft.parquet"
    export_run(agentic_run, out, "parquet")
    (tmp_path / "suite.yaml").write_text(SUITE)
    review_into(tmp_path / "again", tmp_path / "suite.yaml", [out])
    before = read_jsonl(agentic_run / "train.jsonl")[:3]  # the fourth had an image part
    after = read_jsonl(tmp_path / "again" / "train.jsonl")[:3]
    for line in after:  # the export trained every assistant turn: weight 1
        for m in line["messages"]:
            assert m.pop("weight", 1) == 1
    assert after == before


def test_a_pair_whose_sides_had_other_tools_says_so(tmp_path):
    good, bad = agentic("good", [WEATHER]), agentic("bad", [WEATHER, TIME])
    bad["messages"][-1]["content"] = "Your key is sk-" + "a" * 24
    for r in (good, bad):
        r["metadata"] = {"pair_id": "p1"}
    (tmp_path / "suite.yaml").write_text(SUITE)
    review_into(tmp_path / "run", tmp_path / "suite.yaml",
                [write_jsonl(tmp_path / "in.jsonl", [good, bad])])
    result = export_run(tmp_path / "run", tmp_path / "pairs.jsonl", "pairs")
    assert result["pairs"] == 1
    assert result["not_carried"] == {
        "the rejected side's tools (a pair has the chosen side's)": 1}
