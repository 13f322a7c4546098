"""`harness run` and `harness.run` over folders, globs, .json files, URLs and saved datasets;
`--limit`, with and without `--resume`; the journal's numbering is the resolver's."""

from __future__ import annotations

import json
import os
import uuid
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from testutil import chat, read_jsonl, write_jsonl, write_suite

import harness
from harness.inputs import iter_entries, resolve_inputs
from harness.rundir import iter_journal

SUITE = "name: inputs\ncriteria:\n" \
        "  - {name: no_sorry, kind: regex, pattern: sorry, expect: absent}\n"


def answers(n: int, start: int = 0) -> list[dict]:
    return [chat(f"q{i}", "sorry, no" if i % 3 == 0 else f"answer {i}", id=f"t{i}")
            for i in range(start, start + n)]


@pytest.fixture
def project(tmp_path, monkeypatch) -> Path:
    """suite.yaml and data/: two JSONL files (one in a subfolder) and a .json array."""
    monkeypatch.chdir(tmp_path)
    write_suite(tmp_path / "suite.yaml", SUITE)
    (tmp_path / "data" / "more").mkdir(parents=True)
    write_jsonl(tmp_path / "data" / "a.jsonl", answers(4))
    write_jsonl(tmp_path / "data" / "more" / "b.jsonl", answers(3, 4) + ["{broken"])
    (tmp_path / "data" / "c.json").write_text(json.dumps(answers(2, 7), indent=2))
    return tmp_path


def decisions(run_dir: Path) -> list[tuple[str, str, str]]:
    return [(e["decision"]["transcript_id"], e["decision"]["source"], e["decision"]["outcome"])
            for e in iter_journal(run_dir)]


def summary(run_dir: Path) -> dict:
    return json.loads((Path(run_dir) / "summary.json").read_text())


def test_run_over_a_folder_a_glob_and_a_json_file(cli, project):
    code, _, err = cli("run", "suite.yaml", "data/", "-o", "by-folder", "--no-report")
    assert code == 0, err
    got = decisions(project / "by-folder")
    assert [source for _, source, _ in got] == [
        "data/a.jsonl:1", "data/a.jsonl:2", "data/a.jsonl:3", "data/a.jsonl:4",
        "data/c.json:1", "data/c.json:2",
        "data/more/b.jsonl:1", "data/more/b.jsonl:2", "data/more/b.jsonl:3",
        "data/more/b.jsonl:4"]
    assert summary(project / "by-folder")["read"] == 10
    meta = json.loads((project / "by-folder" / "run.json").read_text())
    assert [i["path"] for i in meta["inputs"]] == ["data/a.jsonl", "data/c.json",
                                                   "data/more/b.jsonl"]
    # the journal's seq is the resolver's numbering: what a Ray engine relies on
    journal = [orjson.loads(line) for line in (project / "by-folder" / "journal.jsonl")
               .read_bytes().splitlines()]
    numbering = {seq: position for seq, position, _ in iter_entries(resolve_inputs(["data/"]))}
    assert {e["seq"]: e["decision"]["source"] for e in journal} == numbering

    code, _, err = cli("run", "suite.yaml", "data/*.jsonl", "data/c.json", "-o", "by-glob",
                       "--no-report")
    assert code == 0, err
    assert [s for _, s, _ in decisions(project / "by-glob")] == [
        "data/a.jsonl:1", "data/a.jsonl:2", "data/a.jsonl:3", "data/a.jsonl:4",
        "data/c.json:1", "data/c.json:2"]
    assert (project / "by-glob" / "train.jsonl").exists()


@pytest.mark.parametrize(("spec", "message"), [
    ("missing/", "input file not found: missing/"),
    ("empty", "input folder empty holds no file harness can read"),
    ("data/*.parquet", "input pattern data/*.parquet matches no file"),
])
def test_inputs_naming_nothing_are_a_usage_error(cli, project, spec, message):
    (project / "empty").mkdir()
    code, out, err = cli("run", "suite.yaml", spec, "-o", "run")
    assert code == 2 and message in err and err.count("\n") == 1
    assert not (project / "run").exists()


def test_limit_then_resume_goes_on_to_the_same_outputs(cli, project):
    code, out, err = cli("run", "suite.yaml", "data", "-o", "full", "--no-report")
    assert code == 0, err

    code, out, err = cli("run", "suite.yaml", "data", "-o", "trial", "--limit", "3",
                         "--no-report")
    assert code == 0, err
    assert "--limit 3" in out
    assert summary(project / "trial")["read"] == 3
    assert decisions(project / "trial") == decisions(project / "full")[:3]
    assert len(read_jsonl(project / "trial" / "train.jsonl")) == 2  # t0 says sorry

    # --resume with a larger limit goes on up to it, then without one to the end
    code, out, err = cli("run", "suite.yaml", "data", "-o", "trial", "--resume", "--limit", "6",
                         "--no-report")
    assert code == 0, err
    assert summary(project / "trial")["read"] == 6
    assert summary(project / "trial")["timings"]["decided_this_run"] == 3
    code, out, err = cli("run", "suite.yaml", "data", "-o", "trial", "--resume", "--no-report")
    assert code == 0, err
    assert decisions(project / "trial") == decisions(project / "full")
    assert summary(project / "trial")["timings"]["decided_this_run"] == 4
    assert read_jsonl(project / "trial" / "train.jsonl") == \
        read_jsonl(project / "full" / "train.jsonl")


def test_limit_is_checked(cli, project):
    code, _, err = cli("run", "suite.yaml", "data", "-o", "run", "--limit", "0")
    assert code == 2 and "--limit" in err


