"""The Python API: review transcripts lazily, or run a suite into a run directory."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.engine import CHUNK_SIZE, Engine
from harness.inputs import Source, iter_entries, parse_record, read_transcripts, resolve_inputs
from harness.judges.budget import limit_cost
from harness.models import Decision, InputError, Transcript
from harness.options import RunOptions, default_workers
from harness.outputs import LiveOutputs, finalize
from harness.plugins import Registry
from harness.rundir import RunWriter, mark_stopped
from harness.stages import Entry, Finished
from harness.stops import RunStopped, Stop, over_error_budget, stop_for
from harness.suite import Suite

TranscriptLike = Transcript | dict[str, Any] | str | Path
Batches = Callable[[dict[int, set[int]]], Iterator[list[Finished]]]
"""``batches(done)``: decided transcripts in batches, leaving out ``done`` (``seq -> subs``)."""


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
    options = RunOptions(judge=judge, all_criteria=all_criteria, input_format=input_format,
                         cache_dir=None if cache_dir is None else Path(cache_dir),
                         plugins_dir=None if plugins_dir is None else str(plugins_dir))
    with Engine(suite, registry, options) as engine:
        yield from engine.review(iter_items(transcripts, engine.registry, input_format),
                                 batch_size)


def run_engine(suite: Suite | str | Path, run_dir: str | Path, options: RunOptions,
               registry: Registry | None = None) -> Engine:
    """The :class:`Engine` a run uses: judge answers cached in ``options.cache_dir`` (default:
    the run directory, so a resumed run or a second export asks nothing twice)."""
    return Engine(suite, registry, options.replace(cache_dir=options.cache_dir or run_dir))


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
    max_in_flight: int | None = None,
    input_format: str | None = None,
    on_decision: Callable[[Finished], None] | None = None,
    on_start: Callable[[], None] | None = None,
    report: bool = True,
    retry_errors: bool = True,
    max_error_rate: float | None = None,
    total: int | None = None,
    batches: Batches | None = None,
    max_cost: float | None = None,
    limit: int | None = None,
    messages_column: str | None = None,
) -> dict[str, Any]:
    """Review every input file into ``run_dir`` (journaled, resumable); return the summary.

    What ``harness run`` does, through the same function. ``suite`` is a suite file, a
    :class:`Suite`, or an open :class:`Engine`, whose options are then its own (``registry``,
    ``plugins_dir``, ``judge``, ``all_criteria``, ``cache_dir``, ``workers``,
    ``max_in_flight``, ``input_format`` must not be given); a run's own engine caches judge
    answers in ``run_dir`` and has a worker process per core. The summary's ``state`` is
    ``complete``, or ``stopped`` (``stop`` and ``stop_reason`` say why: a judge endpoint down,
    more criterion errors than ``max_error_rate`` of ``total``, ``max_cost`` USD spent);
    ``resume=True`` goes on. ``report`` writes ``report.html`` (a failure to is logged).
    ``batches(done)`` decides the records (an execution engine plugin's, see the
    ``register_engines`` hook; default: this process); ``on_start()`` is called once the run
    directory is open. ``inputs`` are files, folders, globs
    or URLs; ``limit`` reviews the first records only; ``messages_column`` names the
    Parquet/Arrow column holding the chat.
    """
    paths = [inputs] if isinstance(inputs, str | Path | Source) else list(inputs)
    reading: dict[str, Any] = {
        k: v for k, v in {"limit": limit, "messages_column": messages_column}.items()
        if v is not None}
    engine_options: dict[str, Any] = {
        "plugins_dir": plugins_dir, "judge": judge, "all_criteria": all_criteria,
        "cache_dir": cache_dir, "workers": workers, "max_in_flight": max_in_flight,
        "input_format": input_format}
    request = RunRequest(run_dir=Path(run_dir), resume=resume, overwrite=overwrite,
                         report=report, retry_errors=retry_errors,
                         max_error_rate=max_error_rate, total=total, on_start=on_start)
    if isinstance(suite, Engine):
        _engine_options_not_given(engine_options, registry)
        limit_cost(suite.context, max_cost)
        return request.run(suite, suite.options.replace(**reading), paths, batches,
                           on_decision)
    options = RunOptions(**{k: v for k, v in engine_options.items() if v is not None},
                         **reading)
    if workers is None:
        options = options.replace(workers=default_workers())
    with run_engine(suite, run_dir, options, registry) as engine:
        limit_cost(engine.context, max_cost)
        return request.run(engine, engine.options, paths, batches, on_decision)


def _engine_options_not_given(options: dict[str, Any], registry: Registry | None) -> None:
    given = sorted(k for k, v in options.items() if v) + (["registry"] if registry else [])
    if given:
        raise TypeError(f"run(): {', '.join(given)} belong to the Engine given; pass a suite "
                        "instead, or set them on the Engine")


def local_batches(engine: Engine, inputs: Sequence[str | Path | Source],
                  done: dict[int, set[int]], *, limit: int | None = None, views: bool = False
                  ) -> Iterator[list[Finished]]:
    """The local engine: every record of ``inputs`` (the first ``limit`` ones) through
    ``engine`` in this process (and its worker processes), numbered ``seq`` across the inputs
    (:func:`harness.inputs.iter_entries`), ``done`` transcripts left out; ``views``: see
    :meth:`Engine.astream`."""

    def entries() -> Iterator[Entry]:
        for seq, source, raw in iter_entries(resolve_inputs(inputs), limit=limit):
            yield seq, source, raw, frozenset(done.get(seq, ()))

    return engine.batches(entries(), views=views)


@dataclass(frozen=True)
class RunRequest:
    """What one run into a run directory asks for, beyond how to review (the engine's)."""

    run_dir: Path
    resume: bool = False
    overwrite: bool = False
    report: bool = True
    retry_errors: bool = True
    max_error_rate: float | None = None
    total: int | None = None
    """Records the run will read, when known (the error budget is a share of it)."""
    on_start: Callable[[], None] | None = None
    """Called once the run directory is open, before anything is reviewed."""

    def run(self, engine: Engine, options: RunOptions, inputs: list[Any],
            batches: Batches | None, on_decision: Callable[[Finished], None] | None
            ) -> dict[str, Any]:
        writer = RunWriter(self.run_dir, engine.suite, inputs, options, resume=self.resume,
                           overwrite=self.overwrite, retry_errors=self.retry_errors)
        # a fresh run writes its outputs as it goes: finalize then reads nothing again
        live = LiveOutputs(self.run_dir, writer.meta) if writer.fresh else None
        batches = batches or (lambda done: local_batches(
            engine, writer.sources, done, limit=options.limit, views=live is not None))
        started, t0 = datetime.now(UTC), time.perf_counter()
        try:
            if self.on_start is not None:
                self.on_start()
            try:
                decided, stop = self.journal(writer, batches, on_decision, live)
            except KeyboardInterrupt:
                writer.close()
                mark_stopped(self.run_dir, RunStopped(Stop.INTERRUPTED, "interrupted (Ctrl-C)"))
                raise
            finally:
                writer.close()
                engine.stop_workers()  # finalize starts its own, for reading the inputs again
            wall = time.perf_counter() - t0
            timings = {"started": started.isoformat(timespec="seconds"),
                       "finished": datetime.now(UTC).isoformat(timespec="seconds"),
                       "wall_s": round(wall, 3), "decided_this_run": decided,
                       "skipped_as_done": len(writer.done),
                       "transcripts_per_s": round(decided / wall, 1) if wall > 0 else None}
            summary = finalize(self.run_dir, timings, stop=stop, workers=options.workers,
                               live=live)
        finally:
            if live is not None:
                live.close()  # a run that failed leaves no half-written files behind
            writer.release()
        if self.report and stop is None:  # a stopped run's report waits for the resumed run
            _write_report(self.run_dir, engine.registry)
        return summary

    def journal(self, writer: RunWriter, batches: Batches,
                on_decision: Callable[[Finished], None] | None,
                live: LiveOutputs | None = None) -> tuple[int, RunStopped | None]:
        """Journal every decision ``batches`` hands out; how many, and why it stopped early."""
        done: dict[int, set[int]] = {}
        for seq, sub in writer.done:
            done.setdefault(seq, set()).add(sub)
        decided = errored = 0
        last_flush = time.monotonic()
        stream = batches(done)
        try:
            for batch in stream:
                for finished in batch:
                    writer.write(finished.seq, finished.sub, finished.json(),
                                 (finished.transcript_id, finished.source, finished.errored)
                                 if finished.transcript_id else None)
                    if live is not None:
                        live.add(finished)
                    decided += 1
                    errored += bool(finished.errored)  # a criterion's or the input's
                    if on_decision:
                        on_decision(finished)
                if over_error_budget(errored, self.total, self.max_error_rate):
                    raise RunStopped(Stop.ERROR_BUDGET, f"{errored} transcripts with errors "
                                     f"(of a criterion or the input): past --max-error-rate "
                                     f"{self.max_error_rate:g} of {self.total}")
                if time.monotonic() - last_flush > 0.25:
                    writer.flush()
                    last_flush = time.monotonic()
        except Exception as exc:
            if (stop := stop_for(exc)) is None:
                raise
            return decided, stop
        finally:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
        return decided, None


def _write_report(run_dir: str | Path, registry: Registry) -> None:
    from harness.report import write_report

    try:
        write_report(run_dir, extra_dirs=registry.report_templates)
    except Exception as exc:
        logging.getLogger("harness").warning(
            "the HTML report could not be built (%s: %s); the run's results are complete, "
            "retry with `harness report %s`", type(exc).__name__, exc, run_dir)
