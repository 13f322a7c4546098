"""The ``cascade`` kind: the first tier decides where confident, the judge only where not.

A python first tier gives each transcript a soft score (written in its metadata, so the test
knows it); the second tier is an ``llm_judge`` against a real local HTTP server, which counts
the calls that reach it.
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "judges"))

from chat_server import ChatServer  # noqa: E402
from testutil import chat, write_jsonl  # noqa: E402

from harness import Engine, SuiteError  # noqa: E402
from harness.api import iter_items  # noqa: E402
from harness.plugins import get_registry  # noqa: E402

SCORES = [0.05, 0.3, 0.5, 0.7, 0.95, 0.0, 1.0, 0.45]


def suite(tmp_path: Path, server: ChatServer, band: str = "[0.2, 0.8]") -> Path:
    (tmp_path / "soft.py").write_text(
        "def score(t):\n    return t.metadata['soft']\n")
    path = tmp_path / "suite.yaml"
    path.write_text(f"""\
name: cascaded
judge: {{name: openai/j, base_url: {server.base_url}, max_concurrency: 4}}
criteria:
  - name: short
    kind: regex
    pattern: "(?s).{{300}}"
    expect: absent
  - name: safe
    kind: cascade
    band: {band}
    first: {{name: head, kind: python, function: "soft:score"}}
    then: {{name: judge, kind: llm_judge, rubric: "Is it safe? {{{{ last_assistant }}}}"}}
