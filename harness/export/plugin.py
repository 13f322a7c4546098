"""The built-in exporters and the ``harness export`` command, registered through the hooks."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from harness.errors import UsageError
from harness.hookspecs import hookimpl
from harness.plugins import get_registry

FORMATS = ("openai", "prompt-completion", "pairs", "parquet")


def _openai(run_dir: Path, out: Path, options: dict[str, Any]) -> dict[str, Any]:
    from harness.export.openai import export_openai
    return export_openai(run_dir, out, options)


def _prompt_completion(run_dir: Path, out: Path, options: dict[str, Any]) -> dict[str, Any]:
    from harness.export.prompt_completion import export_prompt_completion
    return export_prompt_completion(run_dir, out, options)


def _pairs(run_dir: Path, out: Path, options: dict[str, Any]) -> dict[str, Any]:
    from harness.export.pairs import export_pairs
    return export_pairs(run_dir, out, options)


def _parquet(run_dir: Path, out: Path, options: dict[str, Any]) -> dict[str, Any]:
    from harness.export.parquet import export_parquet
    return export_parquet(run_dir, out, options)


def _distill(run_dir: Path, out: Path, options: dict[str, Any]) -> dict[str, Any]:
    from harness.export.distill import export_distill
    return export_distill(run_dir, out, options)


@hookimpl
def register_exporters(register: Callable[..., None]) -> None:
    for name, fn in zip(FORMATS, (_openai, _prompt_completion, _pairs, _parquet), strict=True):
        register(name, fn)
    register("distill", _distill)


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("format_first", nargs="?", metavar="FORMAT",
                   help="the format may come first instead of --format: `harness export pairs "
                        "RUN_DIR`")
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory of `harness run`")
    p.add_argument("--format", "-f", dest="fmt", metavar="FORMAT",
                   help="openai (default), prompt-completion, pairs, parquet, distill, or any "
                        "registered exporter")
    p.add_argument("-o", "--out", required=True, metavar="OUT",
                   help="output file: .jsonl or .jsonl.gz, or .parquet (--format parquet; "
                        "prompt-completion, pairs and distill too); the dataset card goes next "
                        "to it as OUT.card.md")
    p.add_argument("--weight-by", metavar="score|CRITERION",
                   help="write a per-example `weight` (soft label) from the decision score or "
                        "one criterion's score")
    p.add_argument("--on-fail", choices=("drop", "mask"), default="drop",
                   help="drop failing transcripts (default), or keep those whose only failures "
                        "are message-scoped verdicts on assistant turns, with those turns at "
                        "weight 0")
    p.add_argument("--min-score", type=float, metavar="X",
                   help="drop examples scoring below X (0..1)")
    p.add_argument("--min-stability", type=float, metavar="X",
                   help="drop transcripts with a judge verdict whose repeats agree less than "
                        "X (0..1)")
    p.add_argument("--prefer", metavar="CRITERION",
                   help="pairs: chosen/rejected from this pairwise criterion's preference "
                        "(order-dependent verdicts are ties: no pair)")
    p.add_argument("--margin", type=float, metavar="M",
                   help="pairs: also pair two passing candidates whose scores differ by >= M")
    p.add_argument("--messages-only", action="store_true",
                   help="openai: lines hold only `messages`; provenance goes to "
                        "OUT.provenance.jsonl")
    p.add_argument("--keep-duplicates", action="store_true",
                   help="do not drop exact duplicates")
    p.add_argument("--card", metavar="PATH", help="where to write the dataset card")


def export_command(args: argparse.Namespace) -> int:
    from harness.export import ExportOptions, export_run

    registry = get_registry(args.plugins_dir)
    fmt = args.fmt
    first = args.format_first
    if first is not None:
        if first not in registry.exporters:
            raise UsageError(f"give one RUN_DIR, optionally preceded by the format (`harness "
                             f"export pairs RUN_DIR`); {first!r} is not a format: "
                             f"{', '.join(registry.exporters)}")
        if fmt not in (None, first):
            raise UsageError(f"the format is given twice: {first!r} and --format {fmt!r}")
        fmt = first
    try:
        options = ExportOptions(on_fail=args.on_fail, weight_by=args.weight_by,
                                min_score=args.min_score, margin=args.margin,
                                min_stability=args.min_stability, prefer=args.prefer,
                                messages_only=args.messages_only,
                                dedup=not args.keep_duplicates)
    except ValidationError as exc:
        problems = "; ".join(f"--{'-'.join(str(x) for x in e['loc']).replace('_', '-')}: "
                             f"{e['msg']}" for e in exc.errors())
        raise UsageError(problems) from None
    result = export_run(args.run_dir, args.out, fmt or "openai", options, card=args.card,
                        registry=registry)
    print(_summary(result))
    return 0


def _summary(result: dict[str, Any]) -> str:
    """What the export wrote, one unit per line: examples (or pairs), then transcripts (read,
    kept and not exported add up), then prompts for pairs."""
    from harness.export.card import (
        count,
        duplicates_phrase,
        examples_phrase,
        kept_phrase,
        not_carried,
        not_exported,
    )
    from harness.text import escape_controls

    def listed(counts: dict[str, int]) -> str:
        return ", ".join(f"{escape_controls(k)} {v}" for k, v in sorted(counts.items()))

    parts = [f"{examples_phrase(result)} -> {result['out']}",
             f"read {count(result['read'], 'transcript')} (passed {result['passed']}, "
             f"failed {result['failed']}, errored {result['errored']})"]
    if result["format"] == "pairs":
        parts.append(f"{count(result.get('pairs', 0), 'pair')} from "
                     f"{count(result.get('groups', 0), 'prompt')}")
    else:
        parts.append(kept_phrase(result["kept"], result["kept_masked"],
                                 result["messages_masked"]))
    if "turns_with_logprobs" in result:
        parts.append(f"{result['turns_with_logprobs']} turns with token logprobs, "
                     f"{result['turns_without_logprobs']} without")
    parts.append(duplicates_phrase(result["duplicates"], result))
    transcripts, prompts = not_exported(result)
    if transcripts:
        where = "in no pair" if result["format"] == "pairs" else "not exported"
        parts.append(f"transcripts {where}: {listed(transcripts)}")
    if prompts:
        parts.append(f"prompts without a pair: {listed(prompts)}")
    lost = not_carried(result)
    if lost:
        parts.append(f"not carried by {result['format']} (counted in the card): "
                     + ", ".join(f"{escape_controls(k)} {v}" for k, v in lost))
    parts.append(f"card: {result['card']}")
    return "\n".join(parts)


@hookimpl
def register_commands(register: Callable[..., None]) -> None:
    register("export", _add_arguments, export_command,
             help="export a run directory as a training set (chat, prompt/completion, "
                  "preference pairs, Parquet) with a dataset card")
