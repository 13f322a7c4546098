"""The core subcommands: ``run``, ``criteria`` and ``plugins``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from rich.console import Console
from rich.table import Table

from harness import api, argtypes
from harness.engine import Engine
from harness.errors import UsageError
from harness.hookspecs import hookimpl
from harness.inputs import resolve_inputs
from harness.inputs.reader import count_records
from harness.judges.budget import limit_cost
from harness.options import RunOptions, default_workers
from harness.plugins import get_registry
from harness.progress import RunProgress, progress_mode
from harness.rundir import JOURNAL, check_writable, decided_records, relink
from harness.stops import Stop, over_error_budget
from harness.tables import PROSE_WIDTH, name_column, table_console

if TYPE_CHECKING:
    from harness.criterion import Criterion

EXIT_FAIL_UNDER = 1
"""The pass rate is below ``--fail-under``."""
EXIT_USAGE = 2
"""A usage, suite or run-directory error (one line on stderr). A run that stops early exits
with its :class:`~harness.stops.Stop`'s code: 3 for the error budget, 4 otherwise (a judge
endpoint down, ``--max-cost`` reached, a worker died), 130 for Ctrl-C; ``--resume`` goes on."""


def _add_run_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("suite", help="suite YAML file")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="transcript files (.jsonl, .jsonl.gz, .json, .parquet), folders of them, "
                        "quoted globs ('data/*.jsonl'), saved datasets, or URLs (s3://, gs://, "
                        "hf://...)")
    p.add_argument("-o", "--out", required=True, metavar="RUN_DIR", help="run directory")
    p.add_argument("--input-format", default="auto",
                   help="record format: auto (default, per record), openai, sharegpt, hh-rlhf")
    p.add_argument("--messages-column", default="messages", metavar="NAME",
                   help="Parquet/Arrow column holding the chat (default: messages)")
    p.add_argument("--limit", type=argtypes.positive_int, default=None, metavar="N",
                   help="review only the first N records of the inputs (a trial run); with "
                        "--resume, go on up to the first N")
    p.add_argument("--resume", action="store_true",
                   help="go on with a killed run in RUN_DIR, skipping what is decided")
    p.add_argument("--overwrite", action="store_true", help="replace a run already in RUN_DIR")
    p.add_argument("--judge", metavar="JUDGE",
                   help="use this judge for every llm_judge criterion: PREFIX/MODEL (keeps the "
                        "suite judge's base_url, api_key_env...) or a YAML/JSON mapping "
                        "'{name: openai/gpt-4o, base_url: URL}'")
    p.add_argument("--all-criteria", action="store_true",
                   help="run expensive criteria even after a gate failed")
    p.add_argument("--workers", type=argtypes.positive_int, default=None, metavar="N",
                   help="processes for the cheap criteria (regex, python, classifier); "
                        f"default: the machine's cores ({default_workers()})")
    p.add_argument("--max-in-flight", type=argtypes.positive_int, default=4096, metavar="N",
                   help="records in flight at once, judge calls included (default 4096)")
    p.add_argument("--max-error-rate", type=argtypes.rate, default=None, metavar="RATE",
                   help="exit 3 when more than RATE (0..1) of the transcripts have a criterion "
                        "error; the run stops as soon as that is certain")
    p.add_argument("--max-cost", type=argtypes.usd, default=None, metavar="USD",
                   help="start no new judge call once the calls of this invocation cost USD "
                        "(needs the judges' prices); exit 4, --resume goes on with a new budget")
    p.add_argument("--no-retry-errors", dest="retry_errors", action="store_false",
                   help="with --resume: keep errored verdicts instead of reviewing their "
                        "transcripts again")
    p.add_argument("--cache-dir", metavar="DIR",
                   help="judge cache folder (default: RUN_DIR)")
    p.add_argument("--fail-under", type=argtypes.rate, metavar="RATE",
                   help="exit 1 when the pass rate is below RATE (0..1)")
    p.add_argument("--no-progress", action="store_true",
                   help="no progress bar (terminal) nor progress lines (logs)")
    p.add_argument("--progress-every", type=argtypes.seconds, default=10.0, metavar="SECONDS",
                   help="outside a terminal (CI logs, nohup): a progress line on stderr every "
                        "SECONDS (default 10)")
    p.add_argument("--junit", metavar="FILE",
                   help="also write JUnit XML for CI (one testcase per transcript)")
    p.add_argument("--no-report", action="store_true", help="do not write RUN_DIR/report.html")
    engines = get_registry().engines  # (an engine plugin of --plugins-dir adds no options here)
    p.add_argument("--engine", default="local", metavar="NAME",
                   help=f"execution engine: {', '.join(sorted(engines))} (default: local; "
                        "`ray` comes with the plugin plugins/harness-ray)")
    for name in sorted(engines):
        if name != "local":
            engines[name].add_arguments(p.add_argument_group(f"--engine {name}"))





def _usage_line(summary: dict[str, Any]) -> str | None:
    """Total judge tokens and cost, for the terminal (``None`` when no judge ran)."""
    usage = summary.get("usage") or {}
    tokens_in, tokens_out = usage.get("tokens_in") or 0, usage.get("tokens_out") or 0
    cost = usage.get("cost_usd")
    if not tokens_in and not tokens_out and cost is None:
        return None
    unpriced = "set the judge's price_in_per_mtok / price_out_per_mtok"
    if cost is None:
        priced = f"cost unknown ({unpriced})"
    elif usage.get("cost_partial"):
        priced = f"cost ${cost:.4f}, partial: some calls have no price ({unpriced})"
    else:
        priced = f"cost ${cost:.4f}"
    rate = usage.get("cache_hit_rate")
    hits = f" ({rate:.0%} of them from the provider's prompt cache)" if rate else ""
    return f"judge tokens: {tokens_in:,} in{hits}, {tokens_out:,} out; {priced}"



def _summary_table(summary: dict[str, Any]) -> Table:
    table = Table(title=f"{summary['suite']['name']} v{summary['suite']['version']}: "
                        f"{summary['read']} read, {summary['passed']} passed, "
                        f"{summary['failed']} failed, {summary['errored']} errored")
    name_column(table, "criterion")  # names are never cut (harness.tables)
    name_column(table, "kind")
    for col in ("gate", "pass", "fail", "error", "skipped", "pass rate", "mean score"):
        table.add_column(col, justify="right")
    for name, c in summary["criteria"].items():
        rate = "-" if c["pass_rate"] is None else f"{c['pass_rate']:.1%}"
        mean = "-" if c["mean_score"] is None else f"{c['mean_score']:.3f}"
        table.add_row(name, c["kind"], "yes" if c["gate"] else "no", str(c["pass"]),
                      str(c["fail"]), str(c["error"]), str(c["skipped"]), rate, mean)
    return table


def run_options(args: argparse.Namespace, registry: Any) -> RunOptions:
    """The run's options from ``harness run``'s arguments."""
    return RunOptions(judge=args.judge, all_criteria=args.all_criteria,
                      input_format=args.input_format, messages_column=args.messages_column,
                      limit=args.limit, cache_dir=args.cache_dir or args.out,
                      workers=args.workers or default_workers(),
                      max_in_flight=args.max_in_flight, plugins_dir=registry.plugins_dir)


def run_command(args: argparse.Namespace) -> int:
    registry = get_registry(args.plugins_dir)
    _execution_engine(registry, args)
    if args.input_format != "auto" and args.input_format not in registry.formats:
        raise UsageError(f"unknown input format {args.input_format!r}; "
                         f"known: auto, {', '.join(registry.formats)}")
    args.sources = resolve_inputs(args.inputs, messages_column=args.messages_column)  # listed once
    out_path = Path(args.out)
    if out_path.exists() and not out_path.is_dir():
        raise UsageError(f"-o {args.out}: a file is there; a run directory is a folder")
    check_writable(out_path, resume=args.resume, overwrite=args.overwrite)  # before any output
    with Engine(args.suite, registry, run_options(args, registry)) as engine:
        try:
            limit_cost(engine.context, args.max_cost)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
        return _run(args, engine)


def _execution_engine(registry: Any, args: argparse.Namespace) -> Any:
    """The ``--engine`` asked for (a one-line error names the known ones)."""
    name = getattr(args, "engine", "local")
    if name not in registry.engines:
        hint = " (the Ray engine is a plugin: pip install -e plugins/harness-ray)" \
            if name == "ray" else ""
        raise UsageError(f"unknown engine {name!r}{hint}; known: "
                         f"{', '.join(sorted(registry.engines))}")
    return registry.engines[name]


def _to_review(args: argparse.Namespace) -> tuple[int | None, int | None]:
    """Records the run reads, and those it has left to review (``None`` when unknown)."""
    total = count_records(args.sources)
    if args.limit is not None:
        total = args.limit if total is None else min(total, args.limit)
    if args.resume and total is not None and Path(args.out, JOURNAL).is_file():
        return total, max(0, total - decided_records(args.out, retry_errors=args.retry_errors,
                                                     limit=args.limit))
    return total, total


def _run(args: argparse.Namespace, engine: Engine) -> int:
    console = Console(stderr=True)
    batches = _execution_engine(engine.registry, args).start(engine, args.inputs, args)
    total, to_review = _to_review(args)
    mode = progress_mode(console, enabled=not args.no_progress)
    with RunProgress(console, to_review, mode, every_s=args.progress_every) as progress:
        summary = api.run(engine, args.sources, args.out, resume=args.resume,
                          overwrite=args.overwrite, on_start=progress.start,
                          on_decision=progress.tick,
                          report=not args.no_report, retry_errors=args.retry_errors,
                          max_error_rate=args.max_error_rate, total=total, batches=batches)
        progress.finish(summary["read"])
    _print_summary(args, summary)
    return _exit_status(args, summary)


def _print_summary(args: argparse.Namespace, summary: dict[str, Any]) -> None:
    table = _summary_table(summary)
    out = table_console(table)
    out.print(table)
    if (usage := _usage_line(summary)) is not None:
        out.print(usage)
    run_dir = Path(args.out)
    out.print(f"run directory: {run_dir}  (train set: {run_dir / 'train.jsonl'}, "
              f"results: {run_dir / 'results.parquet'})", soft_wrap=True)  # paths stay whole
    for name, row in summary["criteria"].items():
        if cascade := row.get("cascade"):
            out.print(f"cascade {name}: {cascade['decided_by_first']:,} decided by the first "
                      f"tier, {cascade['decided_by_then']:,} by the second "
                      f"({cascade['calls_saved']:,} second-tier calls saved)")
    if duplicates := summary.get("train_duplicates"):
        out.print(f"train.jsonl leaves out {duplicates:,} exact duplicate"
                  f"{'s' if duplicates != 1 else ''} of transcripts it already holds "
                  "(the same rule as harness export)")
    if args.limit is not None:
        out.print(f"--limit {args.limit}: the first {args.limit} input records only "
                  "(--resume without --limit goes on with the rest)")
    if (run_dir / "report.html").is_file() and not args.no_report:
        print(f"report: {run_dir / 'report.html'}")
    if args.junit:
        from harness.report.junit import write_junit

        junit = write_junit(run_dir, args.junit)
        print(f"junit: {args.junit} ({junit['tests']} tests, {junit['failures']} failures, "
              f"{junit['errors']} errors)")
    if summary.get("criterion_errors"):
        print(f"harness: {summary['criterion_errors']} criterion error(s) in "
              f"{summary['transcripts_with_errors']} transcript(s): see "
              f"{run_dir / 'errors.jsonl'}", file=sys.stderr)
    for name, row in summary["criteria"].items():
        judged = summary["read"] - summary.get("input_errors", 0)
        if row.get("errored_transcripts") and row["errored_transcripts"] >= judged:
            print(f"harness: warning: criterion {name} errored on every transcript "
                  f"({row['errored_transcripts']}); "
                  + ("its gate decided nothing" if row["gate"] else
                     "a non-gate criterion, so it decided nothing: its verdicts are errors"),
                  file=sys.stderr)
    for failed in summary.get("inputs_failed", []):
        hint = " (is the chat in another column? --messages-column NAME)" \
            if failed["path"].endswith((".parquet", ".arrow")) else ""
        print(f"harness: every record of {failed['path']} ({failed['records']}) was "
              f"unreadable: {failed['reason']}{hint}", file=sys.stderr)


def _exit_status(args: argparse.Namespace, summary: dict[str, Any]) -> int:
    if summary.get("stop"):
        print(f"harness: run stopped early ({summary['stop_reason']}); what is decided is kept: "
              f"go on later with --resume", file=sys.stderr)
        return Stop(summary["stop"]).exit_code
    with_errors = summary.get("transcripts_with_errors", 0) + summary.get("input_errors", 0)
    if over_error_budget(with_errors, summary["read"], args.max_error_rate):
        print(f"harness: {with_errors} of {summary['read']} transcripts have errors (of a "
              f"criterion or the input), past --max-error-rate {args.max_error_rate:g}",
              file=sys.stderr)
        return Stop.ERROR_BUDGET.exit_code
    rate = summary["pass_rate"] or 0.0
    if args.fail_under is not None and rate < args.fail_under:
        print(f"harness: pass rate {rate:.3f} is below --fail-under {args.fail_under}",
              file=sys.stderr)
        return EXIT_FAIL_UNDER
    return 0


def _config_keys(cls: type[Criterion]) -> str:
    keys = []
    for name, field in cls.Config.model_fields.items():
        keys.append(name if field.is_required() else f"{name}={field.default!r}")
    return ", ".join(keys) or "-"


def _common_keys() -> str:
    """``name, kind, gate=True, weight=1.0, ...``: the keys of every criterion (the suite's
    :class:`~harness.suite.CriterionSpec`), beside each kind's own."""
    from harness.suite import CriterionSpec

    return ", ".join(name if field.is_required() else f"{name}={field.default!r}"
                     for name, field in CriterionSpec.model_fields.items()
                     if name not in ("config", "origin"))


