"""What a run directory promises: nothing lost, nothing twice, one writer, a state that tells.

Each test reproduces a failure a fault campaign found (see the README's Guarantees section).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pandas as pd
import pytest
from testutil import chat, read_jsonl, write_jsonl, write_suite

from harness import outputs
from harness.rundir import JOURNAL, RunDirError, RunWriter, read_meta
from harness.suite import load_suite

SUITE = ("name: g\ncriteria:\n"
         "  - {name: no_sorry, kind: regex, pattern: sorry, expect: absent}\n"
         "  - {name: flaky, kind: python, function: 'flaky:check', gate: false}\n")
FLAKY = ("def check(t):\n"
         "    if t.messages[-1].content.endswith('7'):\n"
         "        raise RuntimeError('cannot tell')\n"
         "    return 1.0\n")
N = 60


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "flaky.py").write_text(FLAKY)
    write_suite(tmp_path / "suite.yaml", SUITE)
    records = [chat(f"q{i}", "sorry" if i % 5 == 0 else f"answer {i}", id=f"t{i}")
               for i in range(N)]
    records[13] = "{broken"
    write_jsonl(tmp_path / "data.jsonl", records)
    return tmp_path


def decisions(run: Path) -> pd.DataFrame:
    return pd.read_parquet(run / "decisions.parquet")


def interrupt(run: Path, keep: int) -> None:
    """Leave the run as a kill would: the journal's first ``keep`` lines, state running."""
    lines = (run / JOURNAL).read_bytes().splitlines(keepends=True)
    (run / JOURNAL).write_bytes(b"".join(lines[:keep]))
    meta = read_meta(run)
    (run / "run.json").write_text(json.dumps({**meta, "state": "running"}))


