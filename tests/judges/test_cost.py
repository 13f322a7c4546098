"""Judge cost as a user sees it: totals in summary.json, the terminal and the report;
``--max-cost`` stopping a run that ``--resume`` finishes; a batch-priced run, killed and resumed
by polling the same batch."""

from __future__ import annotations

import json
import math
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest
from batch_server import BatchServer
from chat_server import ChatServer
from testutil import chat, write_jsonl

from harness.report.data import collect
from harness.rundir import read_meta

N = 12
REPLY = "Fine.\nVERDICT: PASS"


def suite(tmp_path: Path, url: str, prices: bool = True, **judge: object) -> Path:
    options = {"name": "openai/j", "base_url": url, "max_concurrency": 1, "max_attempts": 1,
               **({"price_in_per_mtok": 1.0, "price_out_per_mtok": 4.0} if prices else {}),
               **judge}
    path = tmp_path / "suite.yaml"
    path.write_text(json.dumps({
        "name": "priced", "judge": options,
        "criteria": [{"name": "fine", "kind": "llm_judge",
                      "rubric": "Is this fine? {{ last_assistant }}"}],
    }))
    return path


def corpus(tmp_path: Path, n: int = N) -> Path:
    return write_jsonl(tmp_path / "in.jsonl",
                       [chat(f"question {i}", f"answer number {i}", id=f"t{i}") for i in range(n)])


def summary(run: Path) -> dict:
    return json.loads((run / "summary.json").read_text())


def test_totals_in_summary_terminal_and_report(cli, tmp_path):
    run = tmp_path / "run"
    with ChatServer(reply=lambda r: REPLY) as server:
        code, out, err = cli("run", suite(tmp_path, server.base_url), corpus(tmp_path),
                             "-o", run, "--workers", "1")
    assert code == 0, err
    results = pd.read_parquet(run / "results.parquet")
    usage = summary(run)["usage"]
    assert usage["tokens_in"] == results.tokens_in.sum() > 0
    assert usage["tokens_out"] == results.tokens_out.sum() > 0
    expected = (usage["tokens_in"] * 1.0 + usage["tokens_out"] * 4.0) / 1e6
    assert usage["cost_usd"] == pytest.approx(expected)
    assert (f"judge tokens: {usage['tokens_in']:,} in, {usage['tokens_out']:,} out; "
            f"cost ${expected:.4f}") in " ".join(out.split())
    html = (run / "report.html").read_text()
    assert f"${expected:.4f}" in html and f"{usage['tokens_in']:,} tokens in" in html


def test_without_prices_the_cost_is_unknown_and_says_how_to_set_it(cli, tmp_path):
    run = tmp_path / "run"
    with ChatServer(reply=lambda r: REPLY) as server:
        code, out, _ = cli("run", suite(tmp_path, server.base_url, prices=False),
                           corpus(tmp_path), "-o", run, "--workers", "1")
        assert code == 0
        usage = summary(run)["usage"]
        assert usage["cost_usd"] is None and usage["tokens_out"] > 0
        assert "price_in_per_mtok" in out
        # and --max-cost cannot work without prices: refused before anything runs
        code, _, err = cli("run", suite(tmp_path, server.base_url, prices=False),
                           corpus(tmp_path), "-o", tmp_path / "other", "--max-cost", "1")
        assert code == 2 and "price_in_per_mtok" in err and "openai/j" in err
        assert not (tmp_path / "other" / "run.json").exists()  # no run was started


def test_what_no_call_was_made_for_is_not_spent_and_has_no_latency(cli, tmp_path):
    # each prompt twice: the second of each shares the first's call
    data = write_jsonl(tmp_path / "in.jsonl", [chat(f"question {i % 6}", f"answer {i % 6}",
                                                    id=f"t{i}") for i in range(N)])
    cache, first, again = tmp_path / "cache", tmp_path / "first", tmp_path / "again"
    with ChatServer(reply=lambda r: REPLY) as server:
        path = suite(tmp_path, server.base_url, max_concurrency=4)
        for run in (first, again):  # the second run answers everything from the cache
            code, _, err = cli("run", path, data, "-o", run, "--cache-dir", cache,
                               "--workers", "1")
            assert code == 0, err
        assert server.completions == 6
    results = pd.read_parquet(first / "results.parquet")
    paid = [not json.loads(d).get("cached") for d in results.details]
    assert sum(paid) == 6
    usage = summary(first)["usage"]
    assert usage["tokens_in"] == results.tokens_in[paid].sum() > 0
    assert results.tokens_in[[not p for p in paid]].sum() == 0
    assert usage["cost_usd"] == pytest.approx(
        (usage["tokens_in"] * 1.0 + usage["tokens_out"] * 4.0) / 1e6)
    cached = summary(again)["usage"]
    assert (cached["tokens_in"], cached["tokens_out"], cached["cost_usd"]) == (0, 0, 0.0)
    # latency percentiles are the calls', not the cache hits'
    assert collect(first)["criteria"][0]["latency_p50"] is not None
    assert collect(again)["criteria"][0]["latency_p50"] is None


