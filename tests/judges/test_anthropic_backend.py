"""The ``anthropic`` judge backend against the real local server (Messages API route)."""

from __future__ import annotations

import pytest
from chat_server import ChatServer, closed_port
from judgeutil import arun

from harness.judges.base import JudgeError, JudgeMisconfigured, JudgeRequest

pytest.importorskip("anthropic")

from harness.judges.anthropic_backend import AnthropicBackend  # noqa: E402

REQ = JudgeRequest(
    messages=[{"role": "system", "content": "rules"}, {"role": "user", "content": "judge this"}],
    max_tokens=64,
)


def backend(base_url: str, monkeypatch) -> AnthropicBackend:
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    return AnthropicBackend("claude-test", {"base_url": base_url.removesuffix("/v1"),
                                            "price_in_per_mtok": 1.0})


def test_reads_text_usage_and_cost(chat_server: ChatServer, monkeypatch) -> None:
    judge = backend(chat_server.base_url, monkeypatch)
    response = arun(judge.complete(REQ), judge)
    sent = chat_server.requests[0]
    assert sent["system"] == [{"type": "text", "text": "rules",  # a prompt-cache breakpoint
                               "cache_control": {"type": "ephemeral"}}]
    assert sent["messages"] == REQ.messages[1:]
    assert "temperature" not in sent  # deprecated by the API; opt in with send_temperature
    assert response.text.endswith("VERDICT: PASS") and response.tokens is None
    assert response.tokens_in > 0 and response.cost_usd == pytest.approx(response.tokens_in / 1e6)
    monkeypatch.setenv("ANTHROPIC_API_KEY", "sk-ant-test")
    older = AnthropicBackend("claude-old", {"base_url": chat_server.base_url.removesuffix("/v1"),
                                            "send_temperature": True})
    arun(older.complete(REQ), older)
    assert chat_server.requests[-1]["temperature"] == 0.0


def test_errors_map_like_the_openai_judge(chat_server: ChatServer, monkeypatch) -> None:
    judge = backend(chat_server.base_url, monkeypatch)
    for inject, retryable in [(lambda: chat_server.fail_first(1, 429, retry_after="3"), True),
                              (lambda: chat_server.fail_first(1, 400, retry_after=None), False),
                              (lambda: chat_server.null_content_first(1), True)]:
        inject()
        with pytest.raises(JudgeError) as info:
            arun(judge.complete(REQ), judge)
        assert info.value.retryable is retryable and not info.value.connection
    down = backend(f"http://127.0.0.1:{closed_port()}/v1", monkeypatch)
    with pytest.raises(JudgeError) as info:
        arun(down.complete(REQ), down)
    assert info.value.retryable and info.value.connection


def test_headers_from_the_environment_and_query_reach_the_endpoint(chat_server: ChatServer,
                                                                   monkeypatch) -> None:
    """A gateway in front of the Messages API: its own key header and a query parameter."""
    monkeypatch.delenv("ANTHROPIC_API_KEY", raising=False)
    monkeypatch.setenv("GATEWAY_TEST_KEY", "gw-secret")
    judge = AnthropicBackend("claude-test", {
        "base_url": chat_server.base_url.removesuffix("/v1"),
        "headers": {"X-Gateway-Key": "GATEWAY_TEST_KEY"}, "query": {"tenant": "research"}})
    arun(judge.complete(REQ), judge)
    assert chat_server.headers[-1]["x-gateway-key"] == "gw-secret"
    assert chat_server.paths[-1] == "/v1/messages?tenant=research"
    assert "gw-secret" not in str(judge.identity())


def test_a_wrong_key_says_the_judge_is_misconfigured(chat_server: ChatServer, monkeypatch) -> None:
    chat_server.api_key = "sk-ant-right"
    judge = backend(chat_server.base_url, monkeypatch)  # sends sk-ant-test
    with pytest.raises(JudgeMisconfigured, match="HTTP 401 from anthropic/claude-test .*API key"):
        arun(judge.complete(REQ), judge)
