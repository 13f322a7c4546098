"""The python kind's guards: a time limit per call, and no way out of the process through
``sys.exit``/``os._exit`` (in the function or at import)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from harness import Message, SuiteError, Transcript, Verdict
from harness.criterion import SuiteContext
from harness.plugins import get_registry
from harness.suite import CriterionSpec, validate_config

CHECKS = '''
import os, sys, time

def sleeps(t):
    time.sleep(60)
    return True

def spins(t):
    while True:
        pass

def swallows(t):
    try:
        time.sleep(60)
    except BaseException:
        pass
    return True

def swallows_then_sleeps(t):
    try:
        time.sleep(60)
    except BaseException:
        pass
    time.sleep(60)
    return True

def quick(t):
    return True

def exits(t):
    sys.exit(0)

def exits_hard(t):
    os._exit(0)

def exits_hard_and_swallows(t):
    try:
        os._exit(0)
    except BaseException:
        pass
    return True
'''
T = Transcript(id="t", messages=[Message(role="user", content="q"),
                                 Message(role="assistant", content="a")])
needs_alarm = pytest.mark.skipif(not hasattr(signal, "setitimer"), reason="no setitimer")


def build(folder: Path, function: str, module: str = "limits", **config):
    registry = get_registry()
    spec = CriterionSpec(name="c", kind="python", origin="test",
                         config={"function": f"{module}:{function}", **config})
    cls = registry.kinds["python"]
    return cls(spec, validate_config(spec, cls.Config),
               SuiteContext(registry=registry, suite_dir=folder))


@pytest.fixture
def make(tmp_path):
    (tmp_path / "limits.py").write_text(CHECKS)
    return lambda function, **config: build(tmp_path, function, **config)


def verdict_of(criterion) -> Verdict:
    [result] = criterion.evaluate_batch([T])
    assert not isinstance(result, BaseException), result
    if isinstance(result, bool):  # what the functions above return when not stopped
        return Verdict(outcome="pass" if result else "fail")
    return result


# --- time limit -------------------------------------------------------------------------------


@needs_alarm
@pytest.mark.parametrize("function", ["sleeps", "spins", "swallows",
                                      "swallows_then_sleeps"])
def test_a_hanging_function_gives_an_error_verdict(make, function):
    criterion = make(function, timeout_s=0.2)
    started = time.monotonic()
    v = verdict_of(criterion)
    assert time.monotonic() - started < 10
    assert v.outcome == "error" and "timed out" in v.explanation and "0.2s" in v.explanation


def test_time_limit_default_and_validation(make):
    assert make("quick").config.timeout_s == 30
    with pytest.raises(SuiteError, match="timeout_s"):
        make("quick", timeout_s=0)


@needs_alarm
def test_previous_handler_and_timer_are_restored(make):
    fired = []
    previous = signal.signal(signal.SIGALRM, lambda *_: fired.append(True))
    try:
        signal.setitimer(signal.ITIMER_REAL, 0.5)
        assert verdict_of(make("quick", timeout_s=5)).outcome == "pass"
        assert verdict_of(make("sleeps", timeout_s=0.1)).outcome == "error"
        remaining, _ = signal.getitimer(signal.ITIMER_REAL)
        assert 0 < remaining <= 0.5  # still armed, not reset to ours
        time.sleep(remaining + 0.2)
        assert fired == [True]
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
    assert signal.getsignal(signal.SIGALRM) is previous


@needs_alarm
def test_no_alarm_is_left_armed_after_a_quick_call(make):
    assert verdict_of(make("quick")).outcome == "pass"
    assert signal.getitimer(signal.ITIMER_REAL) == (0.0, 0.0)


def test_outside_the_main_thread_runs_without_the_limit(make):
    criterion = make("quick", timeout_s=0.1)
    out = []
    thread = threading.Thread(target=lambda: out.append(verdict_of(criterion)))
    thread.start()
    thread.join(10)
    assert out and out[0].outcome == "pass"


# --- exits ------------------------------------------------------------------------------------


def test_sys_exit_in_the_function_is_an_error_verdict(make):
    v = verdict_of(make("exits"))
    assert v.outcome == "error" and "criterion called sys.exit(0)" in v.explanation


@pytest.mark.parametrize("function", ["exits_hard", "exits_hard_and_swallows"])
def test_os_exit_in_the_function_is_an_error_verdict_and_the_process_lives(make, function):
    v = verdict_of(make(function))
    assert v.outcome == "error" and "os._exit(0)" in v.explanation
    assert os._exit.__module__ == "posix" or os._exit.__module__ == "nt"  # restored


@pytest.mark.parametrize("exit_call", ["sys.exit(0)", "os._exit(0)", "raise SystemExit"])
def test_exit_at_import_is_a_suite_error_naming_the_module(tmp_path, exit_call):
    (tmp_path / "quitter.py").write_text(f"import os, sys\n{exit_call}\n\ndef f(t):\n"
                                         "    return True\n")
    with pytest.raises(SuiteError, match="quitter"):
        build(tmp_path, "f", module="quitter")
    assert "os" in sys.modules and os._exit.__module__ in ("posix", "nt")


def test_a_run_with_an_exiting_criterion_does_not_exit_zero(tmp_path):
    """End to end in a child process: the run goes on and reports errors, never a silent 0."""
    (tmp_path / "limits.py").write_text(CHECKS)
    (tmp_path / "s.yaml").write_text(textwrap.dedent("""\
        name: s
        criteria:
          - {name: a, kind: python, function: "limits:exits"}
          - {name: b, kind: python, function: "limits:exits_hard"}
    """))
    script = textwrap.dedent(f"""\
        from harness import Engine, Message, Transcript, load_suite
        t = Transcript(id="t", messages=[Message(role="user", content="q"),
                                         Message(role="assistant", content="a")])
        [d] = Engine(load_suite({str(tmp_path / "s.yaml")!r})).decide_batch([t])
        print("DECISION", d.outcome, sorted(d.errored))
    """)
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert "DECISION error ['a', 'b']" in proc.stdout, proc.stdout + proc.stderr
