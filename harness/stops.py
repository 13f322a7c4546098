"""Why a run stops before its end, and what each reason means to a shell."""

from __future__ import annotations

from enum import StrEnum


class Stop(StrEnum):
    """A run's stop reason (``summary.json``'s ``stop``; ``stop_reason`` says it in words)."""

    JUDGE_UNAVAILABLE = "judge_unavailable"
    """A judge endpoint is down or misconfigured."""
    COST_BUDGET = "cost_budget"
    """``--max-cost`` is reached."""
    ERROR_BUDGET = "error_budget"
    """More transcripts with criterion errors than ``--max-error-rate`` allows."""
    WORKER_DIED = "worker_died"
    """A worker process (or a Ray actor, again and again) died."""
    INTERRUPTED = "interrupted"
    """Ctrl-C (SIGINT)."""

    @property
    def exit_code(self) -> int:
        """``harness run``'s exit status for it (``--resume`` goes on in every case)."""
        return {Stop.ERROR_BUDGET: 3, Stop.INTERRUPTED: 130}.get(self, 4)


class RunStopped(Exception):
    """Raised inside a run's stream to stop it for ``stop``."""

    def __init__(self, stop: Stop, reason: str) -> None:
        super().__init__(reason)
        self.stop = stop


def over_error_budget(errored: int, total: int | None, rate: float | None) -> bool:
    """Whether ``errored`` transcripts with criterion errors exceed ``rate`` of ``total``."""
    return rate is not None and bool(total) and errored > rate * (total or 0)


def stop_for(exc: BaseException) -> RunStopped | None:
    """The stop that an exception raised while reviewing means (``None``: it is not one)."""
    from concurrent.futures.process import BrokenProcessPool

    from harness.judges.base import JudgeUnavailable
    from harness.judges.budget import BudgetSpent

    if isinstance(exc, RunStopped):
        return exc
    if isinstance(exc, JudgeUnavailable):
        stop = Stop.COST_BUDGET if isinstance(exc, BudgetSpent) else Stop.JUDGE_UNAVAILABLE
        return RunStopped(stop, exc.stop_reason)
    if isinstance(exc, BrokenProcessPool):
        return RunStopped(Stop.WORKER_DIED, "a worker process died (killed, or out of memory) "
                                            "while reviewing; what was decided is kept")
    return None
