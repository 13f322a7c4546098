"""`harness run` end to end: the run directory, exit codes, train.jsonl, resume after a kill."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from testutil import EXAMPLES, chat, read_jsonl, write_jsonl, write_suite

SUITE = "name: cli\nversion: '2'\ncriteria:\n" \
        "  - {name: no_sorry, kind: regex, pattern: sorry, expect: absent}\n" \
        "  - {name: soft, kind: python, function: 'lenscore:score', gate: false}\n"
LENSCORE = "def score(t):\n    return min(1.0, len(t.messages[-1].content) / 20)\n"


@pytest.fixture
def suite(tmp_path):
    (tmp_path / "lenscore.py").write_text(LENSCORE)
    return write_suite(tmp_path / "suite.yaml", SUITE)


@pytest.fixture
def corpus(tmp_path):
    return write_jsonl(tmp_path / "in.jsonl", [
        chat("q1", "a fine answer", id="good"),
        chat("q2", "sorry, no", id="bad"),
        "{not json",
        {"messages": [{"role": "user", "content": "only a question"}], "id": "q-only"},
        chat("q3", "x", id="weighted") | {"messages": [
            {"role": "system", "content": "s"}, {"role": "user", "content": "u"},
            {"role": "assistant", "content": "draft", "weight": 0},
            {"role": "user", "content": "again"},
            {"role": "assistant", "content": "final", "weight": 1, "reasoning": "hidden"}]},
    ])


def test_run_writes_every_output(cli, suite, corpus, tmp_path):
    out = tmp_path / "run"
    code, stdout, stderr = cli("run", suite, corpus, "-o", out)
    assert code == 0, stderr
    for name in ("results.parquet", "decisions.parquet", "train.jsonl",
                 "rejected.jsonl", "errors.jsonl", "summary.json"):
        assert (out / name).exists(), name
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["read"], summary["passed"], summary["failed"], summary["errored"]) == \
        (5, 3, 1, 1)
    assert summary["read"] == summary["passed"] + summary["failed"] + summary["errored"]
    assert summary["criteria"]["no_sorry"]["pass_rate"] == pytest.approx(3 / 4)
    assert "cli v2" in stdout and str(out / "train.jsonl") in stdout.replace("\n", "")

    results = pd.read_parquet(out / "results.parquet")
    assert {"transcript_id", "criterion", "kind", "outcome", "score", "evidence",
            "explanation", "latency_s"} <= set(results.columns)
    bad = results[(results.transcript_id == "bad") & (results.criterion == "no_sorry")].iloc[0]
    assert bad.outcome == "fail"
    assert json.loads(bad.evidence)[0] == {"message": 1, "start": 0, "end": 5, "text": "sorry",
                                           "field": "content"}
    decisions = pd.read_parquet(out / "decisions.parquet").set_index("transcript_id")
    assert decisions.loc["bad", "outcome"] == "fail"
    assert list(decisions.loc["bad", "failed"]) == ["no_sorry"]

    errors = read_jsonl(out / "errors.jsonl")
    assert [e["source"] for e in errors] == [f"{corpus}:3"]
    assert errors[0]["reason"].startswith("input: invalid JSON")
    [rejected] = read_jsonl(out / "rejected.jsonl")
    assert rejected["failed"] == ["no_sorry"]
    assert rejected["evidence"]["no_sorry"][0]["text"] == "sorry"


def test_train_jsonl_is_openai_chat_fine_tuning_format(cli, suite, corpus, tmp_path):
    out = tmp_path / "run"
    assert cli("run", suite, corpus, "-o", out)[0] == 0
    examples = read_jsonl(out / "train.jsonl")
    assert len(examples) == 3
    for example in examples:
        assert set(example) == {"messages"}
        for m in example["messages"]:
            assert m["role"] in {"system", "user", "assistant", "tool"}
            assert isinstance(m["content"], str)
            assert set(m) <= {"role", "content", "name", "tool_calls", "tool_call_id", "weight"}
            if "weight" in m:
                assert m["role"] == "assistant" and m["weight"] in (0, 1)
    weighted = next(e for e in examples if len(e["messages"]) == 5)
    assert [m.get("weight") for m in weighted["messages"]] == [None, None, 0, None, 1]


def test_exit_codes(cli, suite, corpus, tmp_path):
    assert cli("run", suite, corpus, "-o", tmp_path / "a", "--fail-under", "0.5")[0] == 0
    code, _, err = cli("run", suite, corpus, "-o", tmp_path / "b", "--fail-under", "0.9")
    assert code == 1 and "below --fail-under" in err
    code, _, err = cli("run", tmp_path / "missing.yaml", corpus, "-o", tmp_path / "c")
    assert code == 2 and err.count("\n") == 1 and "not found" in err
    code, _, err = cli("run", suite, tmp_path / "nope.jsonl", "-o", tmp_path / "d")
    assert code == 2 and "input file not found" in err
    assert cli("run", suite, corpus)[0] == 2  # -o is required
    code, _, err = cli("run", suite, corpus, "-o", tmp_path / "a")
    assert code == 2 and "--resume" in err  # refuses to mix two runs


def test_criteria_and_plugins_commands(cli):
    code, out, _ = cli("criteria")
    assert code == 0
    for kind in ("regex", "python", "max_turns"):
        assert kind in out
    assert "harness_criteria.regex" in out and "pattern" in out
    code, out, _ = cli("plugins")
    assert code == 0 and "harness-example-plugin" in out


def test_bundled_demo_suite_runs(cli, tmp_path):
    out = tmp_path / "demo"
    inputs = sorted((EXAMPLES / "transcripts").glob("*.jsonl"))
    code, _, err = cli("run", EXAMPLES / "suite.yaml", *inputs, "-o", out)
    assert code == 0, err
    summary = json.loads((out / "summary.json").read_text())
    assert summary["passed"] > 0 and summary["failed"] > 0 and summary["input_errors"] >= 4


KILLER = '''
import os, signal

def check(t):
    if os.environ.get("KILL_AT") == t.id:
        os.kill(os.getpid(), signal.SIGKILL)
    with open(os.environ["EVAL_LOG"], "a") as fh:
        fh.write(t.id + "\\n")
    return not t.id.endswith("7")
'''


def test_resume_after_kill_has_no_duplicates_and_loses_nothing(tmp_path):
    (tmp_path / "killer.py").write_text(KILLER)
    suite = write_suite(tmp_path / "s.yaml", "name: k\ncriteria:\n"
                        "  - {name: c, kind: python, function: 'killer:check'}\n")
    records = [chat(f"q{i}", f"a{i}", id=f"t{i:04d}") for i in range(1000)]
    records[500] = "{broken"
    corpus = write_jsonl(tmp_path / "in.jsonl", records)
    out, log = tmp_path / "run", tmp_path / "evaluated.log"
    # the criterion kills its own process: the main one, with one worker
    cmd = [sys.executable, "-m", "harness", "run", str(suite), str(corpus), "-o", str(out),
           "--no-progress", "--workers", "1"]
    env = {**os.environ, "EVAL_LOG": str(log), "KILL_AT": "t0777"}
    killed = subprocess.run(cmd, env=env, capture_output=True, text=True)
    assert killed.returncode == -signal.SIGKILL
    journaled = [json.loads(x)["decision"]["transcript_id"]
                 for x in (out / "journal.jsonl").read_text().splitlines()]
    assert 0 < len(journaled) < 1000
    first_pass = set(log.read_text().split())

    env.pop("KILL_AT")
    log.unlink()
    resumed = subprocess.run([*cmd, "--resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    re_evaluated = set(log.read_text().split())
    assert not re_evaluated & set(journaled), "resume re-evaluated decided transcripts"
    assert first_pass - set(journaled) <= re_evaluated  # the batch in flight was redone

    decisions = pd.read_parquet(out / "decisions.parquet")
    assert len(decisions) == 1000 and decisions.source.is_unique
    summary = json.loads((out / "summary.json").read_text())
    assert (summary["read"], summary["errored"]) == (1000, 1)
    assert summary["failed"] == sum(1 for i in range(1000) if i != 500 and i % 10 == 7)
    assert len(read_jsonl(out / "train.jsonl")) == summary["passed"]


def test_resume_refuses_a_changed_suite(cli, suite, corpus, tmp_path):
    out = tmp_path / "run"
    assert cli("run", suite, corpus, "-o", out)[0] == 0
    Path(suite).write_text(SUITE.replace("sorry", "apolog"))
    code, _, err = cli("run", suite, corpus, "-o", out, "--resume")
    assert err.strip().splitlines() == [
        f"harness: error: {out}: what decides the verdicts changed since this run started "
        "(criteria.no_sorry.config.pattern, criteria.no_sorry.name); start a new run "
        "directory (or --overwrite)"]


def test_criteria_lists_judge_backends_and_says_the_embedded_judge_is_poor(cli):
    code, out, _ = cli("criteria")
    text = " ".join(out.split())
    assert code == 0 and "openai" in text and "OpenAI-compatible" in text
    assert "local_models" in text and "poor judge" in text  # installed by `make`


# --- what a second new-user trial found (issue #24) ---------------------------------------------
def test_progress_counts_records_not_blank_lines(tmp_path, suite, cli):
    path = tmp_path / "blank.jsonl"
    path.write_text("\n" + json.dumps(chat("q", "fine answer here")) + "\n\n  \n"
                    + json.dumps(chat("q", "another fine one")) + "\n\n")
    from harness.inputs.reader import count_records

    assert count_records([path]) == 2
    code, _, err = cli("run", suite, path, "-o", tmp_path / "run", "--no-report")
    assert code == 0, err
    assert "reviewing 2 records" in err and "reviewed 2" in err


def test_an_existing_run_is_refused_before_anything_is_shown(tmp_path, suite, corpus, cli):
    assert cli("run", suite, corpus, "-o", tmp_path / "run", "--no-report")[0] == 0
    code, out, err = cli("run", suite, corpus, "-o", tmp_path / "run", "--no-report")
    assert code == 2
    assert err.strip().splitlines() == [
        f"harness: error: {tmp_path / 'run'} already holds a run: pass --resume to go on "
        "with it, --overwrite to start again, or choose another directory"]


def test_unreadable_inputs_count_in_the_error_budget_and_say_why_once(tmp_path, suite, cli):
    import pyarrow as pa
    import pyarrow.parquet as pq

    path = tmp_path / "chats.parquet"  # the chat sits in a column named "conversation"
    pq.write_table(pa.table({"conversation": ['[{"role": "user", "content": "hi"}]'] * 50}),
                   path)
    code, _, err = cli("run", suite, path, "-o", tmp_path / "run", "--no-report",
                       "--max-error-rate", "0.05")
    assert code == 3, err
    lines = [line for line in err.splitlines() if "every record of" in line]
    assert len(lines) == 1 and "(50)" in lines[0] and "--messages-column" in lines[0]
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["input_errors"] == 50 and summary["inputs_failed"][0]["records"] == 50


def test_a_criterion_that_errors_on_every_transcript_is_said_loudly(tmp_path, corpus, cli):
    (tmp_path / "boom.py").write_text("def score(t):\n    raise RuntimeError('boom')\n")
    suite = write_suite(tmp_path / "s.yaml", "name: loud\ncriteria:\n"
                        "  - {name: soft, kind: python, function: 'boom:score', gate: false}\n")
    code, _, err = cli("run", suite, corpus, "-o", tmp_path / "run", "--no-report")
    assert code == 0, err
    assert "criterion soft errored on every transcript" in err
    code, _, err = cli("run", suite, corpus, "-o", tmp_path / "run2", "--no-report",
                       "--max-error-rate", "0.5")
    assert code == 3, err


def test_a_bad_judge_override_is_blamed_on_judge_not_on_the_suite(tmp_path, corpus, cli):
    suite = write_suite(tmp_path / "s.yaml", "name: j\njudge: openai/gpt-4o-mini\ncriteria:\n"
                        "  - {name: fine, kind: llm_judge, rubric: 'ok? {{ last_assistant }}'}\n")
    code, _, err = cli("run", suite, corpus, "-o", tmp_path / "run", "--judge", "gpt-4o")
    assert code == 2
    assert err.strip() == ("harness: error: --judge 'gpt-4o': a judge is named PREFIX/MODEL "
                           "(e.g. openai/gpt-4o-mini)")


def test_resume_takes_changes_that_cannot_change_a_verdict_and_names_those_that_can(
        tmp_path, corpus, cli):
    suite = write_suite(tmp_path / "j.yaml", "name: j\njudge: {name: openai/m, base_url: "
                        "http://127.0.0.1:9/v1, max_concurrency: 2, max_attempts: 2}\n"
                        "criteria:\n  - {name: no_sorry, kind: regex, pattern: sorry, "
                        "expect: absent}\n")
    out = tmp_path / "run"
    judge = "{name: openai/x, base_url: 'http://127.0.0.1:9/v1', timeout_s: 5}"
    assert cli("run", suite, corpus, "-o", out, "--judge", judge, "--no-report")[0] == 0
    # keys reordered, runner settings raised: not a change of what decides a verdict
    suite.write_text(suite.read_text().replace("max_concurrency: 2, max_attempts: 2",
                                               "max_attempts: 9, max_concurrency: 64"))
    again = "{timeout_s: 60, base_url: 'http://127.0.0.1:9/v1', name: openai/x}"
    code, _, err = cli("run", suite, corpus, "-o", out, "--judge", again, "--resume",
                       "--no-report")
    assert code == 0, err
    code, _, err = cli("run", suite, corpus, "-o", out, "--judge", "openai/y", "--resume")
    assert code == 2 and "(--judge (base_url), --judge (name)" in err, err


def test_criteria_lists_the_keys_every_criterion_has(cli):
    code, out, _ = cli("criteria")
    assert code == 0
    flat = " ".join(out.split())
    assert "keys every criterion has" in flat
    for key in ("name", "kind", "gate=True", "weight=1.0", "scope='transcript'",
                "min_pass_rate=None", "version='1'", "description=''"):
        assert key in flat, key


def test_a_threshold_failure_shows_the_mean_it_compared(tmp_path, cli):
    """The score a threshold failure is about is the non-gate mean, not the decision's score
    (which counts the gates): decisions.parquet and the report show that one."""
    (tmp_path / "lenscore.py").write_text(LENSCORE)
    suite = write_suite(tmp_path / "t.yaml", SUITE + "threshold: 0.6\n")
    data = write_jsonl(tmp_path / "in.jsonl", [chat("q", "short", id="low")])
    code, _, err = cli("run", suite, data, "-o", tmp_path / "run")
    assert code == 0, err
    row = pd.read_parquet(tmp_path / "run" / "decisions.parquet").iloc[0]
    assert list(row["failed"]) == ["threshold"]
    assert row["threshold_score"] == pytest.approx(5 / 20)  # len("short") / 20, soft alone
    assert row["score"] == pytest.approx((1.0 + 0.25) / 2)  # the gate's 1.0 counted too
