"""`harness calibrate` on a real run: counts by hand, nothing dropped silently."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from testutil import write_jsonl, write_suite

SUITE = """\
name: calib-test
version: "1"
criteria:
  - name: no_sorry
    kind: regex
    pattern: "sorry"
    flags: [IGNORECASE]
    expect: absent
  - name: no_boom
    kind: python
    function: checks:no_boom
  - name: brevity
    kind: python
    function: checks:brevity
    gate: false
"""
CHECKS = '''\
def no_boom(transcript):
    if "BOOM" in transcript.messages[-1].content:
        raise RuntimeError("boom")
    return True


def brevity(transcript):
    return max(0.0, 1.0 - len(transcript.messages[-1].content) / 100)
'''
ANSWERS = {
    "t1": "Hello, here is the answer: 4.",
    "t2": "Sorry, I cannot.",
    "t3": "Sorry for the delay; the answer is 4, because 2 + 2 = 4.",
    "t4": "The answer is 4.",
    "t5": "I don't know, I really have no idea at all what that could possibly be.",
    "t6": "Maybe 4?",
    "t7": "BOOM",
}
LABELS = """\
transcript_id,label,criterion
t1,good,
t2,bad,
t3,good,
t4,good,
t5,bad,
t6,unsure,
t7,bad,
ghost,bad,
t4,bad,nosuch
t2,good,no_sorry
"""


@pytest.fixture
def run_dir(tmp_path: Path, cli) -> Path:
    (tmp_path / "checks.py").write_text(CHECKS)
    suite = write_suite(tmp_path / "suite.yaml", SUITE)
    inputs = write_jsonl(tmp_path / "t.jsonl", [
        {"id": tid, "messages": [{"role": "user", "content": "What is 2 + 2?"},
                                 {"role": "assistant", "content": answer}]}
        for tid, answer in ANSWERS.items()])
    code, _, err = cli("run", suite, inputs, "-o", tmp_path / "run", "--no-progress")
    assert code == 0, err
    return tmp_path / "run"


def rows(result: dict) -> dict[str, dict]:
    return {r["name"]: r for r in result["rows"]}


def test_three_way_labels_compared_by_hand(run_dir: Path, tmp_path: Path, cli) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text(LABELS)
    code, out, err = cli("calibrate", run_dir, "--labels", labels,
                         "--map", "good=pass,bad=fail,unsure=skip", "--bootstrap", "200")
    assert code == 0, err
    result = json.loads((run_dir / "calibration.json").read_text())
    by = rows(result)
    assert list(by) == ["no_sorry", "no_boom", "brevity", "decision"]
    # no_sorry: t2 has its own label (good); the others use the transcript's label.
    # people pass t1 t2 t3 t4, fail t5 t7; harness fails t2 t3
    assert by["no_sorry"]["confusion"] == {"human_pass": {"pass": 2, "fail": 2},
                                           "human_fail": {"pass": 2, "fail": 0}}
    assert by["no_sorry"]["agreement"] == pytest.approx(2 / 6)
    assert by["no_sorry"]["precision_fail"] == 0.0 and by["no_sorry"]["recall_fail"] == 0.0
    # decision: t7 errored (not compared, counted); t1 t4 pass, t2 t3 fail, t5 passes
    d = by["decision"]
    assert d["confusion"] == {"human_pass": {"pass": 2, "fail": 1},
                              "human_fail": {"pass": 1, "fail": 1}}
    assert (d["compared"], d["agree"], d["errored"]) == (5, 3, 1)
    assert d["problem_ids"] == {"errored": ["t7"]}
    # kappa by hand: p_o = 3/5; people pass 3/5, harness passes 3/5: p_e = .36 + .16 = .52
    assert d["kappa"] == pytest.approx((0.6 - 0.52) / (1 - 0.52))
    assert by["no_boom"]["errored"] == 1
    # brevity has soft scores: AUC and a sweep; scores fall with length, so length rho is -1
    assert by["brevity"]["soft"] and by["brevity"]["auc"] is not None
    assert by["brevity"]["best_threshold"] is not None
    assert by["brevity"]["length_rho"] == pytest.approx(-1.0)
    assert by["no_sorry"]["soft"] is False and by["no_sorry"]["auc"] is None
    lab = result["labels"]
    assert lab["read"] == 10
    assert lab["skipped"] == {"unsure": 1}
    assert lab["unmatched"] == {"labels": 1, "transcripts": 1, "ids": ["ghost"]}
    assert lab["unknown_criterion"] == {"nosuch": 1}
    assert lab["errored_transcripts"] == 1
    # printed: every name whole, and what was not compared
    for name in ("no_sorry", "no_boom", "brevity", "decision"):
        assert name in out
    assert "1 match no transcript of the run (1 ids: ghost)" in out
    assert "'unsure' 1" in out and "'nosuch' 1" in out
    assert "decision: 1 errored (t7)" in out


def test_intervals_reproducible_with_a_seed(run_dir: Path, tmp_path: Path, cli) -> None:
    labels = tmp_path / "labels.jsonl"
    labels.write_text("".join(json.dumps({"transcript_id": t, "label": ok}) + "\n"
                              for t, ok in [("t1", True), ("t2", False), ("t3", True),
                                            ("t4", True), ("t5", False), ("t6", True)]))

    def once(*extra: str) -> dict:
        code, _, err = cli("calibrate", run_dir, "--labels", labels, "--bootstrap", "300",
                           *extra)
        assert code == 0, err
        return json.loads((run_dir / "calibration.json").read_text())

    a, b, c = once(), once(), once("--seed", "5")
    assert a["rows"] == b["rows"]
    assert a["bootstrap"] == {"resamples": 300, "seed": 0, "level": 95.0,
                              "method": "percentile, resampling the compared pairs"}
    assert a["rows"] != c["rows"]  # another seed, other intervals
    assert all(r["agreement"] == s["agreement"] for r, s in zip(a["rows"], c["rows"], strict=True))


def test_one_criterion_and_unknown_labels(run_dir: Path, tmp_path: Path, cli) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text(LABELS)
    code, _, err = cli("calibrate", run_dir, "--labels", labels)
    assert code == 2
    assert f"'good' (4 at {labels}:2 and more)" in err and "--map" in err
    code, out, err = cli("calibrate", run_dir, "--labels", labels, "--criterion", "no_sorry",
                         "--map", "good=pass,bad=fail,unsure=skip", "--bootstrap", "0")
    assert code == 0, err
    result = json.loads((run_dir / "calibration.json").read_text())
    assert [r["name"] for r in result["rows"]] == ["no_sorry"]
    assert result["rows"][0]["agreement_ci"] is None
    code, _, err = cli("calibrate", run_dir, "--labels", labels, "--criterion", "nope",
                       "--map", "good=pass,bad=fail,unsure=skip")
    assert code == 2 and "no such criterion" in err


def test_message_scoped_labels(tmp_path: Path, cli) -> None:
    suite = write_suite(tmp_path / "suite.yaml", """\
