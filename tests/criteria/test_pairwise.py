"""The pairwise criterion against the real local chat-completions server: both orders asked,
order-dependent preferences are ties, the position-bias rate, and exports from preferences."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "judges"))

from chat_server import ChatServer  # noqa: E402

import harness  # noqa: E402
from harness import Engine, Message, SuiteError, Transcript  # noqa: E402
from harness.plugins import get_registry  # noqa: E402


def responses(request: dict[str, Any]) -> tuple[str, str]:
    """Responses A and B: the last two fenced blocks of the judge's prompt."""
    user = request["messages"][-1]["content"]
    nonce = re.search(r"<<<TRANSCRIPT-([0-9a-f]{16})>>>", user).group(1)
    blocks = re.findall(rf"<<<TRANSCRIPT-{nonce}>>>\n(.*?)\n<<<END-TRANSCRIPT-{nonce}>>>",
                        user, re.DOTALL)
    return blocks[-2], blocks[-1]


def consistent(request: dict[str, Any]) -> str:
    """Prefers the response that says "good", wherever it stands."""
    a, _ = responses(request)
    return f"Compared.\nVERDICT: {'A' if 'good' in a else 'B'}"


def always_a(request: dict[str, Any]) -> str:
    """Position bias at its worst: always the first response shown."""
    return "The first one.\nVERDICT: A"


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with ChatServer(reply=consistent) as s:
        yield s


def suite(tmp_path: Path, server: ChatServer, extra: str = "") -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(f"""\
name: pairs
judge: {{name: openai/pj, base_url: '{server.base_url}', max_attempts: 1}}
criteria:
  - name: better
    kind: pairwise
    gate: false
    question: Which response is better?
{extra}""")
    return path


def hh_file(tmp_path: Path, records: list[tuple[str, str, str]]) -> Path:
    path = tmp_path / "hh.jsonl"
    path.write_text("".join(json.dumps({
        "id": pid, "chosen": f"\n\nHuman: Question {pid}?\n\nAssistant: {chosen}",
        "rejected": f"\n\nHuman: Question {pid}?\n\nAssistant: {rejected}"}) + "\n"
        for pid, chosen, rejected in records))
    return path


def verdicts(run_dir: Path) -> dict[str, dict[str, Any]]:
    """Each transcript's pairwise verdict, from results.parquet."""
    import pandas as pd

    rows = pd.read_parquet(run_dir / "results.parquet")
    rows = rows[rows.criterion == "better"]
    return {r.transcript_id: {"outcome": r.outcome, "score": r.score,
                              "details": json.loads(r.details)} for r in rows.itertuples()}


def test_a_consistent_judge_prefers_in_both_orders(tmp_path: Path, server: ChatServer):
    inputs = hh_file(tmp_path, [("p1", "a good answer", "meh"),
                                ("p2", "meh", "a good answer")])
    summary = harness.run(suite(tmp_path, server), inputs, tmp_path / "run", workers=1,
                          report=False)
    found = verdicts(tmp_path / "run")
    assert found["p1:chosen"]["outcome"] == "pass" and found["p1:rejected"]["outcome"] == "fail"
    assert found["p2:chosen"]["outcome"] == "fail" and found["p2:rejected"]["outcome"] == "pass"
    d = found["p1:chosen"]["details"]
    assert d["preferred"] == "p1:chosen" and d["partner"] == "p1:rejected"
    assert d["order_dependent"] is False
    assert [o["label"] for o in d["orders"]] == ["A", "B"]  # asked in both orders
    assert found["p1:chosen"]["score"] + found["p1:rejected"]["score"] == pytest.approx(1.0)
    assert summary["criteria"]["better"]["position_bias"] == {
        "pairs": 2, "order_dependent": 0, "rate": 0.0}
    assert server.completions == 4  # two questions per pair, none per side


