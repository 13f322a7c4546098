"""The generate -> review -> keep loop asks the generator for top-k logprobs and keeps them."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from exportutil import EXAMPLES, read_jsonl
from test_generate_review_keep import load_loop

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "judges"))

from chat_server import ChatServer  # noqa: E402


def test_kept_answers_carry_the_generators_logprobs(tmp_path: Path) -> None:
    pytest.importorskip("openai")
    with ChatServer(reply=lambda req: "Keep a regular schedule and a dark, cool room.") as srv:
        out = tmp_path / "kept.jsonl"
        code = load_loop().main([
            str(EXAMPLES / "prompts.jsonl"), "--base-url", srv.base_url, "--model", "gen",
            "--target", "1", "--per-prompt", "1", "--top-logprobs", "3", "-o", str(out)])
        assert code == 0
        assert srv.requests[0]["logprobs"] is True and srv.requests[0]["top_logprobs"] == 3
    answer = read_jsonl(out)[0]["messages"][-1]
    tokens = answer["logprobs"]["content"]
    assert "".join(t["token"] for t in tokens) == answer["content"]
    assert tokens[0]["top_logprobs"][0]["token"] == tokens[0]["token"]
