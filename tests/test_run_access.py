"""harness.open_run: a run directory's summary, typed, and its tables as DataFrames."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from testutil import EXAMPLES, chat, read_jsonl, write_jsonl

import harness

SUITE = EXAMPLES / "suite.yaml"


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    folder = tmp_path_factory.mktemp("access")
    records = [chat("q", "Sure: 4."), chat("q", "As an AI language model, no."),
               chat("q", "Sure: 4."), "{broken", chat("q2", "It is 12.")]
    corpus = write_jsonl(folder / "c.jsonl", records)
    harness.run(SUITE, corpus, folder / "run", workers=1, report=False)
    return folder / "run"


def test_summary_is_typed_and_tables_match_the_files(run_dir):
    run = harness.open_run(run_dir)
    raw = json.loads((run_dir / "summary.json").read_text())
    s = run.summary
    assert isinstance(s, harness.RunSummary) and s.state == "complete"
    counts = (s.read, s.passed, s.failed, s.errored)
    assert counts == (raw["read"], raw["passed"], raw["failed"], raw["errored"]) == (5, 3, 1, 1)
    assert s.train_duplicates == 1 and s.suite.name == raw["suite"]["name"]
    assert s.criteria["no_ai_boilerplate"].failed == raw["criteria"]["no_ai_boilerplate"]["fail"]
    assert list(s.criteria) == list(raw["criteria"])
    assert list(run.decisions["outcome"]) == ["pass", "fail", "pass", "error", "pass"]
    assert set(run.results["criterion"]) >= set(s.criteria)
    train_lines = len(read_jsonl(run_dir / "train.jsonl"))
    assert len(run.train) == s.passed - s.train_duplicates == train_lines
    assert list(run.rejected["failed"]) == [["no_ai_boilerplate"]]
    assert list(run.errors["kind"]) == ["input"]
    assert "suite" in run.meta and "complete" in repr(run)


def test_tables_are_read_on_first_access_then_kept(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    run = harness.open_run(copy)
    decisions = run.decisions                   # read now
    (copy / "decisions.parquet").unlink()
    (copy / "results.parquet").unlink()
    assert run.decisions is decisions            # kept, not read again
    with pytest.raises(harness.IncompleteRunError, match="results.parquet is missing"):
        run.results                              # noqa: B018 - never read before: read now


def test_a_folder_that_is_not_a_run(tmp_path):
    with pytest.raises(harness.RunDirError, match="not a run directory"):
        harness.open_run(tmp_path)
    with pytest.raises(harness.RunDirError, match="not a run directory"):
        harness.open_run(tmp_path / "nowhere")


def test_an_unfinished_run_is_refused(run_dir, tmp_path):
    import shutil

    copy = tmp_path / "run"
    shutil.copytree(run_dir, copy)
    meta = json.loads((copy / "run.json").read_text())
    (copy / "run.json").write_text(json.dumps({**meta, "state": "running"}))  # as a kill leaves it
    with pytest.raises(harness.IncompleteRunError, match="incomplete.*--resume"):
        harness.open_run(copy)
    (copy / "run.json").write_text(json.dumps({**meta, "state": "stopped"}))
    with pytest.raises(harness.IncompleteRunError):
        harness.open_run(copy)
    assert harness.open_run(copy, allow_stopped=True).summary.read == 5


def test_the_readme_python_api_examples_run(tmp_path, monkeypatch):
    import re

    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, flags=re.S)
    [run_block] = [b for b in blocks if "harness.run(" in b]
    [frame_block] = [b for b in blocks if "harness.review_frame(" in b]
    [open_block] = [b for b in blocks if "harness.open_run(" in b]
    (tmp_path / "examples").symlink_to(root / "examples")
    monkeypatch.chdir(tmp_path)
    scope: dict = {"harness": harness}
    for block in (run_block, frame_block, open_block):
        exec(compile(block, "README.md", "exec"), scope)  # noqa: S102 - the README's own code
    assert scope["run"].summary.read == scope["summary"]["read"]
    assert set(scope["out"]["outcome"]) <= {"pass", "fail", "error"}


def test_train_rows_carry_their_transcript_id_and_source(tmp_path):
    """Each row of `open_run(...).train` says which transcript it is, duplicates left out of
    train.jsonl notwithstanding; `decisions` says which line of train.jsonl holds each one."""
    records = [chat("q", "Sure: 4.", id="first"), chat("q", "As an AI language model, no.",
                                                       id="refused"),
               chat("q", "Sure: 4.", id="again"), chat("q2", "It is 12.", id="other")]
    harness.run(SUITE, write_jsonl(tmp_path / "c.jsonl", records), tmp_path / "run",
                workers=1, report=False)
    run = harness.open_run(tmp_path / "run")
    assert list(run.train["transcript_id"]) == ["first", "other"]
    assert [s.rsplit(":", 1)[1] for s in run.train["source"]] == ["1", "4"]
    assert run.train["messages"][1][-1]["content"] == "It is 12."
    lines = dict(zip(run.decisions["transcript_id"], run.decisions["train_line"], strict=True))
    assert lines["first"] == 0 and lines["other"] == 1
    assert pd_isna(lines["refused"]) and pd_isna(lines["again"])  # failed; a duplicate


def pd_isna(value) -> bool:
    import pandas as pd

    return bool(pd.isna(value))
