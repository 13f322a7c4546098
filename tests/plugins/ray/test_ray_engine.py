"""The Ray engine (plugins/harness-ray) on a real local Ray instance with 2 CPUs.

One Ray instance for the whole file (pytest-xdist runs a file on one worker): the runs here
connect to it in-process, and the driver-kill test's driver connects to it by address.
"""

from __future__ import annotations

import gzip
import json
import math
import os
import re
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

from harness.outputs import finalize  # noqa: E402
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
    # the driver wrote the outputs from the actors' train views: as a re-read writes them
    written = {name: (tmp_path / "run" / name).read_bytes()
               for name in ("train.jsonl", "rejected.jsonl", "errors.jsonl")}
    finalize(tmp_path / "run")
    assert written == {name: (tmp_path / "run" / name).read_bytes() for name in written}
    assert json.loads((tmp_path / "run" / "summary.json").read_text())["read"] == summary["read"]


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


RUBRIC_DIVISORS = {"a": 2, "b": 3, "c": 5}


def rubric_verdicts(request: dict) -> str:
    """A judge asked several rubrics at once: rubric ``a`` fails even items, ``b`` multiples
    of 3, ``c`` multiples of 5."""
    system, user = (m["content"] for m in request["messages"])
    item = int(user.split("item-")[1][:4])
    asked = re.findall(r"^VERDICT ([\w-]+): <label>$", system, re.M)
    return "Checked.\n" + "\n".join(
        f"VERDICT {name}: {'FAIL' if item % RUBRIC_DIVISORS[name] == 0 else 'PASS'}"
        for name in asked)


def test_a_rubrics_entry_asks_once_per_transcript_on_ray_as_locally(cli, tmp_path, ray_address):
    n = 40
    data = judged_corpus(tmp_path / "in.jsonl", n)
    rubrics = ", ".join(f'{k}: "Rubric {k}. {{{{ last_assistant }}}}"' for k in RUBRIC_DIVISORS)
    suite = tmp_path / "suite.yaml"
    with ChatServer(reply=rubric_verdicts) as server:
        suite.write_text(f"""\
name: rubrics
judge: {{name: openai/j, base_url: {server.base_url}, max_concurrency: 4, timeout_s: 10}}
criteria:
  - {{name: q, kind: llm_judge, gate: false, rubrics: {{{rubrics}}}}}
""")
        code, _, err = cli("run", suite, data, "-o", tmp_path / "ray", "--engine", "ray",
                           "--ray-batch-size", "8", "--no-progress", "--no-report")
        assert code == 0, err
        assert sorted(items_asked(server.requests)) == [f"{i:04d}" for i in range(n)]
        code, _, err = cli("run", suite, data, "-o", tmp_path / "local", "--workers", "1",
                           "--no-progress", "--no-report")
        assert code == 0, err
    key = ["transcript_id", "criterion"]
    ray_results, local_results = (
        pd.read_parquet(tmp_path / run / "results.parquet")[key + ["outcome"]]
        .sort_values(key).reset_index(drop=True) for run in ("ray", "local"))
    assert ray_results.equals(local_results)
    assert set(ray_results.criterion) == {"q.a", "q.b", "q.c"}
    fails = ray_results[ray_results.outcome == "fail"].groupby("criterion").size().to_dict()
    assert fails == {f"q.{k}": len(range(0, n, d)) for k, d in RUBRIC_DIVISORS.items()}


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


def journal_of(run: Path) -> list[tuple[str, dict]]:
    return [(row["decision"]["source"], core_corpus.summarise(row["decision"]))
            for row in iter_journal(run, allow_incomplete=True)]


def test_every_kind_of_input_is_numbered_and_decided_as_locally(cli, tmp_path, ray_address):
    """JSONL (blank and broken lines), a truncated .jsonl.gz, a .json array, Parquet row groups
    (chat in another column), an Arrow stream, an empty file: blocks of 2 records, and the
    inputs counted only where --limit and --resume need it."""
    from test_ray_units import inputs

    paths = inputs(tmp_path / "in")
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: s\ncriteria:\n  - {name: short, kind: regex, pattern: 'r[0-3]', "
                     "expect: absent}\n")
    common = ["--messages-column", "conversation", "--no-progress", "--no-report"]

    def run(name: str, *args: object) -> Path:
        code, _, err = cli("run", suite, *paths, "-o", tmp_path / name, *common, *args)
        assert code == 0, err
        return tmp_path / name

    ray = ["--engine", "ray", "--ray-batch-size", "2"]
    local = run("local", "--workers", "1")
    assert journal_of(run("ray", *ray)) == journal_of(local)
    assert journal_of(run("limited", *ray, "--limit", "7")) == journal_of(local)[:7]
    assert journal_of(run("limited", *ray, "--resume")) == journal_of(local)
    meta = json.loads((tmp_path / "ray" / "run.json").read_text())
    assert meta["options"]["engine"] == "ray" and meta["options"]["actors"] == 2
    assert "workers" not in meta["options"]  # --workers does not apply to the actors


