"""The Ray engine (plugins/harness-ray) on a real local Ray instance with 2 CPUs.

One Ray instance for the whole file (pytest-xdist runs a file on one worker): the runs here
connect to it in-process, and the driver-kill test's driver connects to it by address.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pandas as pd
import pytest

TESTS = Path(__file__).resolve().parents[2]
sys.path[:0] = [str(TESTS), str(TESTS / "judges")]

import core_corpus  # noqa: E402
from chat_server import ChatServer, closed_port  # noqa: E402
from testutil import chat, write_jsonl  # noqa: E402

from harness.rundir import JOURNAL, index_journal, iter_journal  # noqa: E402

ray = pytest.importorskip("ray")
pytest.importorskip("harness_ray")

FIXTURE = TESTS / "fixtures" / "core_decisions.jsonl.gz"
HARNESS = [sys.executable, "-m", "harness"]


@pytest.fixture(scope="session")
def ray_address() -> str:
    """A local Ray instance for the file: 2 CPUs, no dashboard."""
    ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
    try:
        yield ray.get_runtime_context().gcs_address
    finally:
        ray.shutdown()


def judge_suite(path: Path, url: str, concurrency: int = 4, cache: bool = True) -> Path:
    path.write_text(f"""\
name: judged
judge: {{name: openai/j, base_url: {url}, max_concurrency: {concurrency}, timeout_s: 10}}
criteria:
  - name: short
    kind: regex
    pattern: "(?s).{{200}}"
    expect: absent
  - name: fine
    kind: llm_judge
    cache: {str(cache).lower()}
    rubric: "Is this fine? {{{{ last_assistant }}}}"
""")
    return path


def judged_corpus(path: Path, n: int) -> Path:
    return write_jsonl(path, [chat(f"question {i}", f"answer item-{i:04d}", id=f"t{i}")
                              for i in range(n)])


def verdict(request: dict) -> str:
    """The judge's answer: item numbers divisible by 3 fail."""
    text = json.dumps(request)
    item = int(text.split("item-")[1][:4])
    return "Looks fine.\nVERDICT: " + ("FAIL" if item % 3 == 0 else "PASS")


def items_asked(requests: list[dict]) -> list[str]:
    return [json.dumps(r).split("item-")[1][:4] for r in requests]


def summarised(run: Path) -> list[dict]:
    return [core_corpus.summarise(row["decision"]) for row in iter_journal(run)]


@pytest.mark.slow
def test_the_core_corpus_is_decided_as_the_local_engine_decides_it(cli, tmp_path, ray_address):
    corpus = core_corpus.write(tmp_path / "corpus")
    code, _, err = cli("run", corpus / "suite.yaml", corpus / "corpus.jsonl", "-o",
                       tmp_path / "run", "--engine", "ray", "--ray-batch-size", "500",
                       "--no-progress", "--no-report")
    assert code == 0, err
    with gzip.open(FIXTURE, "rt") as fh:
        expected = [json.loads(line) for line in fh]
    assert summarised(tmp_path / "run") == expected  # 3,352 transcripts, in input order
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["read"] == len(expected) and summary["state"] == "complete"
    assert len(index_journal(tmp_path / "run")) == len(expected)


def test_a_judge_suite_keeps_to_the_judge_window_and_asks_each_transcript_once(
        cli, tmp_path, ray_address):
    n = 60
    data = judged_corpus(tmp_path / "in.jsonl", n)
    with ChatServer(reply=verdict, latency_s=0.02) as server:
        suite = judge_suite(tmp_path / "suite.yaml", server.base_url)
        code, _, err = cli("run", suite, data, "-o", tmp_path / "ray", "--engine", "ray",
                           "--ray-batch-size", "16", "--no-progress")
        assert code == 0, err
        assert sorted(items_asked(server.requests)) == [f"{i:04d}" for i in range(n)]
        local_suite = judge_suite(tmp_path / "local.yaml", server.base_url, cache=False)
        code, _, err = cli("run", local_suite, data, "-o", tmp_path / "local", "--workers", "1",
                           "--no-progress")
        assert code == 0, err
    ray_decisions = pd.read_parquet(tmp_path / "ray" / "decisions.parquet")
    local_decisions = pd.read_parquet(tmp_path / "local" / "decisions.parquet")
    assert ray_decisions.equals(local_decisions)
    assert (ray_decisions.outcome == "fail").sum() == len(range(0, n, 3))


