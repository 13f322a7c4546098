"""`make demo`'s job, end to end: train the default classifier head, review the bundled examples
with examples/demo.yaml on the embedded judge, offline. Keeps the quick start working."""

from __future__ import annotations

import json

import pandas as pd
import pytest
from testutil import EXAMPLES

pytest.importorskip("harness_local_models.chat_model")
pytestmark = pytest.mark.slow


def test_demo_suite_runs_offline_with_classifier_and_judge(cli, tmp_path, monkeypatch):
    monkeypatch.setenv("HARNESS_CLASSIFIER_HEAD", str(tmp_path / "head"))
    code, out, err = cli("classifier", "train", EXAMPLES / "classifier" / "labelled.jsonl")
    assert code == 0, err
    assert (tmp_path / "head" / "head.json").is_file()

    run = tmp_path / "demo"
    inputs = sorted((EXAMPLES / "transcripts").glob("*.jsonl"))
    code, out, err = cli("run", EXAMPLES / "demo.yaml", *inputs, "-o", run)
    assert code == 0, err
    summary = json.loads((run / "summary.json").read_text())
    assert summary["read"] == summary["passed"] + summary["failed"] + summary["errored"]
    assert summary["passed"] > 0 and summary["failed"] > 0
    criteria = summary["criteria"]
    assert criteria["no_harmful_compliance"]["fail"] >= 2  # the two harmful examples
    judge = criteria["helpful"]
    assert judge["error"] == 0 and judge["pass"] + judge["fail"] > 0 and judge["skipped"] > 0

    results = pd.read_parquet(run / "results.parquet")
    judged = results[(results.criterion == "helpful") & (results.outcome != "skipped")]
    assert judged.score.between(0, 1).all()
    assert all(json.loads(d)["soft_source"] == "exact" for d in judged.details)
    for name in ("report.html", "train.jsonl", "judge-cache.sqlite"):
        assert (run / name).is_file(), name
