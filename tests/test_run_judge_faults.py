"""A run whose judge fails: stopped while the endpoint is down or the judge misconfigured,
errors re-asked on --resume."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent / "judges"))

from chat_server import ChatServer, closed_port  # noqa: E402
from testutil import chat, read_jsonl, write_jsonl  # noqa: E402

from harness.rundir import read_meta  # noqa: E402

N = 30


def suite(tmp_path: Path, port: int | str, gate: bool = True, attempts: int = 2,
          breaker_after: int = 3, extra: str = "") -> Path:
    """The suite, its judge at a local port (or a server's base URL); ``extra``: more keys."""
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
  breaker_after: {breaker_after}
  base_delay_s: 0.01
{extra}criteria:
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
        # 10 failed calls in a row, fewer than breaker_after: errors, not a down endpoint
        code, _, err = cli("run", suite(tmp_path, server.base_url, gate=False, attempts=1,
                                        breaker_after=20), data,
                           "-o", tmp_path / "run", "--workers", "1")
        assert code == 0, err
        first = json.loads((tmp_path / "run" / "summary.json").read_text())
        assert first["criterion_errors"] == 10 and "10 criterion error(s)" in err
        assert len(read_jsonl(tmp_path / "run" / "errors.jsonl")) == 10
        asked = len(server.requests)
        code, _, err = cli("run", suite(tmp_path, server.base_url, gate=False, attempts=1,
                                        breaker_after=20), data,
                           "-o", tmp_path / "run", "--resume")
        assert code == 0, err
        assert len(server.requests) - asked == 10  # only the errored ones, asked again
    again = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert again["criterion_errors"] == 0 and again["read"] == N
    assert (tmp_path / "run" / "errors.jsonl").read_text() == ""


def stop_reason(run: Path) -> str:
    return json.loads((run / "summary.json").read_text())["stop_reason"]


def test_the_breaker_names_the_failures_that_opened_it(cli, tmp_path):
    # breaker_after: 3, with 4 calls in flight when it opens: the reason says 3
    code, _, err = cli("run", suite(tmp_path, closed_port()), corpus(tmp_path),
                       "-o", tmp_path / "run", "--workers", "1")
    assert code == 4
    assert re.findall(r"(\d+) (?:consecutive|failures in a row)", stop_reason(tmp_path / "run")) \
        == ["3"]


@pytest.mark.parametrize("status", [500, 429])
def test_an_endpoint_failing_every_call_stops_the_run(cli, tmp_path, status):
    data, port = corpus(tmp_path), closed_port()
    with ChatServer(port=port) as server:
        server.fail_first(10_000, status=status, retry_after="0")
        code, _, err = cli("run", suite(tmp_path, port, gate=False), data,
                           "-o", tmp_path / "run", "--workers", "1")
        assert code == 4, err
        assert read_meta(tmp_path / "run")["state"] == "stopped"
        reason = stop_reason(tmp_path / "run")
        assert "openai/j" in reason and "circuit breaker" in reason and f"HTTP {status}" in reason
        # not an error for every transcript: those that failed before the breaker opened
        # (breaker_after 3), and what was in flight then (max_concurrency 4)
        summary = json.loads((tmp_path / "run" / "summary.json").read_text())
        assert summary["criterion_errors"] <= 3 + 4
    with ChatServer(port=port):  # the endpoint recovered
        code, _, err = cli("run", suite(tmp_path, port, gate=False), data,
                           "-o", tmp_path / "run", "--resume")
        assert code == 0, err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (summary["passed"], summary["criterion_errors"]) == (N, 0)


MISCONFIGURED = {
    # how the judge is misconfigured: (the suite's base_url for a server, status, what to check)
    "wrong key": (lambda url: url, 401, "API key"),
    "wrong base_url path": (lambda url: url.removesuffix("/v1") + "/v2", 404, "base_url"),
    "key without access": (lambda url: url, 403, "API key"),
}


@pytest.mark.parametrize("case", list(MISCONFIGURED))
def test_a_misconfigured_judge_stops_the_run_at_its_first_call(cli, tmp_path, monkeypatch, case):
    url_of, status, check = MISCONFIGURED[case]
    data = corpus(tmp_path)
    monkeypatch.setenv("JUDGE_KEY", "wrong")
    with ChatServer(api_key="right") as server:
        if status == 403:
            monkeypatch.setenv("JUDGE_KEY", "right")
            server.fail_first(10_000, status=403, retry_after=None)
        code, _, err = cli("run", suite(tmp_path, url_of(server.base_url),
                                        extra="  api_key_env: JUDGE_KEY\n"),
                           data, "-o", tmp_path / "run", "--workers", "1")
        assert code == 4, err
        assert read_meta(tmp_path / "run")["state"] == "stopped"
        reason = stop_reason(tmp_path / "run")
        assert "\n" not in reason and "misconfigured" in reason
        assert "openai/j" in reason and f"HTTP {status}" in reason and check in reason
        assert reason in err
        # the first answer stops it: at most the calls in flight with it (max_concurrency 4)
        assert len(server.requests) + server.refused <= 4
        if status == 401:  # the key fixed, --resume finishes the run
            monkeypatch.setenv("JUDGE_KEY", "right")
            code, _, err = cli("run", suite(tmp_path, url_of(server.base_url),
                                            extra="  api_key_env: JUDGE_KEY\n"),
                               data, "-o", tmp_path / "run", "--resume")
            assert code == 0, err
            assert json.loads((tmp_path / "run" / "summary.json").read_text())["passed"] == N


def test_identical_transcripts_make_one_call(cli, tmp_path):
    records = [chat("same question", "same answer", id=f"t{i}") for i in range(N)]
    data = write_jsonl(tmp_path / "in.jsonl", records)
    with ChatServer(reply=lambda r: "Fine.\nVERDICT: PASS", latency_s=0.2) as server:
        code, _, err = cli("run", suite(tmp_path, server.base_url), data, "-o", tmp_path / "run",
                           "--workers", "1")
        assert code == 0, err
        assert len(server.requests) == 1
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["passed"] == N
