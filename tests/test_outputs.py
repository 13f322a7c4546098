"""A fresh run writes its output files as it decides (one pass over the inputs); a resumed or
stopped run, or an engine that takes no views, has finalize read the journal and the inputs
again. Both ways give the same files."""

from __future__ import annotations

import json
import random
from pathlib import Path

import core_corpus
import pandas as pd
import pytest

import harness
import harness.outputs
from harness.outputs import LiveOutputs, finalize
from harness.rundir import read_meta
from harness.stages import Finished

FILES = ("train.jsonl", "rejected.jsonl", "errors.jsonl")


def outputs(run_dir: Path) -> dict:
    """Every output of a run, as comparable values (timings left out)."""
    summary = json.loads((run_dir / "summary.json").read_text())
    summary.pop("timings")
    return {"summary": summary, **{name: (run_dir / name).read_bytes() for name in FILES},
            **{name: pd.read_parquet(run_dir / name).drop(columns="latency_s", errors="ignore")
               .to_json()  # NaN as null: comparable; latencies differ from run to run
               for name in ("results.parquet", "decisions.parquet")}}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    return core_corpus.write(tmp_path_factory.mktemp("corpus"))


@pytest.mark.parametrize("workers", [1, 2])
def test_a_fresh_run_writes_its_outputs_without_reading_the_inputs_again(
        corpus: Path, tmp_path: Path, monkeypatch, workers: int) -> None:
    run_dir = tmp_path / "run"
    with monkeypatch.context() as patched:
        def no_second_pass(*args, **kwargs):
            raise AssertionError("finalize read the journal and the inputs again")

        patched.setattr(harness.outputs, "iter_journal", no_second_pass)
        summary = harness.run(corpus / "suite.yaml", corpus / "corpus.jsonl", run_dir,
                              workers=workers, report=False)
    assert summary["state"] == "complete" and summary["read"] > 3000  # HH records are pairs
    live = outputs(run_dir)
    finalize(run_dir)  # the same outputs, read again from the journal and the inputs
    assert outputs(run_dir) == live
    assert read_meta(run_dir)["state"] == "complete"


def test_a_resumed_run_reads_the_inputs_again_and_gets_the_same_files(
        corpus: Path, tmp_path: Path) -> None:
    clean, resumed = tmp_path / "clean", tmp_path / "resumed"
    harness.run(corpus / "suite.yaml", corpus / "corpus.jsonl", clean, workers=1, report=False)
    harness.run(corpus / "suite.yaml", corpus / "corpus.jsonl", resumed, workers=1,
                report=False, limit=1000)
    harness.run(corpus / "suite.yaml", corpus / "corpus.jsonl", resumed, workers=1,
                report=False, resume=True)
    assert outputs(resumed) == outputs(clean)


def finished(seq: int, sub: int, count: int, outcome: str = "pass") -> Finished:
    line = json.dumps({"transcript_id": f"t{seq}.{sub}", "source": f"in.jsonl:{seq + 1}",
                       "outcome": outcome, "verdicts": []}).encode()
    view = (2, b'{"messages":[%d,%d]}\n' % (seq, sub), b"%d.%d" % (seq, sub))
    return Finished(seq, sub, count, outcome, f"in.jsonl:{seq + 1}", line=line, view=view)


def test_decisions_that_complete_out_of_order_are_written_in_input_order(
        tmp_path: Path) -> None:
    items = [finished(seq, sub, 2 if seq % 3 == 0 else 1)
             for seq in range(200) for sub in range(2 if seq % 3 == 0 else 1)]
    shuffled = items[:]
    random.Random(1).shuffle(shuffled)
    lines = []
    for order in (items, shuffled):
        live = LiveOutputs(tmp_path, {"suite": {"criteria": []}, "inputs": []})
        for item in order:
            live.add(item)
        assert live.whole()
        live.out.close()
        lines.append((tmp_path / "train.jsonl.tmp").read_bytes())
    assert lines[0] == lines[1]
    assert lines[0].splitlines()[:3] == [b'{"messages":[0,0]}', b'{"messages":[0,1]}',
                                         b'{"messages":[1,0]}']


def test_a_transcript_without_a_view_gives_the_live_outputs_up(tmp_path: Path) -> None:
    live = LiveOutputs(tmp_path, {"suite": {"criteria": []}, "inputs": []})
    live.add(finished(0, 0, 1))
    live.add(Finished(1, 0, 1, "pass", "in.jsonl:2", line=b"{}"))  # an engine without views
    assert not live.whole()
    live.out.close()


def test_a_run_that_fails_leaves_no_half_written_outputs(corpus: Path, tmp_path: Path) -> None:
    seen = []

    def fail_later(finished: Finished) -> None:
        seen.append(finished)
        if len(seen) == 500:
            raise RuntimeError("the caller's callback failed")

    with pytest.raises(RuntimeError, match="callback failed"):
        harness.run(corpus / "suite.yaml", corpus / "corpus.jsonl", tmp_path / "run",
                    workers=1, report=False, on_decision=fail_later)
    assert not list((tmp_path / "run").glob("*.tmp"))
    assert not (tmp_path / "run" / "train.jsonl").exists()
