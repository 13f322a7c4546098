"""harness correct: supervise, continue, review again, against a real local chat server."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from correctutil import REASON, RIGHT, Models, interruptions, reviewed

from harness.cli import main
from harness.correct import CorrectOptions, correct_run
from harness.export import export_run


def progress(out: Path) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in map(json.loads, (out / "corrections.jsonl").open())}


def inputs(out: Path) -> dict[str, dict[str, Any]]:
    return {r["id"]: r for r in map(json.loads, (out / "transcripts.jsonl").open())}


def test_turn_style_keeps_the_failed_turn_masked_and_trains_the_continuation(
        tmp_path: Path, models: Models) -> None:
    run = reviewed(tmp_path, models)
    out = tmp_path / "corrected"
    summary = correct_run(run, out, CorrectOptions(report=False))

    block = summary["corrections"]
    # 4 transcripts fail only on assistant messages; `ends-with-user` fails a transcript-level
    # criterion; `clean` and `clean-again` passed already
    assert (block["corrected"], block["still_failing"], block["not_correctable"],
            block["passed"]) == (4, 0, 1, 2)
    assert block["usage"]["generator"]["calls"] == 4
    assert block["usage"]["supervisor"]["calls"] == 4
    assert json.loads((out / "summary.json").read_text())["corrections"] == block

    fixed = inputs(out)["corrected-product"]
    roles = [(m["role"], m.get("weight")) for m in fixed["messages"]]
    assert roles == [("system", None), ("user", None), ("assistant", 0.0), ("user", None),
                     ("assistant", 1.0)]
    assert fixed["messages"][2]["content"] == "17 × 24 = 398."  # the mistake, kept as context
    assert fixed["messages"][3]["content"] == f"No, {REASON}"
    assert fixed["messages"][4]["content"] == RIGHT
    assert fixed["messages"][4]["logprobs"]["content"][0]["token"] == "1"
    provenance = fixed["metadata"]["correction"]
    assert provenance["original_id"] == "corrected-product"
    assert (provenance["rounds"], provenance["style"]) == (1, "turn")
    assert (provenance["generator"], provenance["supervisor"]) == ("openai/gen", "openai/sup")
    assert provenance["masked"] == [2]
    assert "ends-with-user" not in inputs(out)
    assert "ends_with_answer failed" in progress(out)["ends-with-user"]["reason"]

    # the generator saw the conversation up to the objection; the supervisor the rule, the
    # finding and the conversation, fenced as data
    to_generator = next(r["messages"] for r in models.requests("generator")
                        if "17 × 24 = 398." in json.dumps(r, ensure_ascii=False))
    assert to_generator[-1] == {"role": "user", "content": f"No, {REASON}"}
    to_supervisor = next(r["messages"][1]["content"] for r in models.requests("supervisor")
                         if "17 × 24 = 398" in r["messages"][1]["content"])
    assert "arithmetic_checks_out: Every" in to_supervisor
    assert "17 × 24 is 408, not 398" in to_supervisor  # the verdict's explanation
    assert "<<<TRANSCRIPT-" in to_supervisor

    # an ordinary run directory where corrected transcripts pass: the policy leaves verdicts on
    # masked turns out, so the run's own train set holds them, the mistake at weight 0
    decided = json.loads((out / "summary.json").read_text())
    assert (decided["passed"], decided["failed"]) == (6, 0)
    train = [json.loads(line)["messages"] for line in (out / "train.jsonl").open()]
    product = next(t for t in train if "17 × 24 = 398." in json.dumps(t, ensure_ascii=False))
    assert [(m["role"], m.get("weight")) for m in product[2:]] == [
        ("assistant", 0), ("user", None), ("assistant", 1)]
    export_run(out, tmp_path / "sft.jsonl", "openai", {})
    rows = {json.loads(line)["metadata"]["transcript_id"]: json.loads(line)
            for line in (tmp_path / "sft.jsonl").open()}
    weights = [m.get("weight") for m in rows["corrected-product"]["messages"]
               if m["role"] == "assistant"]
    assert weights == [0, 1]


def test_inline_style_splits_the_message_after_the_failing_span(
        tmp_path: Path, models: Models) -> None:
    models.generator = lambda req: "17 × 24 = 408."
    run = reviewed(tmp_path, models)
    out = tmp_path / "corrected"
    summary = correct_run(run, out, CorrectOptions(style="inline", report=False))
    assert summary["corrections"]["corrected"] == 4

    fixed = inputs(out)["corrected-refusal"]["messages"]
    # "As an AI language model, I cannot do math reliably." split after the matched span
    assert fixed[2] == {"role": "assistant", "content": "As an AI language model", "weight": 0.0}
    assert fixed[3]["role"] == "assistant" and fixed[3]["weight"] == 1.0
    assert fixed[3]["content"] == f"No, {REASON} 17 × 24 = 408."
    assert inputs(out)["corrected-refusal"]["metadata"]["correction"]["split_at"] == 23
    # the generator was asked to continue its own message after the interruption
    last = models.requests("generator")[0]["messages"][-1]
    assert last["role"] == "assistant" and last["content"].endswith(f"No, {REASON} ")

    export_run(out, tmp_path / "pc.jsonl", "prompt-completion", {"on_fail": "mask"})
    rows = [json.loads(line) for line in (tmp_path / "pc.jsonl").open()]
    refusal = next(r for r in rows if r["transcript_id"] == "corrected-refusal")
    assert refusal["prompt"][-1]["content"] == "As an AI language model"
    assert refusal["completion"][0]["content"].startswith("No, ")

    # distillation targets cover what the generator wrote, after the interruption
    export_run(out, tmp_path / "distill.jsonl", "distill", {"on_fail": "mask"})
    rows = [json.loads(line) for line in (tmp_path / "distill.jsonl").open()]
    refusal = next(r for r in rows if r["transcript_id"] == "corrected-refusal")
    start = refusal["tokens_start"]
    assert refusal["completion"][start:] == "17 × 24 = 408."
    assert "".join(t["token"] for t in refusal["tokens"]) == "17 × 24 = 408."


def test_a_second_round_corrects_what_the_first_did_not(tmp_path: Path, models: Models) -> None:
    # wrong after the first objection, right after the second
    models.generator = lambda req: "17 × 24 = 400." if interruptions(req) < 2 else RIGHT
    run = reviewed(tmp_path, models)
    out = tmp_path / "corrected"
    summary = correct_run(run, out, CorrectOptions(max_rounds=3, report=False))
    block = summary["corrections"]
    assert block["corrected"] == 4 and block["rounds"] == {"2": 4}
    fixed = inputs(out)["corrected-product"]
    assert [m.get("weight") for m in fixed["messages"] if m["role"] == "assistant"] == \
        [0.0, 0.0, 1.0]
    assert fixed["metadata"]["correction"]["rounds"] == 2
    assert fixed["metadata"]["correction"]["masked"] == [2, 4]


def test_a_correction_that_still_fails_after_k_rounds_is_not_kept(
        tmp_path: Path, models: Models) -> None:
    models.generator = lambda req: "17 × 24 = 400."
    run = reviewed(tmp_path, models, supervisor=False)
    out = tmp_path / "corrected"
    summary = correct_run(run, out, CorrectOptions(max_rounds=2, report=False))
    block = summary["corrections"]
    assert (block["corrected"], block["still_failing"]) == (0, 4)
    assert block["supervisor"] is None and "supervisor" not in block["usage"]
    assert block["usage"]["generator"]["calls"] == 8  # 2 rounds x 4 transcripts
    assert set(inputs(out)) == {"clean", "clean-again"}
    record = progress(out)["corrected-product"]
    assert record["status"] == "still failing" and record["rounds"] == 2
    # without a supervisor the objection is the failed verdict's explanation
    assert record["transcript"]["messages"][3]["content"].startswith(
        "No, 1 of 1 equation(s) wrong: 17 × 24 is 408, not 398.")
    assert summary["read"] == 2


def test_identical_transcripts_are_supervised_and_continued_once(
        tmp_path: Path, models: Models) -> None:
    run = reviewed(tmp_path, models, copies=4)
    asked = len(models.server.requests)
    summary = correct_run(run, tmp_path / "corrected", CorrectOptions(report=False))
    assert summary["corrections"]["corrected"] == 4 + 4
    # 4 distinct corrections: one supervisor call and one generator call each
    assert len(models.server.requests) - asked == 4 + 4
    usage = summary["corrections"]["usage"]
    assert (usage["supervisor"]["calls"], usage["supervisor"]["cached"]) == (8, 4)
    assert (usage["generator"]["calls"], usage["generator"]["cached"]) == (8, 4)


def test_answers_are_cached_and_a_killed_correction_resumes(
        tmp_path: Path, models: Models) -> None:
    run = reviewed(tmp_path, models)
    out = tmp_path / "corrected"
    stops = iter([None, KeyboardInterrupt()])

    def kill_after_first_chunk() -> None:
        exc = next(stops, None)
        if exc is not None:
            raise exc

    with pytest.raises(KeyboardInterrupt):
        correct_run(run, out, CorrectOptions(chunk=2, report=False),
                    on_chunk=kill_after_first_chunk)
    assert len(progress(out)) == 4  # two chunks of two were journaled
    asked = len(models.server.requests)

    summary = correct_run(run, out, CorrectOptions(chunk=2, resume=True, report=False))
    lines = (out / "corrections.jsonl").read_text().splitlines()
    assert len(lines) == 7 and len({json.loads(x)["n"] for x in lines}) == 7
    assert summary["corrections"]["corrected"] == 4
    resumed_calls = len(models.server.requests) - asked

    assert resumed_calls == 2  # `uncorrected`, the one correction left: generator, supervisor

    # the same correction again: every generator and supervisor answer comes from the cache
    first = inputs(out)
    before = len(models.server.requests)
    again = correct_run(run, out, CorrectOptions(chunk=2, overwrite=True, report=False))
    assert len(models.server.requests) == before
    assert again["corrections"]["usage"]["generator"]["cached"] == 4
    assert inputs(out) == first


def test_the_command(tmp_path: Path, models: Models, capsys: pytest.CaptureFixture) -> None:
    run = reviewed(tmp_path, models)
    out = tmp_path / "corrected"
    # a name given on the command line keeps the options the suite gives for it
    code = main(["correct", str(run), "-o", str(out), "--generator", "openai/gen",
                 "--style", "turn", "--max-rounds", "2", "--no-report"])
    printed = capsys.readouterr().out
    assert code == 0
    assert "corrected 4, still failing 0, not correctable 1" in printed
    assert f"passed 6, failed 0)\ntraining set: {out}/train.jsonl" in printed
    assert main(["correct", str(run), "-o", str(out), "--no-report"]) == 2  # already there
    assert "--resume" in capsys.readouterr().err
    assert main(["correct", str(run), "-o", str(tmp_path / "x"), "--generator", "nope"]) == 2
    assert "PREFIX/MODEL" in capsys.readouterr().err


def test_a_failed_generator_call_is_an_error_retried_on_resume(
        tmp_path: Path, models: Models) -> None:
    run = reviewed(tmp_path, models, supervisor=False)
    out = tmp_path / "corrected"
    models.server.fail_first(4, status=400)  # not retryable: each call fails for good
    summary = correct_run(run, out, CorrectOptions(report=False))
    assert (summary["corrections"]["error"], summary["corrections"]["corrected"]) == (4, 0)
    assert "HTTP 400" in progress(out)["corrected-product"]["reason"]
    assert set(inputs(out)) == {"clean", "clean-again"}

    again = correct_run(run, out, CorrectOptions(resume=True, report=False))
    assert (again["corrections"]["error"], again["corrections"]["corrected"]) == (0, 4)
