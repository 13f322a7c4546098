"""`harness export` says what it takes and counts in one unit per line: transcripts read, kept
and not exported add up; examples (one per transcript, or per trained turn) and pairs are
counted as such."""

from __future__ import annotations

import re

from exportutil import read_jsonl


def test_help_shows_one_run_dir_with_an_optional_format_before_it(cli):
    code, out, _ = cli("export", "--help")
    assert code == 0
    usage = " ".join(out.split("\n\n", 1)[0].split())
    assert "[FORMAT] RUN_DIR" in usage
    assert "RUN_DIR [RUN_DIR ...]" not in out


def test_two_run_dirs_are_refused_naming_the_format_slot(corrections_run, tmp_path, cli):
    code, _, err = cli("export", corrections_run, corrections_run, "-o", tmp_path / "x.jsonl")
    assert code == 2
    assert "one RUN_DIR" in err and "format" in err


def transcripts_add_up(stdout: str) -> None:
    read = int(re.search(r"read (\d+) transcripts", stdout)[1])
    kept = int(re.search(r"kept (\d+) transcripts?", stdout)[1])
    lost = re.search(r"transcripts not exported: (.*)", stdout)
    dropped = sum(int(n) for n in re.findall(r" (\d+)(?:,|$)", lost[1])) if lost else 0
    assert kept + dropped == read, stdout


def test_per_turn_examples_are_not_counted_as_transcripts(corrections_run, tmp_path, cli):
    out = tmp_path / "pc.jsonl"
    code, stdout, err = cli("export", "prompt-completion", corrections_run, "--on-fail", "mask",
                            "-o", out)
    assert code == 0, err
    rows = read_jsonl(out)
    assert stdout.startswith(f"{len(rows)} examples (one per trained assistant turn) -> ")
    assert "read 7 transcripts (passed 2, failed 5, errored 0)" in stdout
    assert "1 exact duplicate example dropped" in stdout
    # "clean-again" wrote nothing (its one example repeats "clean"): a transcript not exported
    assert "every example an exact duplicate 1" in stdout
    transcripts_add_up(stdout)
    card = (tmp_path / "pc.jsonl.card.md").read_text()
    assert f"| examples written (one per trained assistant turn) | {len(rows)} |" in card
    assert "| exact duplicate examples dropped | 1 |" in card
    assert "| transcripts not exported: every example an exact duplicate | 1 |" in card


def test_chat_export_counts_reconcile(corrections_run, tmp_path, cli):
    code, stdout, err = cli("export", corrections_run, "-o", tmp_path / "t.jsonl")
    assert code == 0, err
    assert stdout.startswith("1 example (one per transcript) -> ")
    assert "read 7 transcripts" in stdout and "kept 1 transcript\n" in stdout
    # "clean-again" repeats "clean": one example dropped, one transcript not exported
    assert "1 exact duplicate example dropped" in stdout
    assert "transcripts not exported: every example an exact duplicate 1, failed 5" in stdout
    transcripts_add_up(stdout)


def test_pairs_say_which_counts_are_transcripts_and_which_are_prompts(hh_run, tmp_path, cli):
    code, stdout, err = cli("export", "pairs", hh_run, "-o", tmp_path / "p.jsonl")
    assert code == 0, err
    assert stdout.startswith("1 pair -> ")
    assert "read 9 transcripts" in stdout
    assert "0 exact duplicate pairs dropped" in stdout
    assert "transcripts in no pair: input error 1" in stdout
    assert "prompts without a pair: no failing candidate 2, no passing candidate 1" in stdout
    card = (tmp_path / "p.jsonl.card.md").read_text()
    assert "| pairs written | 1 |" in card
    assert "| prompts without a pair: no failing candidate | 2 |" in card
    assert "| transcripts in no pair: input error | 1 |" in card
