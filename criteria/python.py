"""The ``python`` criterion kind: any function ``(transcript) -> bool | float | Verdict``.

The function runs under guards, so one criterion cannot take the run down with it:

- a time limit per call (``timeout_s``), in the main thread of a process (see
  :class:`CallGuard`): past it, an ``error`` verdict;
- ``sys.exit()`` in the function is an ``error`` verdict; ``os._exit()`` is replaced, while the
  function runs, by one that raises, also an ``error`` verdict;
- exiting while the module is imported (``sys.exit``/``os._exit`` at module level) is a
  ``SuiteError`` naming the module, when the suite is loaded;
- an exception is an ``error`` verdict whose explanation is the exception and whose
  ``details.traceback`` is a short traceback through the criterion's own code.
"""

from __future__ import annotations

import hashlib
import importlib
import importlib.util
import os
import signal
import sys
import threading
import time
import traceback
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from functools import partial
from pathlib import Path
from types import FrameType, ModuleType, TracebackType
from typing import Any, NoReturn, cast

from pydantic import Field

from harness.criterion import Criterion, CriterionConfig, Result, SuiteContext
from harness.hookspecs import hookimpl
from harness.models import Transcript, Verdict
from harness.suite import CriterionSpec, SuiteError


class PythonConfig(CriterionConfig):
    function: str = Field(pattern=r"^[\w.]+:[\w.]+$")
    """``package.module:name``; modules next to the suite file are importable too."""
    args: dict[str, Any] = {}
    """Keyword arguments passed to the function after the transcript."""
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    """A float result passes when it reaches this."""
    timeout_s: float = Field(default=30.0, gt=0)
    """Time limit of one call; past it the verdict is ``error`` (main thread only)."""


class CriterionTimeout(BaseException):
    """Raised into a python criterion that ran past its time limit.

    A ``BaseException``, like ``SystemExit``, so that ``except Exception`` in the user's code
    does not swallow it.
    """


class CriterionExit(BaseException):
    """Raised by the stand-in for ``os._exit`` while a python criterion runs."""

    def __init__(self, status: int) -> None:
        super().__init__(f"os._exit({status})")
        self.status = status


class CallGuard:
    """Calls a function with a time limit each and no way out of the process, many times.

    Entering it (once for a batch of calls: installing a signal handler costs more than a
    cheap criterion) replaces ``os._exit`` by :func:`no_os_exit`'s stand-in and, in the main
    thread of a process (the engine runs cheap criteria there, and in worker processes' main
    threads), installs a ``SIGALRM`` handler; leaving restores both. A timer that was running
    is paused meanwhile, then resumed with the time it had left. Elsewhere than in the main
    thread, or without ``setitimer``, calls run without a time limit.

    Each :meth:`call` arms ``setitimer(ITIMER_REAL)``; the handler raises
    :class:`CriterionTimeout` into the function. That interrupts Python code and blocking calls
    such as ``time.sleep``, not a long call inside a C extension until it returns. The alarm
    repeats while the function runs on, so catching the exception once does not buy unlimited
    time (but a function that catches every exception in a loop cannot be stopped).
    """

    def __init__(self) -> None:
        self.alarm = False
        self.active = False
        self.fired = False

    def __enter__(self) -> CallGuard:
        self._exits = no_os_exit()
        self.exited = self._exits.__enter__()
        main = threading.current_thread() is threading.main_thread()
        if main and hasattr(signal, "setitimer"):
            try:
                self.previous_handler = signal.signal(signal.SIGALRM, self._on_alarm)
                self.alarm = True
            except ValueError:  # not the main interpreter
                pass
        if self.alarm:
            self.started = time.monotonic()
            self.previous_timer = signal.setitimer(signal.ITIMER_REAL, 0)
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        self.active = False
        if self.alarm:
            signal.setitimer(signal.ITIMER_REAL, 0)
            signal.signal(signal.SIGALRM, self.previous_handler)
            delay, interval = self.previous_timer
            if delay > 0:
                left = delay - (time.monotonic() - self.started)
                signal.setitimer(signal.ITIMER_REAL, max(left, 1e-6), interval)
        self._exits.__exit__(exc_type, exc, tb)

    def _on_alarm(self, signum: int, frame: FrameType | None) -> None:
        if self.active:
            self.fired = True
            raise CriterionTimeout("timed out")

    def call(self, function: Callable[[], Any], seconds: float) -> Any:
        """``function()``, or an ``error`` verdict if it timed out or tried to exit."""
        self.fired = False
        _exit_calls.status = None
        try:
            if self.alarm:
                self.active = True
                signal.setitimer(signal.ITIMER_REAL, seconds, min(seconds, 0.5))
            try:
                result = function()
            except CriterionExit:
                result = None
            finally:
                self.active = False  # first: from here on the handler raises no more
                if self.alarm:
                    signal.setitimer(signal.ITIMER_REAL, 0)
        except CriterionTimeout:  # raised by the function, or landed just before `finally`
            self.active = False
            if self.alarm:
                signal.setitimer(signal.ITIMER_REAL, 0)
            self.fired = True
        except SystemExit as exc:
            return Verdict(outcome="error",
                           explanation=f"criterion called sys.exit({_code(exc)})")
        if self.fired:  # even if the function caught the exception and returned
            return Verdict(outcome="error", explanation=f"python criterion timed out: the "
                                                        f"call took over {seconds:g}s (timeout_s)")
        attempted = self.exited()
        if attempted is not None:  # even if the function caught the exception
            return Verdict(outcome="error", explanation=f"criterion called {attempted}")
        return result


