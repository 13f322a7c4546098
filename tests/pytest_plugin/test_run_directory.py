"""A pytest run writes the run directory `harness run` writes, with or without xdist."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from pytest_plugin_helpers import (
    CHATS,
    hh_record,
    openai_record,
    sharegpt_record,
    write_corpus,
    write_jsonl,
)


def mixed_corpus(folder: Path, n: int = 12) -> list[Path]:
    """Every format, unreadable records among them, ``n`` conversations per format."""
    chats = [(f"{cid}-{i}", user, answer) for i in range(n // len(CHATS))
             for cid, user, answer in CHATS]
    return [
        write_jsonl(folder / "a-openai.jsonl", [openai_record(*c) for c in chats],
                    extra_lines=('{"messages": [broken', '{"messages": [{"role": "alien"}]}')),
        write_jsonl(folder / "b-sharegpt.jsonl", [sharegpt_record(*c) for c in chats]),
        write_jsonl(folder / "c-hh.jsonl", [hh_record(*c) for c in chats]),
        write_corpus(folder, "parquet", chats),
    ]


def records(frame: pd.DataFrame) -> list[dict[str, object]]:
    return json.loads(frame.to_json(orient="records"))


def comparable(run_dir: Path) -> dict[str, object]:
    """What must match between two runs: everything but timings and latencies."""
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.pop("timings")
    results = pd.read_parquet(run_dir / "results.parquet").drop(columns="latency_s")
    return {
        "summary": summary,
        "decisions": records(pd.read_parquet(run_dir / "decisions.parquet")),
        "results": records(results),
        "train": (run_dir / "train.jsonl").read_text(),
        "rejected": (run_dir / "rejected.jsonl").read_text(),
        "errors": (run_dir / "errors.jsonl").read_text(),
        "fingerprint": json.loads((run_dir / "run.json").read_text())["suite_fingerprint"],
    }


@pytest.fixture
def reference(pytester: pytest.Pytester, project) -> tuple[list[Path], dict[str, object]]:
    """The corpus and what `harness run` makes of it."""
    project()
    inputs = mixed_corpus(pytester.path)
    inputs = [Path(p.name) for p in inputs]  # relative: sources read `file:line` as spelt
    subprocess.run([sys.executable, "-m", "harness", "run", "suite.yaml", *map(str, inputs),
                    "-o", "cli-run", "--no-progress"], cwd=pytester.path, check=True,
                   capture_output=True)
    return inputs, comparable(pytester.path / "cli-run")


def test_a_pytest_run_writes_what_harness_run_writes(pytester, reference):
    inputs, expected = reference
    result = pytester.runpytest("--review-suite=suite.yaml", "--transcripts", *map(str, inputs),
                                "--review-out=py-run")
    summary = expected["summary"]
    assert summary["read"] == 12 * 5 + 2  # hh-rlhf pairs are two transcripts each
    assert summary["passed"] > 0 and summary["failed"] > 0 and summary["input_errors"] == 2
    result.stdout.fnmatch_lines([
        f"{summary['read']} transcripts decided: {summary['passed']} passed, "
        f"{summary['failed']} failed, {summary['errored']} errored",
        "run directory: *py-run  (train set: *py-run/train.jsonl)"])
    assert comparable(pytester.path / "py-run") == expected


def test_xdist_workers_results_merge_without_loss_or_duplicates(pytester, reference):
    inputs, expected = reference
    pytester.makepyfile(test_extra="""
        def test_has_user_turn(transcript):
            assert transcript.messages[0].role == "user"
        """)
    args = ["test_extra.py", "--review-suite=suite.yaml", "--transcripts", *map(str, inputs)]
    serial = pytester.runpytest(*args, "--review-out=serial").parseoutcomes()
    parallel = pytester.runpytest(*args, "-n", "2", "--review-out=parallel").parseoutcomes()
    assert {k: v for k, v in parallel.items() if k != "seconds"} == {
        k: v for k, v in serial.items() if k != "seconds"}
    # (4 suite criteria + test_extra) x 60 readable transcripts, 1 item per unreadable record
    assert serial["passed"] + serial["failed"] == 5 * 60 + 2
    merged = comparable(pytester.path / "parallel")
    assert merged == comparable(pytester.path / "serial")
    ids = [d["source"] for d in merged["decisions"]]
    assert len(ids) == len(set(ids)) == expected["summary"]["read"]


def test_an_existing_run_is_not_replaced_without_overwrite(pytester, project):
    project()
    corpus = write_corpus(pytester.path, "openai")
    args = ["--review-suite=suite.yaml", f"--transcripts={corpus}", "--review-out=out"]
    pytester.runpytest(*args).assert_outcomes(passed=14, failed=2)
    before = (pytester.path / "out" / "journal.jsonl").read_text()
    result = pytester.runpytest(*args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*out already holds a run: pass --review-overwrite*"])
    assert (pytester.path / "out" / "journal.jsonl").read_text() == before
    pytester.runpytest(*args, "--review-overwrite").assert_outcomes(passed=14, failed=2)


SLOW_PLUGIN = '''
from harness import Criterion, CriterionConfig, Verdict, hookimpl


class SlowConfig(CriterionConfig):
    word: str


class Slow(Criterion):
    """An expensive check (think: a judge): skipped once a cheaper gate failed."""

    kind = "slow_check"
    Config = SlowConfig
    cost = 3
    expensive = True

    def evaluate(self, transcript):
        found = self.config.word in transcript.last_assistant().content
        return Verdict(outcome="fail" if found else "pass", explanation=f"found={found}")


@hookimpl
def register_criterion_kinds(register):
    register(Slow)
'''

SKIP_SUITE = """\
name: skips
criteria:
  - name: judge_like
    kind: slow_check
    word: Canberra
  - name: per_message
    kind: regex
    scope: message
    pattern: "as an ai"
    flags: [IGNORECASE]
    expect: absent
  - name: no_secret_leak
    kind: regex
    pattern: "sk-[a-z]{20,}"
    expect: absent
