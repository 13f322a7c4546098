"""The ``harness correct`` command, registered through the ``register_commands`` hook."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from pydantic import ValidationError

from harness.errors import UsageError
from harness.hookspecs import hookimpl
from harness.plugins import get_registry

EXIT_STOPPED = 4
"""The generator or supervisor endpoint is down: ``--resume`` goes on later."""


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="a complete run directory")
    p.add_argument("-o", "--out", required=True, metavar="NEW_RUN_DIR",
                   help="the run directory of the corrected transcripts")
    p.add_argument("--generator", metavar="NAME",
                   help="the model that continues (named like a judge; default: the suite's "
                        "`generator:`)")
    p.add_argument("--supervisor", metavar="NAME",
                   help="the model that says what is wrong (default: the suite's "
                        "`supervisor:`, else the failed verdict's explanation)")
    p.add_argument("--style", choices=("turn", "inline"), default="turn",
                   help="turn: a user interruption and a new assistant turn (default); inline: "
                        "inside the assistant's message, right after the failing span")
    p.add_argument("--max-rounds", type=int, default=3, metavar="K",
                   help="rounds of supervise, continue, review (default 3)")
    p.add_argument("--max-tokens", type=int, default=512, metavar="N",
                   help="longest continuation (default 512)")
    p.add_argument("--temperature", type=float, default=0.0,
                   help="the generator's sampling temperature (default 0)")
    p.add_argument("--top-logprobs", type=int, default=5, metavar="K",
                   help="alternatives per token asked of the generator, kept as `logprobs` "
                        "(default 5; 0: none)")
    p.add_argument("--resume", action="store_true", help="go on with NEW_RUN_DIR")
    p.add_argument("--overwrite", action="store_true", help="start NEW_RUN_DIR again")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="cache of model answers (default: NEW_RUN_DIR)")
    p.add_argument("--workers", type=int, default=None, metavar="N",
                   help="processes for the cheap criteria (default 1)")
    p.add_argument("--no-report", dest="report", action="store_false",
                   help="do not write NEW_RUN_DIR/report.html")


def correct_command(args: argparse.Namespace) -> int:
    from harness.correct.loop import CorrectOptions, correct_run

    try:
        options = CorrectOptions(
            generator=args.generator, supervisor=args.supervisor, style=args.style,
            max_rounds=args.max_rounds, max_tokens=args.max_tokens,
            temperature=args.temperature, top_logprobs=args.top_logprobs, resume=args.resume,
            overwrite=args.overwrite, cache_dir=args.cache_dir, workers=args.workers,
            report=args.report)
    except ValidationError as exc:
        raise UsageError("; ".join(f"--{'-'.join(str(x) for x in e['loc']).replace('_', '-')}"
                                   f": {e['msg']}" for e in exc.errors())) from None
    summary = correct_run(args.run_dir, args.out, options,
                          registry=get_registry(args.plugins_dir))
    print(describe(summary, args.out))
    return EXIT_STOPPED if summary.get("state") == "stopped" else 0


def describe(summary: dict[str, Any], out: str) -> str:
    """The command's report: what happened to each original, and what the calls cost."""
    block = summary["corrections"]
    lines = []
    if summary.get("state") == "stopped":
        lines.append(f"stopped: {summary.get('stop_reason')}; go on with --resume")
    else:
        lines.append(
            f"corrected {block['corrected']}, still failing {block['still_failing']}, "
            f"not correctable {block['not_correctable']}, errors {block['error']} "
            f"(passed already {block['passed']}, unreadable {block['input_error']})")
        if block["rounds"]:
            lines.append("rounds: " + ", ".join(f"{k}: {v}" for k, v in block["rounds"].items()))
    for role, u in block.get("usage", {}).items():
        lines.append(f"{role}: {u['calls']} calls ({u['cached']} cached), "
                     f"{u['tokens_in']} tokens in, {u['tokens_out']} out, ${u['cost_usd']:.4f}")
    if summary.get("state") != "stopped":
        lines.append(f"run directory: {out} (read {summary['read']}: passed "
                     f"{summary['passed']}, failed {summary['failed']})")
        lines.append(f"training set: {out}/train.jsonl (other formats: harness export {out} "
                     "--help)")
    return "\n".join(lines)


@hookimpl
def register_commands(register: Callable[..., None]) -> None:
    register("correct", _add_arguments, correct_command,
             help="correct failing transcripts: a supervisor interrupts at the first failed "
                  "assistant message, the generator continues, the suite reviews again")
