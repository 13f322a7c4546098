"""Two different records with one id: warned about as the run reads them, counted in the summary,
and refused by `harness calibrate` (a label could not say which record it is about)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from testutil import chat, write_jsonl, write_suite

SUITE = """\
name: dup-ids
version: "1"
criteria:
  - name: no_sorry
    kind: regex
    pattern: "sorry"
    flags: [IGNORECASE]
    expect: absent
"""


def reviewed(tmp_path: Path, cli, records: list) -> Path:
    suite = write_suite(tmp_path / "suite.yaml", SUITE)
    inputs = write_jsonl(tmp_path / "in.jsonl", records)
    code, _, err = cli("run", suite, inputs, "-o", tmp_path / "run", "--no-progress")
    assert code == 0, err
    return tmp_path / "run"


def test_a_repeated_id_is_warned_about_and_counted(tmp_path):
    suite = write_suite(tmp_path / "suite.yaml", SUITE)
    inputs = write_jsonl(tmp_path / "in.jsonl", [
        chat("2 + 2?", "4", id="dup"), chat("Capital of France?", "Sorry, no.", id="dup"),
        chat("3 + 3?", "6", id="unique")])
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(suite), str(inputs),
                           "-o", str(tmp_path / "run"), "--no-progress"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "harness: warning: transcript id 'dup' at " in done.stderr
    assert "in.jsonl:2 is another record's id too" in done.stderr
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["duplicate_ids"] == 1
    assert summary["read"] == 3  # both records were reviewed: nothing is dropped


def test_identical_records_without_ids_are_not_an_id_clash(tmp_path, cli, caplog):
    """Records without an `id` get a hash of their content: the same id is the same record."""
    run_dir = reviewed(tmp_path, cli, [chat("2 + 2?", "4"), chat("2 + 2?", "4")])
    assert "warning" not in caplog.text
    assert json.loads((run_dir / "summary.json").read_text())["duplicate_ids"] == 0


def test_calibrate_refuses_a_label_on_an_ambiguous_id(tmp_path, cli):
    run_dir = reviewed(tmp_path, cli, [
        chat("2 + 2?", "4", id="dup"), chat("Capital of France?", "Sorry, no.", id="dup"),
        chat("3 + 3?", "6", id="unique")])
    labels = tmp_path / "labels.csv"
    labels.write_text("transcript_id,label\ndup,pass\nunique,pass\n")
    code, out, err = cli("calibrate", run_dir, "--labels", labels, "--bootstrap", "0")
    assert code == 2
    assert "'dup'" in err and "in.jsonl:1" in err and "in.jsonl:2" in err
    assert "unique ids" in err
    assert not (run_dir / "calibration.json").exists()
    # labels that avoid the ambiguous id are fine
    labels.write_text("transcript_id,label\nunique,pass\n")
    code, _, err = cli("calibrate", run_dir, "--labels", labels, "--bootstrap", "0")
    assert code == 0, err
