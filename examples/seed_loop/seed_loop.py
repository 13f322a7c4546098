"""The seed loop, offline in one command: teach a lesson, invert it into a wrong-thinker, let it
answer, review, correct it with a supervisor, train on the corrections, and measure.

On the embedded SmolLM2-135M-Instruct (CPU, no key, no download), with times-table questions
("What is 7 × 8?") and ``suite.yaml`` (the turn states the product as a true equation):

1. **lesson**: the lesson set (``a × b = c.`` answers) is reviewed and trained into the base
   (``harness train``) -> ``models/lesson``;
2. **wrong-thinker**: ``harness wrongthink`` -> ``models/wrongthinker``
   (``W_base - alpha * (W_lesson - W_base)``);
3. **generate, review, correct**: the wrong-thinker answers its own set of questions; the run
   is corrected by ``harness correct`` (the supervisor's "No, <why>" is the failed verdict's
   explanation; the lesson model continues, or the wrong-thinker with ``--corrector
   wrongthinker``) -> ``runs/corrected``;
4. **train on the corrections**: from the wrong-thinker, with the wrong turns masked
   (``models/corrected``) and, as a control, with every turn at weight 1
   (``models/corrected-unmasked``); ``harness logprobs`` before and after;
5. **failure rates**: every model answers the held-out questions, reviewed by the suite;
6. **distributions**: the lesson model as teacher samples answers with its top-5 token
   log-probabilities; the base is trained on them with ``--objective distill`` and with
   ``sft``, same steps; ``KL(teacher || student)`` on the held-out questions.

``--no-controls`` leaves out the unmasked control and step 6.

    python examples/seed_loop/seed_loop.py -o runs/seed-loop

Everything lands in the output folder; ``measurements.json`` has the figures.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import time
from pathlib import Path
from typing import Any

import harness
from harness.correct import CorrectOptions, correct_run
from harness.correct.agents import openai_logprobs
from harness_trl.divergence import mean_token_kl
from harness_trl.folder_backend import forget_chat_models, load_chat_model
from harness_trl.logprobs import turn_logprobs
from harness_trl.model_dirs import load_model, resolve_model
from harness_trl.training import train
from harness_trl.wrongthink import wrongthink

HERE = Path(__file__).resolve().parent
SUITE = HERE / "suite.yaml"
SYSTEM = "You are a careful arithmetic tutor. Show the result as an equation."


def questions(seed: int) -> list[tuple[int, int]]:
    """Every ``a × b`` with ``a, b`` in 2..9, in a seeded order."""
    pairs = [(a, b) for a in range(2, 10) for b in range(2, 10)]
    random.Random(seed).shuffle(pairs)
    return pairs


def prompt(a: int, b: int) -> dict[str, Any]:
    return {"id": f"{a}x{b}", "messages": [{"role": "system", "content": SYSTEM},
                                           {"role": "user", "content": f"What is {a} × {b}?"}]}


def lesson_example(a: int, b: int) -> dict[str, Any]:
    """The lesson: answer with the equation, and nothing else."""
    record = prompt(a, b)
    reply = {"role": "assistant", "content": f"{a} × {b} = {a * b}."}
    return {**record, "messages": [*record["messages"], reply]}


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write(json.dumps(r, ensure_ascii=False) + "\n")
    return path


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    with path.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh if line.strip()]


def answer(model: Path | str, prompts: list[dict[str, Any]], out: Path, max_new_tokens: int,
           temperature: float = 0.0, seed: int = 0) -> Path:
    """The model answers every prompt, its top-5 token log-probabilities kept."""
    chat = load_chat_model(model)
    records = []
    for n, p in enumerate(prompts):
        g = chat.generate(p["messages"], max_new_tokens=max_new_tokens, temperature=temperature,
                          seed=seed + n, top_logprobs=5)
        message = {"role": "assistant", "content": g.text.strip(),
                   "logprobs": openai_logprobs(g.tokens)}
        records.append({"id": p["id"], "messages": [*p["messages"], message],
                        "metadata": {"generator": str(model)}})
    return write_jsonl(out, records)


def fit(source: Path | str, out: Path, **options: Any) -> Any:
    """``harness train``, the generation models let go of first (their memory is not the
    training's)."""
    forget_chat_models()
    return train(source, out, overwrite=True, **options)


def review(answers: Path, run_dir: Path) -> dict[str, Any]:
    return harness.run(SUITE, [answers], run_dir, overwrite=True, workers=1, report=False)


def failure_rate(summary: dict[str, Any]) -> float:
    return round(summary["failed"] / summary["read"], 3) if summary["read"] else 0.0


def failures_by_kind(run_dir: Path) -> dict[str, int]:
    """The failed verdicts: no equation for the asked product, or a wrong one."""
    import pandas as pd

    failed = pd.read_parquet(run_dir / "results.parquet").query("outcome == 'fail'")
    no_equation = int(failed.explanation.str.startswith("state the result").sum())
    return {"no_equation": no_equation, "wrong_equation": len(failed) - no_equation}


def step_figures(result: Any) -> dict[str, Any]:
    """Time and memory of a training run's steps (the first step, which warms up, apart)."""
    later = result.seconds_per_step[1:] or result.seconds_per_step
    return {"steps": result.steps, "examples": result.examples,
            "first_step_s": round(result.seconds_per_step[0], 2) if later else None,
            "mean_step_s": round(sum(later) / len(later), 2) if later else None,
            "tokens_per_step": round(sum(result.tokens_per_step) / max(1, result.steps), 1),
            "tokens_per_s": round(result.tokens_per_s, 1), "peak_rss_mb": result.peak_rss_mb,
            "threads": result.threads, "final_loss": round(result.losses[-1], 4)
            if result.losses else None}


def masking_effect(before: Any, masked: Any, unmasked: Any) -> dict[str, Any]:
    """Mean log-prob per token of the bad turns (weight 0) and of the corrections (the weight-1
    turns of transcripts that have a bad turn) under each model, and their changes."""
    corrected = set(before[before.weight == 0].transcript_id)
    rows = before.transcript_id.isin(corrected)

    def per_token(frame: Any, weight: float) -> float:
        part = frame[frame.transcript_id.isin(corrected) & (frame.weight == weight)]
        return float(part.sum_logprob.sum() / part.tokens.sum()) if len(part) else float("nan")

    figures: dict[str, Any] = {"transcripts": len(corrected),
                               "bad_turns": int((rows & (before.weight == 0)).sum()),
                               "corrections": int((rows & (before.weight != 0)).sum())}
    for name, weight in (("bad", 0.0), ("correction", 1.0)):
        b = per_token(before, weight)
        m, u = per_token(masked, weight), per_token(unmasked, weight)
        figures[name] = {"before": round(b, 4), "masked": round(m, 4), "unmasked": round(u, 4),
                         "change_masked": round(m - b, 4), "change_unmasked": round(u - b, 4)}
    bad = figures["bad"]
    figures["masked_over_unmasked_bad_change"] = (
        round(abs(bad["change_masked"]) / abs(bad["change_unmasked"]), 3)
        if bad["change_unmasked"] else None)
    return figures


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument("--per-set", type=int, default=24,
                   help="questions in the lesson set and in the set to correct (default 24)")
    p.add_argument("--held-out", type=int, default=16, help="held-out questions (default 16)")
    p.add_argument("--lesson-steps", type=int, default=30)
    p.add_argument("--steps", type=int, default=20,
                   help="steps of each later training (default 20)")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--learning-rate", type=float, default=5e-5)
    p.add_argument("--alpha", type=float, default=1.0, help="wrongthink's alpha (default 1)")
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--max-rounds", type=int, default=2, help="harness correct's rounds")
    p.add_argument("--corrector", choices=("lesson", "wrongthinker"), default="lesson",
                   help="who continues after the supervisor's \"No, ...\" (default: the lesson "
                        "model; the wrong-thinker rarely recovers)")
    p.add_argument("--no-controls", action="store_true",
                   help="skip the unmasked control and the distill/sft comparison")
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)
    if 2 * args.per_set + args.held_out > 64:
        p.error("--per-set twice plus --held-out must be at most 64 (the 8 × 8 table)")
    out: Path = args.out
    started = time.perf_counter()
    pairs = questions(args.seed)
    lesson_pairs = pairs[:args.per_set]
    correct_pairs = pairs[args.per_set:2 * args.per_set]
    held_out = [prompt(a, b) for a, b in pairs[2 * args.per_set:2 * args.per_set + args.held_out]]
    settings = {"learning_rate": args.learning_rate, "batch_size": args.batch_size,
                "seed": args.seed}
    figures: dict[str, Any] = {"settings": {k: (str(v) if isinstance(v, Path) else v)
                                            for k, v in vars(args).items()}}
    stage: dict[str, float] = {}

    def done(name: str, t0: float) -> None:
        stage[name] = round(time.perf_counter() - t0, 1)
        print(f"-- {name}: {stage[name]:.0f} s", flush=True)

    # 1. the lesson
    t0 = time.perf_counter()
    base = resolve_model(None)
    lesson = [lesson_example(a, b) for a, b in lesson_pairs]
    review(write_jsonl(out / "data" / "lesson.jsonl", lesson), out / "runs" / "lesson")
    trained = fit(out / "runs" / "lesson", out / "models" / "lesson", steps=args.lesson_steps,
                  **settings)
    figures["train_lesson"] = step_figures(trained)
    done("lesson", t0)

    # 2. the wrong-thinker
    t0 = time.perf_counter()
    wrong = wrongthink(base, out / "models" / "lesson", out / "models" / "wrongthinker",
                       alpha=args.alpha, overwrite=True)
    done("wrongthink", t0)

    # 3. the wrong-thinker answers, is reviewed and corrected
    t0 = time.perf_counter()
    answers = answer(wrong, [prompt(a, b) for a, b in correct_pairs],
                     out / "data" / "wrongthinker-answers.jsonl", args.max_new_tokens)
    reviewed = review(answers, out / "runs" / "wrongthinker")
    corrector = out / "models" / "lesson" if args.corrector == "lesson" else wrong
    summary = correct_run(out / "runs" / "wrongthinker", out / "runs" / "corrected",
                          CorrectOptions(generator=f"hf/{corrector}", max_rounds=args.max_rounds,
                                         max_tokens=args.max_new_tokens, overwrite=True,
                                         report=False, workers=1))
    block = summary["corrections"]
    figures["corrections"] = {"reviewed": reviewed["read"], "failed": reviewed["failed"],
                              **{k: block[k] for k in ("passed", "corrected", "still_failing",
                                                       "not_correctable", "error")}}
    done("generate, review, correct", t0)

    # 4. training on the corrections, masked (and the unmasked control)
    t0 = time.perf_counter()
    corrected_run = out / "runs" / "corrected"
    trained_models: dict[str, Path] = {}
    if not block["corrected"]:
        print("nothing was corrected: no training on corrections (see "
              f"{corrected_run / 'corrections.jsonl'})")
    else:
        masked = fit(corrected_run, out / "models" / "corrected", base=wrong, steps=args.steps,
                     **settings)
        figures["train_corrections"] = step_figures(masked)
        trained_models["corrected"] = out / "models" / "corrected"
    if block["corrected"] and not args.no_controls:
        unmasked_set = [{"messages": [{**m, "weight": 1} if m["role"] == "assistant" else m
                                      for m in r["messages"]]}
                        for r in read_jsonl(corrected_run / "train.jsonl")]
        write_jsonl(out / "data" / "corrected-unmasked.jsonl", unmasked_set)
        unmasked = fit(out / "data" / "corrected-unmasked.jsonl",
                       out / "models" / "corrected-unmasked", base=wrong, steps=args.steps,
                       **settings)
        figures["train_corrections_unmasked"] = step_figures(unmasked)
        trained_models["corrected-unmasked"] = out / "models" / "corrected-unmasked"
        figures["masking"] = masking_effect(
            turn_logprobs(wrong, corrected_run), turn_logprobs(out / "models" / "corrected",
                                                               corrected_run),
            turn_logprobs(out / "models" / "corrected-unmasked", corrected_run))
    done("train on corrections", t0)

    # 5. failure rates on the held-out questions
    t0 = time.perf_counter()
    teacher = out / "models" / "lesson"
    models = {"base": base, "lesson": teacher, "wrongthinker": wrong, **trained_models}
    figures["failure_rate"], figures["failures"] = {}, {}
    for name, folder in models.items():
        answers = answer(folder, held_out, out / "data" / f"held-out-{name}.jsonl",
                         args.max_new_tokens)
        run = review(answers, out / "runs" / f"held-out-{name}")
        figures["failure_rate"][name] = failure_rate(run)
        figures["failures"][name] = failures_by_kind(out / "runs" / f"held-out-{name}")
    done("failure rates", t0)

    # 6. distributions vs sampled tokens: the lesson model teaches the base
    if not args.no_controls:
        t0 = time.perf_counter()
        samples = answer(teacher, [prompt(a, b) for a, b in lesson_pairs + correct_pairs],
                         out / "data" / "teacher-samples.jsonl", args.max_new_tokens,
                         temperature=1.0, seed=args.seed)
        teacher_run = out / "runs" / "teacher"
        review(samples, teacher_run)
        students = {"base": None}
        for objective in ("sft", "distill"):
            result = fit(teacher_run, out / "models" / f"student-{objective}",
                         objective=objective, steps=args.steps, **settings)
            figures[f"train_student_{objective}"] = step_figures(result)
            students[objective] = out / "models" / f"student-{objective}"
        held = [r["messages"] for r in read_jsonl(out / "data" / "held-out-lesson.jsonl")]
        teacher_model = load_model(teacher)[:2]
        figures["kl_teacher_student"] = {
            name: round(mean_token_kl(teacher_model, folder, held), 4)
            for name, folder in students.items()}
        done("distill vs sft", t0)

    figures["seconds"] = {**stage, "total": round(time.perf_counter() - started, 1)}
    (out / "measurements.json").write_text(json.dumps(figures, indent=1))
    print(json.dumps({k: figures[k] for k in ("failure_rate", "failures", "corrections", "masking",
                                              "kl_teacher_student") if k in figures}, indent=1))
    print(f"measurements: {out / 'measurements.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
