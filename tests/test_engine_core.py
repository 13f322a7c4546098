"""The streaming core decides exactly as the batch engine it replaced (saved as a fixture)."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import core_corpus
import pandas as pd
import pytest

import harness
from harness.engine import Engine
from harness.plugins import get_registry

FIXTURE = Path(__file__).parent / "fixtures" / "core_decisions.jsonl.gz"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return core_corpus.write(tmp_path_factory.mktemp("corpus"))


@pytest.fixture(scope="module")
def expected() -> list[dict]:
    with gzip.open(FIXTURE, "rt") as fh:
        return [json.loads(line) for line in fh]


def decisions(engine: Engine, corpus: Path) -> list[dict]:
    return [core_corpus.summarise(d.model_dump(mode="json"))
            for d in harness.review(engine, corpus / "corpus.jsonl")]


def test_one_worker_decides_as_the_batch_engine(corpus: Path, expected: list[dict]) -> None:
    with Engine(corpus / "suite.yaml") as engine:
        got = decisions(engine, corpus)
    assert len(got) == len(expected) == 3352
    assert got == expected


def test_worker_processes_decide_as_one_worker(corpus: Path, expected: list[dict]) -> None:
    with Engine(corpus / "suite.yaml", get_registry(), workers=2) as engine:
        got = decisions(engine, corpus)
        assert engine._pool is not None, "the corpus is large enough for the worker pool"
    assert got == expected


def test_small_batches_keep_input_order(corpus: Path, expected: list[dict]) -> None:
    with Engine(corpus / "suite.yaml") as engine:
        got = [core_corpus.summarise(d.model_dump(mode="json")) for d in
               harness.review(engine, corpus / "corpus.jsonl", batch_size=1)]
    assert got == expected


def test_a_run_with_workers_writes_the_same_outputs(corpus: Path, tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """Worker processes for the criteria and for reading the inputs again at finalize."""
    from harness import api, rundir

    monkeypatch.setattr(rundir, "PARALLEL_FROM", 1)
    outputs = []
    for workers in (1, 2):
        with Engine(corpus / "suite.yaml", get_registry(), workers=workers) as engine:
            api.run(engine, [corpus / "corpus.jsonl"], tmp_path / f"w{workers}", report=False)
        run = tmp_path / f"w{workers}"
        outputs.append([(run / name).read_bytes() for name in
                        ("train.jsonl", "rejected.jsonl", "errors.jsonl")])
        outputs[-1].append(pd.read_parquet(run / "decisions.parquet").to_json())
    assert outputs[0] == outputs[1]
