"""Judges on the streaming core: the concurrency window stays full, with no batch barrier."""

from __future__ import annotations

import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent / "judges"))

from chat_server import ChatServer  # noqa: E402

import harness  # noqa: E402
from harness import Engine, Message, Transcript  # noqa: E402

N = 120
LIMIT = 8


def transcripts(n: int = N) -> list[Transcript]:
    return [Transcript(id=f"t{i}", messages=[Message(role="user", content=f"question {i}"),
                                            Message(role="assistant", content=f"answer-{i}.")])
            for i in range(n)]


def suite(tmp_path: Path, server: ChatServer, criteria: int = 1) -> Path:
    body = "".join(f"""\
  - name: judge{c}
    kind: llm_judge
    gate: false
    rubric: "Is this fine? {{{{ last_assistant }}}}"
""" for c in range(criteria))
    path = tmp_path / "suite.yaml"
    path.write_text(f"name: judged\njudge:\n  name: openai/j\n  base_url: {server.base_url}\n"
                    f"  max_concurrency: {LIMIT}\ncriteria:\n{body}")
    return path


def test_the_window_stays_at_the_limit_across_chunks(tmp_path: Path) -> None:
    """Read in chunks of 4 records, judged 8 at a time: the server sees 8 calls in flight
    (a barrier between chunks would cap it at 4)."""
    in_flight: list[int] = []
    lock = threading.Lock()
    active = 0

    def reply(request: dict[str, Any]) -> str:
        nonlocal active
        with lock:
            active += 1
            in_flight.append(active)
        time.sleep(0.05)
        with lock:
            active -= 1
        return "Fine.\nVERDICT: PASS"

    with ChatServer(reply=reply) as server, Engine(suite(tmp_path, server)) as engine:
        decisions = list(harness.review(engine, transcripts(), batch_size=4))
    assert [d.outcome for d in decisions] == ["pass"] * N
    assert [d.transcript_id for d in decisions] == [f"t{i}" for i in range(N)]
    assert max(in_flight) == LIMIT  # across chunk boundaries, never more than the limit


def test_a_slow_call_does_not_hold_back_the_others(tmp_path: Path) -> None:
    """The first transcript's call answers only once every other call has arrived: with a
    barrier between batches it would wait for ever (and time out as a failure)."""
    seen = threading.Event()
    count = 0
    lock = threading.Lock()

    def reply(request: dict[str, Any]) -> str:
        nonlocal count
        text = request["messages"][-1]["content"]
        with lock:
            count += 1
            if count == N:
                seen.set()
        if "answer-0." in text:
            return "Waited.\nVERDICT: PASS" if seen.wait(60) else "Alone.\nVERDICT: FAIL"
        return "Fine.\nVERDICT: PASS"

    with ChatServer(reply=reply) as server, Engine(suite(tmp_path, server)) as engine:
        decisions = list(engine.review(transcripts(), batch_size=4))
    assert decisions[0].verdicts[0].explanation.startswith("Waited")
    assert all(d.outcome == "pass" for d in decisions)


def test_two_judges_share_one_window_and_outputs_keep_input_order(tmp_path: Path) -> None:
    with ChatServer(reply=lambda r: "ok\nVERDICT: PASS", latency_s=0.01) as server, \
            Engine(suite(tmp_path, server, criteria=2)) as engine:
        decisions = list(engine.review(transcripts(40), batch_size=3))
        assert server.max_in_flight <= LIMIT
        assert len(server.requests) == 80
    assert [d.transcript_id for d in decisions] == [f"t{i}" for i in range(40)]
    assert all([v.criterion for v in d.verdicts] == ["judge0", "judge1"] for d in decisions)
