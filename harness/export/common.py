"""What every exporter shares: checking options against the run, and the counts it returns."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.export.dedup import Deduper
from harness.export.options import ExportOptions
from harness.export.provenance import RunInfo, load_run
from harness.export.select import Stats


def prepare(run_dir: str | Path, options: dict[str, Any] | ExportOptions) -> tuple[
        RunInfo, ExportOptions]:
    """The run's metadata and validated options (``--weight-by`` must name a criterion)."""
    run = load_run(run_dir)
    opts = options if isinstance(options, ExportOptions) else ExportOptions(**options)
    if opts.weight_by not in (None, "score") and opts.weight_by not in run.names:
        raise UsageError(f"--weight-by {opts.weight_by!r}: expected `score` or a criterion of "
                         f"suite {run.suite!r}: {', '.join(run.names) or '(none)'}")
    return run, opts


def strip_weight(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Messages without ``weight`` (prompt/completion layouts mask by position instead)."""
    return [{k: v for k, v in m.items() if k != "weight"} for m in messages]


def counts(fmt: str, out: Path, run: RunInfo, opts: ExportOptions, stats: Stats,
           written: int, dedup: Deduper, **extra: Any) -> dict[str, Any]:
    """What an exporter returns: the numbers and settings the dataset card states."""
    return {
        "format": fmt, "out": str(out), "examples": written, "duplicates": dedup.dropped,
        **stats.as_dict(), "criteria": stats.criterion_table(run),
        "options": opts.model_dump(), **extra,
    }


ALL_DUPLICATES = "every example an exact duplicate"
"""Why a kept transcript of a per-turn format wrote nothing: each of its examples repeats one
written before (counted with the transcripts not exported, so that those add up)."""
