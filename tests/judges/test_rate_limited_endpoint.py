"""A judge against a real endpoint that enforces a tokens-per-minute limit (a shorter "minute").

The server (``ChatServer(tokens_per_period=N, period_s=P)``) charges each request the tokens its
answer reports and answers 429 with ``Retry-After`` past the limit. Told the same limit, the
judge stays under it at about its rate; without it, the endpoint refuses many calls, which are
retried (the window narrows) and answered: a run is not stopped by them.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from chat_server import ChatServer
from judgeutil import arun

from harness import Engine, Message, Transcript
from harness.judges import ratelimit
from harness.judges.base import JudgeRequest
from harness.judges.openai_backend import OpenAIBackend
from harness.judges.runner import JudgeRunner, RateLimits, RetryPolicy
from harness.plugins import build_registry, load_plugins

LIMIT, PERIOD = 6000, 1.0  # tokens per "minute", and its seconds
CALLS = 200
POLICY = RetryPolicy(base_delay_s=0.05, max_delay_s=0.5, max_attempts=10)


def request(i: int) -> JudgeRequest:
    text = f"Question {i}: what is {i} plus {i}? Please show the steps. " * 6
    return JudgeRequest(messages=[{"role": "system", "content": "You grade answers."},
                                  {"role": "user", "content": text}], max_tokens=256)


def tpm_server() -> ChatServer:
    return ChatServer(latency_s=0.02, tokens_per_period=LIMIT, period_s=PERIOD).start()


def steady_share(server: ChatServer) -> float:
    """Tokens admitted per second once the first "minute" (the bucket's burst) is over, as a
    share of the limit's rate."""
    admitted = server.admitted
    start, end = admitted[0][0] + PERIOD, admitted[-1][0]
    assert end - start > 1.5 * PERIOD, "the run must outlast its burst to measure a rate"
    tokens = sum(n for t, n in admitted if t > start)
    return tokens / (end - start) / (LIMIT / PERIOD)


def run_calls(server: ChatServer, limits: RateLimits | None) -> JudgeRunner:
    runner = JudgeRunner(OpenAIBackend("t", {"base_url": server.base_url}), max_concurrency=16,
                         policy=POLICY, rate_limits=limits, rate_period_s=PERIOD)

    async def calls() -> None:
        await asyncio.gather(*(runner.complete(request(i)) for i in range(CALLS)))

    arun(calls(), runner)
    return runner


def test_told_the_endpoints_limit_the_judge_keeps_under_it_at_its_rate() -> None:
    server = tpm_server()
    try:
        runner = run_calls(server, RateLimits(tokens_per_minute=LIMIT))
        assert runner.calls == server.completions >= CALLS
        assert server.throttled < 0.01 * server.completions
        assert runner.rate_limited == server.throttled
        assert steady_share(server) >= 0.9
    finally:
        server.stop()


def test_without_the_limit_the_endpoint_refuses_many_calls_which_are_retried() -> None:
    server = tpm_server()
    try:
        runner = run_calls(server, None)  # every call answered, after retries
        assert server.throttled >= 0.1 * server.completions  # the 429s the limiter avoids
        assert runner.rate_limited == server.throttled
        assert len(server.admitted) == CALLS
        assert not runner.breaker_open
    finally:
        server.stop()


def test_a_429_narrows_the_window_and_successes_widen_it(chat_server: ChatServer) -> None:
    chat_server.latency_s = 0.02
    chat_server.fail_first(1, status=429, retry_after="0")
    runner = JudgeRunner(OpenAIBackend("t", {"base_url": chat_server.base_url}),
                         max_concurrency=8, policy=POLICY)

    async def rounds() -> list[float]:
        sizes = []
        await runner.complete(request(0))  # refused once, then answered
        sizes.append(runner.window().size)
        chat_server.max_in_flight = 0
        await asyncio.gather(*(runner.complete(request(i)) for i in range(1, 17)))
        sizes.append(runner.window().size)
        sizes.append(chat_server.max_in_flight)
        await asyncio.gather(*(runner.complete(request(i)) for i in range(17, 217)))
        sizes.append(runner.window().size)
        return sizes

    after_429, after_16, in_flight_16, after_216 = arun(rounds(), runner)
    assert 4 <= after_429 < 5  # halved (and one success since)
    assert after_429 < after_16 < 8 == after_216  # additive increase, up to max_concurrency
    assert in_flight_16 < 8  # 16 calls at once, but never more in flight than the window
    assert runner.rate_limited == 1


def test_a_call_cancelled_while_waiting_its_turn_gives_its_tokens_back(
    chat_server: ChatServer,
) -> None:
    waiting = asyncio.Event()

    async def never(seconds: float) -> None:  # the rate wait, held until cancelled
        waiting.set()
        await asyncio.Event().wait()

    runner = JudgeRunner(OpenAIBackend("t", {"base_url": chat_server.base_url}),
                         rate_limits=RateLimits(tokens_per_minute=600), sleep=never)
    assert runner.limiter is not None and runner.limiter.tokens is not None
    bucket = runner.limiter.tokens

    async def main() -> tuple[float, float]:
        await runner.complete(request(0))  # within the limit: no wait
        before = bucket.level()
        more = request(1).model_copy(update={"max_tokens": 600})  # more than is left: waits
        task = asyncio.create_task(runner.complete(more))
        await waiting.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return before, bucket.level()

    before, after = arun(main(), runner)
    assert chat_server.completions == 1  # the second call was never sent
    assert after == pytest.approx(before, abs=1.0)  # (10 tokens a second come back meanwhile)


# --- through a suite -----------------------------------------------------------------------------
def registry() -> Any:
    return build_registry(load_plugins())


def suite(tmp_path: Path, server: ChatServer, extra: str = "") -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(f"""\
name: limited
judge:
  name: openai/j
  base_url: {server.base_url}
  max_concurrency: 16
  max_attempts: 10
  base_delay_s: 0.05
  max_delay_s: 0.5
{extra}criteria:
  - name: fine
    kind: llm_judge
    rubric: "Is this fine? {{{{ last_assistant }}}}"
""")
    return path


def transcripts(n: int) -> list[Transcript]:
    return [Transcript(id=f"t{i}", messages=[
        Message(role="user", content=f"Question {i}: what is {i} plus {i}?"),
        Message(role="assistant", content=f"It is {2 * i}."),
    ]) for i in range(n)]


def test_suite_keys_limit_the_judge(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ratelimit, "MINUTE_S", PERIOD)  # the suite says per minute
    server = tpm_server()
    try:
        path = suite(tmp_path, server, f"  tokens_per_minute: {LIMIT}\n"
                                       "  requests_per_minute: 100000\n")
        with Engine(path, registry()) as engine:
            limiter = engine.criteria[0].runner.limiter
            assert limiter.tokens.capacity == LIMIT and limiter.requests.capacity == 100000
            decisions = list(engine.review(transcripts(80)))
        assert {d.outcome for d in decisions} == {"pass"}
        assert server.throttled < 0.01 * server.completions
        assert steady_share(server) >= 0.9
    finally:
        server.stop()


def test_a_run_meeting_429s_is_not_stopped(tmp_path: Path, cli: Any) -> None:
    server = tpm_server()
    try:
        data = tmp_path / "in.jsonl"
        data.write_text("".join(t.model_dump_json() + "\n" for t in transcripts(80)))
        code, _, err = cli("run", suite(tmp_path, server), data, "-o", tmp_path / "run")
        assert code == 0, err
        assert server.throttled > 0  # 429s were met, retried and answered
        summary = json.loads((tmp_path / "run" / "summary.json").read_text())
        assert summary["state"] == "complete" and summary["passed"] == 80
    finally:
        server.stop()