"""


def test_message_scope_and_skipped_expensive_criteria_match_harness_run(pytester):
    pytester.mkdir("plugins").joinpath("slow.py").write_text(SLOW_PLUGIN)
    pytester.makefile(".yaml", skips=SKIP_SUITE)
    corpus = write_corpus(pytester.path, "hh-rlhf")
    subprocess.run([sys.executable, "-m", "harness", "--plugins-dir", "plugins", "run",
                    "skips.yaml", str(corpus), "-o", "cli-run", "--no-progress"],
                   cwd=pytester.path, check=True, capture_output=True)
    expected = comparable(pytester.path / "cli-run")
    # a failed transcript gate skips the judge; a failed message-scoped gate does not
    assert expected["summary"]["criteria"]["judge_like"]["skipped"] == 1
    assert expected["summary"]["criteria"]["per_message"]["fail"] == 5
    result = pytester.runpytest("--review-suite=skips.yaml", f"--transcripts={corpus}",
                                "--review-plugins-dir=plugins", "--review-out=py-run", "-rs")
    result.stdout.fnmatch_lines(["SKIPPED * skipped: gate 'no_secret_leak' already failed"])
    assert "gate 'per_message' already failed" not in result.stdout.str()
    assert comparable(pytester.path / "py-run") == expected


def test_a_judged_pytest_run_leaves_no_sqlite_side_files(pytester):
    """The judge cache is closed when the session ends: no `-wal`/`-shm` files are left
    beside `judge-cache.sqlite` (in the run directory, or wherever the cache is)."""
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "judges"))
    from chat_server import ChatServer

    with ChatServer() as server:
        pytester.makefile(".yaml", suite=f"""\
name: judged
judge: {{name: openai/j, base_url: "{server.base_url}"}}
criteria:
  - name: fine
    kind: llm_judge
    rubric: "Is this fine? {{{{ last_assistant }}}}"
""")
        corpus = write_jsonl(pytester.path / "c.jsonl",
                             [openai_record("a", "q", "an answer")])
        result = pytester.runpytest("--review-suite=suite.yaml", f"--transcripts={corpus}",
                                    "--review-out=out")
        result.assert_outcomes(passed=1)
        assert server.completions == 1
    files = {p.name for p in (pytester.path / "out").iterdir()}
    assert "judge-cache.sqlite" in files
    assert not {n for n in files if n.endswith(("-wal", "-shm"))}, files
