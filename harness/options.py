"""The options of a review, as one frozen object passed whole from every front end."""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from harness.inputs.sources import DEFAULT_MESSAGES_COLUMN


def default_workers() -> int:
    """The machine's cores (those this process may use)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # pragma: no cover - not Linux
        return max(1, os.cpu_count() or 1)


@dataclass(frozen=True)
class RunOptions:
    """How a suite is run. The CLI, :func:`harness.review`, :func:`harness.run`, the pytest
    plugin and the Ray engine each build one and hand it on whole; ``run.json`` and the resume
    fingerprint are written from it (:meth:`record`, :meth:`verdict_options`)."""

    judge: str | None = None
    """``--judge``: replaces every judge of the suite."""
    all_criteria: bool = False
    """Run the expensive criteria even after a gate failed."""
    input_format: str = "auto"
    """Record format of the inputs (``auto``: detected per record)."""
    messages_column: str = DEFAULT_MESSAGES_COLUMN
    """Parquet/Arrow column holding the chat."""
    limit: int | None = None
    """Review only the first ``limit`` records of the inputs."""
    cache_dir: Path | None = None
    """Where judges keep their answers (a run defaults to its run directory)."""
    workers: int = 1
    """Processes for the synchronous criteria."""
    max_in_flight: int = 4096
    """Records in flight at once, judge calls included."""
    only: tuple[str, ...] | None = None
    """Run only these criteria of the suite."""
    plugins_dir: str | None = None
    """The local plugins folder the registry was built with (worker processes rebuild it)."""
    judge_share: int = 1
    """Engines that run side by side with one judge window (Ray actors): each judge's
    ``max_concurrency`` is divided by this, so the whole keeps to the suite's limit."""
    engine: str = "local"
    """The execution engine that reviews (``--engine``), as ``run.json`` records it."""
    actors: int | None = None
    """Processes of an engine of its own that review (Ray actors), in place of ``workers``."""

    def __post_init__(self) -> None:
        fix = object.__setattr__
        fix(self, "workers", max(1, int(self.workers)))
        fix(self, "max_in_flight", max(1, int(self.max_in_flight)))
        fix(self, "judge_share", max(1, int(self.judge_share)))
        if self.cache_dir is not None:
            fix(self, "cache_dir", Path(self.cache_dir))
        if self.only is not None:
            fix(self, "only", tuple(self.only))
        if self.plugins_dir is not None:
            fix(self, "plugins_dir", str(self.plugins_dir))

    @classmethod
    def recorded(cls, meta: dict[str, Any]) -> RunOptions:
        """The options a run directory's ``run.json`` (``meta``) recorded."""
        given = meta.get("options") or {}
        return cls(judge=given.get("judge"), all_criteria=bool(given.get("all_criteria")),
                   input_format=meta.get("input_format") or "auto",
                   messages_column=meta.get("messages_column") or DEFAULT_MESSAGES_COLUMN,
                   limit=meta.get("limit"), plugins_dir=meta.get("plugins_dir"))

    def replace(self, **changes: Any) -> RunOptions:
        """A copy with ``changes``."""
        return dataclasses.replace(self, **changes)

    def verdict_options(self) -> dict[str, Any]:
        """The options that can change a verdict: a resumed run must share them."""
        options: dict[str, Any] = {"judge": self.judge, "all_criteria": self.all_criteria,
                                   "input_format": self.input_format}
        if self.messages_column != DEFAULT_MESSAGES_COLUMN:  # older runs keep their fingerprint
            options["messages_column"] = self.messages_column
        return options

    def record(self) -> dict[str, Any]:
        """What ``run.json`` records of them."""
        reviewers = {"workers": self.workers} if self.actors is None else \
            {"actors": self.actors}
        return {"engine": self.engine, "judge": self.judge, "all_criteria": self.all_criteria,
                "input_format": self.input_format, **reviewers,
                "plugins_dir": self.plugins_dir, "messages_column": self.messages_column}
