"""The Python API: harness.run writes the run directory `harness run` writes."""

from __future__ import annotations

import json

import pyarrow.parquet as pq
import pytest
from testutil import EXAMPLES, chat, write_jsonl

import harness
from harness.rundir import RunDirError

SUITE = EXAMPLES / "suite.yaml"
CORPUS = EXAMPLES / "transcripts" / "openai.jsonl"


def _outputs(run_dir):
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.pop("timings")
    return (summary, pq.read_table(run_dir / "decisions.parquet").to_pylist(),
            (run_dir / "train.jsonl").read_text(), (run_dir / "rejected.jsonl").read_text())


def test_run_from_python_writes_what_the_cli_writes(tmp_path, cli):
    summary = harness.run(SUITE, CORPUS, tmp_path / "py", workers=1)
    code, _, err = cli("run", SUITE, CORPUS, "-o", tmp_path / "cli", "--workers", "1")
    assert code == 0, err
    assert _outputs(tmp_path / "py") == _outputs(tmp_path / "cli")
    written = _outputs(tmp_path / "py")[0]
    assert summary["state"] == "complete" and summary["read"] == written["read"]
    assert (tmp_path / "py" / "report.html").is_file()


def test_run_refuses_a_used_directory_then_resumes_and_overwrites(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", [chat("q", f"answer {i}") for i in range(5)])
    first = harness.run(SUITE, [corpus], tmp_path / "run", workers=1, report=False)
    with pytest.raises(RunDirError, match="already holds a run"):
        harness.run(SUITE, [corpus], tmp_path / "run", workers=1)
    resumed = harness.run(SUITE, [corpus], tmp_path / "run", resume=True, workers=1,
                          report=False)
    assert resumed["timings"]["skipped_as_done"] == 5
    assert resumed["timings"]["decided_this_run"] == 0
    assert resumed["passed"] == first["passed"] == 5
    again = harness.run(SUITE, [corpus], tmp_path / "run", overwrite=True, workers=1,
                        report=False)
    assert again["timings"]["decided_this_run"] == 5


def test_run_with_an_open_engine_keeps_the_engine_options(tmp_path):
    corpus = write_jsonl(tmp_path / "c.jsonl", [chat("q", "As an AI language model, no.")])
    with harness.Engine(SUITE) as engine:
        summary = harness.run(engine, corpus, tmp_path / "run", report=False)
        assert summary["failed"] == 1
        with pytest.raises(TypeError, match="judge belong to the Engine"):
            harness.run(engine, corpus, tmp_path / "other", judge="openai/x")