def _add_relink_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR")
    p.add_argument("inputs", nargs="+", metavar="INPUT",
                   help="the run's input files where they are now (files, folders or globs, "
                        "in the run's order)")


def relink_command(args: argparse.Namespace) -> int:
    for warning in relink(args.run_dir, args.inputs):
        print(f"warning: {warning}", file=sys.stderr)
    print(f"{args.run_dir}: inputs relinked; its report, exports and diffs read them there")
    return 0


def criteria_command(args: argparse.Namespace) -> int:
    registry = get_registry(args.plugins_dir)
    table = Table(title="criterion kinds")
    for col in ("kind", "plugin", "config keys", "description"):  # names are never cut
        table.add_column(col, overflow="fold",
                         max_width=PROSE_WIDTH if col in ("config keys", "description") else None)
    for kind in sorted(registry.kinds):
        cls = registry.kinds[kind]
        doc = (cls.__doc__ or "").strip()
        table.add_row(kind, registry.provider("kinds", kind), _config_keys(cls), doc)
    judges = Table(title="judge backends (judge: PREFIX/MODEL)")
    for col in ("prefix", "plugin", "description"):
        judges.add_column(col, overflow="fold",
                          max_width=PROSE_WIDTH if col == "description" else None)
    for prefix in sorted(registry.judges):
        doc = " ".join((registry.judges[prefix].__doc__ or "").split())
        judges.add_row(prefix, registry.provider("judges", prefix), doc)
    console = table_console(table, judges)
    console.print(table)
    console.print(f"keys every criterion has, whatever its kind: {_common_keys()}",
                  highlight=False, markup=False)
    console.print(judges)
    classifiers = ", ".join(f"{name} ({registry.provider('classifiers', name)})"
                            for name in sorted(registry.classifiers)) or "none"
    console.print(f"classifier backends: {classifiers}")
    return 0


