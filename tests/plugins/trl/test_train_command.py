"""harness train on a run directory: a model folder out, progress on the terminal, clear errors."""

from __future__ import annotations

import json

import pytest
import torch
from safetensors.torch import load_file
from testutil import EXAMPLES, write_jsonl
from transformers import AutoModelForCausalLM
from trlutil import CONVERSATION

import harness

SUITE = EXAMPLES / "corrections" / "suite.yaml"
CLEAN = [CONVERSATION[0], {"role": "user", "content": "What is 12 × 11?"},
         {"role": "assistant", "content": "12 × 11 = 132."}]


@pytest.fixture(scope="module")
def corrected_run(tmp_path_factory):
    """A run whose training set holds a corrected transcript (the mistake at weight 0)."""
    folder = tmp_path_factory.mktemp("run")
    inputs = write_jsonl(folder / "in.jsonl", [{"id": "corrected", "messages": CONVERSATION},
                                               {"id": "clean", "messages": CLEAN}])
    harness.run(SUITE, [inputs], folder / "run", workers=1, report=False)
    return folder / "run"


def test_train_writes_a_model_folder_and_reports_each_step(cli, corrected_run, tiny_dir,
                                                           tmp_path):
    out = tmp_path / "model"
    code, stdout, err = cli("train", corrected_run, "-o", out, "--base", tiny_dir,
                            "--steps", "2", "--batch-size", "2", "--learning-rate", "1e-3")
    assert code == 0, err
    assert "sft: 2 examples, 2 steps of 2" in stdout
    assert "step 1/2  loss" in stdout and "step 2/2  loss" in stdout and "peak RSS" in stdout
    record = json.loads((out / "harness-train.json").read_text())
    assert record["objective"] == "sft" and record["examples"] == 2
    assert len(record["losses"]) == len(record["seconds_per_step"]) == 2
    assert record["tokens_per_step"][0] > 0 and record["peak_rss_mb"] > 0
    trained = AutoModelForCausalLM.from_pretrained(str(out))
    base = AutoModelForCausalLM.from_pretrained(str(tiny_dir))
    assert not torch.equal(trained.model.norm.weight, base.model.norm.weight)


def test_steps_0_writes_the_base_unchanged(cli, corrected_run, tiny_dir, tmp_path):
    code, stdout, err = cli("train", corrected_run, "-o", tmp_path / "same", "--base", tiny_dir,
                            "--steps", "0")
    assert code == 0, err
    assert "the base, unchanged" in stdout
    before, after = (load_file(str(d / "model.safetensors")) for d in (tiny_dir,
                                                                       tmp_path / "same"))
    assert before.keys() == after.keys()
    assert all(torch.equal(before[k], after[k]) for k in before)


def test_a_run_without_a_training_set_is_an_error(cli, tiny_dir, tmp_path):
    wrong = [CONVERSATION[0], CONVERSATION[1], {"role": "assistant", "content": "17 × 24 = 1."}]
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"id": "w", "messages": wrong}])
    harness.run(SUITE, [inputs], tmp_path / "run", workers=1, report=False)
    code, _, err = cli("train", tmp_path / "run", "-o", tmp_path / "m", "--base", tiny_dir)
    assert code == 2
    assert "no training set to learn from (no transcript passed the review)" in err
    assert not (tmp_path / "m").exists()


@pytest.mark.parametrize("case", ["missing model", "missing run", "not a run", "out exists"])
def test_clear_errors(case, cli, corrected_run, tiny_dir, tmp_path):
    source, base, out = corrected_run, tiny_dir, tmp_path / "m"
    expected = {"missing model": f"no model at {tmp_path / 'nowhere'}: give a Hugging Face "
                                 "model folder",
                "missing run": "no such run directory or file",
                "not a run": "is not a run directory",
                "out exists": "exists; choose another -o or pass --overwrite"}[case]
    if case == "missing model":
        base = tmp_path / "nowhere"
    elif case == "missing run":
        source = tmp_path / "nowhere"
    elif case == "not a run":
        source = tmp_path / "empty"
        source.mkdir()
    else:
        out.mkdir()
        (out / "keep.txt").write_text("mine")
    code, _, err = cli("train", source, "-o", out, "--base", base)
    assert code == 2
    assert expected in err
