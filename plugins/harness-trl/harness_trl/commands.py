"""The commands: ``harness train``, ``harness wrongthink``, ``harness logprobs``.

Heavy imports (torch, transformers, TRL) happen when a command runs, not when it is registered.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

MODEL_HELP = ("a Hugging Face model folder, or smollm2 (the embedded SmolLM2-135M-Instruct); "
              "nothing is downloaded")


def add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("source", metavar="RUN_DIR",
                   help="a run directory (its train.jsonl; for distill, its distill export), "
                        "or an exported chat JSONL / distill JSONL or Parquet file")
    p.add_argument("-o", "--out", metavar="MODEL_DIR", required=True,
                   help="the model folder to write")
    p.add_argument("--base", metavar="MODEL", default=None,
                   help=f"the model to fine-tune (default: smollm2): {MODEL_HELP}")
    p.add_argument("--steps", type=int, default=20,
                   help="optimiser steps (default 20; 0 writes the base unchanged)")
    p.add_argument("--objective", choices=("sft", "distill"), default="sft",
                   help="sft: the trained turns' tokens (weight 0 = context only); distill: "
                        "the generator's top-k token distributions (default sft)")
    p.add_argument("--learning-rate", type=float, default=5e-5, help="AdamW, constant "
                   "(default 5e-5)")
    p.add_argument("--batch-size", type=int, default=4, help="examples per step (default 4)")
    p.add_argument("--max-length", type=int, default=1024,
                   help="tokens per example; longer ones are cut (default 1024)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--overwrite", action="store_true", help="replace an existing MODEL_DIR")


def run_train(args: argparse.Namespace) -> int:
    from harness_trl.training import train

    train(args.source, args.out, base=args.base, steps=args.steps, objective=args.objective,
          learning_rate=args.learning_rate, batch_size=args.batch_size,
          max_length=args.max_length, seed=args.seed, overwrite=args.overwrite)
    return 0


def add_wrongthink_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("base", metavar="BASE", help=f"the model before the lesson: {MODEL_HELP}")
    p.add_argument("lesson", metavar="LESSON", help="the base fine-tuned on the lesson")
    p.add_argument("-o", "--out", metavar="OUT", required=True, help="the model folder to write")
    p.add_argument("--alpha", type=float, default=1.0,
                   help="how far past the base, against the lesson (default 1.0)")
    p.add_argument("--overwrite", action="store_true", help="replace an existing OUT")


def run_wrongthink(args: argparse.Namespace) -> int:
    from harness_trl.wrongthink import wrongthink

    out = wrongthink(args.base, args.lesson, args.out, alpha=args.alpha,
                     overwrite=args.overwrite)
    print(f"wrote {out}: W_base - {args.alpha:g} * (W_lesson - W_base)")
    return 0


def add_logprobs_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("model", metavar="MODEL", help=MODEL_HELP)
    p.add_argument("source", metavar="RUN_DIR",
                   help="a run directory (its training set, with the weights) or transcripts "
                        "in any input format harness reads")
    p.add_argument("-o", "--out", metavar="FILE.jsonl",
                   help="write one row per assistant turn (transcript_id, message, weight, "
                        "tokens, mean_logprob, sum_logprob)")


def run_logprobs(args: argparse.Namespace) -> int:
    from rich.table import Table

    from harness.tables import print_tables
    from harness_trl.logprobs import turn_logprobs

    rows = turn_logprobs(args.model, args.source)
    table = Table("weight", "turns", "tokens", "mean log-prob per token", box=None)
    for weight, group in rows.groupby("weight"):
        per_token = group.sum_logprob.sum() / group.tokens.sum()
        table.add_row(f"{weight:g}", str(len(group)), str(int(group.tokens.sum())),
                      f"{per_token:.4f}")
    print_tables(table)
    if args.out:
        Path(args.out).parent.mkdir(parents=True, exist_ok=True)
        rows.to_json(args.out, orient="records", lines=True)
        print(f"{len(rows)} turns -> {args.out}")
    return 0


def add_commands(register: Callable[..., None]) -> None:
    """Register the three commands."""
    register("train", add_train_arguments, run_train,
             help="fine-tune a model on a run's training set (TRL, CPU, offline)")
    register("wrongthink", add_wrongthink_arguments, run_wrongthink,
             help="invert a lesson: W_base - alpha * (W_lesson - W_base)")
    register("logprobs", add_logprobs_arguments, run_logprobs,
             help="each assistant turn's mean token log-probability under a model")