_exit_guard_lock = threading.Lock()
_exit_guard_depth = 0
_exit_calls = threading.local()
_real_os_exit = os._exit


def _raising_exit(status: int) -> NoReturn:
    _exit_calls.status = status
    raise CriterionExit(status)


@contextmanager
def no_os_exit() -> Iterator[Callable[[], CriterionExit | None]]:
    """Replace ``os._exit`` by a function raising :class:`CriterionExit` in the block.

    Yields a function returning the exit the block last attempted in this thread, if any,
    even if the block caught the exception.
    """
    global _exit_guard_depth
    _exit_calls.status = None
    with _exit_guard_lock:
        if _exit_guard_depth == 0:
            os._exit = _raising_exit
        _exit_guard_depth += 1
    try:
        yield lambda: None if _exit_calls.status is None else CriterionExit(_exit_calls.status)
    finally:
        with _exit_guard_lock:
            _exit_guard_depth -= 1
            if _exit_guard_depth == 0:
                os._exit = _real_os_exit


def import_function(ref: str, search_dir: str | None = None) -> Callable[..., Any]:
    """Import ``package.module:name``; a module file next to the suite file comes first.

    A module found next to the suite is loaded under a name unique to its path, so two suites
    with their own ``checks.py`` do not get each other's functions.
    """
    module_name, _, attr = ref.partition(":")
    added = search_dir if search_dir is not None and search_dir not in sys.path else None
    if added is not None:
        sys.path.insert(0, added)
    try:
        local = Path(search_dir or ".") / (module_name.replace(".", "/") + ".py")
        if search_dir is not None and local.is_file():
            module = _load_file(local.resolve())
        else:
            module = importlib.import_module(module_name)
    finally:
        if added is not None:
            sys.path.remove(added)
    obj: Any = module
    for part in attr.split("."):
        obj = getattr(obj, part)
    if not callable(obj):
        raise TypeError(f"{ref} is not callable")
    return cast("Callable[..., Any]", obj)


def _load_file(path: Path) -> ModuleType:
    name = f"harness_suite_modules.{path.stem}_{hashlib.sha1(str(path).encode()).hexdigest()[:10]}"
    if name in sys.modules:
        return sys.modules[name]
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except BaseException:
        del sys.modules[name]
        raise
    return module


