"""Large runs: aggregates over everything, a bounded sample of transcripts embedded."""

from __future__ import annotations

import json
from pathlib import Path

from conftest import chat

from harness.report import write_report
from harness.report.data import collect


def _records(n: int) -> list[dict]:
    out = []
    for i in range(n):
        answer = "Here you go, thanks." if i % 3 else "Sorry, I cannot."
        if i % 7 == 0:
            answer += " <script>x</script>"
        out.append(chat(f"t{i}", f"question {i}", answer))
    return out


def test_aggregates_count_everything_while_the_sample_is_bounded(make_run) -> None:
    run = make_run(_records(3000))
    summary = json.loads((run / "summary.json").read_text())
    data = collect(run, sample=5)
    assert data["totals"]["read"] == summary["read"] == 3000
    assert data["totals"]["failed"] == summary["failed"]
    for row in data["criteria"]:
        assert row["fail"] == summary["criteria"][row["name"]]["fail"]
    # 3 decision outcomes + 3 criteria x 2 outcomes, at most 5 each
    assert 5 <= len(data["transcripts"]) <= 5 * 9
    groups = data["sample"]["groups"]
    assert groups["*|fail"]["seen"] == summary["failed"] and groups["*|fail"]["kept"] == 5
    assert groups["no_sorry|fail"]["seen"] == summary["criteria"]["no_sorry"]["fail"]
    # every sampled group is represented among the embedded transcripts
    assert {t["outcome"] for t in data["transcripts"]} == {"pass", "fail"}


def test_only_the_transcripts_shown_are_read_again(make_run, monkeypatch) -> None:
    import harness.rundir

    run = make_run(_records(3000))
    parsed = []
    render = harness.rundir._render
    monkeypatch.setattr(harness.rundir, "_render",
                        lambda chunk, *a: parsed.extend(chunk) or render(chunk, *a))
    data = collect(run, sample=2)
    shown = data["transcripts"]
    assert 2 <= len(shown) == len(parsed) <= 2 * 9  # not the 3,000 records
    by_id = {r["id"]: r for r in _records(3000)}
    for t in shown:  # each with its own messages, as the input has them
        assert [m["content"] for m in t["messages"]] == \
            [m["content"] for m in by_id[t["id"]]["messages"]]


def test_report_size_does_not_grow_with_the_run(make_run, tmp_path: Path) -> None:
    small = write_report(make_run(_records(400), name="small"), tmp_path / "s.html", sample=10)
    large = write_report(make_run(_records(4000), name="large"), tmp_path / "l.html", sample=10)
    assert large.stat().st_size < small.stat().st_size * 1.3
    assert "sample of <b>" in large.read_text()


def test_sample_option_of_the_report_command(make_run, tmp_path: Path, cli) -> None:
    run = make_run(_records(300))
    code, _, err = cli("report", run, "--sample", "2", "-o", tmp_path / "r.html")
    assert code == 0, err
    html = (tmp_path / "r.html").read_text()
    assert "up to 2 drawn at random" in html
    code, _, err = cli("report", run, "--sample", "0")
    assert code == 2 and "expected a whole number >= 1" in err
