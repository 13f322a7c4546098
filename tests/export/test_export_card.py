"""The dataset card written next to every export."""

from __future__ import annotations

from exportutil import read_jsonl

from harness.export import export_run
from harness.export.card import card_path, duplicates_phrase, kept_phrase


def test_card_states_counts_filters_criteria_and_pass_rates(corrections_run, tmp_path, cli):
    out = tmp_path / "sft" / "train.jsonl"
    code, stdout, err = cli("export", corrections_run, "--on-fail", "mask", "--min-score",
                            "0.5", "--weight-by", "score", "-o", out)
    assert code == 0, err
    card = (tmp_path / "sft" / "train.jsonl.card.md").read_text()
    assert card.startswith("---\nconfigs:\n- config_name: default\n  data_files: train.jsonl\n")
    for line in ("| transcripts read | 7 |",
                 "| passed / failed / errored | 2 / 5 / 0 |",
                 "| examples written (one per transcript) | 4 |",
                 "| kept with masked assistant turns | 3 (4 turns at weight 0) |",
                 "| transcripts not exported: failed (every assistant message masked) | 1 |",
                 "| exact duplicate examples dropped | 1 |",
                 "- on failure: `mask`",
                 "- minimum score: 0.5",
                 "- weight: `score`",
                 "| arithmetic_checks_out | python | 1 | yes | message | 63.6% | 0.636 | 7 | 4 |",
                 "| ends_with_answer | python | 1 | yes | transcript | 85.7% |",
                 "suite **corrections** version 1"):
        assert line in card, line
    assert len(read_jsonl(out)) == 4
    assert f"card: {tmp_path / 'sft' / 'train.jsonl.card.md'}" in stdout


def test_card_placement_and_loader_snippet(corrections_run, tmp_path):
    result = export_run(corrections_run, tmp_path / "d.parquet", "parquet",
                        card=tmp_path / "README.md")
    assert result["card"] == str(tmp_path / "README.md")
    card = (tmp_path / "README.md").read_text()
    assert 'pd.read_parquet("d.parquet")' in card and 'load_dataset("parquet"' in card
    assert card_path(tmp_path / "x.jsonl.gz").name == "x.jsonl.gz.card.md"
    assert card_path(tmp_path / "x.jsonl").name == "x.jsonl.card.md"
    assert card_path(tmp_path / "x.parquet").name == "x.parquet.card.md"


def test_a_gz_export_does_not_overwrite_the_plain_exports_card(corrections_run, tmp_path, cli):
    for name in ("sft.jsonl", "sft.jsonl.gz"):
        code, stdout, err = cli("export", corrections_run, "-o", tmp_path / name)
        assert code == 0, err
        assert f"card: {tmp_path / name}.card.md" in stdout
    plain = (tmp_path / "sft.jsonl.card.md").read_text()
    gz = (tmp_path / "sft.jsonl.gz.card.md").read_text()
    assert "data_files: sft.jsonl\n" in plain and "data_files: sft.jsonl.gz\n" in gz


def test_counts_read_as_english_for_zero_one_and_many():
    assert kept_phrase(32, 0, 0) == "kept 32 transcripts"
    assert kept_phrase(1, 0, 0) == "kept 1 transcript"
    assert kept_phrase(0, 0, 0) == "kept 0 transcripts"
    assert kept_phrase(4, 3, 4) == ("kept 4 transcripts, 3 of them with masked assistant turns "
                                    "(4 turns at weight 0)")
    assert kept_phrase(2, 2, 3) == ("kept 2 transcripts, all of them with masked assistant "
                                    "turns (3 turns at weight 0)")
    assert kept_phrase(1, 1, 1) == "kept 1 transcript, with masked assistant turns (1 turn at " \
                                   "weight 0)"
    assert duplicates_phrase(1) == "1 exact duplicate example dropped"
    assert duplicates_phrase(0) == "0 exact duplicate examples dropped"
    assert duplicates_phrase(2, {"format": "pairs"}) == "2 exact duplicate pairs dropped"


def test_export_summary_without_masking_says_nothing_of_it(corrections_run, tmp_path, cli):
    code, stdout, err = cli("export", corrections_run, "-o", tmp_path / "t.jsonl")
    assert code == 0, err
    # two transcripts pass; the second is a duplicate of the first
    assert "\nkept 1 transcript\n1 exact duplicate example dropped\n" in stdout
    card = (tmp_path / "t.jsonl.card.md").read_text()
    assert "| kept with masked assistant turns | 0 |" in card