def test_resume_over_a_folder_refuses_a_folder_that_changed(cli, project):
    code, _, err = cli("run", "suite.yaml", "data", "-o", "run", "--limit", "5", "--no-report")
    assert code == 0, err
    write_jsonl(project / "data" / "b-new.jsonl", answers(1, 20))
    code, _, err = cli("run", "suite.yaml", "data", "-o", "run", "--resume")
    assert code == 2 and "the inputs differ from the run's" in err
    (project / "data" / "b-new.jsonl").unlink()
    code, _, err = cli("run", "suite.yaml", "./data/", "-o", "run", "--resume", "--no-report")
    assert code == 0, err
    assert summary(project / "run")["read"] == 10


def test_a_saved_dataset_with_another_messages_column(cli, project):
    datasets = pytest.importorskip("datasets")
    rows = [{"id": r["id"], "chat": r["messages"]} for r in answers(5)]
    datasets.Dataset.from_list(rows).save_to_disk("saved")
    code, _, err = cli("run", "suite.yaml", "saved", "-o", "run", "--messages-column", "chat",
                       "--no-report")
    assert code == 0, err
    assert [(tid, outcome) for tid, _, outcome in decisions(project / "run")] == [
        ("t0", "fail"), ("t1", "pass"), ("t2", "pass"), ("t3", "fail"), ("t4", "pass")]
    assert json.loads((project / "run" / "run.json").read_text())["messages_column"] == "chat"
    # the column is part of what a resumed run must share
    code, _, err = cli("run", "suite.yaml", "saved", "-o", "run", "--resume")
    assert code == 2 and "--messages-column" in err


def test_parquet_with_messages_column_through_the_cli(cli, project):
    rows = [{"id": r["id"], "conversation": r["messages"]} for r in answers(4)]
    pq.write_table(pa.Table.from_pylist(rows), project / "chats.parquet")
    code, _, err = cli("run", "suite.yaml", "chats.parquet", "-o", "run",
                       "--messages-column", "conversation", "--no-report")
    assert code == 0, err
    assert summary(project / "run")["passed"] == 2 and summary(project / "run")["errored"] == 0


def test_python_run_reads_memory_urls_with_a_limit(project):
    fsspec = pytest.importorskip("fsspec")
    fs = fsspec.filesystem("memory")
    root = f"memory://harness-{uuid.uuid4().hex[:8]}"
    try:
        fs.pipe(f"{root}/corpus/part-0.jsonl", b"\n".join(orjson.dumps(r) for r in answers(3)))
        fs.pipe(f"{root}/corpus/part-1.jsonl", b"\n".join(orjson.dumps(r)
                                                          for r in answers(3, 3)))
        result = harness.run("suite.yaml", f"{root}/corpus/", "run", limit=4, workers=1,
                             report=False)
        assert result["read"] == 4
        assert [s for _, s, _ in decisions(project / "run")][-1] == \
            f"{root}/corpus/part-1.jsonl:1"
        result = harness.run("suite.yaml", f"{root}/corpus/", "run", resume=True, workers=1,
                             report=False)
        assert (result["read"], result["passed"]) == (6, 4)
        # an input that changed since is refused when the outputs are read again
        fs.pipe(f"{root}/corpus/part-1.jsonl", orjson.dumps(chat("q", "changed")))
        with pytest.raises(harness.rundir.RunDirError, match="changed since the run"):
            decisions(project / "run")
    finally:
        fs.rm(root, recursive=True)


def test_review_reads_a_folder(project):
    got = list(harness.review("suite.yaml", "data"))
    assert len(got) == 10 and got[-1].outcome == "error"


def test_a_touched_input_still_rebuilds_an_edited_one_does_not(cli, project):
    code, _, err = cli("run", "suite.yaml", "data/", "-o", "run", "--no-report")
    assert code == 0, err
    before = decisions(project / "run")
    a = project / "data" / "a.jsonl"
    a.touch()  # same bytes, a new modification time
    os.utime(a, ns=(a.stat().st_atime_ns, a.stat().st_mtime_ns + 10**9))
    assert decisions(project / "run") == before
    code, _, err = cli("report", "run")
    assert code == 0, err
    a.write_bytes(a.read_bytes().replace(b"answer 1", b"answer 9"))  # the same size, edited
    with pytest.raises(harness.rundir.RunDirError, match="changed since the run"):
        decisions(project / "run")


def test_relink_points_a_run_at_moved_inputs(cli, project):
    code, _, err = cli("run", "suite.yaml", "data/", "-o", "run", "--no-report")
    assert code == 0, err
    before = decisions(project / "run")
    (project / "data").rename(project / "moved")
    code, _, err = cli("report", "run")
    assert code == 2 and "harness relink" in err and "is gone" in err
    # the wrong files are refused, and nothing changes
    code, _, err = cli("relink", "run", "moved/a.jsonl")
    assert code == 2 and "read 3 input file(s)" in err
    (project / "other").mkdir()
    for name in ("a.jsonl", "c.json"):
        (project / "other" / name).write_bytes((project / "moved" / name).read_bytes())
    (project / "other" / "more").mkdir()
    edited = (project / "moved" / "more" / "b.jsonl").read_bytes().replace(b"q4", b"q5")
    (project / "other" / "more" / "b.jsonl").write_bytes(edited)
    code, _, err = cli("relink", "run", "other/")
    assert code == 2 and "bytes differ" in err
    code, _, err = cli("relink", "run", "moved/")
    assert code == 0, err
    assert decisions(project / "run") == before  # records keep the names they were known by
    code, _, err = cli("report", "run")
    assert code == 0, err
