"""The built-in plugin adding ``harness calibrate``."""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

from rich import box
from rich.console import Console
from rich.measure import Measurement
from rich.table import Table
from rich.text import Text

from harness.argtypes import non_negative_int, rate
from harness.calibrate.cascade import cases, tune
from harness.calibrate.compare import CALIBRATION_FILE, calibrate
from harness.calibrate.labels import parse_map, read_labels
from harness.calibrate.metrics import BOOTSTRAP
from harness.hookspecs import hookimpl
from harness.rundir import atomic_write_text
from harness.text import escape_controls


def _add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run_dir", metavar="RUN_DIR", help="run directory written by `harness run`")
    p.add_argument("--labels", required=True, metavar="FILE",
                   help="human labels, CSV or JSONL: transcript_id, label, optional criterion "
                        "(and message_index); the report's 'export labels' writes one")
    p.add_argument("--criterion", action="append", metavar="NAME",
                   help="compare this criterion only (repeatable; `decision` for the "
                        "decision); default: every criterion and the decision")
    p.add_argument("--map", action="append", metavar="RAW=pass,RAW=fail,...",
                   help="what raw label values mean: pass, fail or skip (skip: counted, not "
                        "compared), e.g. --map good=pass,bad=fail,unsure=skip")
    p.add_argument("--bootstrap", type=non_negative_int, default=BOOTSTRAP, metavar="N",
                   help=f"bootstrap resamples for the 95%% intervals (default {BOOTSTRAP}; "
                        "0: no intervals)")
    p.add_argument("--seed", type=int, default=0, help="bootstrap seed (default 0)")
    p.add_argument("--no-report", action="store_true",
                   help="do not rebuild RUN_DIR/report.html with the calibration")
    p.add_argument("--tune-cascade", metavar="NAME",
                   help="choose the band of cascade NAME from a run where both its tiers "
                        "judged every transcript (band: [0, 1]): the agreement / calls curve "
                        "and the best band, written to calibration.json")
    p.add_argument("--max-calls", type=rate, default=1.0, metavar="F",
                   help="with --tune-cascade: the largest share of transcripts the second "
                        "tier may judge (default 1)")


def _num(x: float | None, digits: int = 2) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def _with_ci(row: dict[str, Any], key: str) -> str:
    value, ci = row.get(key), row.get(f"{key}_ci")
    if value is None:
        return "-"
    return f"{value:.2f}" + (f" [{ci[0]:.2f}, {ci[1]:.2f}]" if ci else "")


def _table(title: str, columns: list[str], names: list[str]) -> Table:
    table = Table(title=title, title_justify="left", box=box.SIMPLE_HEAD)
    table.add_column(columns[0], no_wrap=True)
    for col in columns[1:]:
        table.add_column(col, justify="right", no_wrap=True)
    return table


def tables(result: dict[str, Any]) -> list[Table]:
    """The calibration as rich tables: agreement, scores, confusion matrices."""
    rows = result["rows"]
    names = [r["name"] for r in rows]
    agreement = _table("agreement with the human labels [95% bootstrap interval]",
                       ["criterion", "compared", "agree", "agreement", "kappa",
                        "fail precision", "fail recall", "not compared"], names)
    for r in rows:
        agreement.add_row(Text(r["name"]), str(r["compared"]), str(r["agree"]),
                          _with_ci(r, "agreement"), _with_ci(r, "kappa"),
                          _with_ci(r, "precision_fail"), _with_ci(r, "recall_fail"),
                          str(r["errored"] + r["skipped"] + r["missing"]))
    scores = _table("scores: separation, best threshold, length bias",
                    ["criterion", "AUC", "best threshold", "agreement there", "length ρ",
                     "human length ρ"], names)
    for r in rows:
        soft = r["soft"]
        scores.add_row(Text(r["name"]), _with_ci(r, "auc") if soft else "not soft",
                       _num(r["best_threshold"], 3), _num(r["best_threshold_agreement"]),
                       _num(r["length_rho"]), _num(r["human_length_rho"]))
    confusion = _table("confusion (human → harness)",
                       ["criterion", "pass → pass", "pass → fail", "fail → pass", "fail → fail"],
                       names)
    for r in rows:
        c = r["confusion"]
        confusion.add_row(Text(r["name"]), str(c["human_pass"]["pass"]),
                          str(c["human_pass"]["fail"]), str(c["human_fail"]["pass"]),
                          str(c["human_fail"]["fail"]))
    out = [agreement, scores, confusion]
    if result.get("judge_agreement"):
        judges = _table("the judges' own agreement (from summary.json)",
                        ["criterion", "measure", "value"], list(result["judge_agreement"]))
        for name, found in result["judge_agreement"].items():
            for key, value in found.items():
                shown = _num(value, 3) if isinstance(value, int | float) \
                    else json.dumps(value, sort_keys=True)
                judges.add_row(Text(name), Text(key), Text(shown))
        out.append(judges)
    return out


def _ids(ids: list[str]) -> str:
    """Ids from the labels or the run, untrusted: control characters (terminal escapes) shown
    escaped."""
    return ", ".join(escape_controls(i) for i in ids)


