"""`harness export --format openai`: the chat fine-tuning layout, masks, weights, provenance."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from exportutil import CORRECTIONS, read_jsonl, review_into, write_jsonl

from harness.export import export_run


def by_id(rows: list[dict]) -> dict[str, dict]:
    return {r["metadata"]["transcript_id"]: r for r in rows}


def test_masked_correction_trains_the_correction_not_the_flaw(corrections_run, tmp_path, cli):
    out = tmp_path / "train.jsonl"
    code, stdout, err = cli("export", corrections_run, "--format", "openai", "--on-fail", "mask",
                            "-o", out)
    assert code == 0, err
    rows = by_id(read_jsonl(out))
    fixed = rows["corrected-product"]["messages"]
    assert [(m["role"], m.get("weight")) for m in fixed] == [
        ("system", None), ("user", None), ("assistant", 0), ("user", None), ("assistant", 1)]
    assert fixed[2]["content"] == "17 × 24 = 398."          # the flaw: context only
    assert fixed[3]["content"].startswith("No, ")            # the supervisor's objection
    assert "= 408" in fixed[4]["content"]                     # the correction: trained
    assert rows["corrected-product"]["metadata"]["masked_messages"] == [2]
    assert rows["two-tries"]["metadata"]["masked_messages"] == [2, 4]
    assert [m.get("weight") for m in rows["clean"]["messages"]] == [None, None, 1]
    # a flaw nobody corrected leaves nothing to train; a transcript-level failure is not masked
    assert "uncorrected" not in rows and "ends-with-user" not in rows
    assert "4 examples" in stdout and "1 exact duplicate example dropped" in stdout


def test_weights_only_on_assistant_turns_and_only_0_or_1(corrections_run, tmp_path):
    out = tmp_path / "t.jsonl"
    export_run(corrections_run, out, "openai", {"on_fail": "mask"})
    for row in read_jsonl(out):
        assert set(row) == {"messages", "metadata"}
        for m in row["messages"]:
            assert set(m) <= {"role", "content", "name", "tool_calls", "tool_call_id", "weight"}
            if m["role"] == "assistant":
                assert m["weight"] in (0, 1) and isinstance(m["weight"], int)
            else:
                assert "weight" not in m


def test_drop_policy_keeps_only_passing_transcripts(corrections_run, tmp_path):
    out = tmp_path / "t.jsonl"
    result = export_run(corrections_run, out, "openai")
    assert [r["metadata"]["transcript_id"] for r in read_jsonl(out)] == ["clean"]
    assert result["duplicates"] == 1                 # "clean-again" has the same messages
    assert result["dropped"] == {"failed": 5, "every example an exact duplicate": 1}
    assert (result["read"], result["passed"], result["failed"]) == (7, 2, 5)


def test_provenance_and_evidence_on_every_example(corrections_run, tmp_path):
    out = tmp_path / "t.jsonl"
    export_run(corrections_run, out, "openai", {"on_fail": "mask"})
    meta = by_id(read_jsonl(out))["corrected-product"]["metadata"]
    assert meta["suite"] == "corrections" and meta["suite_version"] == "1"
    assert meta["source"].endswith("transcripts.jsonl:2")
    assert meta["criterion_versions"] == {"arithmetic_checks_out": "1", "no_hedging": "1",
                                          "ends_with_answer": "1"}
    assert meta["outcome"] == "fail" and meta["decision_score"] < 1.0
    # scores over the trained turns: the masked flaw no longer counts
    assert meta["score"] == 1.0
    assert meta["criterion_scores"]["arithmetic_checks_out"] == 1.0
    arith = next(c for c in meta["criteria"] if c["name"] == "arithmetic_checks_out")
    assert arith["scope"] == "message" and arith["outcome"] == "fail"
    assert [(s["message_index"], s["outcome"]) for s in arith["message_scores"]] == [
        (2, "fail"), (4, "pass")]
    assert {"judge_models", "rubric_hashes", "suite_fingerprint"} <= set(meta)


def test_weight_by_score_writes_a_soft_label(tmp_path):
    inputs = write_jsonl(tmp_path / "in.jsonl", [
        {"id": "short", "messages": [{"role": "user", "content": "hi"},
                                     {"role": "assistant", "content": "Hello!"}]},
        {"id": "long", "messages": [{"role": "user", "content": "hi"},
                                    {"role": "assistant", "content": "Hello! " * 150}]},
    ])
    run_dir = tmp_path / "run"
    review_into(run_dir, Path(__file__).resolve().parents[2] / "examples" / "suite.yaml",
                [inputs])
    out = tmp_path / "w.jsonl"
    export_run(run_dir, out, "openai", {"weight_by": "concise"})
    weights = {r["metadata"]["transcript_id"]: r["metadata"]["weight"] for r in read_jsonl(out)}
    assert 0.99 < weights["short"] <= 1.0 and 0.0 <= weights["long"] < 0.5
    export_run(run_dir, out, "openai", {"weight_by": "score"})
    rows = read_jsonl(out)
    assert all(r["metadata"]["weight"] == r["metadata"]["score"] for r in rows)
    export_run(run_dir, out, "openai", {"min_score": 0.9})
    assert [r["metadata"]["transcript_id"] for r in read_jsonl(out)] == ["short"]


def test_messages_only_puts_provenance_in_a_sidecar(corrections_run, tmp_path):
    out = tmp_path / "upload.jsonl"
    result = export_run(corrections_run, out, "openai", {"on_fail": "mask",
                                                         "messages_only": True})
    lines = read_jsonl(out)
    side = read_jsonl(tmp_path / "upload.jsonl.provenance.jsonl")
    assert all(set(r) == {"messages"} for r in lines)
    assert len(side) == len(lines) == result["examples"] == 4
    assert side[1]["transcript_id"] == "corrected-product"


def test_keep_duplicates_and_the_card(corrections_run, tmp_path, cli):
    out = tmp_path / "all.jsonl"
    code, _, err = cli("export", corrections_run, "-o", out, "--keep-duplicates")
    assert code == 0, err
    assert len(read_jsonl(out)) == 2
    card = (tmp_path / "all.jsonl.card.md").read_text()
    assert "| exact duplicate examples dropped | 0 |" in card and "deduplication: off" in card


def test_bad_requests_are_one_line_errors(corrections_run, tmp_path, cli):
    code, _, err = cli("export", tmp_path, "-o", tmp_path / "x.jsonl")
    assert code == 2 and "not a run directory" in err
    code, _, err = cli("export", corrections_run, "--weight-by", "nope", "-o", tmp_path / "x.jsonl")
    assert code == 2 and "arithmetic_checks_out" in err
    code, _, err = cli("export", corrections_run, "--min-score", "2", "-o", tmp_path / "x.jsonl")
    assert code == 2 and "--min-score" in err
    code, _, err = cli("export", corrections_run, "-f", "openai", "-o", tmp_path / "x.parquet")
    assert code == 2 and "--format parquet" in err
    code, _, err = cli("export", corrections_run, "-f", "csv", "-o", tmp_path / "x.csv")
    assert code == 2 and "unknown export format" in err
    assert not list(tmp_path.glob("x.*"))


def test_a_failed_export_leaves_the_previous_file(corrections_run, tmp_path, monkeypatch):
    out = tmp_path / "t.jsonl"
    export_run(corrections_run, out, "openai")
    before = out.read_text()

    def broken(*args, **kwargs):
        raise RuntimeError("disk full")

    monkeypatch.setattr("harness.export.select.provenance", broken)
    monkeypatch.setattr("harness.export.openai.provenance", broken)
    with pytest.raises(RuntimeError, match="disk full"):
        export_run(corrections_run, out, "openai", {"on_fail": "mask"})
    assert out.read_text() == before
    assert not (tmp_path / "t.jsonl.tmp").exists()


def test_the_shipped_example_is_what_the_readme_says():
    lines = [json.loads(x) for x in (CORRECTIONS / "transcripts.jsonl").read_text().splitlines()]
    product = next(r for r in lines if r["id"] == "corrected-product")["messages"]
    assert product[3]["role"] == "user" and product[3]["content"].startswith("No, ")


def test_gzip_output(corrections_run, tmp_path):
    import gzip

    out = tmp_path / "t.jsonl.gz"
    export_run(corrections_run, out, "openai", {"on_fail": "mask"})
    with gzip.open(out, "rt", encoding="utf-8") as fh:
        assert len([json.loads(line) for line in fh]) == 4
    assert (tmp_path / "t.jsonl.gz.card.md").exists()


def test_messages_only_sidecars_of_two_exports_in_one_folder_stay_apart(corrections_run,
                                                                        tmp_path):
    options = {"on_fail": "mask", "messages_only": True}
    export_run(corrections_run, tmp_path / "sft.jsonl", "openai", options)
    export_run(corrections_run, tmp_path / "sft.jsonl.gz", "openai", options)
    plain = read_jsonl(tmp_path / "sft.jsonl.provenance.jsonl")
    packed = read_jsonl(tmp_path / "sft.jsonl.gz.provenance.jsonl")
    assert plain == packed and len(plain) == 4
