"""harness logprobs: each assistant turn's mean token log-probability in its context."""

from __future__ import annotations

import json

import pytest
import torch
from trlutil import CONVERSATION, tiny_model

from harness_trl.chat_tokens import encode_chat
from harness_trl.logprobs import turn_logprobs
from harness_trl.model_dirs import stop_token_ids


def test_each_turn_scores_its_tokens_in_context(tokenizer):
    model = tiny_model(tokenizer)
    rows = turn_logprobs((model, tokenizer), [{"id": "c", "messages": CONVERSATION}])
    assert rows[["message", "weight"]].values.tolist() == [[2, 0.0], [4, 1.0]]
    encoded = encode_chat(tokenizer, CONVERSATION, stop_token_ids(model, tokenizer))
    ids = torch.tensor([encoded.input_ids])
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=ids).logits[0], -1)
    for row, turn in zip(rows.itertuples(), encoded.turns, strict=True):
        by_hand = [float(logp[j - 1, encoded.input_ids[j]]) for j in range(turn.start, turn.end)]
        assert row.tokens == len(by_hand)
        assert row.mean_logprob == pytest.approx(sum(by_hand) / len(by_hand), rel=1e-5)


def test_the_command_summarises_by_weight_and_writes_rows(cli, tiny_dir, tmp_path):
    data = tmp_path / "t.jsonl"
    data.write_text(json.dumps({"id": "c", "messages": CONVERSATION}) + "\n")
    code, out, err = cli("logprobs", tiny_dir, data, "-o", tmp_path / "rows.jsonl")
    assert code == 0, err
    lines = [line.split() for line in out.splitlines()]
    assert ["weight", "turns", "tokens", "mean", "log-prob", "per", "token"] in lines
    assert [line[:2] for line in lines if line[:1] in (["0"], ["1"])] == [["0", "1"], ["1", "1"]]
    rows = [json.loads(x) for x in (tmp_path / "rows.jsonl").read_text().splitlines()]
    assert [(r["transcript_id"], r["message"], r["weight"]) for r in rows] == [
        ("c", 2, 0.0), ("c", 4, 1.0)]
