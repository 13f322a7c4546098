"""One call per distinct prompt: identical requests in flight at once share one call, its answer
(or its failure) and its cost, with or without a cache; different requests never do."""

from __future__ import annotations

import asyncio

import pytest
from chat_server import ChatServer
from judgeutil import arun, arun_all

from harness.judges.base import JudgeRequest
from harness.judges.cache import JudgeCache
from harness.judges.openai_backend import OpenAIBackend
from harness.judges.runner import JudgeCallFailed, JudgeRunner, RetryPolicy


def request(i: int = 0) -> JudgeRequest:
    return JudgeRequest(messages=[{"role": "user", "content": f"judge item {i}"}])


def runner_for(server: ChatServer, backend: type[OpenAIBackend] = OpenAIBackend,
               **policy: float) -> JudgeRunner:
    judge = backend("test-judge", {"base_url": server.base_url, "price_in_per_mtok": 1.0,
                                   "price_out_per_mtok": 1.0})
    return JudgeRunner(judge, max_concurrency=4,
                       policy=RetryPolicy(base_delay_s=0.01, max_delay_s=0.05, **policy))


@pytest.mark.parametrize("cached", [False, True])
def test_identical_requests_in_flight_make_one_call(chat_server: ChatServer, tmp_path,
                                                    cached: bool) -> None:
    runner = runner_for(chat_server)
    cache = JudgeCache(tmp_path) if cached else None
    results = arun_all((runner.complete(request(), cache=cache) for _ in range(10)), runner)
    assert chat_server.completions == 1
    assert {response.text for response, _ in results} == {"Looks fine.\nVERDICT: PASS"}
    records = [record for _, record in results]
    paid = [r for r in records if not r.cached]
    assert len(paid) == 1 and paid[0].cost_usd and paid[0].tokens_in
    # the others say no call was made for them, and cost nothing
    assert all(r.cost_usd == 0.0 and r.tokens_in == 0 and r.attempts == 0
               for r in records if r.cached)
    assert runner.budget.spent == paid[0].cost_usd
    if cache is not None:
        assert len(cache) == 1
        cache.close()


def test_different_requests_are_each_asked(chat_server: ChatServer) -> None:
    runner = runner_for(chat_server)
    results = arun_all((runner.complete(request(i % 5), repeat=i // 5) for i in range(10)),
                       runner)
    assert chat_server.completions == 10  # 5 prompts, 2 repeats each: 10 distinct requests
    assert not any(record.cached for _, record in results)


def test_a_failure_is_shared_too(chat_server: ChatServer) -> None:
    chat_server.fail_first(10, 400, retry_after=None)
    runner = runner_for(chat_server)
    results = arun_all((runner.complete(request()) for _ in range(5)), runner)
    assert all(isinstance(r, JudgeCallFailed) and "HTTP 400" in str(r) for r in results)
    assert chat_server.completions == 1


def test_a_cancelled_call_leaves_the_others_to_ask_again(chat_server: ChatServer) -> None:
    chat_server.hang_first(1)  # the first call never gets an answer
    runner = runner_for(chat_server, timeout_s=30)

    async def scenario() -> list[str]:
        first = asyncio.ensure_future(runner.complete(request()))
        others = [asyncio.ensure_future(runner.complete(request())) for _ in range(3)]
        while chat_server.completions < 1:  # the first call is at the server
            await asyncio.sleep(0.01)
        first.cancel()
        answers = await asyncio.gather(*others)
        assert first.cancelled()
        return [response.text for response, _ in answers]

    assert arun(scenario(), runner) == ["Looks fine.\nVERDICT: PASS"] * 3
    assert chat_server.completions == 2  # the cancelled call, and one for the three others


class ScoringBackend(OpenAIBackend):
    """An endpoint that scores continuations (one chat completion per scoring, for the test)."""

    async def continuation_logprobs(self, request: JudgeRequest, prefix: str,
                                    continuations: list[str]) -> list[float] | None:
        await self.complete(request)
        return [-1.0] * len(continuations)


def test_identical_scorings_in_flight_make_one_call(chat_server: ChatServer) -> None:
    runner = runner_for(chat_server, backend=ScoringBackend)
    results = arun_all((runner.continuation_logprobs(request(), "VERDICT:", [" PASS", " FAIL"])
                        for _ in range(6)), runner)
    assert results == [[-1.0, -1.0]] * 6
    assert chat_server.completions == 1
