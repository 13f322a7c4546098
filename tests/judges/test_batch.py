"""Judges at batch price against a real local files-and-batches server: the whole lifecycle,
expiry, failures, duplicates, a killed run that resumes by polling the same batch."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from batch_server import BatchServer
from judgeutil import arun, arun_all

from harness.judges.base import JudgeRequest, JudgeUnavailable
from harness.judges.batch import BatchJournal, BatchOptions
from harness.judges.cache import JudgeCache
from harness.judges.openai_backend import OpenAIBackend
from harness.judges.runner import JudgeCallFailed, JudgeRunner, RetryPolicy

PRICES = {"price_in_per_mtok": 2.0, "price_out_per_mtok": 8.0}


@pytest.fixture
def server() -> Iterator[BatchServer]:
    srv = BatchServer().start()
    try:
        yield srv
    finally:
        srv.stop()


def request(i: int) -> JudgeRequest:
    return JudgeRequest(messages=[{"role": "user", "content": f"judge item {i}"}])


def runner(server: BatchServer, tmp_path: Path, **batch: Any) -> JudgeRunner:
    options = BatchOptions(batch=True, **{"batch_idle_s": 0.05, "batch_poll_s": 0.01, **batch})
    return JudgeRunner(
        OpenAIBackend("judge", {"base_url": server.base_url, **PRICES}),
        policy=RetryPolicy(base_delay_s=0.01, max_delay_s=0.02, breaker_after=3),
        batch=options, journal_dir=tmp_path, cache=JudgeCache(tmp_path))


def lines(server: BatchServer, file_id: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in server.files[file_id].splitlines()]


def test_lifecycle_one_batch_answers_every_call_at_the_batch_price(server, tmp_path):
    run = runner(server, tmp_path)
    results = arun_all((run.complete(request(i)) for i in range(10)), run)
    assert server.uploads == server.created == 1 and server.completions == 0
    batch = server.batches["batch_1"]
    assert batch["status"] == "completed" and batch["completion_window"] == "24h"
    sent = lines(server, batch["input_file_id"])
    assert len(sent) == 10 and sent[0]["url"] == "/v1/chat/completions"
    # the custom id is the call's cache key: stable for the same request and judge
    keys = {run.cache.key(run.backend.identity(), request(i)) for i in range(10)}
    assert {line["custom_id"] for line in sent} == keys
    for response, record in results:
        assert response.text.endswith("VERDICT: PASS")
        assert record.batch == "batch_1" and record.attempts == 1 and not record.errors
        full = (response.tokens_in * 2.0 + response.tokens_out * 8.0) / 1e6
        assert record.cost_usd == pytest.approx(full * 0.5)
    assert run.budget.spent == pytest.approx(sum(r.cost_usd for _, r in results))
    # answered calls are cached and forgotten by the journal: a second round asks nothing
    again = arun_all((run.complete(request(i)) for i in range(10)), run)
    assert all(record.cached for _, record in again) and server.created == 1
    assert BatchJournal(tmp_path).lookup(sent[0]["custom_id"]) is None


def test_flushed_by_size_without_waiting_for_the_idle_time(server, tmp_path):
    run = runner(server, tmp_path, batch_max_requests=5, batch_idle_s=600)
    results = arun_all((run.complete(request(i)) for i in range(10)), run)
    assert all(not isinstance(r, BaseException) for r in results)
    assert server.created == 2 and server.completions == 0
    assert [len(lines(server, b["input_file_id"])) for b in server.batches.values()] == [5, 5]


def test_flushed_when_idle_and_discount_is_an_option(server, tmp_path):
    run = runner(server, tmp_path, batch_discount=0.25)

    async def trickle() -> list[Any]:
        first = asyncio.ensure_future(run.complete(request(0)))
        await asyncio.sleep(0.3)  # past the idle time: the first batch is sent alone
        return [await first, await run.complete(request(1))]

    results = arun(trickle(), run)
    assert server.created == 2
    response, record = results[0]
    full = (response.tokens_in * 2.0 + response.tokens_out * 8.0) / 1e6
    assert record.cost_usd == pytest.approx(full * 0.75)


def test_identical_calls_share_one_line(server, tmp_path):
    run = runner(server, tmp_path)
    results = arun_all((run.complete(request(0)) for _ in range(3)), run)
    assert all(not isinstance(r, BaseException) for r in results)
    assert len(lines(server, "file-1")) == 1 and server.batches["batch_1"]["status"] == "completed"


def test_a_batch_that_expires_half_done_has_the_rest_asked_as_normal_calls(server, tmp_path,
                                                                           caplog):
    server.expire_after = 5
    run = runner(server, tmp_path)
    results = arun_all((run.complete(request(i)) for i in range(10)), run)
    assert "batch_1 ended expired with 5 of 10 requests unanswered" in caplog.text
    assert server.batches["batch_1"]["status"] == "expired"
    assert server.completions == 5 and len(server.batch_bodies) == 5
    batched = [rec for _, rec in results if rec.batch]
    direct = [rec for _, rec in results if not rec.batch]
    assert len(batched) == len(direct) == 5
    for record in direct:  # at full price, the expiry recorded
        assert "batch_expired" in record.errors[0] and record.attempts == 1
    for response, record in results:
        full = (response.tokens_in * 2.0 + response.tokens_out * 8.0) / 1e6
        assert record.cost_usd == pytest.approx(full * (0.5 if record.batch else 1.0))


def test_failed_requests_are_retried_as_calls_and_are_errors_if_those_fail(server, tmp_path):
    server.fail_line = lambda line: line["body"]["messages"][-1]["content"].endswith(("1", "2"))
    server.fail_first(1, status=400, retry_after=None)  # the first retry fails for good
    run = runner(server, tmp_path)
    results = arun_all((run.complete(request(i)) for i in range(5)), run)
    failed = [r for r in results if isinstance(r, JudgeCallFailed)]
    assert len(failed) == 1 and "HTTP 400" in str(failed[0])
    assert "scripted batch failure" in failed[0].record.errors[0]
    assert server.completions == 2 and len(server.batch_bodies) == 3
    # never cached, so asked again next time
    assert sum(1 for r in arun_all((run.complete(request(i)) for i in range(5)), run)
               if not isinstance(r, BaseException) and not r[1].cached) == 1


def test_a_batch_that_fails_falls_back_to_normal_calls_with_batch_on_failure_live(
        server, tmp_path, caplog):
    server.fail_validation = "the file is not valid"
    run = runner(server, tmp_path, batch_on_failure="live")
    results = arun_all((run.complete(request(i)) for i in range(4)), run)
    assert server.completions == 4
    assert all("invalid_input: the file is not valid" in rec.errors[0] for _, rec in results)
    assert "at the full price" in caplog.text


def test_polls_that_fail_are_retried_and_a_batch_that_cannot_be_polled_stops(server, tmp_path):
    server.fail_polls(2)
    run = runner(server, tmp_path)
    assert not isinstance(arun_all([run.complete(request(0))], run)[0], BaseException)
    server.fail_polls(1000)
    stopped = arun_all([run.complete(request(1))], run)[0]
    assert isinstance(stopped, JudgeUnavailable) and "--resume" in str(stopped)
    assert server.completions == 0  # a paid batch is never asked again one by one


def test_a_killed_run_resumes_by_polling_the_same_batch(server, tmp_path):
    server.hold = True
    first = runner(server, tmp_path)

    async def until_sent_then_killed() -> None:
        calls = [asyncio.ensure_future(first.complete(request(i))) for i in range(6)]
        while server.polls == 0:
            await asyncio.sleep(0.01)
        for call in calls:  # the process dies: nothing answered, the batch is journaled
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)

    arun(until_sent_then_killed(), first)
    assert [b["batch_id"] for b in BatchJournal(tmp_path).batches()] == ["batch_1"]
    server.release()
    second = runner(server, tmp_path, batch_poll_s=600)  # a journaled batch is polled at once
    results = arun_all((second.complete(request(i)) for i in range(6)), second)
    assert all(rec.batch == "batch_1" for _, rec in results)
    assert server.created == server.uploads == 1 and server.completions == 0


def test_kill_after_the_upload_creates_the_batch_from_the_same_file(server, tmp_path):
    run = runner(server, tmp_path)
    client = run.backend.batch_client()
    cids = [run.cache.key(run.backend.identity(), request(i)) for i in range(3)]
    data = b"".join(json.dumps(client.line(c, request(i))).encode() + b"\n"
                    for i, c in enumerate(cids))
    journal = BatchJournal(tmp_path)
    ref = journal.open_batch("openai/judge", cids)

    async def upload() -> str:
        return await client.upload(data)

    journal.set_file(ref, arun(upload(), run.backend))  # ...and killed before creating it
    results = arun_all((run.complete(request(i)) for i in range(3)), run)
    assert all(rec.batch == "batch_1" for _, rec in results)
    assert server.uploads == server.created == 1 and server.lists == 1


def test_kill_after_creation_finds_the_batch_instead_of_creating_another(server, tmp_path):
    run = runner(server, tmp_path)
    client = run.backend.batch_client()
    cids = [run.cache.key(run.backend.identity(), request(i)) for i in range(3)]
    data = b"".join(json.dumps(client.line(c, request(i))).encode() + b"\n"
                    for i, c in enumerate(cids))
    journal = BatchJournal(tmp_path)
    ref = journal.open_batch("openai/judge", cids)

    async def upload_and_create() -> str:
        file_id = await client.upload(data)
        journal.set_file(ref, file_id)
        await client.create(file_id, "24h")  # ...and killed before journaling its id
        return file_id

    arun(upload_and_create(), run.backend)
    results = arun_all((run.complete(request(i)) for i in range(3)), run)
    assert all(rec.batch == "batch_1" for _, rec in results)
    assert server.created == 1 and server.completions == 0


def test_answers_downloaded_before_a_kill_are_used_without_asking(server, tmp_path):
    first = runner(server, tmp_path)

    async def answered_then_killed() -> None:
        calls = [asyncio.ensure_future(first.complete(request(i))) for i in range(4)]
        while server.batches.get("batch_1", {}).get("status") != "completed":
            await asyncio.sleep(0.005)
        for call in calls:
            call.cancel()
        await asyncio.gather(*calls, return_exceptions=True)

    arun(answered_then_killed(), first)
    polls = server.polls
    second = runner(server, tmp_path)
    results = arun_all((second.complete(request(i)) for i in range(4)), second)
    assert all(not isinstance(r, BaseException) for r in results)
    assert server.created == 1 and server.completions == 0
    assert server.polls - polls <= 1  # at most the one the first run had left to make


def test_an_endpoint_without_the_batch_api_stops_instead_of_paying_live_prices(tmp_path):
    from chat_server import ChatServer

    with ChatServer() as plain:  # chat completions only: /files is a 404
        run = runner(plain, tmp_path)  # type: ignore[arg-type]
        stopped = arun_all([run.complete(request(0))], run)[0]
        assert isinstance(stopped, JudgeUnavailable) and "Batch API" in str(stopped)
        assert plain.completions == 0


def test_a_judge_without_a_batch_api_is_refused(tmp_path):
    from harness.judges.base import JudgeBackend

    class NoBatch(JudgeBackend):
        name = "x/y"

        async def complete(self, request):  # pragma: no cover - never called
            raise AssertionError

    with pytest.raises(ValueError, match="no batch API"):
        JudgeRunner(NoBatch(), batch=BatchOptions(batch=True), journal_dir=tmp_path)


def test_custom_ids_are_stable_across_processes_even_without_the_cache(tmp_path):
    """A resumed run (another process) must ask with the same custom ids: the prompt's nonce
    comes from a secret kept in the cache directory, also for a criterion with `cache: false`."""
    import subprocess
    import sys

    suite = tmp_path / "suite.yaml"
    suite.write_text(json.dumps({"name": "s", "judge": {"name": "openai/j", "base_url": "http://x",
                                                        "batch": True},
                                 "criteria": [{"name": "c", "kind": "llm_judge", "cache": False,
                                               "rubric": "Fine? {{ last_assistant }}"}]}))
    script = (
        "import sys, harness\n"
        "from harness.judges.cache import cache_key\n"
        "engine = harness.Engine(sys.argv[1], cache_dir=sys.argv[2])\n"
        "c = engine.criteria[0]\n"
        "t = harness.Transcript(id='t', messages=[{'role': 'user', 'content': 'q'},"
        " {'role': 'assistant', 'content': 'a'}])\n"
        "print(cache_key(c.runner.backend.identity(), c.render(t, 0)[0]))\n"
        "engine.close()\n")
    import harness
    from harness.judges.cache import cache_key

    with harness.Engine(suite, cache_dir=tmp_path / "run") as engine:
        c = engine.criteria[0]
        t = harness.Transcript(id="t", messages=[{"role": "user", "content": "q"},
                                                 {"role": "assistant", "content": "a"}])
        here = cache_key(c.runner.backend.identity(), c.render(t, 0)[0])
    there = subprocess.run([sys.executable, "-c", script, str(suite), str(tmp_path / "run")],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert there == here
