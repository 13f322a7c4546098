"""Progress of ``harness run``: a bar in a terminal, a line at a steady interval in a log.

Outside a terminal (a CI log, ``nohup``, a pipe) a bar cannot redraw, so a line goes to stderr
every ``every_s`` seconds, whether or not a transcript finished meanwhile::

    harness: 120 of 1,000 records (12.0%), 35.2 records/s, 3 errored so far, about 25s left

plus one line when the run starts and one when it ends. ``--no-progress`` silences both.
"""

from __future__ import annotations

import sys
import threading
import time
from types import TracebackType
from typing import Any, Literal, TextIO

from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
)

Mode = Literal["bar", "lines", "off"]
REDRAW_S = 0.2
"""The bar is redrawn 5 times a second, not once per decision."""


def progress_mode(console: Console, enabled: bool) -> Mode:
    """``bar`` in a terminal, ``lines`` elsewhere, ``off`` with ``--no-progress``."""
    if not enabled:
        return "off"
    return "bar" if console.is_terminal else "lines"


def duration(seconds: float) -> str:
    """``0.5s``, ``45s``, ``3m05s``, ``2h07m``."""
    if 0 < seconds < 1:
        return f"{seconds:.1f}s"
    seconds = max(0, round(seconds))
    if seconds < 60:
        return f"{seconds}s"
    if seconds < 3600:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


class RunProgress:
    """Counts decided transcripts and shows them (see the module doc). A context manager."""

    def __init__(self, console: Console, total: int | None, mode: Mode, every_s: float = 10.0,
                 stream: TextIO | None = None) -> None:
        self.total, self.mode, self.every_s = total, mode, every_s
        self.stream = stream or sys.stderr
        self.counts = {"pass": 0, "fail": 0, "error": 0}
        self.records = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = time.monotonic()
        self._unshown, self._shown_at = 0, 0.0
        self._entered = False
        self._bar = Progress(TextColumn("reviewing"), BarColumn(), MofNCompleteColumn(),
                             TextColumn("records"),
                             TimeRemainingColumn(elapsed_when_finished=True),
                             TextColumn("{task.fields[rate]}"), console=console,
                             disable=mode != "bar")
        self._task = self._bar.add_task("review", total=total, rate="")

    def __enter__(self) -> RunProgress:
        return self

    def start(self) -> None:
        """Show the bar (or the first line): once the run is under way, so that a run refused
        at its start shows nothing but its error."""
        if self._entered:
            return
        self._entered = True
        self._started = time.monotonic()
        self._bar.__enter__()
        if self.mode == "lines":
            of = "" if self.total is None else f"{self.total:,} records, "
            self._write(f"harness: reviewing {of}a progress line every "
                        f"{duration(self.every_s)}")
            self._thread = threading.Thread(target=self._lines, name="harness-progress")
            self._thread.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
        if self._entered:
            self._bar.__exit__(kind, exc, tb)

    def tick(self, finished: Any) -> None:
        """One decided transcript (a :class:`~harness.stages.Finished`)."""
        with self._lock:
            self.counts[finished.outcome] = self.counts.get(finished.outcome, 0) + 1
            # the progress counts input records: an HH-RLHF pair is one record, two decisions
            new = not finished.source.endswith(":chosen")
            self.records += new
            self._unshown += new
        if self.mode == "bar":
            now = time.monotonic()
            if now - self._shown_at > REDRAW_S:
                self._redraw()
                self._shown_at = now

    def finish(self, read: int) -> None:
        """The run is over: the bar shows ``read`` of ``read``; the log gets a last line."""
        self.start()
        done = read if self.total is None else self.total
        self._bar.update(self._task, total=done, completed=done)
        if self.mode == "lines":
            self._stop.set()
            elapsed = time.monotonic() - self._started
            with self._lock:
                records, errors = self.records, self.counts.get("error", 0)
            rate = records / elapsed if elapsed > 0 else 0.0
            self._write(f"harness: reviewed {records:,} records in {duration(elapsed)} "
                        f"({rate:,.1f} records/s), {errors:,} errored")

    def line(self) -> str:
        """The progress line for now."""
        elapsed = time.monotonic() - self._started
        with self._lock:
            records, errors = self.records, self.counts.get("error", 0)
        rate = records / elapsed if elapsed > 0 else 0.0
        if self.total:
            done = f"{records:,} of {self.total:,} records ({records / self.total:.1%})"
            if rate > 0:
                left = f"about {duration(max(0, self.total - records) / rate)} left"
            else:
                left = "time left unknown yet"
        else:
            done, left = f"{records:,} records", "total unknown"
        return f"harness: {done}, {rate:,.1f} records/s, {errors:,} errored so far, {left}"

    def _redraw(self) -> None:
        with self._lock:
            advance, self._unshown = self._unshown, 0
            counts = dict(self.counts)
        self._bar.update(self._task, advance=advance,
                         rate=f"pass {counts['pass']} fail {counts['fail']} "
                              f"error {counts['error']}")

    def _lines(self) -> None:
        while not self._stop.wait(self.every_s):
            self._write(self.line())

    def _write(self, text: str) -> None:
        try:
            self.stream.write(text + "\n")
            self.stream.flush()
        except (OSError, ValueError):  # a closed pipe: progress is not worth failing a run
            pass