def notes(result: dict[str, Any]) -> list[str]:
    """What was not compared, and why: every label and transcript is accounted for."""
    lab = result["labels"]
    skipped = sum(lab["skipped"].values())
    lines = [f"labels: {lab['read']} read from {lab['file']} ({lab['format']}), "
             f"{lab['used']} used on {lab['matched_transcripts']} transcripts of the run"]
    if skipped:
        kinds = ", ".join(f"{escape_controls(raw)!r} {n}" for raw, n in lab["skipped"].items())
        lines.append(f"  {skipped} skipped (labelled skip: {kinds})")
    if lab["duplicates"]:
        lines.append(f"  {lab['duplicates']} duplicates (same transcript and criterion): "
                     "the last one counts")
    un = lab["unmatched"]
    if un["labels"]:
        more = " ..." if un["transcripts"] > len(un["ids"]) else ""
        lines.append(f"  {un['labels']} match no transcript of the run ({un['transcripts']} "
                     f"ids: {_ids(un['ids'])}{more})")
    if lab["unknown_criterion"]:
        kinds = ", ".join(f"{escape_controls(name)!r} {n}"
                          for name, n in lab["unknown_criterion"].items())
        lines.append(f"  {sum(lab['unknown_criterion'].values())} name a criterion the suite "
                     f"does not have ({kinds})")
    if lab["not_selected"]:
        lines.append(f"  {lab['not_selected']} are about criteria not selected by --criterion")
    if lab["errored_transcripts"]:
        lines.append(f"  {lab['errored_transcripts']} labelled transcripts were decided error: "
                     "their errored verdicts are not compared (column 'not compared')")
    if lab["ids_in_run_more_than_once"]:
        lines.append(f"  {lab['ids_in_run_more_than_once']} labelled ids name identical records "
                     "that occur more than once in the run: each occurrence is compared")
    for r in result["rows"]:
        for kind, ids in r["problem_ids"].items():
            more = " ..." if r[kind] > len(ids) else ""
            lines.append(f"  {r['name']}: {r[kind]} {kind} ({_ids(ids)}{more})")
    b = result["bootstrap"]
    lines.append(f"intervals: {b['resamples']} bootstrap resamples of the compared pairs, "
                 f"seed {b['seed']}, {b['level']:g}% percentile intervals")
    return lines


def tune_command(args: argparse.Namespace, labels: list[Any]) -> int:
    """``--tune-cascade NAME``: the curve, the best band, and calibration.json's entry."""
    run_dir = Path(args.run_dir)
    found = tune(cases(run_dir, labels, args.tune_cascade), args.max_calls, args.seed,
                 args.bootstrap)
    table = _table(f"cascade {args.tune_cascade}: the best band for each share of "
                   "second-tier calls", ["calls at most", "agreement", "calls", "band"], [])
    for point in found["curve"]:
        table.add_row(f"{point['max_calls']:.0%}", f"{point['agreement']:.3f}",
                      f"{point['calls']:.1%}", f"[{point['band'][0]:.3f}, "
                      f"{point['band'][1]:.3f}]")
    Console(highlight=False).print(table)
    ci = found["agreement_ci"]
    print(f"{found['compared']} labelled transcripts; first tier alone agrees "
          f"{found['first_alone']:.3f}, second tier alone {found['then_alone']:.3f}")
    print(f"best band under --max-calls {args.max_calls:g}: band: [{found['band'][0]:.3f}, "
          f"{found['band'][1]:.3f}] agrees {found['agreement']:.3f}"
          + (f" [{ci[0]:.3f}, {ci[1]:.3f}]" if ci else "") + f" with {found['calls']:.1%} of "
          "the second tier's calls")
    out = run_dir / CALIBRATION_FILE
    known = json.loads(out.read_text()) if out.is_file() else {}
    known.setdefault("cascades", {})[args.tune_cascade] = found
    atomic_write_text(out, json.dumps(known, indent=2, ensure_ascii=False))
    print(f"written: {out} (cascades.{args.tune_cascade}.band)")
    return 0


def calibrate_command(args: argparse.Namespace) -> int:
    mapping = parse_map(args.map)
    fmt, labels = read_labels(args.labels, mapping)
    if args.tune_cascade:
        return tune_command(args, labels)
    result = calibrate(args.run_dir, labels, criteria=args.criterion, seed=args.seed,
                       resamples=args.bootstrap, labels_file=str(args.labels),
                       labels_format=fmt, mapping=dict(mapping))
    shown = tables(result)
    console = Console(highlight=False)
    wide = console.options.update(max_width=10_000)
    needed = max(Measurement.get(console, wide, t).maximum for t in shown)
    if needed > console.width:  # wider than the terminal: let it wrap lines, never cut a name
        console = Console(highlight=False, width=needed)
    for table in shown:
        console.print(table)
    for line in notes(result):
        print(line)
    run_dir = Path(args.run_dir)
    out = run_dir / CALIBRATION_FILE
    atomic_write_text(out, json.dumps(result, indent=2, ensure_ascii=False))
    print(f"written: {out}")
    if not args.no_report and (run_dir / "report.html").is_file():
        from harness.report.render import write_report

        print(f"report: {write_report(run_dir)}")
    return 0


@hookimpl
def register_commands(register: Any) -> None:
    register("calibrate", _add_arguments, calibrate_command,
             help="compare verdicts and decisions with human labels (agreement, kappa, "
                  "precision/recall of fail, AUC, length bias)")
