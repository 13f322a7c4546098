"""The Python API: review transcripts lazily, or run a suite into a run directory."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from datetime import UTC, datetime
from itertools import islice
from pathlib import Path
from typing import Any

from harness.engine import Engine
from harness.inputs import parse_record, read_transcripts
from harness.models import Decision, InputError, Transcript
from harness.outputs import finalize
from harness.plugins import Registry, get_registry
from harness.rundir import RunWriter
from harness.suite import Suite

TranscriptLike = Transcript | dict[str, Any] | str | Path


def iter_items(
    transcripts: Iterable[TranscriptLike] | str | Path,
    registry: Registry,
    input_format: str = "auto",
) -> Iterator[Transcript | InputError]:
    """Transcripts from objects, raw records (any registered format) or file paths."""
    if isinstance(transcripts, str | Path):
        transcripts = [transcripts]
    for n, item in enumerate(transcripts, 1):
        if isinstance(item, Transcript):
            yield item
        elif isinstance(item, dict):
            parsed = parse_record(item, f"<record {n}>", registry.formats, input_format)
            if isinstance(parsed, InputError):
                yield parsed
            else:
                yield from parsed
        elif isinstance(item, str | Path):
            yield from read_transcripts([item], registry.formats, input_format)
        else:
            yield InputError(source=f"<record {n}>",
                             reason=f"expected a Transcript, a record or a path, got "
                                    f"{type(item).__name__}")


def review(
    suite: Suite | Engine | str | Path,
    transcripts: Iterable[TranscriptLike] | str | Path,
    *,
    registry: Registry | None = None,
    plugins_dir: str | Path | None = None,
    judge: str | None = None,
    batch_size: int = 16,
    input_format: str = "auto",
    all_criteria: bool = False,
) -> Iterator[Decision]:
    """Yield a :class:`Decision` per transcript, lazily, in input order.

    ``transcripts`` may be :class:`Transcript` objects, raw records in any input format, or
    paths of JSONL/Parquet files. A record that cannot be read yields an ``error`` decision.
    """
    if isinstance(suite, Engine):
        engine = suite
    else:
        engine = Engine(suite, registry or get_registry(plugins_dir), judge=judge,
                        all_criteria=all_criteria, batch_size=batch_size)
    yield from engine.review(iter_items(transcripts, engine.registry, input_format), batch_size)


def run(
    engine: Engine,
    inputs: list[str | Path],
    run_dir: str | Path,
    *,
    input_format: str = "auto",
    resume: bool = False,
    overwrite: bool = False,
    on_decision: Callable[[Decision], None] | None = None,
    report: bool = True,
) -> dict[str, Any]:
    """Review every input file into ``run_dir`` (journaled, resumable); return the summary.

    With ``report`` (the default), ``run_dir/report.html`` is written after the run files; a
    report that cannot be built is logged and leaves the run's results intact.
    """
    writer = RunWriter(run_dir, engine.suite, [str(p) for p in inputs], resume=resume,
                       overwrite=overwrite)
    started, t0 = datetime.now(UTC), time.perf_counter()
    items: Iterator[Transcript | InputError] = read_transcripts(inputs, engine.registry.formats,
                                                                input_format)
    if writer.done:
        items = (item for item in items if item.source not in writer.done)
    decided = 0
    try:
        while batch := list(islice(items, engine.batch_size)):
            for item, decision in zip(batch, engine.decide_batch(batch), strict=True):
                writer.write(decision, item if isinstance(item, Transcript) else None)
                if on_decision:
                    on_decision(decision)
            writer.flush()
            decided += len(batch)
    finally:
        writer.close()
    wall = time.perf_counter() - t0
    timings = {"started": started.isoformat(timespec="seconds"),
               "finished": datetime.now(UTC).isoformat(timespec="seconds"),
               "wall_s": round(wall, 3), "decided_this_run": decided,
               "skipped_as_done": len(writer.done),
               "transcripts_per_s": round(decided / wall, 1) if wall > 0 else None}
    summary = finalize(run_dir, timings)
    if report:
        _write_report(run_dir, engine.registry)
    return summary


def _write_report(run_dir: str | Path, registry: Registry) -> None:
    from harness.report import write_report

    try:
        write_report(run_dir, extra_dirs=registry.report_templates)
    except Exception as exc:
        logging.getLogger("harness").warning(
            "the HTML report could not be built (%s: %s); the run's results are complete, "
            "retry with `harness report %s`", type(exc).__name__, exc, run_dir)