KILLER = '''\
import os
import signal


def once(transcript, marker):
    """Kill this process the first time any process calls it (a dying actor)."""
    try:
        os.close(os.open(marker, os.O_CREAT | os.O_EXCL | os.O_WRONLY))
    except FileExistsError:
        return True
    os.kill(os.getpid(), signal.SIGKILL)
'''


def test_a_killed_actor_s_block_is_reviewed_again_and_counted_once(cli, tmp_path, ray_address):
    n = 400
    data = write_jsonl(tmp_path / "in.jsonl",
                       [chat(f"q{i}", f"answer {i}", id=f"t{i}") for i in range(n)])
    (tmp_path / "killer.py").write_text(KILLER)
    marker = tmp_path / "killed"
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"""\
name: dying
criteria:
  - name: survives
    kind: python
    function: killer:once
    args: {{marker: "{marker}"}}
""")
    code, _, err = cli("run", suite, data, "-o", tmp_path / "run", "--engine", "ray",
                       "--ray-batch-size", "50", "--no-progress")
    assert code == 0, err
    assert marker.exists(), "an actor was killed"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (summary["read"], summary["passed"]) == (n, n)
    ids = pd.read_parquet(tmp_path / "run" / "decisions.parquet").transcript_id.tolist()
    assert ids == [f"t{i}" for i in range(n)]


