"""Killed at random points (finalisation included), then resumed: as an uninterrupted run."""

from __future__ import annotations

import json
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import core_corpus
import pandas as pd
import pytest
from testutil import write_suite

from harness.rundir import index_journal

pytestmark = pytest.mark.slow

SUITE = ("name: kr\ncriteria:\n"
         "  - {name: no_ai, kind: regex, pattern: 'as an ai', flags: [IGNORECASE], "
         "expect: absent}\n"
         "  - {name: no_secret, kind: regex, pattern: 'sk-[A-Za-z0-9]{20,}', expect: absent, "
         "target: all}\n")


def run(args: list[str]) -> subprocess.Popen[bytes]:
    return subprocess.Popen([sys.executable, "-m", "harness", "run", *args, "--no-progress",
                             "--no-report"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def outputs(run_dir: Path) -> tuple:
    summary = json.loads((run_dir / "summary.json").read_text())
    counts = {k: summary[k] for k in ("read", "passed", "failed", "errored", "input_errors")}
    return (counts, pd.read_parquet(run_dir / "decisions.parquet").to_json(orient="records"),
            (run_dir / "train.jsonl").read_text(), (run_dir / "rejected.jsonl").read_text(),
            (run_dir / "errors.jsonl").read_text())


def test_random_kills_then_resume_equal_a_clean_run(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(core_corpus.records(20_000, seed=3)) + "\n")
    suite = write_suite(tmp_path / "suite.yaml", SUITE)
    clean = tmp_path / "clean"
    assert run([str(suite), str(corpus), "-o", str(clean), "--workers", "2"]).wait() == 0
    expected = outputs(clean)

    rng = random.Random(11)
    out = tmp_path / "killed"
    first, kills = True, 0
    for _ in range(8):
        proc = run([str(suite), str(corpus), "-o", str(out), "--workers", "2",
                    *([] if first else ["--resume"])])
        first = False
        time.sleep(rng.uniform(0.5, 6.0))
        if proc.poll() is None:
            proc.send_signal(signal.SIGKILL)
            kills += 1
        proc.wait()
    final = run([str(suite), str(corpus), "-o", str(out), "--workers", "2", "--resume"])
    assert final.wait() == 0, final.stderr.read().decode() if final.stderr else ""
    assert kills >= 3, "the run was too fast to be killed: make the corpus larger"
    assert outputs(out) == expected


def _children(pid: int) -> set[int]:
    found = set()
    for task in Path(f"/proc/{pid}/task").glob("*/children"):
        found |= {int(c) for c in task.read_text().split()}
    return found


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"


@pytest.mark.skipif(not Path("/proc/self/task").is_dir(), reason="needs Linux /proc")
def test_worker_processes_end_when_the_run_is_killed_outright(tmp_path: Path) -> None:
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(core_corpus.records(20_000, seed=5)) + "\n")
    suite = write_suite(tmp_path / "suite.yaml", SUITE)
    proc = run([str(suite), str(corpus), "-o", str(tmp_path / "run"), "--workers", "2"])
    workers: set[int] = set()
    deadline = time.monotonic() + 120
    while len(workers) < 2 and proc.poll() is None and time.monotonic() < deadline:
        workers = _children(proc.pid)
        time.sleep(0.05)
    assert len(workers) >= 2, "the run ended before its workers started"
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    deadline = time.monotonic() + 60  # a bound on a hang, not a speed goal
    while any(_alive(w) for w in workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(w) for w in workers), "worker processes outlived the killed run"


def test_ctrl_c_stops_cleanly_records_the_state_and_resume_finishes(tmp_path: Path) -> None:
    """SIGINT (Ctrl-C) with worker processes: exit 130, one line, no tracebacks, the state
    recorded as ``stopped``; ``--resume`` then ends as an uninterrupted run."""
    corpus = tmp_path / "corpus.jsonl"
    corpus.write_text("\n".join(core_corpus.records(20_000, seed=5)) + "\n")
    suite = write_suite(tmp_path / "suite.yaml", SUITE)
    out = tmp_path / "run"
    proc = run([str(suite), str(corpus), "-o", str(out), "--workers", "2"])
    deadline = time.monotonic() + 120
    while not (out / "journal.jsonl").is_file() or (out / "journal.jsonl").stat().st_size < 1:
        assert proc.poll() is None and time.monotonic() < deadline, "the run never started"
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    err = proc.communicate(timeout=120)[1].decode()
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "Task was destroyed" not in err, err
    assert "Unclosed" not in err and "aclose()" not in err, err
    assert "interrupted" in err
    meta = json.loads((out / "run.json").read_text())
    assert meta["state"] == "stopped" and meta["stop"] == "interrupted"
    assert run([str(suite), str(corpus), "-o", str(out), "--workers", "2",
                "--resume"]).wait() == 0
    summary = json.loads((out / "summary.json").read_text())  # every record, each once
    assert (summary["state"], summary["not_decided"], summary["bad_journal_lines"]) == (
        "complete", 0, 0)
    assert summary["read"] == len(index_journal(out))