def test_a_judge_that_always_prefers_a_gives_ties(tmp_path: Path, server: ChatServer):
    server.reply = always_a
    inputs = hh_file(tmp_path, [("p1", "a good answer", "meh"), ("p2", "x", "y")])
    summary = harness.run(suite(tmp_path, server), inputs, tmp_path / "run", workers=1,
                          report=False)
    found = verdicts(tmp_path / "run")
    assert {v["outcome"] for v in found.values()} == {"skipped"}
    assert all(v["details"]["tie"] and v["details"]["abstained"] for v in found.values())
    row = summary["criteria"]["better"]
    assert row["position_bias"] == {"pairs": 2, "order_dependent": 2, "rate": 1.0}
    assert row["abstained"] == 4
    assert summary["passed"] == 4  # ties decide nothing


def test_export_pairs_from_preferences(tmp_path: Path, server: ChatServer, cli: Any):
    inputs = hh_file(tmp_path, [("p1", "a good answer", "meh"), ("p2", "meh", "a good one"),
                                ("p3", "good", "also good")])
    harness.run(suite(tmp_path, server), inputs, tmp_path / "run", workers=1, report=False)
    out = tmp_path / "pairs.jsonl"
    code, stdout, err = cli("export", "pairs", tmp_path / "run", "-o", out, "--prefer",
                            "better")
    assert code == 0, err
    rows = {r["pair_key"]: r for r in map(json.loads, out.open())}
    assert set(rows) == {"pair:p1", "pair:p2"}  # p3: both say good, the judge answers B twice
    assert rows["pair:p2"]["chosen_id"] == "p2:rejected"  # the judge's preference, not HH's
    assert rows["pair:p2"]["chosen"][0]["content"] == "a good one"
    assert rows["pair:p1"]["preference_confidence"] == pytest.approx(
        verdicts(tmp_path / "run")["p1:chosen"]["score"])
    code, _, err = cli("export", "pairs", tmp_path / "run", "-o", out, "--prefer", "nope")
    assert code != 0 and "--prefer 'nope'" in err


def test_transcripts_sharing_a_prompt_and_lone_transcripts(tmp_path: Path, server: ChatServer):
    def chat(tid: str, answer: str, prompt: str = "Say hi.") -> Transcript:
        return Transcript(id=tid, messages=[Message(role="user", content=prompt),
                                            Message(role="assistant", content=answer)])

    engine = Engine(suite(tmp_path, server), get_registry())
    decisions = list(engine.review([chat("x", "hi"), chat("y", "good hi"),
                                    chat("lone", "hello", prompt="Other.")]))
    by_id = {d.transcript_id: next(v for v in d.verdicts if v.criterion == "better")
             for d in decisions}
    assert (by_id["x"].outcome, by_id["y"].outcome) == ("fail", "pass")
    assert by_id["lone"].outcome == "skipped" and "no partner" in by_id["lone"].explanation


def test_message_scope_is_a_suite_error(tmp_path: Path, server: ChatServer):
    with pytest.raises(SuiteError, match="scope must be transcript"):
        Engine(suite(tmp_path, server, "    scope: message\n"), get_registry())


def test_pairs_compare_beside_an_asynchronous_judge(tmp_path: Path, server: ChatServer):
    """A pairwise criterion runs in the synchronous stage, before llm_judge criteria, so it
    still sees both sides of each pair when the suite also has a per-transcript judge."""
    def reply(request: dict[str, Any]) -> str:
        if "Response A" in request["messages"][0]["content"]:  # the rubric, first
            return consistent(request)
        return "Fine.\nVERDICT: PASS"

    server.reply = reply
    extra = """\
  - name: judged
    kind: llm_judge
    gate: false
    rubric: "Good? {{ last_assistant }}"
"""
    engine = Engine(suite(tmp_path, server, extra), get_registry())
    assert [c.kind for c in engine.plan.order] == ["pairwise", "llm_judge"]
    chosen, rejected = engine.review(
        [Transcript(id=f"p:{side}", metadata={"pair_id": "p"},
                    messages=[Message(role="user", content="Q?"),
                              Message(role="assistant", content=answer)])
         for side, answer in (("chosen", "meh"), ("rejected", "good"))])
    outcomes = {d.transcript_id: {v.criterion: v.outcome for v in d.verdicts}
                for d in (chosen, rejected)}
    assert outcomes == {"p:chosen": {"better": "fail", "judged": "pass"},
                        "p:rejected": {"better": "pass", "judged": "pass"}}