@pytest.mark.slow
def test_a_killed_driver_resumes_without_judging_again_what_is_decided(
        cli, tmp_path, ray_address):
    n = 240
    data = judged_corpus(tmp_path / "in.jsonl", n)
    run = tmp_path / "run"
    with ChatServer(reply=verdict, latency_s=0.05) as server:
        suite = judge_suite(tmp_path / "suite.yaml", server.base_url, concurrency=2)
        driver = subprocess.Popen(
            [*HARNESS, "run", str(suite), str(data), "-o", str(run), "--engine", "ray",
             "--ray-address", ray_address, "--ray-batch-size", "8", "--no-progress"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
        journal = run / JOURNAL
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and driver.poll() is None:
            if journal.exists() and journal.read_bytes().count(b"\n") >= 40:
                break
            time.sleep(0.05)
        assert driver.poll() is None, driver.stderr.read().decode()[-2000:]
        os.kill(driver.pid, signal.SIGKILL)
        driver.wait()
        decided = {key[0] for key in index_journal(run).keys}
        assert 40 <= len(decided) < n
        asked_before = len(server.requests)
        code, _, err = cli("run", suite, data, "-o", run, "--resume", "--engine", "ray",
                           "--no-progress")
        assert code == 0, err
        again = {int(item) for item in items_asked(server.requests[asked_before:])}
    assert not again & decided, "a transcript decided before the kill was judged again"
    summary = json.loads((run / "summary.json").read_text())
    assert (summary["read"], summary["state"]) == (n, "complete")
    assert len(index_journal(run)) == n


def test_a_judge_endpoint_down_stops_the_run_as_locally_and_resume_finishes_it(
        cli, tmp_path, ray_address):
    n, port = 20, closed_port()
    data = judged_corpus(tmp_path / "in.jsonl", n)
    suite = tmp_path / "suite.yaml"
    suite.write_text(f"""\
name: judged
judge: {{name: openai/j, base_url: "http://127.0.0.1:{port}/v1", max_attempts: 1,
         breaker_after: 2, timeout_s: 5}}
criteria:
  - {{name: fine, kind: llm_judge, rubric: "Is this fine? {{{{ last_assistant }}}}"}}
""")
    args = ["run", suite, data, "-o", tmp_path / "run", "--engine", "ray", "--no-progress"]
    code, _, err = cli(*args)
    assert code == 4 and "judge unavailable" in err and "--resume" in err
    with ChatServer(reply=verdict, port=port) as server:
        code, _, err = cli(*args, "--resume")
        assert code == 0, err
        assert sorted(items_asked(server.requests)) == [f"{i:04d}" for i in range(n)]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (summary["read"], summary["state"]) == (n, "complete")


def test_without_the_plugin_ray_or_a_cluster_the_error_is_one_line(cli, tmp_path, ray_address,
                                                                   monkeypatch):
    data = judged_corpus(tmp_path / "in.jsonl", 2)
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: s\ncriteria:\n  - {name: r, kind: regex, pattern: x, "
                     "expect: absent}\n")
    args = ["run", suite, data, "-o", tmp_path / "run", "--engine", "ray"]

    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` fails: Ray not installed
    code, out, err = cli(*args)
    assert code == 2 and err.count("\n") == 1 and "needs Ray" in err
    monkeypatch.undo()

    env = {**os.environ, "HARNESS_BLOCK_PLUGINS": "ray"}  # the plugin not installed
    found = subprocess.run([*HARNESS, *map(str, args)], env=env, capture_output=True,
                           text=True, cwd=tmp_path)
    assert found.returncode == 2 and found.stderr.count("\n") == 1
    assert "unknown engine 'ray'" in found.stderr and "plugins/harness-ray" in found.stderr

    address = f"127.0.0.1:{closed_port()}"  # nothing listens there
    found = subprocess.run([*HARNESS, *map(str, args), "--ray-address", address],
                           capture_output=True, text=True, cwd=tmp_path)
    assert found.returncode == 2 and found.stderr.count("\n") == 1
    assert f"cannot reach the Ray cluster at {address}" in found.stderr
    assert not (tmp_path / "run").exists(), "nothing was written"


def test_max_cost_is_one_budget_for_the_whole_cluster(cli, tmp_path, ray_address):
    n = 60
    data = judged_corpus(tmp_path / "in.jsonl", n)
    with ChatServer(reply=verdict) as server:
        suite = tmp_path / "suite.yaml"
        suite.write_text(f"""\
name: priced
judge: {{name: openai/j, base_url: {server.base_url}, max_concurrency: 2,
         price_in_per_mtok: 0.0, price_out_per_mtok: 100000.0}}
criteria:
  - {{name: fine, kind: llm_judge, rubric: "Is this fine? {{{{ last_assistant }}}}"}}
""")
        args = ["run", suite, data, "-o", tmp_path / "run", "--engine", "ray", "--no-progress",
                "--ray-actors", "2", "--ray-batch-size", "8"]
        code, _, err = cli(*args, "--max-cost", "5")
        assert code == 4, err
        assert "--max-cost $5 reached" in err and "the cluster's judge calls" in err
        per_call = pd.read_parquet(tmp_path / "run" / "results.parquet").cost_usd.max()
        # the limit holds for both actors together: past it by at most the calls in flight
        # (max_concurrency 2 over the cluster), never by a second actor's whole budget
        assert math.ceil(5 / per_call) <= server.completions <= math.ceil(5 / per_call) + 2 < n
        code, _, err = cli(*args, "--resume")
        assert code == 0, err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (summary["read"], summary["state"]) == (n, "complete")


def test_actors_skip_by_the_same_plan(cli, tmp_path, ray_address):
    """The gate rule of tests/test_plan.py, on the actors."""
    from test_plan import PLUGIN, SKIPPED, SUITE

    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "costly.py").write_text(PLUGIN)
    (tmp_path / "suite.yaml").write_text(SUITE)
    write_jsonl(tmp_path / "corpus.jsonl",
                [chat("Help", "sorry, no." if i % 2 else "Sure.", id=f"t{i}") for i in range(8)])
    code, _, err = cli("--plugins-dir", tmp_path / "plugins", "run", tmp_path / "suite.yaml",
                       tmp_path / "corpus.jsonl", "-o", tmp_path / "run", "--engine", "ray",
                       "--no-progress", "--no-report")
    assert code == 0, err
    for row in iter_journal(tmp_path / "run"):
        d = row["decision"]
        skipped = {v["criterion"]: v["explanation"] for v in d["verdicts"]
                   if v["outcome"] == "skipped"}
        gated = int(d["transcript_id"][1:]) % 2 == 1
        assert skipped == ({"costly": SKIPPED, "later": SKIPPED} if gated else {}), d
