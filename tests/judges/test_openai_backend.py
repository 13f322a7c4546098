"""The ``openai`` judge backend against a real chat-completions server."""

from __future__ import annotations

import email.utils
import time

import pytest
from chat_server import ChatServer, Reply
from judgeutil import arun

from harness.judges.base import JudgeError, JudgeRequest
from harness.judges.http import parse_retry_after
from harness.judges.openai_backend import OpenAIBackend

REQ = JudgeRequest(
    messages=[{"role": "system", "content": "rules"}, {"role": "user", "content": "judge this"}],
    max_tokens=64,
    seed=3,
    top_logprobs=4,
)


def test_sends_the_request_and_reads_text_usage_and_logprobs(chat_server: ChatServer) -> None:
    chat_server.reply = lambda req: Reply(
        "Fine.\nVERDICT: PASS", alternatives={-1: {" FAIL": -2.5}}, token_logprobs={-1: -0.1}
    )
    judge = OpenAIBackend("judge-model", {"base_url": chat_server.base_url})
    response = arun(judge.complete(REQ), judge)

    sent = chat_server.requests[0]
    assert sent["model"] == "judge-model"
    assert sent["messages"] == REQ.messages
    assert sent["logprobs"] is True and sent["top_logprobs"] == 4
    assert sent["max_tokens"] == 64 and sent["seed"] == 3 and sent["temperature"] == 0.0
    assert response.text == "Fine.\nVERDICT: PASS"
    assert "".join(t.token for t in response.tokens) == response.text
    last = response.tokens[-1]
    assert last.token == " PASS" and last.logprob == -0.1
    assert last.top == {" PASS": -0.1, " FAIL": -2.5}
    assert response.tokens_in > 0 and response.tokens_out == len(response.tokens)
    assert response.cost_usd is None  # no prices configured


def test_logprobs_can_be_turned_off(chat_server: ChatServer) -> None:
    judge = OpenAIBackend("m", {"base_url": chat_server.base_url, "logprobs": False})
    response = arun(judge.complete(REQ), judge)
    assert "logprobs" not in chat_server.requests[0]
    assert response.tokens is None


def test_env_base_url_and_api_key(chat_server: ChatServer, monkeypatch) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", chat_server.base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-from-env")
    judge = OpenAIBackend("m", {})
    arun(judge.complete(REQ), judge)
    assert chat_server.headers[-1]["authorization"] == "Bearer sk-from-env"

    monkeypatch.setenv("MY_JUDGE_KEY", "sk-per-judge")
    judge = OpenAIBackend("m", {"api_key_env": "MY_JUDGE_KEY"})
    arun(judge.complete(REQ), judge)
    assert chat_server.headers[-1]["authorization"] == "Bearer sk-per-judge"


def test_missing_keys_are_clear_errors(monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    monkeypatch.delenv("OPENAI_BASE_URL", raising=False)
    with pytest.raises(JudgeError, match="OPENAI_API_KEY"):
        OpenAIBackend("gpt-x", {})
    with pytest.raises(JudgeError, match="NOPE_KEY is not set"):
        OpenAIBackend("gpt-x", {"api_key_env": "NOPE_KEY", "base_url": "http://x/v1"})
    with pytest.raises(ValueError, match="extra"):
        OpenAIBackend("gpt-x", {"base_url": "http://x/v1", "api_key": "sk-inline"})


def test_local_endpoint_needs_no_key(chat_server: ChatServer, monkeypatch) -> None:
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    judge = OpenAIBackend("m", {"base_url": chat_server.base_url})
    response = arun(judge.complete(REQ), judge)
    assert response.text


@pytest.mark.parametrize(
    ("status", "retryable"), [(429, True), (500, True), (503, True), (400, False), (404, False)]
)
def test_status_codes_map_to_judge_errors(
    chat_server: ChatServer, status: int, retryable: bool
) -> None:
    chat_server.fail_first(1, status=status, retry_after="7")
    judge = OpenAIBackend("m", {"base_url": chat_server.base_url})
    with pytest.raises(JudgeError) as info:
        arun(judge.complete(REQ), judge)
    assert info.value.retryable is retryable
    assert info.value.retry_after == (7.0 if retryable else None)
    assert f"HTTP {status}" in str(info.value)
    assert chat_server.completions == 1  # the backend never retries by itself


def test_non_json_body_is_a_non_retryable_error(chat_server: ChatServer) -> None:
    chat_server.garbage_body = True
    judge = OpenAIBackend("m", {"base_url": chat_server.base_url})
    with pytest.raises(JudgeError) as info:
        arun(judge.complete(REQ), judge)
    assert not info.value.retryable


def test_unreachable_endpoint_is_retryable() -> None:
    judge = OpenAIBackend("m", {"base_url": "http://127.0.0.1:9/v1"})
    with pytest.raises(JudgeError) as info:
        arun(judge.complete(REQ), judge)
    assert info.value.retryable


def test_parse_retry_after_forms() -> None:
    assert parse_retry_after({"retry-after": "3"}) == 3.0
    assert parse_retry_after({"retry-after-ms": "250", "retry-after": "3"}) == 0.25
    date = email.utils.formatdate(time.time() + 30, usegmt=True)
    assert 25 <= parse_retry_after({"retry-after": date}) <= 31
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


def test_identity_names_model_and_endpoint_not_key(chat_server: ChatServer, monkeypatch) -> None:
    monkeypatch.setenv("K", "sk-secret")
    judge = OpenAIBackend("m", {"base_url": chat_server.base_url, "api_key_env": "K"})
    identity = judge.identity()
    assert identity["model"] == "m" and identity["base_url"] == chat_server.base_url
    assert "sk-secret" not in repr(identity)
