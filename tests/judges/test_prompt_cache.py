"""Prompts a provider's prefix cache can serve, and what its cached tokens cost: the backends
read them, price them at ``price_cached_input_per_mtok``, and the summary, terminal and report
show the hit rate. The server acts as a prefix cache (``ChatServer(prefix_cache=True)``)."""

from __future__ import annotations

import json
import re

import pandas as pd
import pytest
from chat_server import ChatServer, tokenize
from judgeutil import arun
from testutil import chat, write_jsonl

from harness.judges.base import JudgeRequest
from harness.judges.openai_backend import OpenAIBackend
from harness.report.data import collect

RULES = " ".join(["rules"] * 50)
REQ = JudgeRequest(messages=[{"role": "system", "content": RULES},
                             {"role": "user", "content": "judge this"}], max_tokens=64)
OTHER = REQ.model_copy(update={"messages": [REQ.messages[0],
                                            {"role": "user", "content": "and this one"}]})


def test_openai_reads_cached_tokens_and_prices_them(chat_server: ChatServer) -> None:
    chat_server.prefix_cache = True
    judge = OpenAIBackend("m", {"base_url": chat_server.base_url, "price_in_per_mtok": 2.0,
                                "price_cached_input_per_mtok": 0.5, "price_out_per_mtok": 8.0})
    first = arun(judge.complete(REQ), judge)
    second = arun(judge.complete(OTHER), judge)
    assert first.tokens_cached == 0
    assert second.tokens_cached == 50  # the system message: the prefix both requests share
    fresh = second.tokens_in - 50
    assert second.cost_usd == pytest.approx((fresh * 2.0 + 50 * 0.5
                                             + second.tokens_out * 8.0) / 1e6)
    # without a cached price, cached tokens cost the input price (as if nothing were cached)
    plain = OpenAIBackend("m", {"base_url": chat_server.base_url, "price_in_per_mtok": 2.0})
    again = arun(plain.complete(OTHER), plain)
    assert again.tokens_cached == again.tokens_in  # the very same prompt again
    assert again.cost_usd == pytest.approx(again.tokens_in * 2.0 / 1e6)


def test_anthropic_marks_the_stable_prefix_and_prices_reads_and_writes(
        chat_server: ChatServer, monkeypatch) -> None:
    pytest.importorskip("anthropic")
    from harness.judges.anthropic_backend import AnthropicBackend

    chat_server.prefix_cache = True
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    base = chat_server.base_url.removesuffix("/v1")
    judge = AnthropicBackend("claude-test", {"base_url": base, "price_in_per_mtok": 4.0,
                                             "price_cached_input_per_mtok": 0.4})
    first = arun(judge.complete(REQ), judge)
    second = arun(judge.complete(OTHER), judge)
    sent = chat_server.requests[0]["system"]
    assert sent == [{"type": "text", "text": RULES, "cache_control": {"type": "ephemeral"}}]
    # the first call writes the system prompt to the cache (1.25x the input price), the
    # second reads it (the cached price); tokens_in counts every prompt token either way
    assert first.tokens_cached == 0 and second.tokens_cached == 50
    assert first.tokens_in == second.tokens_in - 1 == 52
    assert first.cost_usd == pytest.approx((2 * 4.0 + 50 * 5.0) / 1e6)
    assert second.cost_usd == pytest.approx((3 * 4.0 + 50 * 0.4) / 1e6)
    off = AnthropicBackend("claude-test", {"base_url": base, "prompt_cache": False})
    arun(off.complete(REQ), off)
    assert chat_server.requests[-1]["system"] == RULES


