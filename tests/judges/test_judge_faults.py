"""Every fault an endpoint can throw, through the real client and runner on a real HTTP server:
retried then answered, or failed for good, never an answer that was not given; an endpoint that
is down, or fails every call, opens the circuit breaker; a misconfigured judge stops at once."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import pytest
from chat_server import ChatServer, closed_port
from judgeutil import arun, arun_all

from harness.judges.base import JudgeMisconfigured, JudgeRequest, JudgeUnavailable
from harness.judges.cache import JudgeCache
from harness.judges.openai_backend import OpenAIBackend
from harness.judges.runner import JudgeCallFailed, JudgeRunner, RetryPolicy


def request(i: int = 0) -> JudgeRequest:
    return JudgeRequest(messages=[{"role": "user", "content": f"judge item {i}"}])


def runner_for(base_url: str, *, key_env: str | None = None, **policy: float) -> JudgeRunner:
    backend = OpenAIBackend("test-judge", {"base_url": base_url, "api_key_env": key_env})
    options = {"base_delay_s": 0.01, "max_delay_s": 0.05, "timeout_s": 2.0, **policy}
    return JudgeRunner(backend, max_concurrency=4, policy=RetryPolicy(**options))


TRANSIENT: dict[str, tuple[Callable[[ChatServer], None], str]] = {
    "429 Retry-After": (lambda s: s.fail_first(1, 429, retry_after="0.2"), "HTTP 429"),
    "429 retry-after-ms": (lambda s: s.fail_first(1, 429, None, retry_after_ms="200"),
                           "HTTP 429"),
    "503": (lambda s: s.fail_first(1, 503, retry_after=None), "HTTP 503"),
    "500": (lambda s: s.fail_first(1, 500, retry_after=None), "HTTP 500"),
    "reset": (lambda s: s.reset_first(1), "cannot reach"),
    "slow": (lambda s: s.slow_first(1, 3.0), "timed out"),
    "null content": (lambda s: s.null_content_first(1), "no text"),
    "no choices": (lambda s: s.no_choices_first(1), "no choices"),
}


@pytest.mark.parametrize("fault", list(TRANSIENT))
def test_transient_faults_are_retried_then_answered(chat_server: ChatServer, fault: str) -> None:
    inject, message = TRANSIENT[fault]
    inject(chat_server)
    runner = runner_for(chat_server.base_url, timeout_s=0.5)
    t0 = time.monotonic()
    response, record = arun(runner.complete(request()), runner)
    elapsed = time.monotonic() - t0
    assert response.text.endswith("VERDICT: PASS")
    assert record.attempts == 2 and chat_server.completions == 2
    assert message in record.errors[0]
    if fault.startswith("429"):
        assert elapsed >= 0.2  # the server's wait, though the backoff alone is <= 0.05 s
    assert not runner.breaker_open


PERSISTENT: dict[str, tuple[Callable[[ChatServer], None], int, str]] = {
    # fault, attempts made (max_attempts is 3), message
    "garbage body": (lambda s: s.garbage_first(10), 1, "not JSON"),
    "400": (lambda s: s.fail_first(10, 400, retry_after=None), 1, "HTTP 400"),
    "503": (lambda s: s.fail_first(10, 503, retry_after="0"), 3, "HTTP 503"),
    "null content": (lambda s: s.null_content_first(10), 3, "no text"),
    "reset": (lambda s: s.reset_first(10), 3, "cannot reach"),
}


@pytest.mark.parametrize("fault", list(PERSISTENT))
def test_persistent_faults_fail_for_good_and_are_not_cached(
    chat_server: ChatServer, tmp_path, fault: str
) -> None:
    inject, attempts, message = PERSISTENT[fault]
    inject(chat_server)
    runner = runner_for(chat_server.base_url, max_attempts=3)
    cache = JudgeCache(tmp_path)
    with pytest.raises(JudgeCallFailed, match=message) as info:
        arun(runner.complete(request(), cache=cache), runner)
    assert info.value.record.attempts == attempts == chat_server.completions
    assert len(cache) == 0
    cache.close()


def test_an_unusable_answer_is_returned_but_not_cached(chat_server: ChatServer, tmp_path) -> None:
    chat_server.reply = lambda req: "I cannot decide."
    runner = runner_for(chat_server.base_url)
    cache = JudgeCache(tmp_path)

    def usable(response) -> bool:
        return "VERDICT:" in response.text

    response, _ = arun(runner.complete(request(), cache=cache, accept=usable), runner)
    assert response.text == "I cannot decide." and len(cache) == 0
    chat_server.reply = lambda req: "VERDICT: PASS"
    response, record = arun(runner.complete(request(), cache=cache, accept=usable), runner)
    assert not record.cached and len(cache) == 1 and chat_server.completions == 2
    cache.close()


def test_a_down_endpoint_opens_the_breaker_quickly() -> None:
    runner = runner_for(f"http://127.0.0.1:{closed_port()}/v1", breaker_after=5,
                        max_attempts=5)
    t0 = time.monotonic()
    results = arun_all((runner.complete(request(i)) for i in range(40)), runner)
    elapsed = time.monotonic() - t0
    assert all(isinstance(r, JudgeUnavailable) for r in results), results
    assert runner.breaker_open
    assert runner.calls <= 5 + 4  # the streak, plus what was in flight when it opened
    assert elapsed < 2.0
    # the streak that opened it, not the failures of the calls in flight then
    assert "circuit breaker" in str(results[-1]) and "5 failures in a row" in str(results[-1])


def test_timeouts_count_per_attempt_and_http_errors_per_call(chat_server: ChatServer) -> None:
    chat_server.slow_first(10, 3.0)
    runner = runner_for(chat_server.base_url, timeout_s=0.1, breaker_after=3, max_attempts=5)
    results = arun_all((runner.complete(request(i)) for i in range(2)), runner)
    assert all(isinstance(r, JudgeUnavailable) for r in results) and runner.breaker_open

    with ChatServer() as server:  # a transient 503: an error after retries, not a stop
        server.fail_first(20, 503, retry_after="0")
        runner = runner_for(server.base_url, breaker_after=3, max_attempts=5)
        with pytest.raises(JudgeCallFailed, match="after 5 attempts"):
            arun(runner.complete(request()), runner)
        assert not runner.breaker_open


@pytest.mark.parametrize("status", [500, 429])
def test_an_endpoint_failing_every_call_opens_the_breaker(chat_server: ChatServer,
                                                          status: int) -> None:
    chat_server.fail_first(10_000, status, retry_after="0")
    runner = runner_for(chat_server.base_url, breaker_after=3, max_attempts=2)
    results = arun_all((runner.complete(request(i)) for i in range(40)), runner)
    assert runner.breaker_open
    failed = [r for r in results if isinstance(r, JudgeCallFailed)]
    # the 3 calls that opened it, and at most the 4 in flight then; the rest refused at once
    assert 3 <= len(failed) <= 3 + 4
    assert all(isinstance(r, JudgeUnavailable) for r in results if r not in failed)
    assert "3 failures in a row" in str(results[-1]) and f"HTTP {status}" in str(results[-1])


def test_a_success_ends_a_streak_of_failed_calls(chat_server: ChatServer) -> None:
    runner = runner_for(chat_server.base_url, breaker_after=2, max_attempts=1)

    async def scenario() -> None:
        for i in range(5):  # fail, succeed, fail, succeed, fail: never two in a row
            if i % 2 == 0:
                chat_server.fail_first(1, 500, retry_after=None)
                with pytest.raises(JudgeCallFailed):
                    await runner.complete(request(i))
            else:
                await runner.complete(request(i))
        assert not runner.breaker_open

    arun(scenario(), runner)


MISCONFIGURED: dict[str, tuple[str, str, int, str]] = {
    # how the judge is misconfigured: the key given, a path added to base_url, the status the
    # server answers, what the message says to check
    "wrong key": ("wrong", "", 401, "API key"),
    "wrong base_url path": ("right", "/chat", 404, "base_url"),
    "key without access": ("right", "", 403, "API key"),
}


@pytest.mark.parametrize("case", list(MISCONFIGURED))
def test_a_misconfigured_judge_fails_every_call_at_once(
    chat_server: ChatServer, monkeypatch: pytest.MonkeyPatch, case: str
) -> None:
    key, path, status, check = MISCONFIGURED[case]
    chat_server.api_key = "right"
    if status == 403:  # the key is known, but may not use this model
        chat_server.fail_first(10_000, 403, retry_after=None)
    monkeypatch.setenv("JUDGE_KEY", key)
    runner = runner_for(chat_server.base_url + path, key_env="JUDGE_KEY", max_attempts=5)
    results = arun_all((runner.complete(request(i)) for i in range(20)), runner)
    assert all(isinstance(r, JudgeMisconfigured) for r in results), results
    # the first answer settles it: no retry, and only the calls already in flight were sent
    assert chat_server.completions + chat_server.refused <= 4
    message = str(results[0])
    assert "\n" not in message
    assert f"HTTP {status}" in message and "openai/test-judge" in message and check in message
    assert results[0].stop_reason.startswith("judge misconfigured: ")
    with pytest.raises(JudgeMisconfigured):  # later calls too, without asking
        arun(runner.complete(request(99)), runner)
    assert chat_server.completions + chat_server.refused <= 4


def test_a_success_after_the_cooldown_closes_the_breaker() -> None:
    port = closed_port()
    runner = runner_for(f"http://127.0.0.1:{port}/v1", breaker_after=2, max_attempts=1,
                        breaker_cooldown_s=0.3)

    async def scenario() -> None:
        for i in range(2):
            with pytest.raises(JudgeCallFailed):
                await runner.complete(request(i))
        assert runner.breaker_open
        with pytest.raises(JudgeUnavailable):
            await runner.complete(request(2))
        with ChatServer(port=port) as server:  # the endpoint is back
            with pytest.raises(JudgeUnavailable):  # still cooling down: no call
                await runner.complete(request(3))
            assert server.completions == 0
            await asyncio.sleep(0.35)
            response, _ = await runner.complete(request(4))  # the probe
            assert response.text and not runner.breaker_open
            await runner.complete(request(5))
            assert server.completions == 2

    arun(scenario(), runner)
