"""``harness validate SUITE [INPUT...]``: what a run would ask its judges, without asking.

The suite is compiled as a run compiles it (so every suite error shows now), one judge prompt
per judging criterion is rendered on the first transcript of the inputs (or on a sample
transcript), and the calls, prompt tokens and cost are estimated from the first transcripts:
tokens as characters / 4, answers at most ``max_tokens`` each. Nothing is sent anywhere.
"""

from __future__ import annotations

import argparse
import itertools
import os
from collections.abc import Iterable, Iterator
from typing import Any

from rich.table import Table

from harness.argtypes import positive_int
from harness.engine import Engine
from harness.hookspecs import hookimpl
from harness.inputs import read_transcripts, resolve_inputs
from harness.inputs.reader import count_records
from harness.models import Message, Transcript
from harness.plugins import get_registry
from harness.tables import table_console

SAMPLE = Transcript(id="sample", messages=[
    Message(role="user", content="How do I reverse a list in Python?"),
    Message(role="assistant", content="Use items[::-1], or items.reverse() in place.")])
"""The transcript prompts are rendered on when no input is given."""
CHARS_PER_TOKEN = 4
KEYS = ("OPENAI_API_KEY", "ANTHROPIC_API_KEY")
"""The judges' default key variables: given a placeholder while the suite compiles."""


def judges_of(criterion: Any, share: float = 1.0) -> Iterator[tuple[Any, float]]:
    """The LLM judges a criterion asks, each with its calls per transcript (a panel's members,
    a cascade's tiers, a pairwise comparison's two orders per pair)."""
    members = getattr(criterion, "members", None)
    if members:
        for _, member in members:
            yield from judges_of(member, share)
    elif criterion.parts():
        for part in criterion.parts():
            yield from judges_of(part, share)
    elif getattr(criterion, "inner", None) is not None:
        yield from judges_of(criterion.inner, share)
    elif hasattr(criterion, "render") and hasattr(criterion, "runner"):
        yield criterion, share * criterion.config.repeats


def prompts_of(criteria: Iterable[Any]) -> list[tuple[str, Any, float, Any]]:
    """What the criteria send their judges: ``(name, judge, calls per transcript, render)``,
    where ``render(transcript, repeat)`` gives the request. The rubrics of one ``rubrics:``
    entry share one call: one row for them all, named ``ENTRY (rubric, ...)``."""
    out: list[tuple[str, Any, float, Any]] = []
    sets: set[int] = set()
    for criterion in criteria:
        for judge, calls in judges_of(criterion):
            rubric_set = getattr(judge, "rubric_set", None)
            if rubric_set is None:
                out.append((criterion.name, judge, calls, judge.render))
            elif id(rubric_set) not in sets:
                sets.add(id(rubric_set))
                name = f"{rubric_set.name} ({', '.join(rubric_set.members)})"
                out.append((name, rubric_set.lead, calls, rubric_set.render))
    return out


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("suite", help="suite YAML file")
    p.add_argument("inputs", nargs="*", metavar="INPUT",
                   help="transcripts to estimate on (files, folders, globs); default: a sample")
    p.add_argument("--judge", metavar="JUDGE", help="as harness run --judge")
    p.add_argument("--sample", type=positive_int, default=200, metavar="N",
                   help="transcripts the token estimate is taken from (default 200)")


def validate_command(args: argparse.Namespace) -> int:
    registry = get_registry(args.plugins_dir)
    sources = resolve_inputs(args.inputs) if args.inputs else []
    sample = list(itertools.islice(
        (t for t in read_transcripts(sources, registry.formats) if isinstance(t, Transcript)),
        args.sample)) if sources else [SAMPLE]
    total = count_records(sources) if sources else 1
    unset = [key for key in KEYS if not os.environ.get(key)]
    for key in unset:  # nothing is called: a missing key is said, not an error here
        os.environ[key] = "unset-for-validate"
    with Engine(args.suite, registry, judge=args.judge) as engine:
        for key in unset:
            del os.environ[key]
        judging = prompts_of(engine.plan.order)
        asking = sum(1 for c in engine.plan.order for _ in judges_of(c))
        print(f"{args.suite}: {len(engine.criteria)} criteria compile; "
              f"{asking} ask a judge")
        table = Table(title="judge calls if every transcript reached every judge "
                            "(a failed gate, a cascade's band or the cache ask fewer)")
        for col in ("criterion", "judge", "calls", "prompt tokens", "answer tokens (at most)",
                    "cost (USD, at most)"):
            table.add_column(col, justify="left" if col in ("criterion", "judge") else "right")
        for name, judge, calls, render in judging:
            _row(table, name, judge, calls, render, sample, total)
        for name, judge, _, render in judging:
            request, _ = render(sample[0], 0)
            print(f"\n--- {name} ({judge.judge_name}), on {sample[0].id}:")
            for message in request.messages:
                print(f"[{message['role']}]\n{message['content']}")
    out = table_console(table)
    out.print(table)
    for key in unset:
        if any(key.split("_")[0].lower() in judge.judge_name for _, judge, _, _ in judging):
            print(f"note: {key} is not set: a run would stop at its first call")
    if total is None:
        print("(the inputs' size is not known without reading them: figures per transcript)")
    return 0


def _row(table: Table, name: str, judge: Any, calls: float, render: Any,
         sample: list[Transcript], total: int | None) -> None:
    chars = [sum(len(m["content"]) for m in render(t, 0)[0].messages) for t in sample]
    tokens_in = sum(chars) / len(chars) / CHARS_PER_TOKEN
    n = (total or 1) * calls
    options = getattr(judge.runner.backend, "options", None)
    cost = options.cost(int(tokens_in * n), judge.config.max_tokens * int(n)) \
        if options is not None and hasattr(options, "cost") else None
    table.add_row(name, judge.judge_name, f"{n:,.0f}", f"{tokens_in * n:,.0f}",
                  f"{judge.config.max_tokens * n:,.0f}",
                  "no prices" if cost is None else f"{cost:,.4f}")


@hookimpl
def register_commands(register: Any) -> None:
    register("validate", _add_arguments, validate_command,
             help="compile a suite, render one judge prompt per criterion and estimate the "
                  "calls, tokens and cost of a run, calling nothing")
