"""One tally model: the summary, the report, the diff and the exports count alike."""

from __future__ import annotations

import json

import pytest
from testutil import chat, write_jsonl, write_suite

from harness.report.data import collect
from harness.report.diff import compare
from harness.tally import CriterionTally, Tallies


def test_pass_rate_is_over_decided_verdicts_and_mean_over_scored_ones() -> None:
    tally = CriterionTally()
    for outcome, score in [("pass", 1.0), ("fail", 0.0), ("error", None), ("skipped", None),
                           ("pass", 0.5)]:
        tally.add(outcome, score)
    assert tally.counts == {"pass": 2, "fail": 1, "error": 1, "skipped": 1}
    assert tally.pass_rate == pytest.approx(2 / 4) and tally.mean_score == pytest.approx(0.5)
    assert Tallies().row("absent") == {"pass": 0, "fail": 0, "error": 0, "skipped": 0,
                                       "pass_rate": None, "mean_score": None}


def test_summary_report_and_diff_agree(cli, tmp_path) -> None:
    (tmp_path / "flaky.py").write_text(
        "def check(t):\n    if t.messages[-1].content.endswith('3'):\n"
        "        raise ValueError('no')\n    return 0.25 if 'x' in t.messages[-1].content "
        "else 0.75\n")
    suite = write_suite(tmp_path / "s.yaml", "name: s\ncriteria:\n"
                        "  - {name: no_sorry, kind: regex, pattern: sorry, expect: absent}\n"
                        "  - {name: soft, kind: python, function: 'flaky:check', gate: false}\n"
                        "  - {name: turns, kind: regex, pattern: bad, expect: absent, "
                        "scope: message}\n")
    data = write_jsonl(tmp_path / "d.jsonl", [chat(f"q{i}", ("sorry " if i % 4 == 0 else "")
                                                   + ("x" if i % 3 else "") + f" {i}")
                                              for i in range(40)])
    assert cli("run", suite, data, "-o", tmp_path / "run")[0] == 0
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    report = {row["name"]: row for row in collect(tmp_path / "run")["criteria"]}
    diff = {c["name"]: c for c in compare(tmp_path / "run", tmp_path / "run")["criteria"]}
    for name, s in summary["criteria"].items():
        for key in ("pass", "fail", "error", "skipped", "pass_rate", "mean_score"):
            assert report[name][key] == s[key], (name, key)
        assert diff[name]["rate_a"] == s["pass_rate"]
    assert summary["criteria"]["soft"]["error"] == 4
