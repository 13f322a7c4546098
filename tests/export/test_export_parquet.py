"""`--format parquet`: loads with pandas and with Hugging Face `datasets`."""

from __future__ import annotations

import pandas as pd
import pytest

from harness.export import export_run


def test_pandas_reads_messages_weights_and_provenance(corrections_run, tmp_path, cli):
    out = tmp_path / "train.parquet"
    code, _, err = cli("export", corrections_run, "--format", "parquet", "--on-fail", "mask",
                       "--weight-by", "arithmetic_checks_out", "-o", out)
    assert code == 0, err
    df = pd.read_parquet(out)
    assert len(df) == 4
    row = df.set_index("transcript_id").loc["two-tries"]
    assert [m["weight"] for m in row.messages if m["role"] == "assistant"] == [0, 0, 1]
    assert all(pd.isna(m["weight"]) for m in row.messages if m["role"] != "assistant")
    assert list(row.masked_messages) == [2, 4]
    assert row.criterion_scores["arithmetic_checks_out"] == 1.0 == row.weight
    assert row.criterion_versions == {"arithmetic_checks_out": "1", "no_hedging": "1",
                                      "ends_with_answer": "1"}
    assert row.suite == "corrections"


def test_huggingface_datasets_loads_it(corrections_run, tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))
    out = tmp_path / "train.parquet"
    export_run(corrections_run, out, "parquet", {"on_fail": "mask", "weight_by": "score"})
    ds = datasets.load_dataset("parquet", data_files=str(out), split="train",
                               cache_dir=str(tmp_path / "cache"))
    assert ds.num_rows == 4
    assert set(ds.features["messages"].feature) == {"role", "content", "name", "tool_calls",
                                               "tool_call_id", "function_call", "reasoning",
                                               "weight"}
    example = ds[1]
    assert example["transcript_id"] == "corrected-product"
    assert [m["weight"] for m in example["messages"]] == [None, None, 0, None, 1]
    assert example["criterion_scores"]["arithmetic_checks_out"] == 1.0


def test_parquet_format_needs_a_parquet_name(corrections_run, tmp_path, cli):
    code, _, err = cli("export", corrections_run, "-f", "parquet", "-o", tmp_path / "x.jsonl")
    assert code == 2 and ".parquet" in err