name: per-message
criteria:
  - {name: no_sorry, kind: regex, pattern: sorry, expect: absent, scope: message}
""")
    inputs = write_jsonl(tmp_path / "t.jsonl", [{"id": "m", "messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "sorry"},
        {"role": "user", "content": "again"}, {"role": "assistant", "content": "fine"}]}])
    assert cli("run", suite, inputs, "-o", tmp_path / "run", "--no-progress")[0] == 0
    labels = tmp_path / "labels.jsonl"
    labels.write_text(
        '{"transcript_id": "m", "criterion": "no_sorry", "message_index": 1, "label": "fail"}\n'
        '{"transcript_id": "m", "criterion": "no_sorry", "message_index": 3, "label": "fail"}\n'
        '{"transcript_id": "m", "criterion": "no_sorry", "message_index": 5, "label": "fail"}\n')
    code, _, err = cli("calibrate", tmp_path / "run", "--labels", labels, "--bootstrap", "0")
    assert code == 0, err
    row = json.loads((tmp_path / "run" / "calibration.json").read_text())["rows"][0]
    # message 1 failed (agrees), message 3 passed (disagrees), message 5 has no verdict
    assert row["confusion"]["human_fail"] == {"pass": 1, "fail": 1}
    assert row["missing"] == 1


def test_panel_agreement_and_abstentions_shown(tmp_path: Path, cli) -> None:
    suite = write_suite(tmp_path / "suite.yaml", """\
name: panel
criteria:
  - name: polite_panel
    kind: panel
    aggregate: unanimous
    on_disagreement: abstain
    members:
      - {name: no_sorry, kind: regex, pattern: sorry, flags: [IGNORECASE], expect: absent}
      - {name: no_apology, kind: regex, pattern: apolog, flags: [IGNORECASE], expect: absent}
