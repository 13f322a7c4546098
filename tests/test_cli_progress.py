"""`harness run` progress: lines at an interval in a log, the bar in a terminal, none on request.

The CLI runs in a subprocess (stderr a pipe, or a pseudo-terminal) against the local chat
server answering slowly, so the run lasts several progress intervals. The lines' contents are
asserted, never their timing.
"""

from __future__ import annotations

import os
import pty
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from testutil import chat, write_jsonl, write_suite

sys.path.insert(0, str(Path(__file__).resolve().parent / "judges"))

from chat_server import ChatServer  # noqa: E402

from harness.progress import duration  # noqa: E402

N = 6
LATENCY_S = 0.25
LINE = re.compile(r"^harness: (\d+) of 6 records \((\d+\.\d)%\), ([\d.,]+) records/s, "
                  r"(\d+) errored so far, (about \S+ left|time left unknown yet)$")


def _reply(request: dict[str, Any]) -> str:
    text = request["messages"][-1]["content"]
    return "I cannot tell." if "answer 3." in text else "Fine.\nVERDICT: PASS"


@pytest.fixture
def server():
    with ChatServer(reply=_reply, latency_s=LATENCY_S) as srv:
        yield srv


def _args(tmp_path: Path, server: ChatServer, *extra: str) -> list[str]:
    suite = write_suite(tmp_path / "suite.yaml", f"""\
name: slow
judge: {{name: openai/slow, base_url: "{server.base_url}", max_concurrency: 1}}
criteria:
  - {{name: polite, kind: llm_judge, rubric: "Polite? {{{{ last_assistant }}}}"}}
""")
    corpus = write_jsonl(tmp_path / "in.jsonl", [chat("q", f"answer {i}.") for i in range(N)])
    return [sys.executable, "-m", "harness.cli", "run", str(suite), str(corpus),
            "-o", str(tmp_path / "run"), "--no-report", "--workers", "1", *extra]


def test_outside_a_terminal_a_progress_line_comes_at_an_interval(
        tmp_path: Path, server: ChatServer) -> None:
    done = subprocess.run(_args(tmp_path, server, "--progress-every", "0.2"),
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    lines = [line for line in done.stderr.splitlines() if line.startswith("harness: ")]
    assert lines[0] == "harness: reviewing 6 records, a progress line every 0.2s"
    progress = [LINE.match(line) for line in lines[1:-2]]
    assert progress and all(progress), lines
    counts = [int(m.group(1)) for m in progress]
    assert counts == sorted(counts) and counts[-1] <= N
    errors = [int(m.group(4)) for m in progress]
    assert set(errors) <= {0, 1} and errors == sorted(errors)
    assert re.match(r"harness: reviewed 6 records in \S+ \([\d.,]+ records/s\), 1 errored$",
                    lines[-2]), lines[-2]
    assert "criterion error(s)" in lines[-1]  # the run's own error notice follows
    assert "━" not in done.stderr  # no bar in a log


def test_no_progress_silences_the_lines(tmp_path: Path, server: ChatServer, cli) -> None:
    code, _, err = cli(*_args(tmp_path, server, "--progress-every", "0.2", "--no-progress")[3:])
    assert code == 0, err
    assert "records/s" not in err and "reviewing" not in err


def test_in_a_terminal_the_bar_stays(tmp_path: Path, server: ChatServer) -> None:
    leader, follower = pty.openpty()
    env = {**os.environ, "COLUMNS": "100", "TERM": "xterm"}
    proc = subprocess.Popen(_args(tmp_path, server, "--progress-every", "0.2"),
                            stdout=subprocess.DEVNULL, stderr=follower, env=env)
    os.close(follower)
    output = b""
    while True:
        try:
            chunk = os.read(leader, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        output += chunk
    assert proc.wait() == 0
    os.close(leader)
    text = output.decode(errors="replace")
    assert "reviewing" in text and "6/6" in text and "records/s" not in text


def test_the_interval_must_be_positive(tmp_path: Path, server: ChatServer, cli) -> None:
    code, _, err = cli(*_args(tmp_path, server, "--progress-every", "0")[3:])
    assert code == 2 and "expected a number of seconds > 0" in err


@pytest.mark.parametrize(("seconds", "shown"), [(0.4, "0.4s"), (0, "0s"), (45, "45s"),
                                                (185, "3m05s"), (7620, "2h07m")])
def test_durations_read_well(seconds: float, shown: str) -> None:
    assert duration(seconds) == shown


def test_a_resumed_run_counts_only_what_it_has_left_to_review(tmp_path: Path, cli) -> None:
    corpus = write_jsonl(tmp_path / "in.jsonl", [chat(f"q{n}", f"answer {n}") for n in range(10)])
    suite = write_suite(tmp_path / "suite.yaml", "name: p\ncriteria:\n  - {name: no_x, "
                        "kind: regex, pattern: 'xyz', expect: absent}\n")
    out = tmp_path / "run"
    assert cli("run", suite, corpus, "-o", out, "--limit", "4", "--no-report")[0] == 0
    code, _, err = cli("run", suite, corpus, "-o", out, "--resume", "--no-report")
    assert code == 0
    assert "harness: reviewing 6 records," in err
    assert "harness: reviewed 6 records in" in err
