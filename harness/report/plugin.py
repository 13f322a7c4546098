"""The built-in plugin adding ``harness report`` and ``harness diff``."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import jinja2
from rich.table import Table
from rich.text import Text

from harness.argtypes import positive_int
from harness.errors import UsageError
from harness.hookspecs import hookimpl
from harness.report.data import DEFAULT_SAMPLE
from harness.report.diff import MAX_FLIPS, compare
from harness.report.junit import write_junit
from harness.report.render import render, write_report
from harness.tables import PROSE_WIDTH, table_console


def _add_report_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by `harness run`")
    p.add_argument("-o", "--out", metavar="FILE", help="HTML file (default RUN_DIR/report.html)")
    p.add_argument("--sample", type=positive_int, default=DEFAULT_SAMPLE, metavar="N",
                   help=f"transcripts embedded per criterion and outcome (default "
                        f"{DEFAULT_SAMPLE}); aggregates always count every transcript")
    p.add_argument("--templates", metavar="DIR",
                   help="folder of jinja2 templates overriding the defaults")
    p.add_argument("--junit", metavar="FILE", help="also write JUnit XML (one testcase per "
                                                   "transcript)")


def _template_errors(fn: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return fn(*args, **kwargs)
    except jinja2.TemplateError as exc:
        filename, lineno = getattr(exc, "filename", None), getattr(exc, "lineno", None)
        where = f" ({filename}:{lineno})" if filename else ""
        raise UsageError(f"report template error{where}: {exc}") from exc


def report_command(args: argparse.Namespace) -> int:
    from harness.plugins import get_registry

    registry = get_registry(args.plugins_dir)
    path = _template_errors(write_report, args.run_dir, args.out, sample=args.sample,
                            templates=args.templates, extra_dirs=registry.report_templates)
    print(f"report: {path}")
    if args.junit:
        counts = write_junit(args.run_dir, args.junit)
        print(f"junit: {args.junit} ({counts['tests']} tests, {counts['failures']} failures, "
              f"{counts['errors']} errors)")
    return 0


def _add_diff_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_a", metavar="RUN_A", help="the reference run directory")
    p.add_argument("run_b", metavar="RUN_B", help="the run compared with it")
    p.add_argument("-o", "--out", metavar="FILE", help="also write the comparison as HTML")
    p.add_argument("--limit", type=int, default=20, metavar="N",
                   help="flipped decisions printed in the terminal (default 20)")
    p.add_argument("--max-flips", type=int, default=MAX_FLIPS, metavar="N",
                   help=f"flipped decisions listed in the HTML page (default {MAX_FLIPS})")
    p.add_argument("--templates", metavar="DIR",
                   help="folder of jinja2 templates overriding the defaults")


def _pct(x: float | None) -> str:
    return "-" if x is None else f"{x:.1%}"


def diff_tables(d: dict[str, Any], limit: int) -> list[Table]:
    """The comparison as rich tables: per-criterion deltas, then flipped decisions."""
    ta, tb = d["a"]["totals"], d["b"]["totals"]
    crit = Table(title=Text(f"A {d['a']['dir']} → B {d['b']['dir']}: {d['flipped']} of "
                       f"{d['matched']} decisions flipped (read {ta['read']} → {tb['read']}, "
                       f"passed {ta['passed']} → {tb['passed']}, failed {ta['failed']} → "
                       f"{tb['failed']}, errored {ta['errored']} → {tb['errored']})"))
    for col in ("criterion", "pass rate A", "pass rate B", "Δ", "pass→fail", "fail→pass",
                "other"):
        crit.add_column(col, justify="left" if col == "criterion" else "right", overflow="fold")
    for c in d["criteria"]:
        delta = "-" if c["delta"] is None else f"{c['delta'] * 100:+.1f} pts"
        style = "red" if (c["delta"] or 0) < 0 else "green" if (c["delta"] or 0) > 0 else ""
        crit.add_row(Text(c["name"]), _pct(c["rate_a"]), _pct(c["rate_b"]), delta,
                     str(c["pass_to_fail"]), str(c["fail_to_pass"]), str(c["other_flips"]),
                     style=style)
    flips = Table(title=f"flipped decisions (first {min(limit, len(d['flips']))} of "
                        f"{d['flipped']})")
    for col in ("transcript", "A", "B", "cause"):
        flips.add_column(col, overflow="fold", max_width=PROSE_WIDTH if col == "cause" else None)
    for f in d["flips"][:limit]:
        flips.add_row(Text(f["id"]), f["a"], f["b"], Text(f["cause"]))
    tables = [crit]
    if d["suite_changes"]:
        suite = Table(title="suite changes (A → B; * read by the decision policy)")
        for col in ("setting", "A", "B"):
            suite.add_column(col, overflow="fold")
        for c in d["suite_changes"]:
            suite.add_row(Text(c["what"] + (" *" if c["policy"] else "")), Text(c["a"]),
                          Text(c["b"]))
        tables.append(suite)
    if d["flipped"]:
        causes = Table(title="flips by cause")
        causes.add_column("flips", justify="right")
        causes.add_column("cause", overflow="fold", max_width=PROSE_WIDTH)
        for c in d["flip_causes"]:
            causes.add_row(str(c["flips"]), Text(c["cause"]))
        tables += [causes, flips]
    return tables


def write_diff_html(d: dict[str, Any], out: str | Path, templates: str | Path | None = None,
                    extra_dirs: Any = ()) -> Path:
    page = render("diff.html", {"d": d}, templates=templates, extra_dirs=extra_dirs)
    out = Path(out)
    out.write_text(page, encoding="utf-8")
    return out


def diff_command(args: argparse.Namespace) -> int:
    from harness.plugins import get_registry

    registry = get_registry(args.plugins_dir)
    d = compare(args.run_a, args.run_b, max_flips=max(args.max_flips, args.limit))
    tables = diff_tables(d, args.limit)
    console = table_console(*tables)  # as wide as the names need outside a terminal
    for table in tables:
        console.print(table)
    if d["only_a"] or d["only_b"]:
        console.print(f"{d['only_a']} transcripts only in A, {d['only_b']} only in B")
    if args.out:
        path = _template_errors(write_diff_html, d, args.out, args.templates,
                                registry.report_templates)
        print(f"diff page: {path}")
    return 0


@hookimpl
def register_commands(register: Any) -> None:
    register("report", _add_report_arguments, report_command,
             help="build the HTML report of a run directory (and JUnit XML)")
    register("diff", _add_diff_arguments, diff_command,
             help="compare two runs: flipped decisions and per-criterion deltas")
