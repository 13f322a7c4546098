"""The judge runner against a real chat-completions server: limits, retries, timeouts."""

from __future__ import annotations

import asyncio
import random
import time

import pytest
from chat_server import ChatServer
from judgeutil import arun, arun_all

from harness.judges.base import JudgeRequest
from harness.judges.openai_backend import OpenAIBackend
from harness.judges.retry import Retrying
from harness.judges.runner import JudgeCallFailed, JudgeRunner, RetryPolicy


def request(i: int = 0) -> JudgeRequest:
    return JudgeRequest(messages=[{"role": "user", "content": f"judge item {i}"}])


def backend(server: ChatServer) -> OpenAIBackend:
    return OpenAIBackend("test-judge", {"base_url": server.base_url})


def fast_policy(**kw: float) -> RetryPolicy:
    return RetryPolicy(**{"base_delay_s": 0.01, "max_delay_s": 0.05, **kw})


def test_concurrency_limit_is_honoured_and_reached(chat_server: ChatServer) -> None:
    chat_server.latency_s = 0.15
    runner = JudgeRunner(backend(chat_server), max_concurrency=4, policy=fast_policy())
    t0 = time.monotonic()
    results = arun_all((runner.complete(request(i)) for i in range(16)), runner)
    elapsed = time.monotonic() - t0
    assert all(not isinstance(r, BaseException) for r in results)
    assert chat_server.max_in_flight == 4
    # 16 calls, 4 at a time, 0.15 s each: about 0.6 s, well below 16 * 0.15 s sequentially.
    assert 0.55 < elapsed < 2.3


def test_429_with_retry_after_is_retried_after_waiting(chat_server: ChatServer) -> None:
    chat_server.fail_first(2, status=429, retry_after="0.3")
    runner = JudgeRunner(backend(chat_server), policy=fast_policy())
    t0 = time.monotonic()
    response, record = arun(runner.complete(request()), runner)
    elapsed = time.monotonic() - t0
    assert response.text.endswith("VERDICT: PASS")
    assert record.attempts == 3
    assert chat_server.completions == 3
    assert elapsed >= 0.6  # two Retry-After waits of 0.3 s, though backoff alone is ~0.05 s
    assert all("429" in e for e in record.errors)


def test_retry_after_pauses_other_calls_to_the_same_backend(chat_server: ChatServer) -> None:
    chat_server.fail_first(1, status=429, retry_after="0.4")
    chat_server.latency_s = 0.05
    runner = JudgeRunner(backend(chat_server), max_concurrency=1, policy=fast_policy())

    async def two() -> list[float]:
        async def timed(i: int) -> float:
            await runner.complete(request(i))
            return time.monotonic()

        t0 = time.monotonic()
        done = await asyncio.gather(timed(0), timed(1))
        return [t - t0 for t in done]

    finished = arun(two(), runner)
    # The second call started after the 429 and waited for the pause the server asked for.
    assert min(finished) >= 0.4


def test_timeout_is_retried(chat_server: ChatServer) -> None:
    chat_server.hang_first(1)
    runner = JudgeRunner(backend(chat_server), policy=fast_policy(timeout_s=0.3))
    response, record = arun(runner.complete(request()), runner)
    assert record.attempts == 2
    assert "timed out" in record.errors[0]
    assert response.text


def test_persistent_5xx_fails_after_bounded_attempts(chat_server: ChatServer) -> None:
    chat_server.fail_first(10, status=503, retry_after=None)
    runner = JudgeRunner(backend(chat_server), policy=fast_policy(max_attempts=3))
    with pytest.raises(JudgeCallFailed, match="after 3 attempts") as info:
        arun(runner.complete(request()), runner)
    assert chat_server.completions == 3
    assert info.value.record.attempts == 3


def test_client_error_is_not_retried(chat_server: ChatServer) -> None:
    chat_server.fail_first(1, status=400, retry_after=None)
    runner = JudgeRunner(backend(chat_server), policy=fast_policy())
    with pytest.raises(JudgeCallFailed, match="HTTP 400"):
        arun(runner.complete(request()), runner)
    assert chat_server.completions == 1


def test_records_tokens_latency_and_cost(chat_server: ChatServer) -> None:
    chat_server.latency_s = 0.05
    judge = OpenAIBackend(
        "test-judge",
        {"base_url": chat_server.base_url, "price_in_per_mtok": 1.0, "price_out_per_mtok": 2.0},
    )
    runner = JudgeRunner(judge)
    response, record = arun(runner.complete(request()), runner)
    assert record.tokens_in > 0 and record.tokens_out > 0
    expected = (record.tokens_in * 1.0 + record.tokens_out * 2.0) / 1e6
    assert record.cost_usd == pytest.approx(expected)
    assert 0.05 <= record.latency_s <= record.total_s


def test_backoff_is_full_jitter_capped_and_honours_retry_after() -> None:
    policy = RetryPolicy(base_delay_s=1.0, max_delay_s=4.0, max_retry_after_s=10.0)
    retrying = Retrying(policy, rng=random.Random(0))
    delays = [retrying.backoff(n, None) for n in range(1, 8) for _ in range(50)]
    assert all(0 <= d <= 4.0 for d in delays)
    assert max(delays) > 3.0  # the cap is reached for later attempts
    # Retry-After is honoured (capped), with the backoff's jitter on top.
    assert all(2.5 <= retrying.backoff(1, 2.5) <= 3.5 for _ in range(50))
    assert all(10.0 <= retrying.backoff(1, 60.0) <= 11.0 for _ in range(50))


def test_retries_sleep_the_policys_backoff_after_each_attempt(chat_server: ChatServer) -> None:
    chat_server.fail_first(3, status=503, retry_after=None)
    slept: list[float] = []

    async def sleep(seconds: float) -> None:  # a fake clock: the waits, not their time
        slept.append(seconds)

    policy = fast_policy(base_delay_s=1.0, max_delay_s=8.0, max_attempts=4)
    runner = JudgeRunner(backend(chat_server), policy=policy, rng=random.Random(7), sleep=sleep)
    response, record = arun(runner.complete(request()), runner)
    assert response.text and record.attempts == 4 == chat_server.completions
    twin = Retrying(policy, rng=random.Random(7))
    assert slept == [twin.backoff(n, None) for n in (1, 2, 3)]
