"""The Python API: review transcripts lazily, or run a suite into a run directory."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures.process import BrokenProcessPool
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.engine import (
    CHUNK_SIZE,
    INPUT_CRITERION,
    Engine,
    default_workers,
    unavailable_errors,
)
from harness.inputs import Source, iter_entries, parse_record, read_transcripts, resolve_inputs
from harness.judges.budget import limit_cost
from harness.models import Decision, InputError, Transcript
from harness.outputs import finalize
from harness.plugins import Registry, get_registry
from harness.rundir import RunWriter
from harness.stages import Finished
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
        elif isinstance(item, str | Path | Source):  # a file, folder, glob or URL
            yield from read_transcripts(resolve_inputs([item]), registry.formats, input_format)
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
    batch_size: int = CHUNK_SIZE,
    input_format: str = "auto",
    all_criteria: bool = False,
    cache_dir: str | Path | None = None,
) -> Iterator[Decision]:
    """Yield a :class:`Decision` per transcript, lazily, in input order.

    ``transcripts`` may be :class:`Transcript` objects, raw records in any input format, or
    paths of JSONL/Parquet files. A record that cannot be read yields an ``error`` decision.
    ``batch_size`` records are read ahead at a time (1 for a generate-and-review loop);
    ``cache_dir`` keeps the judges' answers between calls.
    """
    if isinstance(suite, Engine):
        yield from suite.review(iter_items(transcripts, suite.registry, input_format), batch_size)
        return
    with Engine(suite, registry or get_registry(plugins_dir), judge=judge,
                all_criteria=all_criteria, cache_dir=cache_dir) as engine:
        yield from engine.review(iter_items(transcripts, engine.registry, input_format),
                                 batch_size)


def run_engine(
    suite: Suite | str | Path,
    run_dir: str | Path,
    *,
    registry: Registry | None = None,
    plugins_dir: str | Path | None = None,
    judge: str | None = None,
    all_criteria: bool = False,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    max_in_flight: int = 4096,
    input_format: str = "auto",
) -> Engine:
    """The :class:`Engine` a run uses: judge answers cached in ``cache_dir`` (default: the run
    directory, so a resumed run or a second export asks nothing twice); ``workers`` processes
    for the cheap criteria (default: the machine's cores, as ``harness run``)."""
    return Engine(suite, registry or get_registry(plugins_dir), judge=judge,
                  all_criteria=all_criteria, cache_dir=cache_dir or run_dir,
                  workers=workers or default_workers(), max_in_flight=max_in_flight,
                  input_format=input_format)


def run(
    suite: Suite | Engine | str | Path,
    inputs: str | Path | list[str | Path],
    run_dir: str | Path,
    *,
    resume: bool = False,
    overwrite: bool = False,
    registry: Registry | None = None,
    plugins_dir: str | Path | None = None,
    judge: str | None = None,
    all_criteria: bool = False,
    cache_dir: str | Path | None = None,
    workers: int | None = None,
    max_in_flight: int = 4096,
    input_format: str | None = None,
    on_decision: Callable[[Finished], None] | None = None,
    report: bool = True,
    retry_errors: bool = True,
    max_error_rate: float | None = None,
    total: int | None = None,
    batches: Batches | None = None,
    max_cost: float | None = None,
    limit: int | None = None,
    messages_column: str = "messages",
) -> dict[str, Any]:
    """Review every input file into ``run_dir`` (journaled, resumable); return the summary.

    What ``harness run`` does, through the same function: ``suite`` is a suite file, a
    :class:`Suite`, or an open :class:`Engine` (then the engine options ``registry``,
    ``plugins_dir``, ``judge``, ``all_criteria``, ``cache_dir``, ``workers`` and
    ``max_in_flight`` are the engine's own and must not be given; see :func:`run_engine` for
    their defaults). The summary's ``state`` is ``complete``, or ``stopped`` when the run ended
    early (a judge endpoint down, or more criterion errors than ``max_error_rate`` allows of
    ``total`` transcripts); ``stop_reason`` says why, and ``resume=True`` goes on from there.
    With ``report`` (the default), ``run_dir/report.html`` is written after the run files; a
    report that cannot be built is logged and leaves the run's results intact.
    ``batches(done)`` decides the records (default: :func:`local_batches`, in this process);
    an execution engine plugin gives its own (the ``register_engines`` hook).
    ``max_cost`` (USD) stops the run once its judge calls cost that much (``--max-cost``:
    the state is ``stopped``, ``resume=True`` goes on with a new budget); ``ValueError`` when
    a judge has no prices.
    ``inputs`` are files, folders, globs or URLs (:func:`harness.inputs.resolve_inputs`);
    ``limit`` reviews only the first ``limit`` records of them (a resumed run goes on up to its
    own ``limit``, or to the end without one); ``messages_column`` names the Parquet/Arrow
    column holding the chat.
    """
    paths = [inputs] if isinstance(inputs, str | Path | Source) else list(inputs)
    reading = {"limit": limit, "messages_column": messages_column}
    if isinstance(suite, Engine):
        given = {k for k, v in {"registry": registry, "plugins_dir": plugins_dir, "judge": judge,
                                "all_criteria": all_criteria, "cache_dir": cache_dir,
                                "workers": workers,
                                "max_in_flight": max_in_flight != 4096}.items() if v}
        if given:
            raise TypeError(f"run(): {', '.join(sorted(given))} belong to the Engine given; "
                            "pass a suite instead, or set them on the Engine")
        limit_cost(suite.context, max_cost)
        return _run_with(suite, paths, run_dir, resume, overwrite, input_format, on_decision,
                         report, retry_errors, max_error_rate, total, batches, **reading)
    with run_engine(suite, run_dir, registry=registry, plugins_dir=plugins_dir, judge=judge,
                    all_criteria=all_criteria, cache_dir=cache_dir, workers=workers,
                    max_in_flight=max_in_flight, input_format=input_format or "auto") as engine:
        limit_cost(engine.context, max_cost)
        return _run_with(engine, paths, run_dir, resume, overwrite, None, on_decision, report,
                         retry_errors, max_error_rate, total, batches, **reading)


def _run_with(engine: Engine, inputs: list[str | Path], run_dir: str | Path, resume: bool,
              overwrite: bool, input_format: str | None,
              on_decision: Callable[[Finished], None] | None, report: bool, retry_errors: bool,
              max_error_rate: float | None, total: int | None,
              batches: Batches | None = None, *, limit: int | None = None,
              messages_column: str = "messages") -> dict[str, Any]:
    if input_format is not None and input_format != engine.input_format:
        engine.input_format = engine.stage.input_format = input_format
    options = {"judge": engine.judge, "all_criteria": engine.all_criteria,
               "input_format": engine.input_format, "workers": engine.workers,
               "plugins_dir": engine.registry.plugins_dir, "messages_column": messages_column}
    writer = RunWriter(run_dir, engine.suite, inputs, resume=resume, overwrite=overwrite,
                       options=options, retry_errors=retry_errors, limit=limit)
    try:
        return _run(engine, inputs, run_dir, writer, on_decision, report, max_error_rate, total,
                    batches or (lambda done: local_batches(engine, writer.sources, done,
                                                           limit=limit)))
    finally:
        writer.release()


Batches = Callable[[dict[int, set[int]]], Iterator[list[Finished]]]
"""``batches(done)``: decided transcripts in batches, leaving out ``done`` (``seq -> subs``)."""


def local_batches(engine: Engine, inputs: list[str | Path | Source],
                  done: dict[int, set[int]], *, limit: int | None = None
                  ) -> Iterator[list[Finished]]:
    """The local engine: every record of ``inputs`` (the first ``limit`` ones) through
    ``engine`` in this process (and its worker processes), numbered ``seq`` across the inputs
    (:func:`harness.inputs.iter_entries`), ``done`` transcripts left out."""
    from harness.engine import drive

    def entries() -> Iterator[tuple[int, str, Any, frozenset[int]]]:
        for seq, source, raw in iter_entries(resolve_inputs(inputs), limit=limit):
            yield seq, source, raw, frozenset(done.get(seq, ()))

    return drive(engine.astream(entries()))


def _run(engine: Engine, inputs: list[str | Path], run_dir: str | Path, writer: RunWriter,
         on_decision: Callable[[Finished], None] | None, report: bool,
         max_error_rate: float | None, total: int | None, batches: Batches) -> dict[str, Any]:
    started, t0 = datetime.now(UTC), time.perf_counter()
    done: dict[int, set[int]] = {}
    for seq, sub in writer.done:
        done.setdefault(seq, set()).add(sub)

    decided = errored = 0
    budget = None if max_error_rate is None or total is None else max_error_rate * total
    stop_reason = None
    last_flush = time.monotonic()
    stream = batches(done)
    try:
        for batch in stream:
            for finished in batch:
                writer.write(finished.seq, finished.sub, finished.json())
                decided += 1
                if finished.errored and finished.errored != (INPUT_CRITERION,):
                    errored += 1
                if on_decision:
                    on_decision(finished)
            if budget is not None and errored > budget:
                stop_reason = (f"{errored} transcripts with criterion errors: past "
                               f"--max-error-rate {max_error_rate:g} of {total}")
                break
            if time.monotonic() - last_flush > 0.25:
                writer.flush()
                last_flush = time.monotonic()
    except unavailable_errors() as exc:
        stop_reason = getattr(exc, "stop_reason", None) or f"judge unavailable: {exc}"
    except BrokenProcessPool:
        stop_reason = ("a worker process died (killed, or out of memory) while reviewing; "
                       "what was decided is kept")
    finally:
        stream.close()
        writer.close()
        engine.stop_workers()  # finalize starts its own, for reading the inputs again
    wall = time.perf_counter() - t0
    timings = {"started": started.isoformat(timespec="seconds"),
               "finished": datetime.now(UTC).isoformat(timespec="seconds"),
               "wall_s": round(wall, 3), "decided_this_run": decided,
               "skipped_as_done": len(writer.done),
               "transcripts_per_s": round(decided / wall, 1) if wall > 0 else None}
    summary = finalize(run_dir, timings, state="stopped" if stop_reason else "complete",
                       stop_reason=stop_reason, workers=engine.workers)
    if report and not stop_reason:  # a stopped run's report waits for the resumed run
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
