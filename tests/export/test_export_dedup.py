"""One duplicate rule for the run's train.jsonl and for every export."""

from __future__ import annotations

from exportutil import EXAMPLES, read_jsonl
from testutil import chat, write_jsonl

import harness
from harness.export import export_run
from harness.export.dedup import messages_key


def _weighted(user: str, assistant: str, weight: float | None) -> dict:
    record = chat(user, assistant)
    if weight is not None:
        record["messages"][1]["weight"] = weight
    return record


def test_train_jsonl_and_export_drop_the_same_duplicates(tmp_path):
    records = [chat("q1", "four"), chat("q2", "five"), chat("q1", "four", id="again"),
               _weighted("q1", "four", 1),      # weight 1 is what an unset weight means
               _weighted("q1", "four", 0),      # a masked turn is other training content
               chat("q2", "five", metadata={"note": "x"}),   # metadata is not content
               chat("q3", "As an AI language model, no.")]   # fails: not in either
    corpus = write_jsonl(tmp_path / "c.jsonl", records)
    summary = harness.run(EXAMPLES / "suite.yaml", corpus, tmp_path / "run", workers=1,
                          report=False)
    assert summary["passed"] == 6 and summary["train_duplicates"] == 3
    train = read_jsonl(tmp_path / "run" / "train.jsonl")
    assert [[m["content"] for m in t["messages"]] for t in train] == [
        ["q1", "four"], ["q2", "five"], ["q1", "four"]]
    assert train[2]["messages"][1]["weight"] == 0

    result = export_run(tmp_path / "run", tmp_path / "sft.jsonl")
    exported = read_jsonl(tmp_path / "sft.jsonl")
    assert result["duplicates"] == summary["train_duplicates"]
    assert [messages_key(e["messages"]) for e in exported] == \
        [messages_key(t["messages"]) for t in train]


def test_the_duplicate_key_ignores_key_order_and_an_explicit_weight_1():
    a = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]
    b = [{"content": "q", "role": "user"}, {"content": "a", "role": "assistant", "weight": 1}]
    c = [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a", "weight": 0}]
    assert messages_key(a) == messages_key(b) != messages_key(c)
    assert "weight" not in a[1]   # the messages given are left as they were


def test_harness_run_says_how_many_duplicates_train_jsonl_left_out(tmp_path, cli):
    records = [chat("q1", "four"), chat("q1", "four", id="again"), chat("q2", "five")]
    corpus = write_jsonl(tmp_path / "c.jsonl", records)
    code, out, _ = cli("run", EXAMPLES / "suite.yaml", corpus, "-o", tmp_path / "run",
                       "--workers", "1", "--no-report")
    assert code == 0
    assert "train.jsonl leaves out 1 exact duplicate of transcripts it already holds" in out