def plugins_command(args: argparse.Namespace) -> int:
    registry = get_registry(args.plugins_dir)
    table = Table(title="plugins")
    for col in ("plugin", "hooks", "from"):
        table.add_column(col, overflow="fold", max_width=PROSE_WIDTH if col == "hooks" else None)
    for row in registry.plugins():
        table.add_row(row["name"], ", ".join(row["hooks"]), row["origin"])
    table_console(table).print(table)
    return 0


def _start_local(engine: Engine, inputs: list[str], args: argparse.Namespace) -> None:
    """Nothing to start: :func:`harness.api.run` decides in this process (and its workers),
    over the files run_command listed (a folder listed twice could differ in between)."""
    return None


@hookimpl
def register_engines(register: Any) -> None:
    register("local", lambda p: None, _start_local,
             help="this machine: --workers processes and one event loop for the judges")


@hookimpl
def register_commands(register: Any) -> None:
    register("run", _add_run_arguments, run_command,
             help="review transcripts with a suite into a run directory")
    register("relink", _add_relink_arguments, relink_command,
             help="point a run directory at its inputs after they moved (checked by size and "
                  "content)")
    register("criteria", lambda p: None, criteria_command,
             help="list criterion kinds, their plugins and config keys")
    register("plugins", lambda p: None, plugins_command, help="list loaded plugins")