def test_the_stable_prompt_is_a_shared_prefix_and_the_hit_rate_is_shown(cli, tmp_path):
    """Every call after the first reads the rules, the rubric and the answer format from the
    provider's cache: the summary, the terminal and the report show the hit rate, and the cost
    prices those tokens at the cached price."""
    n, run = 8, tmp_path / "run"
    rubric = ("Judge whether the final answer is helpful, correct and concise. " * 20
              + "The answer: {{ last_assistant }}")
    suite = tmp_path / "suite.yaml"
    data = write_jsonl(tmp_path / "in.jsonl", [chat(f"question {i}", f"answer number {i}",
                                                    id=f"t{i}") for i in range(n)])
    with ChatServer(reply=lambda r: "Fine.\nVERDICT: PASS", prefix_cache=True) as server:
        suite.write_text(json.dumps({
            "name": "cached", "judge": {
                "name": "openai/j", "base_url": server.base_url, "max_concurrency": 1,
                "price_in_per_mtok": 1.0, "price_cached_input_per_mtok": 0.1,
                "price_out_per_mtok": 4.0},
            "criteria": [{"name": "fine", "kind": "llm_judge", "rubric": rubric}]}))
        code, out, err = cli("run", suite, data, "-o", run, "--workers", "1")
        assert code == 0, err
        systems = {r["messages"][0]["content"] for r in server.requests}
    (system,) = systems  # the same system message for every transcript...
    assert "helpful, correct and concise" in system and "[DATA 1]" in system
    assert not re.search(r"[0-9a-f]{16}", system)  # ...with no nonce in it
    results = pd.read_parquet(run / "results.parquet")
    cached = sorted(json.loads(d).get("cached_tokens", 0) for d in results.details)
    assert cached[0] == 0 and all(c >= len(tokenize(system)) for c in cached[1:])
    usage = json.loads((run / "summary.json").read_text())["usage"]
    assert usage["tokens_cached"] == sum(cached) > 0
    assert usage["cache_hit_rate"] == pytest.approx(sum(cached) / usage["tokens_in"], abs=1e-4)
    assert usage["cache_hit_rate"] > 0.5
    assert usage["cost_usd"] == pytest.approx(((usage["tokens_in"] - sum(cached)) * 1.0
                                               + sum(cached) * 0.1
                                               + usage["tokens_out"] * 4.0) / 1e6)
    rate = f"{usage['tokens_cached'] / usage['tokens_in']:.0%}"
    assert f"({rate} of them from the provider's prompt cache)" in " ".join(out.split())
    totals = collect(run)["totals"]
    assert totals["tokens_cached"] == usage["tokens_cached"]
    html = (run / "report.html").read_text()
    assert re.search(r"\d+(\.\d)?%</span> of prompt tokens from the provider(&#39;|')s cache",
                     html)


def test_a_judge_that_reports_no_cache_has_no_hit_rate(cli, tmp_path):
    run = tmp_path / "run"
    data = write_jsonl(tmp_path / "in.jsonl", [chat("q", "a", id="t0")])
    with ChatServer(reply=lambda r: "Fine.\nVERDICT: PASS") as server:
        suite = tmp_path / "suite.yaml"
        suite.write_text(json.dumps({
            "name": "plain", "judge": {"name": "openai/j", "base_url": server.base_url},
            "criteria": [{"name": "fine", "kind": "llm_judge",
                          "rubric": "Fine? {{ last_assistant }}"}]}))
        code, out, err = cli("run", suite, data, "-o", run, "--workers", "1")
    assert code == 0, err
    usage = json.loads((run / "summary.json").read_text())["usage"]
    assert usage["tokens_cached"] == 0 and usage["cache_hit_rate"] == 0.0
    assert "prompt cache" not in out
    assert "cached_tokens" not in pd.read_parquet(run / "results.parquet").details[0]


def test_cached_prices_are_the_model_s_and_do_not_follow_an_override() -> None:
    from harness.judges.override import apply_override

    replaced = apply_override("openai/other", [{"name": "openai/m", "base_url": "http://x/v1",
                                                "price_in_per_mtok": 1.0,
                                                "price_cached_input_per_mtok": 0.1}])
    assert "price_cached_input_per_mtok" not in replaced and replaced["base_url"] == "http://x/v1"