""")
    answers = {"a": "Fine.", "b": "Sorry, I apologise.", "c": "Sorry.", "d": "Here you go."}
    inputs = write_jsonl(tmp_path / "t.jsonl", [
        {"id": tid, "messages": [{"role": "user", "content": "q"},
                                 {"role": "assistant", "content": text}]}
        for tid, text in answers.items()])
    assert cli("run", suite, inputs, "-o", tmp_path / "run", "--no-progress")[0] == 0
    labels = tmp_path / "labels.csv"
    labels.write_text("transcript_id,label\na,pass\nb,fail\nc,fail\nd,pass\n")
    code, out, err = cli("calibrate", tmp_path / "run", "--labels", labels, "--bootstrap", "0")
    assert code == 0, err
    result = json.loads((tmp_path / "run" / "calibration.json").read_text())
    found = result["judge_agreement"]["polite_panel"]
    assert found["agreement.units"] == 4 and "agreement.fleiss_kappa" in found
    assert found["abstained"] == 1
    assert "agreement.krippendorff_alpha" in out
    # the members disagree on c: the panel abstained, a skipped verdict, not compared
    row = rows(result)["polite_panel"]
    assert (row["compared"], row["skipped"]) == (3, 1)
    assert row["problem_ids"] == {"skipped": ["c"]}


def test_report_shows_calibration_escaped_and_flags_a_changed_run(tmp_path: Path, cli) -> None:
    suite = write_suite(tmp_path / "suite.yaml", """\
name: shown
criteria:
  - {name: no_sorry, kind: regex, pattern: sorry, expect: absent}
""")
    inputs = write_jsonl(tmp_path / "t.jsonl", [
        {"id": "a", "messages": [{"role": "user", "content": "q"},
                                 {"role": "assistant", "content": "fine"}]}])
    run_dir = tmp_path / "run"
    assert cli("run", suite, inputs, "-o", run_dir, "--no-progress")[0] == 0
    labels = tmp_path / "labels.jsonl"
    hostile = "<script>window.__pwned=1</script>"
    labels.write_text(json.dumps({"transcript_id": "a", "label": "pass"}) + "\n"
                      + json.dumps({"transcript_id": hostile, "label": "fail"}) + "\n")
    code, out, err = cli("calibrate", run_dir, "--labels", labels, "--bootstrap", "0")
    assert code == 0, err
    assert f"report: {run_dir / 'report.html'}" in out
    page = (run_dir / "report.html").read_text()
    assert 'id="calibration-table"' in page and 'data-calibration="no_sorry"' in page
    assert hostile not in page and "&lt;script&gt;window.__pwned=1&lt;/script&gt;" in page
    assert 'id="calibration-stale"' not in page
    # the run is reviewed again: the report says the calibration is out of date
    assert cli("run", suite, inputs, "-o", run_dir, "--overwrite", "--no-progress")[0] == 0
    assert 'id="calibration-stale"' in (run_dir / "report.html").read_text()


def test_labels_about_the_decision_only(run_dir: Path, tmp_path: Path, cli) -> None:
    labels = tmp_path / "labels.csv"
    labels.write_text("transcript_id,label,criterion\nt3,pass,decision\nt5,fail,\n")
    code, _, err = cli("calibrate", run_dir, "--labels", labels, "--bootstrap", "0")
    assert code == 0, err
    by = rows(json.loads((run_dir / "calibration.json").read_text()))
    assert by["decision"]["compared"] == 2  # t3 (its own label) and t5
    assert by["no_sorry"]["compared"] == 1  # t5 only: t3's label is about the decision
    code, _, err = cli("calibrate", run_dir, "--labels", labels, "--criterion", "decision",
                       "--bootstrap", "0")
    assert code == 0, err
    result = json.loads((run_dir / "calibration.json").read_text())
    assert [r["name"] for r in result["rows"]] == ["decision"]
    assert result["rows"][0]["confusion"] == {"human_pass": {"pass": 0, "fail": 1},
                                              "human_fail": {"pass": 1, "fail": 0}}


def test_an_incomplete_run_is_refused(run_dir: Path, tmp_path: Path, cli) -> None:
    meta = json.loads((run_dir / "run.json").read_text())
    (run_dir / "run.json").write_text(json.dumps({**meta, "state": "running"}))
    labels = tmp_path / "labels.csv"
    labels.write_text("transcript_id,label\nt1,pass\n")
    code, _, err = cli("calibrate", run_dir, "--labels", labels)
    assert code == 2 and "incomplete" in err and "--resume" in err
    assert not (run_dir / "calibration.json").exists()


def test_ids_print_with_terminal_escapes_shown(run_dir: Path, tmp_path: Path, cli) -> None:
    labels = tmp_path / "labels.jsonl"
    labels.write_text(json.dumps({"transcript_id": "evil\x1b[2J", "label": "pass"}) + "\n")
    code, out, err = cli("calibrate", run_dir, "--labels", labels, "--bootstrap", "0")
    assert code == 0, err
    assert "\x1b" not in out and "evil\\x1b[2J" in out
