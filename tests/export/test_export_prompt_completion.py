"""`--format prompt-completion`: the masked prefix in the prompt, the correction as completion."""

from __future__ import annotations

import pandas as pd
from exportutil import read_jsonl

from harness.export import export_run


def test_correction_is_the_completion_and_the_flaw_only_prompt(corrections_run, tmp_path, cli):
    out = tmp_path / "pc.jsonl"
    code, _, err = cli("export", "prompt-completion", corrections_run, "--on-fail", "mask",
                       "-o", out)
    assert code == 0, err
    rows = read_jsonl(out)
    fixed = next(r for r in rows if r["transcript_id"] == "corrected-product")
    assert [m["role"] for m in fixed["prompt"]] == ["system", "user", "assistant", "user"]
    assert fixed["prompt"][2]["content"] == "17 × 24 = 398."
    assert fixed["prompt"][3]["content"].startswith("No, ")
    assert len(fixed["completion"]) == 1 and fixed["completion"][0]["role"] == "assistant"
    assert "= 408" in fixed["completion"][0]["content"]
    assert fixed["completion_index"] == 4
    completions = [r["completion"][0]["content"] for r in rows]
    for flawed in ("17 × 24 = 398.", "15 + 27 = 32.", "15 + 27 = 41.", "9 × 7 = 56."):
        assert flawed not in completions          # never trained to write a flaw
    assert all("weight" not in m for r in rows for m in r["prompt"] + r["completion"])
    assert {"suite", "criterion_versions", "criterion_scores", "score"} <= set(fixed)


def test_every_trained_turn_of_a_multi_turn_transcript_is_an_example(tmp_path):
    from exportutil import EXAMPLES, review_into, write_jsonl

    inputs = write_jsonl(tmp_path / "in.jsonl", [{"id": "two-turns", "messages": [
        {"role": "user", "content": "Name a colour."}, {"role": "assistant", "content": "Blue."},
        {"role": "user", "content": "Another?"}, {"role": "assistant", "content": "Green."}]}])
    review_into(tmp_path / "run", EXAMPLES / "suite.yaml", [inputs])
    out = tmp_path / "pc.jsonl"
    export_run(tmp_path / "run", out, "prompt-completion")
    rows = read_jsonl(out)
    assert [(len(r["prompt"]), r["completion"][0]["content"]) for r in rows] == [
        (1, "Blue."), (3, "Green.")]


def test_parquet_layout(corrections_run, tmp_path):
    out = tmp_path / "pc.parquet"
    result = export_run(corrections_run, out, "prompt-completion", {"on_fail": "mask",
                                                                     "weight_by": "score"})
    df = pd.read_parquet(out)
    assert len(df) == result["examples"] == 4
    assert {"prompt", "completion", "completion_index", "weight", "transcript_id"} <= set(df)
    row = df[df.transcript_id == "corrected-refusal"].iloc[0]
    assert row.completion[0]["content"].startswith("200 / 4 = 50")
    assert row.prompt[2]["content"].startswith("As an AI language model")
    assert row.weight == 1.0