def test_a_total_with_a_judge_without_prices_says_it_is_partial(cli, tmp_path):
    run = tmp_path / "run"
    with ChatServer(reply=lambda r: REPLY) as server:
        path = suite(tmp_path, server.base_url)
        spec = json.loads(path.read_text())
        spec["criteria"].append({**spec["criteria"][0], "name": "also_fine",
                                 "judge": {"name": "openai/free", "base_url": server.base_url}})
        path.write_text(json.dumps(spec))
        code, out, err = cli("run", path, corpus(tmp_path), "-o", run, "--workers", "1")
    assert code == 0, err
    results = pd.read_parquet(run / "results.parquet")
    usage = summary(run)["usage"]
    assert usage["cost_partial"] is True
    assert "partial: some calls have no price" in out + err
    assert usage["cost_usd"] == pytest.approx(results[results.criterion == "fine"].cost_usd.sum())
    assert "partial" in (run / "report.html").read_text()


def test_max_cost_stops_new_calls_and_resume_goes_on(cli, tmp_path):
    data, run = corpus(tmp_path), tmp_path / "run"
    with ChatServer(reply=lambda r: REPLY) as server:
        path = suite(tmp_path, server.base_url, price_in_per_mtok=0.0,
                     price_out_per_mtok=100_000.0)
        code, out, err = cli("run", path, data, "-o", run, "--workers", "1", "--max-cost", "2.5")
        assert code == 4, err
        assert "--max-cost $2.5 reached" in err and "--resume" in err
        first = summary(run)
        assert first["state"] == "stopped" == read_meta(run)["state"]
        assert "--max-cost" in first["stop_reason"]
        per_call = pd.read_parquet(run / "results.parquet").cost_usd.iloc[0]
        # one call at a time: calls start until the recorded cost reaches the limit, no more
        assert server.completions == math.ceil(2.5 / per_call) < N
        # the summary holds what was decided (a call answered as the run stopped is cached)
        assert first["usage"]["cost_usd"] <= server.completions * per_call
        assert 0 < first["read"] < N
        code, _, err = cli("run", path, data, "-o", run, "--resume")
        assert code == 0, err
        assert server.completions == N  # nothing asked twice
    final = summary(run)
    assert (final["state"], final["read"], final["passed"]) == ("complete", N, N)
    results = pd.read_parquet(run / "results.parquet")
    asked = sum(not json.loads(d).get("cached") for d in results.details)
    assert final["usage"]["cost_usd"] == pytest.approx(asked * per_call)


def batch_suite(tmp_path: Path, url: str) -> Path:
    return suite(tmp_path, url, batch=True, batch_idle_s=0.2, batch_poll_s=0.05)


def test_a_batch_priced_run_costs_half_and_records_its_batch(cli, tmp_path):
    run = tmp_path / "run"
    with BatchServer(reply=lambda r: REPLY) as server:
        code, _, err = cli("run", batch_suite(tmp_path, server.base_url), corpus(tmp_path),
                           "-o", run, "--workers", "1")
        assert code == 0, err
        assert server.created == 1 and server.completions == 0
    results = pd.read_parquet(run / "results.parquet")
    assert {json.loads(d)["batch"] for d in results.details} == {"batch_1"}
    usage = summary(run)["usage"]
    full = (usage["tokens_in"] * 1.0 + usage["tokens_out"] * 4.0) / 1e6
    assert usage["cost_usd"] == pytest.approx(full / 2)
    assert (run / "judge-batches.sqlite").is_file()


def test_a_killed_batch_run_resumes_by_polling_the_same_batch(cli, tmp_path):
    data, run = corpus(tmp_path), tmp_path / "run"
    with BatchServer(reply=lambda r: REPLY, hold=True) as server:
        path = batch_suite(tmp_path, server.base_url)
        proc = subprocess.Popen([sys.executable, "-m", "harness", "run", str(path), str(data),
                                 "-o", str(run), "--workers", "1", "--no-progress"],
                                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            deadline = time.monotonic() + 60
            while server.polls == 0 and proc.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            assert server.polls > 0, "the run never polled its batch"
        finally:
            proc.send_signal(signal.SIGKILL)
            proc.wait()
        assert server.created == 1
        server.release()
        code, _, err = cli("run", path, data, "-o", run, "--resume")
        assert code == 0, err
        assert server.created == server.uploads == 1 and server.completions == 0
    final = summary(run)
    assert (final["state"], final["read"], final["passed"]) == ("complete", N, N)
