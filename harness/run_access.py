"""Typed access to a run directory from Python: ``harness.open_run(RUN_DIR)``.

The summary is read (and validated) when the run is opened; ``results``, ``decisions``,
``train``, ``rejected`` and ``errors`` are pandas DataFrames read from their files on first
access, then kept. A folder that is not a run directory, or a run whose outputs are not complete,
is an error that says so (``RunDirError``, ``IncompleteRunError``).
"""

from __future__ import annotations

import json
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness.rundir import IncompleteRunError, RunDirError, check_complete

if TYPE_CHECKING:
    import pandas as pd

SUMMARY = "summary.json"


class CriterionSummary(BaseModel):
    """One criterion's tally over the run, as ``summary.json`` has it."""

    model_config = ConfigDict(extra="allow", populate_by_name=True)

    kind: str
    """The criterion kind (``regex``, ``llm_judge``...)."""
    gate: bool
    """Whether it must pass for the transcript to pass."""
    passed: int = Field(alias="pass")
    """Verdicts that passed (one per transcript, or per assistant message for message scope)."""
    failed: int = Field(alias="fail")
    """Verdicts that failed."""
    error: int
    """Verdicts that could not be given (a judge down, a criterion that raised)."""
    skipped: int
    """Verdicts not run (expensive criteria after a failed gate)."""
    pass_rate: float | None
    """``pass / (pass + fail)``; ``None`` without any."""
    mean_score: float | None
    """Mean score of the scored verdicts."""


class SuiteRef(BaseModel):
    """The suite a run used."""

    model_config = ConfigDict(extra="allow")

    name: str | None = None
    version: str | None = None


class RunSummary(BaseModel):
    """A run's ``summary.json``, typed. Keys added by newer versions are kept as extras."""

    model_config = ConfigDict(extra="allow")

    suite: SuiteRef
    """Name and version of the suite."""
    read: int
    """Transcripts read (unreadable records included)."""
    passed: int
    failed: int
    errored: int
    """Transcripts decided ``error``."""
    input_errors: int = 0
    """Records that could not be read as a transcript."""
    criterion_errors: int = 0
    """Errored verdicts, over all transcripts."""
    transcripts_with_errors: int = 0
    pass_rate: float | None
    """``passed / read``."""
    train_duplicates: int = 0
    """Passing transcripts left out of ``train.jsonl`` as exact duplicates of an earlier one."""
    duplicate_ids: int = 0
    """Transcripts whose id an earlier record of the run has (ids should be unique)."""
    not_decided: int = 0
    """Input transcripts without a decision (a stopped run)."""
    bad_journal_lines: int = 0
    state: str
    """``complete``, or ``stopped`` for a run that ended early (resumable)."""
    stop_reason: str | None = None
    criteria: dict[str, CriterionSummary]
    """Per criterion, in suite order."""
    timings: dict[str, Any] = Field(default_factory=dict)
    """``started``, ``finished``, ``wall_s``, ``transcripts_per_s``..."""


class Run:
    """A finished run directory. Open it with :func:`open_run`."""

    def __init__(self, path: Path, meta: dict[str, Any], summary: RunSummary) -> None:
        self.path = path
        self.meta = meta
        """``run.json``: the suite as run, the inputs, the options."""
        self.summary = summary

    def __repr__(self) -> str:
        s = self.summary
        return (f"<Run {str(self.path)!r} suite={s.suite.name!r} read={s.read} "
                f"passed={s.passed} failed={s.failed} errored={s.errored} state={s.state!r}>")

    @cached_property
    def results(self) -> pd.DataFrame:
        """One row per verdict (``results.parquet``): criterion, outcome, score, evidence..."""
        return self._parquet("results.parquet")

    @cached_property
    def decisions(self) -> pd.DataFrame:
        """One row per transcript (``decisions.parquet``): outcome, score, failed, errored."""
        return self._parquet("decisions.parquet")

    @cached_property
    def train(self) -> pd.DataFrame:
        """The training set (``train.jsonl``): ``transcript_id`` and ``source`` of each row's
        transcript (from ``decisions.parquet``'s ``train_line``), then the line's own columns
        (``messages``, and ``tools`` when the records had them)."""
        import pandas as pd

        lines = self._jsonl("train.jsonl", ["messages"])
        decisions = self.decisions
        ids: list[Any] = [None] * len(lines)
        sources: list[Any] = [None] * len(lines)
        if "train_line" in decisions:  # runs from before it: rows without their ids
            placed = decisions[decisions["train_line"].notna()]
            for tid, source, line in zip(placed["transcript_id"], placed["source"],
                                         placed["train_line"], strict=True):
                if 0 <= int(line) < len(lines):
                    ids[int(line)], sources[int(line)] = tid, source
        return pd.concat([pd.DataFrame({"transcript_id": ids, "source": sources}), lines],
                         axis=1)

    @cached_property
    def rejected(self) -> pd.DataFrame:
        """The failed transcripts with their evidence (``rejected.jsonl``)."""
        return self._jsonl("rejected.jsonl", ["transcript_id", "source", "failed", "score",
                                              "evidence", "explanations"])

    @cached_property
    def errors(self) -> pd.DataFrame:
        """Every transcript with an error (``errors.jsonl``)."""
        return self._jsonl("errors.jsonl", ["transcript_id", "source", "kind", "decision",
                                            "errored", "reason"])

    def _file(self, name: str) -> Path:
        path = self.path / name
        if not path.is_file():
            raise IncompleteRunError(f"{self.path}: {name} is missing; rebuild the outputs with "
                                     f"`harness run ... -o {self.path} --resume`")
        return path

    def _parquet(self, name: str) -> pd.DataFrame:
        import pandas as pd

        return pd.read_parquet(self._file(name))

    def _jsonl(self, name: str, columns: list[str]) -> pd.DataFrame:
        import orjson
        import pandas as pd

        with self._file(name).open("rb") as fh:
            rows = [orjson.loads(line) for line in fh if line.strip()]
        return pd.DataFrame(rows, columns=columns if not rows else None)


def open_run(run_dir: str | Path, *, allow_stopped: bool = False) -> Run:
    """Open a finished run directory (``harness run -o RUN_DIR``, or :func:`harness.run`).

    ``RunDirError`` when ``run_dir`` is not a run directory; ``IncompleteRunError`` when its
    run did not finish (still running, killed, or stopped early: ``allow_stopped=True`` opens a
    stopped run, whose outputs hold what was decided).
    """
    path = Path(run_dir)
    if not path.is_dir():
        raise RunDirError(f"{path} is not a run directory (no such folder)")
    meta = check_complete(path, allow_incomplete=allow_stopped)
    if meta.get("state", "complete") not in ("complete", "stopped"):
        raise IncompleteRunError(f"{path}: the run is incomplete (state: {meta['state']}); "
                                 f"finish it with `harness run ... -o {path} --resume`")
    summary_path = path / SUMMARY
    if not summary_path.is_file():
        raise IncompleteRunError(f"{path}: no {SUMMARY}; the run did not finish: go on with "
                                 f"`harness run ... -o {path} --resume`")
    try:
        summary = RunSummary.model_validate(json.loads(summary_path.read_text()))
    except (ValueError, ValidationError) as exc:
        raise RunDirError(f"{summary_path}: not a summary this version can read: {exc}") from None
    return Run(path, meta, summary)
