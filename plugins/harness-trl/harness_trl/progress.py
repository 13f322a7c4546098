"""One line per training step on the terminal: loss, tokens/s, seconds, peak memory."""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from transformers import TrainerCallback


def reset_peak_rss() -> bool:
    """Start measuring the peak resident memory afresh (Linux: ``/proc/self/clear_refs``);
    False where that is not possible (the peak then covers the whole process)."""
    try:
        with open("/proc/self/clear_refs", "w") as fh:
            fh.write("5")
        return True
    except OSError:
        return False


def peak_rss_mb() -> float:
    """The peak resident memory since :func:`reset_peak_rss` (else since the process began),
    in MB."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return peak / (1024 * 1024) if sys.platform == "darwin" else peak / 1024


@dataclass
class StepMeter:
    """What the trainer reports about each step (the trainers fill ``tokens`` and ``loss``)."""

    total: int
    log: Callable[[str], None] | None = print
    tokens: int = 0
    """Tokens (padding excluded) of the current step's batch."""
    loss: float = float("nan")
    losses: list[float] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    step_tokens: list[int] = field(default_factory=list)
    _started: float = 0.0


class ProgressCallback(TrainerCallback):
    """Times each optimiser step (forward, backward, update) and prints it."""

    def __init__(self, meter: StepMeter) -> None:
        self.meter = meter

    def on_step_begin(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        self.meter.tokens = 0
        self.meter._started = time.perf_counter()

    def on_step_end(self, args: Any, state: Any, control: Any, **kwargs: Any) -> None:
        m = self.meter
        seconds = max(time.perf_counter() - m._started, 1e-9)
        m.losses.append(m.loss)
        m.seconds.append(seconds)
        m.step_tokens.append(m.tokens)
        if m.log:
            m.log(f"step {state.global_step}/{m.total}  loss {m.loss:.4f}  "
                  f"{m.tokens / seconds:,.0f} tokens/s  {seconds:.1f} s  "
                  f"peak RSS {peak_rss_mb():,.0f} MB")
