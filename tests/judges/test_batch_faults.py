"""The Batch API's failure modes against a real local files-and-batches server: a creation
whose answer is lost, refused polls, a batch that fails as a whole, files too large, hung
connections, errored verdicts resumed, duplicates, and progress while a batch runs."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from batch_server import BatchServer
from judgeutil import arun
from testutil import chat, write_jsonl

from harness.judges.base import JudgeRequest, JudgeUnavailable
from harness.judges.batch import BatchJournal, BatchOptions
from harness.judges.cache import JudgeCache
from harness.judges.openai_backend import OpenAIBackend
from harness.judges.runner import JudgeRunner, RetryPolicy

N = 12
REPLY = "Fine.\nVERDICT: PASS"
PRICES = {"price_in_per_mtok": 1.0, "price_out_per_mtok": 4.0}


@pytest.fixture
def server() -> Iterator[BatchServer]:
    srv = BatchServer(reply=lambda r: REPLY).start()
    try:
        yield srv
    finally:
        srv.stop()


# --- helpers: a runner, or a suite and a corpus for the CLI ------------------------------------
def request(i: int, size: int = 0) -> JudgeRequest:
    return JudgeRequest(messages=[{"role": "user", "content": f"judge item {i} " + "x" * size}])


def runner(server: BatchServer, tmp_path: Path, timeout_s: float = 120.0,
           **batch: Any) -> JudgeRunner:
    options = BatchOptions(batch=True, **{"batch_idle_s": 0.05, "batch_poll_s": 0.01, **batch})
    return JudgeRunner(
        OpenAIBackend("judge", {"base_url": server.base_url, **PRICES}),
        policy=RetryPolicy(base_delay_s=0.01, max_delay_s=0.02, breaker_after=3,
                           timeout_s=timeout_s),
        batch=options, journal_dir=tmp_path, cache=JudgeCache(tmp_path))


def answer_all(run: JudgeRunner, requests: list[JudgeRequest], limit_s: float = 60) -> list[Any]:
    """Every request's outcome (an exception in its place); a hung run fails after
    ``limit_s`` instead of hanging the tests."""

    async def main() -> list[Any]:
        async with asyncio.timeout(limit_s):
            return await asyncio.gather(*(run.complete(r) for r in requests),
                                        return_exceptions=True)

    return arun(main(), run)


def suite(tmp_path: Path, url: str, **judge: Any) -> Path:
    options = {"name": "openai/j", "base_url": url, "max_attempts": 1, **PRICES, "batch": True,
               "batch_idle_s": 0.2, "batch_poll_s": 0.05, **judge}
    path = tmp_path / "suite.yaml"
    path.write_text(json.dumps({
        "name": "batched", "judge": options,
        "criteria": [{"name": "fine", "kind": "llm_judge",
                      "rubric": "Is this fine? {{ last_assistant }}"}],
    }))
    return path


def corpus(tmp_path: Path, answers: list[str] | None = None) -> Path:
    answers = answers or [f"answer number {i}" for i in range(N)]
    return write_jsonl(tmp_path / "in.jsonl", [chat(f"question {i}", a, id=f"t{i}")
                                               for i, a in enumerate(answers)])


def summary(run: Path) -> dict[str, Any]:
    return json.loads((run / "summary.json").read_text())


def lines(server: BatchServer, file_id: str) -> list[dict[str, Any]]:
    return [json.loads(x) for x in server.files[file_id].splitlines()]


# --- creating a batch ---------------------------------------------------------------------------
@pytest.mark.parametrize("fault", [{"status": 502}, {"hang": True}], ids=["502", "timeout"])
def test_a_creation_whose_answer_is_lost_makes_one_batch(server, tmp_path, fault):
    """The batch was created but its answer never came back (a gateway's 502, a timeout): the
    retry finds it by its input file instead of creating (and paying for) a second one."""
    server.fail_route("create", 1, after=True, **fault)
    run = runner(server, tmp_path, timeout_s=1.0)
    results = answer_all(run, [request(i) for i in range(4)])
    assert all(not isinstance(r, BaseException) and r[1].batch == "batch_1" for r in results)
    assert server.created == 1 and server.completions == 0 and server.lists >= 1


# --- a hung connection --------------------------------------------------------------------------
@pytest.mark.parametrize("route", ["upload", "create", "poll", "list", "download"])
def test_timeout_s_applies_to_every_batch_api_call(server, tmp_path, route):
    """A connection that never answers is given up after timeout_s and retried: the run goes on
    with one batch instead of hanging."""
    if route == "list":  # looked at only when a creation's answer was lost
        server.fail_route("create", 1, status=502, after=True)
    server.fail_route(route, 1, hang=True)
    run = runner(server, tmp_path, timeout_s=1.0)
    results = answer_all(run, [request(i) for i in range(3)])
    assert all(not isinstance(r, BaseException) and r[1].batch == "batch_1" for r in results)
    assert server.created == 1 and server.completions == 0


# --- polls that are refused ---------------------------------------------------------------------
def test_a_refused_poll_stops_the_run_and_the_right_key_resumes_the_same_batch(
        cli, tmp_path, monkeypatch):
    """Another project's key (404) or a bad key (401) on the polls of a journaled batch stops
    the run, exit 4: the batch is neither abandoned nor paid again live; resumed with the key
    that created it, the same batch answers."""
    data, run = corpus(tmp_path), tmp_path / "run"
    keys = {"key-a": "project-a", "key-b": "project-b"}
    with BatchServer(reply=lambda r: REPLY, hold=True, keys=keys) as server:
        path = suite(tmp_path, server.base_url, api_key_env="BATCH_TEST_KEY", breaker_after=1)
        monkeypatch.setenv("BATCH_TEST_KEY", "key-a")
        server.fail_polls(1)  # the first run stops while its batch is in progress
        code, _, err = cli("run", path, data, "-o", run, "--workers", "1")
        assert code == 4 and server.created == 1, err
        for key, status in (("key-b", 404), ("not-a-key", 401)):
            monkeypatch.setenv("BATCH_TEST_KEY", key)
            code, _, err = cli("run", path, data, "-o", run, "--resume")
            assert code == 4, err
            reason = summary(run)["stop_reason"]
            assert "batch_1" in reason and f"HTTP {status}" in reason, reason
            assert server.completions == 0 and server.created == 1
        assert [b["batch_id"] for b in BatchJournal(run).batches()] == ["batch_1"]
        monkeypatch.setenv("BATCH_TEST_KEY", "key-a")
        server.release()
        code, _, err = cli("run", path, data, "-o", run, "--resume")
        assert code == 0, err
        assert server.created == 1 and server.completions == 0
    final = summary(run)
    assert (final["state"], final["passed"]) == ("complete", N)


# --- a batch that fails as a whole --------------------------------------------------------------
LIMIT = ("Enqueued token limit reached for j in organization org-test. Limit: 90,000 enqueued "
         "tokens. Please try submitting your batch again later.")


def test_a_failed_batch_stops_the_run_and_resume_sends_a_new_batch(cli, tmp_path):
    """By default (batch_on_failure: stop) a batch that failed as a whole is not asked again
    live at the full price: the run stops, exit 4, naming the batch's error; a later resume
    sends its requests in a new batch."""
    data, run = corpus(tmp_path), tmp_path / "run"
    with BatchServer(reply=lambda r: REPLY, fail_validation=LIMIT,
                     fail_code="token_limit_exceeded") as server:
        path = suite(tmp_path, server.base_url)
        code, _, err = cli("run", path, data, "-o", run, "--workers", "1")
        assert code == 4, err
        reason = summary(run)["stop_reason"]
        assert "batch_1" in reason and "token_limit_exceeded" in reason, reason
        assert server.completions == 0
        server.fail_validation = None  # later, the limit has room again
        code, _, err = cli("run", path, data, "-o", run, "--resume")
        assert code == 0, err
        assert server.created == 2 and server.completions == 0
        assert len(lines(server, server.batches["batch_2"]["input_file_id"])) == N
    assert summary(run)["passed"] == N


# --- size ---------------------------------------------------------------------------------------
def test_batches_are_split_to_stay_under_batch_max_bytes(server, tmp_path):
    server.max_file_bytes = 2_000
    run = runner(server, tmp_path, batch_max_bytes=2_000)
    results = answer_all(run, [request(i, size=100) for i in range(12)])
    assert all(not isinstance(r, BaseException) and r[1].batch for r in results)
    sizes = [len(server.files[b["input_file_id"]]) for b in server.batches.values()]
    assert len(sizes) > 1 and max(sizes) <= 2_000
    assert sum(len(lines(server, b["input_file_id"])) for b in server.batches.values()) == 12
    assert server.completions == 0


def test_a_file_refused_for_its_size_says_so(server, tmp_path):
    """The endpoint refusing a file as too large is not an endpoint without a Batch API."""
    server.max_file_bytes = 1_000
    run = runner(server, tmp_path)
    stopped = answer_all(run, [request(i, size=100) for i in range(12)])[0]
    assert isinstance(stopped, JudgeUnavailable)
    assert "File is too large" in str(stopped) and "batch_max_bytes" in str(stopped)
    assert "Batch API" not in str(stopped)
    assert server.completions == 0


def test_a_request_larger_than_a_batch_file_is_an_error_verdict(cli, tmp_path):
    """A single request over batch_max_bytes cannot go in any batch: its verdict is an error
    saying so; the others are batched, and nothing goes live."""
    data, run = corpus(tmp_path, ["short"] * 5 + ["long " * 1_000]), tmp_path / "run"
    with BatchServer(reply=lambda r: REPLY, max_file_bytes=4_000) as server:
        cli("run", suite(tmp_path, server.base_url, batch_max_bytes=4_000), data, "-o", run,
            "--workers", "1")
        assert server.completions == 0 and server.created >= 1
    results = pd.read_parquet(run / "results.parquet").set_index("transcript_id")
    assert (results.outcome == "pass").sum() == 5
    assert results.loc["t5", "outcome"] == "error"
    assert "batch_max_bytes" in results.loc["t5", "explanation"]


# --- resumed errors -----------------------------------------------------------------------------
def test_resumed_errored_verdicts_go_into_a_batch_again(cli, tmp_path):
    """Transcripts whose judge call errored (failed in the batch, then live) are asked again
    on --resume in a new batch, at the batch price, not live."""
    data = corpus(tmp_path, [f"answer {i:02d}" for i in range(N)])
    run = tmp_path / "run"

    def fails(line: dict[str, Any]) -> bool:
        return any(a in m["content"] for m in line["body"]["messages"]
                   for a in ("answer 01", "answer 02"))

    with BatchServer(reply=lambda r: REPLY, fail_line=fails) as server:
        server.fail_first(2, status=400, retry_after=None)  # ...and their live calls fail
        path = suite(tmp_path, server.base_url)
        cli("run", path, data, "-o", run, "--workers", "1")
        assert summary(run)["errored"] == 2 and server.completions == 2
        server.fail_line = None
        code, _, err = cli("run", path, data, "-o", run, "--resume")
        assert code == 0, err
        assert server.completions == 2  # none live this time
        assert server.created == 2
        assert len(lines(server, server.batches["batch_2"]["input_file_id"])) == 2
    assert summary(run)["passed"] == N


# --- duplicates ---------------------------------------------------------------------------------
def test_duplicates_cost_once_per_request_the_batch_held(cli, tmp_path):
    """Transcripts that ask the judge the same thing share one line of the batch, and the
    summary's cost is what that batch bills, also across a stop and a resume."""
    data = write_jsonl(tmp_path / "in.jsonl", [chat(f"question {i % 4}", f"answer {i % 4}",
                                                    id=f"t{i}") for i in range(N)])
    run = tmp_path / "run"
    with BatchServer(reply=lambda r: REPLY) as server:
        path = suite(tmp_path, server.base_url, breaker_after=1)
        server.fail_polls(1)
        code, _, _ = cli("run", path, data, "-o", run, "--workers", "1")
        assert code == 4
        code, _, err = cli("run", path, data, "-o", run, "--resume")
        assert code == 0, err
        assert server.created == 1 and server.completions == 0
        batch = server.batches["batch_1"]
        held = lines(server, batch["input_file_id"])
        usage = [line["response"]["body"]["usage"]
                 for line in lines(server, batch["output_file_id"])]
    assert len(held) == 4
    bill = sum(u["prompt_tokens"] * 1.0 + u["completion_tokens"] * 4.0 for u in usage) / 1e6 / 2
    assert summary(run)["usage"]["cost_usd"] == pytest.approx(bill)
    details = [json.loads(d) for d in pd.read_parquet(run / "results.parquet").details]
    assert sum(not d.get("cached") for d in details) == 4


# --- progress -----------------------------------------------------------------------------------
def test_progress_names_the_batch_and_its_status(server, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="harness")
    server.polls_to_finish = 3
    run = runner(server, tmp_path)
    answer_all(run, [request(i) for i in range(6)])
    said = [r.getMessage() for r in caplog.records if r.name == "harness"
            and "batch batch_1" in r.getMessage()]
    assert any(re.fullmatch(r"judge openai/judge: batch batch_1 in_progress, [1-5] of 6 done",
                            line) for line in said), said
    assert "judge openai/judge: batch batch_1 completed, 6 of 6 done" in said
    assert len(said) <= server.polls  # a line per poll at most
