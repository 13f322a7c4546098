"""`harness export pairs`: prompt/chosen/rejected from transcripts sharing a prompt."""

from __future__ import annotations

import pandas as pd
from exportutil import EXAMPLES, read_jsonl, review_into, write_jsonl

from harness.export import export_run


def hh(pid: str, human: str, good: str, bad: str) -> dict:
    return {"id": pid, "chosen": f"\n\nHuman: {human}\n\nAssistant: {good}",
            "rejected": f"\n\nHuman: {human}\n\nAssistant: {bad}"}


def test_pairs_from_the_shipped_hh_rlhf_file(hh_run, tmp_path, cli):
    out = tmp_path / "pairs.jsonl"
    code, stdout, err = cli("export", "pairs", hh_run, "-o", out)
    assert code == 0, err
    rows = read_jsonl(out)
    assert len(rows) == 1
    pair = rows[0]
    assert pair["prompt"] == [{"role": "user", "content": "How can I get better sleep?"}]
    assert pair["chosen"][0]["content"].startswith("Keep a regular schedule")
    assert pair["rejected"][0]["content"].startswith("As an AI language model")
    assert (pair["chosen_id"], pair["rejected_id"]) == ("hh-001:chosen", "hh-001:rejected")
    assert (pair["chosen_outcome"], pair["rejected_outcome"]) == ("pass", "fail")
    assert pair["rejected_criterion_scores"]["no_ai_boilerplate"] == 0.0
    assert pair["suite"] == "demo-review" and pair["criterion_versions"]["concise"] == "1"
    assert "1 pair from" in stdout
    card = (tmp_path / "pairs.jsonl.card.md").read_text()
    # hh-002/hh-004: both sides pass; hh-003: both leak a key; hh-005 is malformed
    assert "| prompts without a pair: no failing candidate | 2 |" in card
    assert "| prompts without a pair: no passing candidate | 1 |" in card


def test_the_review_decides_which_side_is_chosen(tmp_path):
    inputs = write_jsonl(tmp_path / "hh.jsonl", [
        hh("swap", "Tell me a fact.", "As an AI language model I know no facts.",
           "Octopuses have three hearts.")])
    review_into(tmp_path / "run", EXAMPLES / "suite.yaml", [inputs])
    out = tmp_path / "p.jsonl"
    export_run(tmp_path / "run", out, "pairs")
    (pair,) = read_jsonl(out)
    assert pair["chosen"][0]["content"] == "Octopuses have three hearts."
    assert pair["chosen_pair_role"] == "rejected"      # the record's own label, kept


def test_pairs_by_identical_prompt_and_margin(tmp_path):
    def chat(i: int, answer: str) -> dict:
        return {"id": f"c{i}", "messages": [{"role": "system", "content": "Be brief."},
                                            {"role": "user", "content": "Say hello."},
                                            {"role": "assistant", "content": answer}]}

    inputs = write_jsonl(tmp_path / "cands.jsonl", [
        chat(1, "Hello! " * 100), chat(2, "Hello!"), chat(3, "Hi there. " * 60),
        {"id": "other", "messages": [{"role": "user", "content": "Say bye."},
                                     {"role": "assistant", "content": "Bye."}]},
    ])
    review_into(tmp_path / "run", EXAMPLES / "suite.yaml", [inputs])
    out = tmp_path / "p.jsonl"
    result = export_run(tmp_path / "run", out, "pairs")
    assert read_jsonl(out) == [] and result["unpaired"] == {"no failing candidate": 1,
                                                             "single candidate": 1}
    result = export_run(tmp_path / "run", out, "pairs", {"margin": 0.1, "weight_by": "score"})
    (pair,) = read_jsonl(out)
    assert (pair["chosen_id"], pair["rejected_id"]) == ("c2", "c1")   # most vs least concise
    assert pair["prompt"][0] == {"role": "system", "content": "Be brief."}
    assert pair["chosen_score"] - pair["rejected_score"] >= 0.1
    assert 0.0 < pair["weight"] <= 1.0
    assert result["groups"] == 2


def test_duplicate_pairs_are_dropped_and_counted(tmp_path):
    rec = hh("a", "Hi?", "Hello, how can I help?", "As an AI model, hello.")
    inputs = write_jsonl(tmp_path / "hh.jsonl", [rec, {**rec, "id": "b"}])
    review_into(tmp_path / "run", EXAMPLES / "suite.yaml", [inputs])
    result = export_run(tmp_path / "run", tmp_path / "p.jsonl", "pairs")
    assert (result["pairs"], result["duplicates"]) == (1, 1)


def test_pairs_parquet_loads_with_pandas(hh_run, tmp_path):
    out = tmp_path / "pairs.parquet"
    export_run(hh_run, out, "pairs", {"weight_by": "score"})
    df = pd.read_parquet(out)
    assert list(df.columns[:3]) == ["prompt", "chosen", "rejected"]
    assert df.loc[0, "chosen"][0]["role"] == "assistant"
    assert df.loc[0, "chosen_criterion_scores"]["no_ai_boilerplate"] == 1.0
    assert 0.0 <= df.loc[0, "weight"] <= 1.0