def test_a_corpus_at_a_url_is_downloaded_as_often_as_by_the_local_engine(cli, tmp_path,
                                                                         ray_address):
    """No counting pass, no second read for the outputs: the Ray engine reads each input once
    to review it, and its driver writes the outputs from the train views the actors send."""
    import threading
    from collections import Counter
    from functools import partial
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    gets: Counter[str] = Counter()

    class Files(SimpleHTTPRequestHandler):
        def do_GET(self) -> None:
            gets[self.path] += 1
            super().do_GET()

        def log_message(self, *args: object) -> None:
            pass

    for name in ("a", "b"):
        write_jsonl(tmp_path / f"{name}.jsonl", [chat("q", f"{name} {i}") for i in range(30)])
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: s\ncriteria:\n  - {name: r, kind: regex, pattern: x, "
                     "expect: absent}\n")
    server = ThreadingHTTPServer(("127.0.0.1", 0), partial(Files, directory=str(tmp_path)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    base = f"http://127.0.0.1:{server.server_port}"
    try:
        counts = []
        for engine in (["--workers", "1"], ["--engine", "ray"]):
            gets.clear()
            code, _, err = cli("run", suite, f"{base}/a.jsonl", f"{base}/b.jsonl", "-o",
                               tmp_path / engine[-1], "--no-progress", "--no-report", *engine)
            assert code == 0, err
            counts.append(dict(gets))
    finally:
        server.shutdown()
    local, on_ray = counts
    assert on_ray == local and set(local) == {"/a.jsonl", "/b.jsonl"}


def test_the_judge_window_is_the_cluster_s_and_goes_where_the_work_is(cli, tmp_path,
                                                                      ray_address):
    """max_concurrency 4 with 2 actors: never more than 4 calls in flight from both, and all 4
    for the one actor that has work left."""
    data = [judged_corpus(tmp_path / f"in{k}.jsonl", 30) for k in range(4)]
    for name, inputs, batch in (("both", data, "15"), ("one", data[:1], "1000")):
        with ChatServer(reply=verdict, latency_s=0.2) as server:
            suite = judge_suite(tmp_path / f"{name}.yaml", server.base_url, concurrency=4)
            code, _, err = cli("run", suite, *inputs, "-o", tmp_path / name, "--engine", "ray",
                               "--ray-actors", "2", "--ray-batch-size", batch, "--no-progress",
                               "--no-report")
            assert code == 0, err
            assert server.max_in_flight == 4, name  # never past the window, and all of it


def test_adding_a_cost_never_waits_for_the_ledger(tmp_path, ray_address):
    """A priced answer is added to the cluster's ledger in the background: the judge call
    goes on while the ledger has not answered (here, a ledger held until the test lets go)."""
    import asyncio

    from harness_ray.budget import ClusterBudget
    from harness_ray.coordinator import Coordinator
    from harness_ray.window import Link

    flag = tmp_path / "release"

    class HeldCoordinator(Coordinator):
        def sync(self, *args):  # type: ignore[no-untyped-def]
            while not flag.exists():
                time.sleep(0.01)
            return super().sync(*args)

    held = ray.remote(num_cpus=0)(HeldCoordinator).remote()
    link = Link(held, "test")
    budget = ClusterBudget(link, limit=10.0)

    async def judged() -> tuple[float, float, bool]:
        budget.add(1.5)  # returns at once
        budget.check()
        known, answered = link.spent, link._syncing is not None and link._syncing.done()
        flag.touch()
        await link.sync()
        return known, link.total, answered

    known, total, answered = asyncio.run(judged())
    assert (known, answered) == (1.5, False)  # counted here before the ledger answered
    assert total == 1.5  # and the ledger has it once it answers


PRINTS = '''\
import sys


def loud(transcript):
    print("a criterion printing to stdout")
    print("and to stderr", file=sys.stderr)
    return True
'''


def test_stdout_holds_the_summary_only(tmp_path, ray_address):
    """Actors' output and Ray's own lines never land in harness's stdout (the summary)."""
    data = judged_corpus(tmp_path / "in.jsonl", 20)
    (tmp_path / "loud.py").write_text(PRINTS)
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: s\ncriteria:\n  - {name: loud, kind: python, function: loud:loud}\n")
    done = subprocess.run([*HARNESS, "run", str(suite), str(data), "-o", str(tmp_path / "run"),
                           "--engine", "ray", "--ray-address", ray_address, "--no-progress",
                           "--no-report"], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "printing" not in done.stdout and "pid=" not in done.stdout
    assert done.stdout.splitlines()[0].strip().startswith("s v1: 20 read, 20 passed")


def test_a_port_that_is_not_ray_is_one_line_at_once(tmp_path):
    """Something else listens there (an HTTP server): not minutes of Ray's retries."""
    import threading
    from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

    data = judged_corpus(tmp_path / "in.jsonl", 2)
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: s\ncriteria:\n  - {name: r, kind: regex, pattern: x, "
                     "expect: absent}\n")
    server = ThreadingHTTPServer(("", 0), SimpleHTTPRequestHandler)  # as a service listens
    threading.Thread(target=server.serve_forever, daemon=True).start()
    address = f"127.0.0.1:{server.server_port}"
    try:
        done = subprocess.run([*HARNESS, "run", str(suite), str(data), "-o",
                               str(tmp_path / "run"), "--engine", "ray", "--ray-address",
                               address], capture_output=True, text=True, cwd=tmp_path,
                              timeout=120)
    finally:
        server.shutdown()
    assert done.returncode == 2 and done.stderr.count("\n") == 1, done.stderr[-2000:]
    assert f"no Ray cluster answers at {address}" in done.stderr
    assert not (tmp_path / "run").exists()


ALWAYS_KILLS = '''\
import os
import signal


def dies(transcript):
    os.kill(os.getpid(), signal.SIGKILL)
'''


@pytest.mark.slow
def test_a_block_that_keeps_killing_its_actor_stops_the_run(cli, tmp_path, ray_address):
    data = judged_corpus(tmp_path / "in.jsonl", 4)
    (tmp_path / "killer.py").write_text(ALWAYS_KILLS)
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: s\ncriteria:\n  - {name: d, kind: python, function: killer:dies}\n")
    code, _, err = cli("run", suite, data, "-o", tmp_path / "run", "--engine", "ray",
                       "--no-progress")
    assert code == 4, err
    assert f"the records {data}:1 to {data}:4 killed their Ray actor 4 times" in err