def test_resume_with_another_spelling_of_the_inputs_adds_no_duplicates(cli, project):
    assert cli("run", "suite.yaml", "data.jsonl", "-o", "run", "--workers", "1")[0] == 0
    clean = decisions(project / "run")
    for spelling in ("./data.jsonl", str(project / "data.jsonl"), "../" + project.name +
                     "/data.jsonl"):
        interrupt(project / "run", keep=N // 2)
        code, _, err = cli("run", "suite.yaml", spelling, "-o", "run", "--resume")
        assert code == 0, err
        again = decisions(project / "run")
        assert len(again) == N and again.transcript_id.is_unique
        assert again[["transcript_id", "outcome"]].equals(clean[["transcript_id", "outcome"]])


def test_resume_refuses_other_inputs(cli, project):
    assert cli("run", "suite.yaml", "data.jsonl", "-o", "run")[0] == 0
    write_jsonl(project / "other.jsonl", [chat("a", "b")])
    code, _, err = cli("run", "suite.yaml", "other.jsonl", "-o", "run", "--resume")
    assert code == 2 and "inputs differ" in err


def test_a_second_run_on_the_same_directory_is_refused(cli, project):
    writer = RunWriter(project / "run", load_suite(project / "suite.yaml"), ["data.jsonl"])
    try:
        code, _, err = cli("run", "suite.yaml", "data.jsonl", "-o", "run", "--resume")
        assert code == 2 and "in use by another harness run" in err
    finally:
        writer.release()
    assert cli("run", "suite.yaml", "data.jsonl", "-o", "run", "--resume")[0] == 0


def test_the_journal_is_idempotent_by_transcript(cli, project):
    assert cli("run", "suite.yaml", "data.jsonl", "-o", "run")[0] == 0
    journal = project / "run" / JOURNAL
    lines = journal.read_bytes().splitlines(keepends=True)
    journal.write_bytes(b"".join(lines + lines[:5]))  # lines written twice
    summary = outputs.finalize(project / "run")
    assert summary["read"] == N and len(decisions(project / "run")) == N


@pytest.mark.parametrize("garbage", [b"garbage\n", b"{}\n", b"\x00\x00\x00\n",
                                     b'{"seq": 3, "sub": 0, "decision": {"outc\n'])
def test_corrupted_journal_lines_are_skipped_and_reviewed_again(cli, project, garbage):
    assert cli("run", "suite.yaml", "data.jsonl", "-o", "run")[0] == 0
    clean = decisions(project / "run")
    journal = project / "run" / JOURNAL
    lines = journal.read_bytes().splitlines(keepends=True)
    lines[10] = garbage  # a middle line is lost: its transcript is reviewed again on resume
    journal.write_bytes(b"".join(lines))
    interrupt(project / "run", keep=len(lines))
    code, _, err = cli("run", "suite.yaml", "data.jsonl", "-o", "run", "--resume")
    assert code == 0, err
    summary = json.loads((project / "run" / "summary.json").read_text())
    assert summary["read"] == N and summary["bad_journal_lines"] == 1
    assert decisions(project / "run").equals(clean)
    assert cli("export", "run", "-o", "sft.jsonl")[0] == 0
    assert cli("report", "run")[0] == 0


def test_consumers_refuse_an_incomplete_run(cli, project):
    assert cli("run", "suite.yaml", "data.jsonl", "-o", "run")[0] == 0
    assert cli("run", "suite.yaml", "data.jsonl", "-o", "done")[0] == 0
    interrupt(project / "run", keep=20)
    for args in (("export", "run", "-o", "x.jsonl"), ("report", "run"), ("diff", "done", "run"),
                 ("diff", "run", "done")):
        code, _, err = cli(*args)
        assert code == 2 and "incomplete" in err, args
    assert not (project / "x.jsonl").exists()


def test_a_killed_finalize_leaves_a_state_that_says_so(cli, project, monkeypatch):
    assert cli("run", "suite.yaml", "data.jsonl", "-o", "run")[0] == 0
    before = (project / "run" / "summary.json").read_text()
    real = outputs.iter_journal

    def dies_midway(*args, **kwargs):
        for n, entry in enumerate(real(*args, **kwargs)):
            if n == 30:
                raise KeyboardInterrupt  # as a kill would, mid-way through the outputs
            yield entry

    with monkeypatch.context() as m, pytest.raises(KeyboardInterrupt):
        m.setattr(outputs, "iter_journal", dies_midway)
        outputs.finalize(project / "run")
    assert read_meta(project / "run")["state"] == "finalizing"
    assert (project / "run" / "summary.json").read_text() == before  # old outputs untouched
    assert cli("export", "run", "-o", "x.jsonl")[0] == 2
    assert cli("run", "suite.yaml", "data.jsonl", "-o", "run", "--resume")[0] == 0
    assert read_meta(project / "run")["state"] == "complete"
    assert len(decisions(project / "run")) == N


def test_overwrite_clears_the_previous_runs_outputs_first(cli, project):
    assert cli("run", "suite.yaml", "data.jsonl", "-o", "run")[0] == 0
    other = write_suite(project / "other.yaml", "name: other\ncriteria:\n"
                        "  - {name: never, kind: regex, pattern: zzz, expect: absent}\n")
    writer = RunWriter(project / "run", load_suite(other), ["data.jsonl"], overwrite=True)
    writer.release()  # killed right after it started
    for name in ("train.jsonl", "summary.json", "results.parquet", "report.html"):
        assert not (project / "run" / name).exists(), name
    assert cli("export", "run", "-o", "x.jsonl")[0] == 2


def test_every_criterion_error_is_counted_and_listed(cli, project):
    code, _, err = cli("run", "suite.yaml", "data.jsonl", "-o", "run")
    assert code == 0
    erring = {f"t{i}" for i in range(N) if str(i).endswith("7") and i % 5 and i != 13}
    summary = json.loads((project / "run" / "summary.json").read_text())
    assert summary["criterion_errors"] == summary["transcripts_with_errors"] == len(erring)
    listed = {e["transcript_id"]: e for e in read_jsonl(project / "run" / "errors.jsonl")
              if e["kind"] == "criterion"}
    assert set(listed) == erring
    assert all(e["decision"] == "pass" and e["errored"] == ["flaky"] for e in listed.values())
    assert f"{len(erring)} criterion error(s)" in err


def test_max_error_rate_fails_the_run(cli, project):
    code, _, err = cli("run", "suite.yaml", "data.jsonl", "-o", "run", "--max-error-rate",
                       "0.01")
    assert code == 3 and "--max-error-rate" in err
    assert cli("run", "suite.yaml", "data.jsonl", "-o", "ok", "--max-error-rate", "0.2")[0] == 0


@pytest.mark.parametrize("args, message", [
    (("--fail-under", "90"), "between 0 and 1"),
    (("--max-error-rate", "5"), "between 0 and 1"),
    (("--workers", "0"), ">= 1"),
])
def test_option_values_are_checked(cli, project, args, message):
    code, _, err = cli("run", "suite.yaml", "data.jsonl", "-o", "run", *args)
    assert code == 2 and message in err


def test_a_file_as_run_directory_is_a_usage_error(cli, project):
    (project / "taken").write_text("not a folder")
    code, _, err = cli("run", "suite.yaml", "data.jsonl", "-o", "taken")
    assert code == 2 and "a file is there" in err and "Traceback" not in err
    assert (project / "taken").read_text() == "not a folder"


def test_run_json_records_the_options(cli, project):
    assert cli("run", "suite.yaml", "data.jsonl", "-o", "run", "--workers", "2",
               "--all-criteria")[0] == 0
    meta = read_meta(project / "run")
    assert meta["options"]["workers"] == 2 and meta["options"]["all_criteria"] is True
    assert meta["state"] == "complete"
    assert meta["inputs"][0]["resolved"] == str(project / "data.jsonl")
    # another --all-criteria is another run: resuming it is refused
    code, _, err = cli("run", "suite.yaml", "data.jsonl", "-o", "run", "--resume")
    assert code == 2 and "changed since this run started (--all-criteria)" in err


def test_lock_is_released_when_the_run_ends(project):
    suite = load_suite(project / "suite.yaml")
    RunWriter(project / "run", suite, ["data.jsonl"]).release()
    with pytest.raises(RunDirError, match="already holds a run"):
        RunWriter(project / "run", suite, ["data.jsonl"])
    RunWriter(project / "run", suite, ["data.jsonl"], resume=True).release()
    assert os.path.exists(project / "run" / JOURNAL)


MEDDLER = ("from harness import Verdict\n"
           "def meddle(t):\n"
           "    t.messages[-1].content = 'HACKED'\n"
           "    t.messages.append(t.messages[0])\n"
           "    t.id = 'stolen'\n"
           "    return True\n"
           "def unrecordable(t):\n"
           "    if t.id == 't3':\n"
           "        return Verdict(outcome='pass', details={'x': object()})\n"
           "    return True\n")


def test_a_criterion_cannot_change_the_training_data(cli, project):
    (project / "meddler.py").write_text(MEDDLER)
    write_suite(project / "meddle.yaml", "name: m\ncriteria:\n"
                "  - {name: meddle, kind: python, function: 'meddler:meddle'}\n")
    assert cli("run", "meddle.yaml", "data.jsonl", "-o", "run")[0] == 0
    train = read_jsonl(project / "run" / "train.jsonl")
    assert len(train) == N - 1 and not any("HACKED" in json.dumps(t) for t in train)
    assert all(len(t["messages"]) == 2 for t in train)
    assert "stolen" not in set(decisions(project / "run").transcript_id)


def test_a_decision_that_cannot_be_recorded_is_that_transcripts_error(cli, project):
    (project / "meddler.py").write_text(MEDDLER)
    write_suite(project / "odd.yaml", "name: o\ncriteria:\n"
                "  - {name: odd, kind: python, function: 'meddler:unrecordable'}\n")
    for workers in ("1", "2"):
        code, _, err = cli("run", "odd.yaml", "data.jsonl", "-o", f"run{workers}",
                           "--workers", workers)
        assert code == 0, err
        summary = json.loads((project / f"run{workers}" / "summary.json").read_text())
        assert (summary["read"], summary["errored"]) == (N, 2)  # t3, and the broken line
        [bad] = [e for e in read_jsonl(project / f"run{workers}" / "errors.jsonl")
                 if e["kind"] == "criterion"]
        assert bad["transcript_id"] == "t3" and "could not be recorded" in bad["reason"]
