"""Distillation targets and loss: the teacher's top-k renormalised, KL to the student."""

from __future__ import annotations

import json
import math

import pytest
import torch
from testutil import write_jsonl

import harness
from harness_trl.distill import (
    DistillStats,
    build_example,
    collate,
    distill_loss,
    vocabulary_map,
)

LN = math.log


def test_distill_loss_matches_a_hand_computed_value():
    # vocabulary of 4; position 1 has the teacher's top-2, position 2 a one-hot target
    logits = torch.tensor([[[0.0, LN(2), LN(3), 0.0],   # student q = (1, 2, 3, 1) / 7
                            [LN(4), 0.0, 0.0, 0.0],     # q = (4, 1, 1, 1) / 7
                            [0.0, 0.0, 0.0, 0.0]]])
    target_ids = torch.tensor([[[0, 0], [0, 2], [3, 0]]])
    target_probs = torch.tensor([[[0.0, 0.0], [0.6, 0.4], [1.0, 0.0]]])
    kl_soft = 0.6 * LN(0.6 / (1 / 7)) + 0.4 * LN(0.4 / (3 / 7))
    kl_hard = -LN(1 / 7)
    loss = distill_loss(logits, target_ids, target_probs)
    assert loss.item() == pytest.approx((kl_soft + kl_hard) / 2, rel=1e-6)


def test_one_hot_targets_give_the_cross_entropy_of_sft():
    torch.manual_seed(0)
    logits = torch.randn(2, 5, 11)
    labels = torch.randint(0, 11, (2, 5))
    loss = distill_loss(logits, labels[..., None], torch.ones(2, 5, 1))
    expected = torch.nn.functional.cross_entropy(logits[:, :-1].reshape(-1, 11),
                                                 labels[:, 1:].reshape(-1))
    assert loss.item() == pytest.approx(expected.item(), rel=1e-6)


def token(text: str, p: float, top: dict[str, float]) -> dict:
    return {"token": text, "logprob": LN(p),
            "top_logprobs": [{"token": t, "logprob": LN(q)} for t, q in top.items()]}


def test_a_row_becomes_the_teachers_tokens_with_renormalised_top_k(tokenizer):
    vocab = vocabulary_map(tokenizer)
    row = {"prompt": [{"role": "user", "content": "What is two and two?"}],
           "completion": "No, four", "tokens_start": 3,  # an inline correction: "No," given
           "tokens": [token(" four", 0.5, {" four": 0.5, " five": 0.3, "\ufffd": 0.1})]}
    stats = DistillStats()
    example = build_example(tokenizer, row, vocab, tokenizer.eos_token_id, stats)
    targets = [t for t in example.targets if t]
    no_comma = [[(i, 1.0)] for i in tokenizer("No,", add_special_tokens=False)["input_ids"]]
    assert targets[:-2] == no_comma  # the text before the generated tokens: one-hot
    soft = dict(targets[-2])
    assert soft.keys() == {vocab[" four"], vocab[" five"]}  # "\ufffd" is no single id: left out
    assert soft[vocab[" four"]] == pytest.approx(0.5 / 0.8)
    assert soft[vocab[" five"]] == pytest.approx(0.3 / 0.8)
    assert targets[-1] == [(tokenizer.eos_token_id, 1.0)]  # the teacher stopped
    assert example.input_ids[-2:] == [vocab[" four"], tokenizer.eos_token_id]
    assert (stats.soft_positions, stats.alternatives_dropped, stats.rows_unaligned) == (1, 1, 0)

    batch = collate([example], pad_id=0)
    assert batch["target_probs"].sum().item() == pytest.approx(len(targets))


def test_a_row_whose_tokens_do_not_map_trains_on_its_text(tokenizer):
    row = {"prompt": [{"role": "user", "content": "hi"}], "completion": "héllo",
           "tokens_start": 0, "tokens": [token("\ufffd", 0.9, {"\ufffd": 0.9})]}
    stats = DistillStats()
    example = build_example(tokenizer, row, vocabulary_map(tokenizer), 2, stats)
    assert stats.rows_unaligned == 1 and stats.soft_positions == 0
    hard = [t[0][0] for t in example.targets if t]
    assert tokenizer.decode(hard) == "héllo<|im_end|>"


def answers_with_logprobs(path):
    """Transcripts whose answers carry top-k log-probabilities in the OpenAI layout."""
    def content(pieces):
        return {"content": [token(t, 0.7, {t: 0.7, " 9": 0.2}) for t in pieces]}
    return write_jsonl(path, [
        {"id": f"t{n}", "messages": [
            {"role": "user", "content": f"What is {n} + {n}?"},
            {"role": "assistant", "content": f"{n} + {n} = {2 * n}",
             "logprobs": content([str(n), " +", " ", str(n), " =", " ", *str(2 * n)])}]}
        for n in range(1, 4)])


def test_distill_training_on_a_run_directory(cli, tiny_dir, tmp_path):
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: s\ncriteria:\n  - {name: sums, kind: regex, pattern: '=', "
                     "expect: present}\n")
    harness.run(suite, [answers_with_logprobs(tmp_path / "answers.jsonl")], tmp_path / "run",
                workers=1, report=False)
    out = tmp_path / "student"
    code, stdout, err = cli("train", tmp_path / "run", "-o", out, "--base", tiny_dir,
                            "--objective", "distill", "--steps", "2", "--batch-size", "2")
    assert code == 0, err
    assert "step 2/2  loss" in stdout and "tokens/s" in stdout
    record = json.loads((out / "harness-train.json").read_text())
    assert record["objective"] == "distill" and len(record["losses"]) == 2
    assert record["distill"]["rows"] == 3 and record["distill"]["rows_unaligned"] == 0
    assert record["distill"]["soft_positions"] == 3 * 7  # every generated token
    assert all(math.isfinite(x) for x in record["losses"])
