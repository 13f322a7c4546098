"""The whole loop offline: generate, review, correct, export with masks and as distill.

On the embedded SmolLM2-135M-Instruct model (CPU, no key, no download), with the arithmetic
tutoring suite of ``examples/corrections``:

1. **generate**: the model answers ``examples/corrections/prompts.jsonl``, with its top-5 token
   log-probabilities kept on each answer (``logprobs``);
2. **review**: ``harness.run`` reviews the answers (``OUT/review``); wrong equations fail the
   message-scoped ``arithmetic_checks_out``;
3. **correct**: ``harness correct`` cuts each failed answer, adds ``No, <why>`` (the failed
   verdict's explanation, or ``--supervisor``'s), lets the model continue and reviews again, up
   to ``--max-rounds`` (``OUT/corrected``);
4. **export**: the corrected run as chat JSONL with masks (``OUT/sft.jsonl``: the mistake at
   ``weight: 0``, the correction at 1) and as distillation targets (``OUT/distill.parquet``).

    python examples/correct_loop.py -o runs/correct-loop [--style inline] [--max-rounds 2]

The same with the command line, after step 1:

    harness run examples/corrections/loop.yaml OUT/candidates.jsonl -o OUT/review
    harness correct OUT/review -o OUT/corrected --max-rounds 2
    harness export OUT/corrected --on-fail mask -o OUT/sft.jsonl
    harness export OUT/corrected --format distill --on-fail mask -o OUT/distill.parquet

A 135M model gets much arithmetic wrong, and not every correction succeeds: the summary says
how many were corrected, still fail, or could not be corrected.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import harness
from harness.correct import CorrectOptions, correct_run
from harness.correct.agents import openai_logprobs
from harness.correct.command import describe
from harness.export import export_run

HERE = Path(__file__).resolve().parent
SUITE = HERE / "corrections" / "loop.yaml"
PROMPTS = HERE / "corrections" / "prompts.jsonl"


def generate(prompts: Path, out: Path, max_new_tokens: int) -> Path:
    """Step 1: the embedded model answers every prompt (greedy), logprobs kept."""
    from harness_local_models.chat_model import get_model

    model = get_model()
    with out.open("w", encoding="utf-8") as fh:
        for line in prompts.open(encoding="utf-8"):
            record = json.loads(line)
            answer = model.generate(record["messages"], max_new_tokens=max_new_tokens,
                                    top_logprobs=5)
            message = {"role": "assistant", "content": answer.text.strip(),
                       "logprobs": openai_logprobs(answer.tokens)}
            fh.write(json.dumps({"id": record["id"],
                                 "messages": [*record["messages"], message],
                                 "metadata": {"generator": "local/smollm2"}},
                                ensure_ascii=False) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("-o", "--out", type=Path, required=True, help="output folder")
    p.add_argument("--prompts", type=Path, default=PROMPTS)
    p.add_argument("--style", choices=("turn", "inline"), default="turn")
    p.add_argument("--max-rounds", type=int, default=2)
    p.add_argument("--max-new-tokens", type=int, default=48)
    p.add_argument("--supervisor", help="a supervisor model (default: the verdicts' reasons)")
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    candidates = generate(args.prompts, args.out / "candidates.jsonl", args.max_new_tokens)
    review = harness.run(SUITE, [candidates], args.out / "review", overwrite=True,
                         workers=1, report=False)
    print(f"reviewed {review['read']}: passed {review['passed']}, failed {review['failed']}")
    summary = correct_run(args.out / "review", args.out / "corrected", CorrectOptions(
        style=args.style, max_rounds=args.max_rounds, max_tokens=args.max_new_tokens,
        supervisor=args.supervisor, overwrite=True))
    print(describe(summary, str(args.out / "corrected")))
    for fmt, name in (("openai", "sft.jsonl"), ("distill", "distill.parquet")):
        result = export_run(args.out / "corrected", args.out / name, fmt, {"on_fail": "mask"})
        print(f"{fmt}: {result['examples']} examples -> {result['out']}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
