"""--format distill: one row per trained assistant turn with per-token top-k logprobs."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd
from exportutil import CORRECTIONS, read_jsonl, review_into, write_jsonl

import harness
from harness.cli import main


def logprobs(text_tokens: list[str], alternative: str = "9") -> dict[str, Any]:
    return {"content": [{"token": t, "logprob": -0.1 * (i + 1),
                         "top_logprobs": [{"token": t, "logprob": -0.1 * (i + 1)},
                                          {"token": alternative, "logprob": -3.0}]}
                        for i, t in enumerate(text_tokens)]}


SYSTEM = {"role": "system", "content": "You are a careful arithmetic tutor."}
RECORDS = [
    {"id": "generated", "messages": [
        SYSTEM, {"role": "user", "content": "What is 12 × 11?"},
        {"role": "assistant", "content": "12 × 11 = 132.",
         "logprobs": logprobs(["12", " ×", " 11", " =", " 132", "."])}]},
    {"id": "corrected", "messages": [
        SYSTEM, {"role": "user", "content": "What is 17 × 24?"},
        {"role": "assistant", "content": "17 × 24 = 398.", "weight": 0,
         "logprobs": logprobs(["17", " ×", " 24", " =", " 398", "."])},
        {"role": "user", "content": "No, work it out as 17 × 20 plus 17 × 4."},
        {"role": "assistant", "content": "17 × 24 = 408.",
         "logprobs": logprobs(["17", " ×", " 24", " =", " 408", "."])}]},
    {"id": "no-logprobs", "messages": [
        SYSTEM, {"role": "user", "content": "What is 2 + 2?"},
        {"role": "assistant", "content": "2 + 2 = 4."}]},
]


def test_readers_keep_logprobs_and_the_review_ignores_them(tmp_path: Path) -> None:
    data = write_jsonl(tmp_path / "t.jsonl", RECORDS)
    [decision] = [d for d in harness.review(CORRECTIONS / "suite.yaml", data)
                  if d.transcript_id == "generated"]
    assert decision.passed
    transcript = next(t for t in harness.api.iter_items(data, harness.plugins.get_registry())
                      if t.id == "corrected")
    assert transcript.messages[2].logprobs == RECORDS[1]["messages"][2]["logprobs"]


def test_distill_rows_columns_and_masking(tmp_path: Path) -> None:
    run = tmp_path / "run"
    review_into(run, CORRECTIONS / "suite.yaml", [write_jsonl(tmp_path / "t.jsonl", RECORDS)])
    out = tmp_path / "distill.parquet"
    assert main(["export", str(run), "--format", "distill", "--on-fail", "mask",
                 "-o", str(out)]) == 0
    table = pd.read_parquet(out)
    assert list(table.columns[:5]) == ["prompt", "completion", "completion_index", "tokens",
                                       "tokens_start"]
    rows = {r.transcript_id: r for r in table.itertuples()}
    # one row per trained assistant turn: the masked "398" turn is context, never a row
    assert len(table) == 3
    corrected = rows["corrected"]
    assert corrected.completion == "17 × 24 = 408." and corrected.completion_index == 4
    assert [m["content"] for m in corrected.prompt][2:] == [
        "17 × 24 = 398.", "No, work it out as 17 × 20 plus 17 × 4."]
    tokens = list(corrected.tokens)
    assert "".join(t["token"] for t in tokens) == corrected.completion
    assert tokens[4]["token"] == " 408" and tokens[4]["logprob"] == -0.5
    assert [a["token"] for a in tokens[4]["top_logprobs"]] == [" 408", "9"]
    assert corrected.tokens_start == 0
    assert corrected.masked_messages.tolist() == [2]
    assert rows["no-logprobs"].tokens is None  # trained turn without logprobs: no targets

    # JSONL too; the openai export carries the messages' logprobs
    assert main(["export", str(run), "--format", "distill", "--on-fail", "mask",
                 "-o", str(tmp_path / "distill.jsonl")]) == 0
    lines = {r["transcript_id"]: r for r in read_jsonl(tmp_path / "distill.jsonl")}
    assert lines["generated"]["tokens"][4]["token"] == " 132"
    assert "logprobs" not in json.dumps(lines["corrected"]["prompt"])
    assert main(["export", str(run), "--on-fail", "mask", "-o", str(tmp_path / "sft.jsonl")]) == 0
    sft = {r["metadata"]["transcript_id"]: r for r in read_jsonl(tmp_path / "sft.jsonl")}
    assert sft["generated"]["messages"][2]["logprobs"] == RECORDS[0]["messages"][2]["logprobs"]


def test_a_judge_sees_the_same_prompt_with_or_without_logprobs(tmp_path: Path) -> None:
    import sys
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "judges"))
    from chat_server import ChatServer

    with ChatServer() as server:
        suite = tmp_path / "suite.yaml"
        suite.write_text(
            "name: s\ncriteria:\n  - name: ok\n    kind: llm_judge\n"
            "    rubric: 'Grade {{ messages }} {{ conversation }}'\n"
            f"    judge: {{name: openai/j, base_url: '{server.base_url}'}}\n")
        plain = {**RECORDS[0], "id": "x",
                 "messages": [{k: v for k, v in m.items() if k != "logprobs"}
                              for m in RECORDS[0]["messages"]]}
        with_logprobs = {**RECORDS[0], "id": "x"}
        for record in (plain, with_logprobs):
            assert [d.outcome for d in harness.review(suite, [record])] == ["pass"]
        first, second = server.requests
        assert first["messages"] == second["messages"]
