"""A run whose judge fails: stopped while the endpoint is down, errors re-asked on --resume."""

from __future__ import annotations

import json
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "judges"))

from chat_server import ChatServer, closed_port  # noqa: E402
from testutil import chat, read_jsonl, write_jsonl  # noqa: E402

from harness.rundir import read_meta  # noqa: E402

N = 30


def suite(tmp_path: Path, port: int | str, gate: bool = True, attempts: int = 2) -> Path:
    """The suite, its judge at a local port (or a server's base URL)."""
    url = port if isinstance(port, str) else f"http://127.0.0.1:{port}/v1"
    path = tmp_path / "suite.yaml"
    path.write_text(f"""\
name: judged
judge:
  name: openai/j
  base_url: {url}
  max_attempts: {attempts}
  max_concurrency: 4
  timeout_s: 5
  breaker_after: 3
criteria:
  - name: fine
    kind: llm_judge
    gate: {str(gate).lower()}
    rubric: "Is this fine? {{{{ last_assistant }}}}"
""")
    return path


def corpus(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "in.jsonl",
                       [chat(f"q{i}", f"answer {i}", id=f"t{i}") for i in range(N)])


def test_endpoint_down_stops_the_run_and_resume_finishes_it(cli, tmp_path):
    port, data = closed_port(), corpus(tmp_path)
    code, _, err = cli("run", suite(tmp_path, port), data, "-o", tmp_path / "run",
                       "--workers", "1")
    assert code == 4 and "judge unavailable" in err and "--resume" in err
    assert read_meta(tmp_path / "run")["state"] == "stopped"
    assert cli("export", tmp_path / "run", "-o", tmp_path / "x.jsonl")[0] == 2  # incomplete
    with ChatServer(reply=lambda r: "Fine.\nVERDICT: PASS", port=port) as server:
        code, _, err = cli("run", suite(tmp_path, port), data, "-o", tmp_path / "run",
                           "--resume")
        assert code == 0, err
        assert len(server.requests) == N  # every transcript asked, once
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (summary["read"], summary["passed"], summary["state"]) == (N, N, "complete")


def test_resume_re_asks_errored_verdicts_and_never_replays_a_failure(cli, tmp_path):
    data = corpus(tmp_path)
    with ChatServer(reply=lambda r: "Fine.\nVERDICT: PASS") as server:
        server.fail_first(10, status=500, retry_after=None)  # 10 transcripts fail
        code, _, err = cli("run", suite(tmp_path, server.base_url, gate=False, attempts=1), data,
                           "-o", tmp_path / "run", "--workers", "1")
        assert code == 0, err
        first = json.loads((tmp_path / "run" / "summary.json").read_text())
        assert first["criterion_errors"] == 10 and "10 criterion error(s)" in err
        assert len(read_jsonl(tmp_path / "run" / "errors.jsonl")) == 10
        asked = len(server.requests)
        code, _, err = cli("run", suite(tmp_path, server.base_url, gate=False, attempts=1), data,
                           "-o", tmp_path / "run", "--resume")
        assert code == 0, err
        assert len(server.requests) - asked == 10  # only the errored ones, asked again
    again = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert again["criterion_errors"] == 0 and again["read"] == N
    assert (tmp_path / "run" / "errors.jsonl").read_text() == ""