class Python(Criterion):
    """A Python function of the transcript returning bool, a score in [0, 1], or a Verdict."""

    kind = "python"
    Config = PythonConfig
    config: PythonConfig
    cost = 1

    def __init__(self, spec: CriterionSpec, config: PythonConfig, context: SuiteContext) -> None:
        super().__init__(spec, config, context)
        self.pass_threshold = config.threshold
        self.suite_dir = Path(context.suite_dir).resolve() if context.suite_dir else None
        try:
            with no_os_exit() as exited:
                try:
                    self.function = import_function(config.function, str(context.suite_dir))
                finally:
                    attempted = exited()
            if attempted is not None:
                raise attempted
        except (SystemExit, CriterionExit) as exc:
            module = config.function.partition(":")[0]
            call = exc if isinstance(exc, CriterionExit) else f"sys.exit({_code(exc)})"
            raise SuiteError(f"{spec.origin}: criterion '{spec.name}' (python): module "
                             f"'{module}' called {call} while being imported") from None
        except Exception as exc:
            raise SuiteError(f"{spec.origin}: criterion '{spec.name}' (python): cannot import "
                             f"{config.function}: {type(exc).__name__}: {exc}") from None

    def evaluate(self, transcript: Transcript) -> Result:
        """Call the function, under a time limit and with no way to exit the process."""
        [result] = self.evaluate_batch([transcript])
        if isinstance(result, BaseException):
            raise result
        return result

    def evaluate_batch(self, transcripts: Sequence[Transcript]) -> list[Result | BaseException]:
        """Call the function for each transcript, under one :class:`CallGuard`."""
        function, args, limit = self.function, self.config.args, self.config.timeout_s
        results: list[Result | BaseException] = []
        with CallGuard() as guard:
            for transcript in transcripts:
                try:
                    results.append(guard.call(partial(function, transcript, **args), limit))
                except Exception as exc:  # noqa: BLE001 - fail closed, per transcript
                    results.append(Verdict(
                        outcome="error", explanation=f"{type(exc).__name__}: {exc}",
                        details={"traceback": short_traceback(exc, self.suite_dir)}))
        return results


TRACE_FRAMES = 8
"""Frames of the criterion's own code kept in ``details.traceback`` (the innermost ones)."""
TRACE_LINE = 300


def short_traceback(exc: BaseException, suite_dir: Path | None = None) -> str:
    """The exception's traceback through the criterion's code only (the frames of this module,
    which called it, left out), at most :data:`TRACE_FRAMES` frames; files under the suite's
    folder named relative to it."""
    frames = [f for f in traceback.extract_tb(exc.__traceback__)
              if Path(f.filename).resolve() != _THIS_FILE]
    lines = ["Traceback (most recent call last):"]
    if len(frames) > TRACE_FRAMES:
        lines.append(f"  ... {len(frames) - TRACE_FRAMES} frames left out ...")
    for frame in frames[-TRACE_FRAMES:]:
        lines.append(f'  File "{_shown_path(frame.filename, suite_dir)}", line {frame.lineno}, '
                     f"in {frame.name}"[:TRACE_LINE])
        if frame.line:
            lines.append(f"    {frame.line}"[:TRACE_LINE])
    lines.extend(line[:TRACE_LINE] for line in
                 "".join(traceback.format_exception_only(type(exc), exc)).rstrip().splitlines())
    return "\n".join(lines)


_THIS_FILE = Path(__file__).resolve()


def _shown_path(filename: str, suite_dir: Path | None) -> str:
    if suite_dir is not None:
        try:
            return str(Path(filename).resolve().relative_to(suite_dir))
        except ValueError:
            pass
    return filename


def _code(exc: SystemExit) -> str:
    return "" if exc.code is None else repr(exc.code)


@hookimpl
def register_criterion_kinds(register: Callable[[type[Criterion]], None]) -> None:
    register(Python)
