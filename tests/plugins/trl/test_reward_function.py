"""The review as a GRPO reward: the decisions' values, one engine with its cache and costs."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from testutil import EXAMPLES

import harness
from harness.judges.budget import BudgetSpent
from harness_trl import reward_function
from harness_trl.reward import as_transcript

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "judges"))
from chat_server import ChatServer  # noqa: E402

SUITE = EXAMPLES / "corrections" / "suite.yaml"
SYSTEM = {"role": "system", "content": "You are a careful arithmetic tutor."}
PROMPTS = [[SYSTEM, {"role": "user", "content": "What is 12 × 11?"}]] * 4
COMPLETIONS = [[{"role": "assistant", "content": text}] for text in (
    "12 × 11 = 132.",                                  # passes
    "12 × 11 = 132, and 12 × 10 = 121.",               # one equation of two wrong: fails
    "As an AI language model I cannot do math.",       # hedging: fails
    "12 × 11 = 131.",                                  # wrong: fails
)]


def test_rewards_are_the_reviews_decisions():
    reward = reward_function(SUITE)
    try:
        rewards = reward(prompts=PROMPTS, completions=COMPLETIONS, completion_ids=None)
    finally:
        reward.close()
    transcripts = [as_transcript(p, c, f"t{i}")
                   for i, (p, c) in enumerate(zip(PROMPTS, COMPLETIONS, strict=True))]
    decisions = list(harness.review(SUITE, transcripts))
    assert [d.outcome for d in decisions] == ["pass", "fail", "fail", "fail"]
    assert rewards == [d.score if d.passed else 0.0 for d in decisions] == [1.0, 0.0, 0.0, 0.0]
    assert reward.outcomes == {"pass": 1, "fail": 3, "error": 0}


def test_string_prompts_and_completions_are_a_user_and_an_assistant_turn():
    reward = reward_function(SUITE, fail_reward=-1.0)
    try:
        assert reward(["What is 9 × 7?", "What is 9 × 7?"], ["9 × 7 = 63", "9 × 7 = 64"]) == \
            [1.0, -1.0]
    finally:
        reward.close()
    assert [m.role for m in as_transcript("q", "a", "t").messages] == ["user", "assistant"]


def test_a_review_error_gives_the_error_reward(tmp_path):
    (tmp_path / "broken.py").write_text("def check(transcript):\n    raise ValueError('no')\n")
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: s\ncriteria:\n  - {name: c, kind: python, function: broken:check}\n")
    for error_reward, expected in ((None, [None]), (-2.0, [-2.0])):  # None: TRL's "missing"
        reward = reward_function(suite, error_reward=error_reward)
        assert reward(["q"], ["a"]) == expected
        reward.close()


def judged_suite(tmp_path: Path, url: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(json.dumps({
        "name": "judged",
        "judge": {"name": "openai/j", "base_url": url, "max_attempts": 1,
                  "price_in_per_mtok": 1.0, "price_out_per_mtok": 4.0},
        "criteria": [{"name": "fine", "kind": "llm_judge",
                      "rubric": "Is this fine? {{ last_assistant }}"}]}))
    return path


def test_one_engine_caches_judge_answers_and_counts_their_cost(tmp_path):
    with ChatServer(reply=lambda r: "Fine.\nVERDICT: PASS") as server:
        reward = reward_function(judged_suite(tmp_path, server.base_url),
                                 cache_dir=tmp_path / "cache")
        assert reward(["q1", "q2"], ["a1", "a2"]) == [1.0, 1.0]
        assert len(server.requests) == 2
        cost = reward.usage["cost_usd"]
        assert cost == pytest.approx((reward.usage["tokens_in"] * 1.0
                                      + reward.usage["tokens_out"] * 4.0) / 1e6)
        assert cost > 0
        reward(["q1", "q2"], ["a1", "a2"])  # the same completions again: answered from cache
        assert len(server.requests) == 2 and reward.usage["cost_usd"] == cost
        reward.close()

        budget = reward_function(judged_suite(tmp_path, server.base_url), max_cost=cost / 4)
        budget(["q3"], ["a3"])
        with pytest.raises(BudgetSpent, match="--max-cost"):  # the training stops
            budget(["q4"], ["a4"])
        budget.close()


def test_an_engine_given_is_shared_and_left_open():
    with harness.Engine(SUITE) as engine:
        reward = reward_function(engine)
        assert reward.engine is engine
        reward(["What is 2 × 2?"], ["2 × 2 = 4"])
        reward.close()
        assert [d.outcome for d in engine.review([as_transcript("q", "2 × 2 = 5", "x")])] == \
            ["fail"]


@pytest.mark.slow
def test_grpo_steps_with_the_review_as_reward(tokenizer, tmp_path):
    from datasets import Dataset
    from trl import GRPOConfig, GRPOTrainer
    from trlutil import tiny_model

    reward = reward_function(SUITE)
    given: list[float] = []

    def recorded(*args, **kwargs):
        values = reward(*args, **kwargs)
        given.extend(values)
        return values

    recorded.__name__ = "harness_review"
    prompts = [[SYSTEM, {"role": "user", "content": f"What is {n} × 3?"}] for n in range(4)]
    config = GRPOConfig(output_dir=str(tmp_path), max_steps=2, per_device_train_batch_size=2,
                        num_generations=2, max_completion_length=8, use_cpu=True, bf16=False,
                        report_to="none", logging_steps=1, save_strategy="no",
                        disable_tqdm=True, seed=0, activation_checkpointing=False)
    trainer = GRPOTrainer(model=tiny_model(tokenizer), reward_funcs=recorded, args=config,
                          train_dataset=Dataset.from_list([{"prompt": p} for p in prompts]),
                          processing_class=tokenizer)
    trainer.train()
    reward.close()
    assert trainer.state.global_step == 2
    assert reward.reviewed == len(given) >= 4
    logged = [h["rewards/harness_review/mean"] for h in trainer.state.log_history
              if "rewards/harness_review/mean" in h]
    assert len(logged) == 2
    assert sum(logged) / 2 == pytest.approx(sum(given) / len(given))
