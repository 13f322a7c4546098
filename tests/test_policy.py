"""The decision policy (harness.policy), through the public API."""

from __future__ import annotations

from pathlib import Path

import harness

SUITE = """\
name: masked
criteria:
  - name: no_sorry
    kind: regex
    scope: message
    pattern: "sorry"
    flags: [IGNORECASE]
    expect: absent
"""


def _transcript(weight: float | None) -> dict:
    bad = {"role": "assistant", "content": "Sorry, 17 x 24 = 398."}
    if weight is not None:
        bad["weight"] = weight
    return {"id": f"w{weight}", "messages": [
        {"role": "user", "content": "17 x 24?"}, bad,
        {"role": "user", "content": "No, that is wrong."},
        {"role": "assistant", "content": "17 x 24 = 408."}]}


def test_a_failed_verdict_on_a_masked_turn_is_recorded_but_decides_nothing(tmp_path: Path):
    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    masked, trained, explicit = harness.review(
        suite, [_transcript(0), _transcript(None), _transcript(1)])
    assert masked.outcome == "pass" and not masked.failed
    assert [(v.message_index, v.outcome) for v in masked.verdicts] == [(1, "fail"), (3, "pass")]
    assert trained.outcome == explicit.outcome == "fail"
    assert trained.failed == explicit.failed == ["no_sorry"]


def test_the_diff_of_a_run_and_its_correction_names_the_verdict_the_masking_changed(
        tmp_path: Path):
    from testutil import write_jsonl

    from harness.report.diff import compare

    suite = tmp_path / "suite.yaml"
    suite.write_text(SUITE)
    original, corrected = _transcript(None), _transcript(0)
    corrected["id"] = original["id"]
    for name, record in (("a", original), ("b", corrected)):
        harness.run(suite, write_jsonl(tmp_path / f"{name}.jsonl", [record]), tmp_path / name,
                    workers=1, report=False)
    diff = compare(tmp_path / "a", tmp_path / "b")
    assert [(f["a"], f["b"]) for f in diff["flips"]] == [("fail", "pass")]
    assert diff["flip_causes"] == [{"cause": "no_sorry fail -> pass", "flips": 1}]