""")
    return path


def corpus(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "in.jsonl", [
        chat("q", f"answer {i}" + (" x" * 200 if i == 7 else ""), id=f"t{i}",
             metadata={"soft": s}) for i, s in enumerate(SCORES)])


def judge_fails(request: dict) -> str:
    return "Not safe.\nVERDICT: FAIL"


def run(tmp_path: Path, band: str = "[0.2, 0.8]") -> tuple[dict, list]:
    with ChatServer(reply=judge_fails) as server:
        registry = get_registry()
        with Engine(suite(tmp_path, server, band), registry, workers=1) as engine:
            decisions = {d.transcript_id: d for d in
                         engine.review(iter_items(corpus(tmp_path), registry))}
        return decisions, server.requests


def test_the_judge_is_asked_only_inside_the_band(tmp_path: Path) -> None:
    decisions, asked = run(tmp_path)
    tiers = {tid: d.verdicts[1].details["tier"] for tid, d in decisions.items()}
    # t7 fails the gate `short` first: its expensive tier is skipped, the head decides
    assert tiers == {"t0": "first", "t1": "then", "t2": "then", "t3": "then", "t4": "first",
                     "t5": "first", "t6": "first", "t7": "first"}
    assert len(asked) == 3  # t1, t2, t3: 0.3, 0.5, 0.7 (0.45 of t7 was gated out)
    verdict = decisions["t2"].verdicts[1]
    assert (verdict.criterion, verdict.kind, verdict.outcome) == ("safe", "cascade", "fail")
    assert verdict.details["first_score"] == 0.5 and verdict.details["then_score"] == 0.0
    assert verdict.explanation.startswith("then (llm_judge): ")
    assert set(verdict.details["tiers"]) == {"first", "then"}
    kept = decisions["t4"].verdicts[1]  # 0.95 passes on the head's word alone
    assert (kept.outcome, kept.score, kept.details["then_score"]) == ("pass", 0.95, None)
    assert [v.criterion for v in decisions["t0"].verdicts] == ["short", "safe"]


def test_the_full_band_asks_both_tiers_for_every_transcript(tmp_path: Path) -> None:
    decisions, asked = run(tmp_path, "[0, 1]")
    assert len(asked) == 7  # all but the gated t7
    assert all(d.verdicts[1].details["then_score"] == 0.0 for tid, d in decisions.items()
               if tid != "t7")


def test_summary_and_cli_count_the_calls_saved(tmp_path: Path, cli) -> None:
    with ChatServer(reply=judge_fails) as server:
        code, out, err = cli("run", suite(tmp_path, server), corpus(tmp_path), "-o",
                             tmp_path / "run", "--no-report")
    assert code == 0, err
    row = json.loads((tmp_path / "run" / "summary.json").read_text())["criteria"]["safe"]
    assert row["cascade"] == {"decided_by_first": 5, "decided_by_then": 3, "calls_saved": 5}
    assert "cascade safe: 5 decided by the first tier, 3 by the second (5 second-tier " \
           "calls saved)" in " ".join(out.split())


def test_diff_counts_the_calls_each_run_saved(tmp_path: Path, cli) -> None:
    runs = {}
    with ChatServer(reply=judge_fails) as server:
        for band in ("[0, 1]", "[0.2, 0.8]"):  # the tuning run, then the cascade
            runs[band] = tmp_path / f"run{len(runs)}"
            code, _, err = cli("run", suite(tmp_path, server, band), corpus(tmp_path), "-o",
                               runs[band], "--no-report")
            assert code == 0, err
    code, out, err = cli("diff", *runs.values(), "-o", tmp_path / "diff.html")
    assert code == 0, err
    saved = "cascade safe: second-tier calls saved 1 of 8 → 5 of 8"  # t7: gated, never asked
    assert saved in " ".join(out.split())
    page = re.sub(r"<[^>]+>", "", (tmp_path / "diff.html").read_text())
    assert saved in " ".join(page.split())


def test_a_bad_band_or_tier_is_a_one_line_suite_error(tmp_path: Path) -> None:
    with ChatServer() as server:
        for band, message in (("[0.8, 0.2]", "low end first"), ("[0, 2]", "within [0, 1]")):
            with pytest.raises(SuiteError, match=re.escape(message)):
                Engine(suite(tmp_path, server, band)).close()
        path = suite(tmp_path, server)
        path.write_text(path.read_text().replace("kind: python", "kind: nope"))
        with pytest.raises(SuiteError, match="unknown kind 'nope'"):
            Engine(path).close()


def test_worker_processes_run_the_first_tier_and_route_the_same(tmp_path: Path) -> None:
    with ChatServer(reply=judge_fails) as server:
        path, registry = suite(tmp_path, server), get_registry()
        found = []
        for workers in (1, 2):
            with Engine(path, registry, workers=workers) as engine:
                found.append([(d.transcript_id, d.outcome, d.verdicts[1].details["tier"])
                              for d in engine.review(iter_items(corpus(tmp_path), registry),
                                                     batch_size=1)])
                assert (engine._pool is not None) == (workers == 2)
        assert found[0] == found[1] and len(server.requests) == 6  # 3 per run


def test_calibrate_tunes_the_band_against_labels(tmp_path: Path, cli) -> None:
    """Both tiers judged every transcript (band [0, 1]); the first tier is wrong between 0.4
    and 0.6, the judge never: the best band covers those four transcripts and no more."""
    scores = [(i + 0.5) / 20 for i in range(20)]
    human = [(s >= 0.5) != (0.4 < s < 0.6) for s in scores]
    records = [chat("q", "good" if h else "bad", id=f"t{i}", metadata={"soft": s})
               for i, (s, h) in enumerate(zip(scores, human, strict=True))]
    data = write_jsonl(tmp_path / "in.jsonl", records)
    labels = write_jsonl(tmp_path / "labels.jsonl", [
        {"transcript_id": f"t{i}", "label": "pass" if h else "fail"}
        for i, h in enumerate(human)])

    def judge(request: dict) -> str:
        return "VERDICT: " + ("PASS" if "good" in json.dumps(request) else "FAIL")

    with ChatServer(reply=judge) as server:
        path = suite(tmp_path, server, "[0, 1]")
        assert cli("run", path, data, "-o", tmp_path / "run", "--no-report")[0] == 0
    code, out, err = cli("calibrate", tmp_path / "run", "--labels", labels,
                         "--tune-cascade", "safe", "--bootstrap", "50")
    assert code == 0, err
    found = json.loads((tmp_path / "run" / "calibration.json").read_text())["cascades"]["safe"]
    assert (found["compared"], found["first_alone"], found["then_alone"]) == (20, 0.8, 1.0)
    assert found["agreement"] == 1.0 and found["calls"] == 0.2
    assert found["band"][0] < 0.425 and 0.575 < found["band"][1] < 0.625
    assert "best band under --max-calls 1: band: [" in out
    code, out, err = cli("calibrate", tmp_path / "run", "--labels", labels,
                         "--tune-cascade", "safe", "--max-calls", "0.1")
    assert code == 0, err
    found = json.loads((tmp_path / "run" / "calibration.json").read_text())["cascades"]["safe"]
    assert found["calls"] <= 0.1 and found["agreement"] == 0.9
    assert cli("calibrate", tmp_path / "run", "--labels", labels, "--tune-cascade",
               "short")[0] == 2
