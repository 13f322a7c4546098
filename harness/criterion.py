"""The criterion base class: what a criterion kind implements."""

from __future__ import annotations

import asyncio
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar, Protocol, TypeVar, cast

from pydantic import BaseModel, ConfigDict

from harness.loop import EngineLoop
from harness.models import Transcript, Verdict

if TYPE_CHECKING:
    from harness.judges.budget import CostBudget
    from harness.judges.runner import JudgeRunner
    from harness.plugins import Registry
    from harness.suite import CriterionSpec

T = TypeVar("T")

Result = bool | float | Verdict
"""What ``evaluate`` returns: pass/fail, a score in [0, 1], or a full :class:`Verdict`."""


class CriterionConfig(BaseModel):
    """Base of every kind's ``Config``: unknown keys are errors, not silent defaults."""

    model_config = ConfigDict(extra="forbid")


@dataclass
class SuiteContext:
    """What a criterion may know about the suite it runs in."""

    registry: Registry
    """Plugins and what they registered (judge backends, classifier backends...)."""
    suite_dir: Path = Path(".")
    """Folder of the suite file: relative paths in configs resolve against it."""
    variables: dict[str, Any] = field(default_factory=dict)
    """The suite's ``variables:``, given to rubric templates."""
    judge: str | dict[str, Any] | None = None
    """The suite's default judge."""
    judge_override: str | None = None
    """``--judge`` from the command line: replaces every judge of the suite."""
    cache_dir: Path | None = None
    """Where model-based criteria may keep caches (the run directory, or a user's folder)."""
    judge_share: int = 1
    """Engines that share each judge's window (Ray actors): a judge's ``max_concurrency`` is
    divided by it."""
    loop: EngineLoop = field(default_factory=EngineLoop)
    """The engine's event loop: a synchronous ``evaluate`` runs its async work there
    (``context.loop.run(coro)``), so clients bound to a loop are bound to this one."""
    budget: CostBudget | None = None
    """The run's spending limit on judge calls, shared by its judges
    (:func:`harness.judges.budget.cost_budget` makes it on first use)."""
    resources: dict[str, Any] = field(default_factory=dict)
    """Objects the run's criteria share (judge runners, caches, models), owned by the engine."""

    def shared(self, key: str, make: Callable[[], T]) -> T:
        """The run-wide object stored under ``key``, built by ``make`` on first use.

        Criteria naming the same judge share one runner through this, so its concurrency limit
        holds across criteria. The engine closes what it holds (``close()`` or ``aclose()``)
        when it is closed.
        """
        value = self.resources.get(key)
        if value is None:
            value = self.resources[key] = make()
        return cast(T, value)

    def judge_runners(self) -> list[JudgeRunner]:
        """The judge runners the run's criteria share (one per judge and options)."""
        from harness.judges.runner import JudgeRunner

        return [r for r in self.resources.values() if isinstance(r, JudgeRunner)]


class CriterionGroup(Protocol):
    """Several criteria of one kind judged together (:meth:`Criterion.group`).

    A group may also offer ``evaluate_columns(transcripts) -> list[Column]``: the same results
    as :class:`Column` s, where most transcripts share one result (the plan prefers it)."""

    def evaluate_batch(self, transcripts: Sequence[Transcript]
                       ) -> list[list[Result | BaseException]]:
        """Each criterion's result for each transcript: ``[criterion][transcript]``, each as
        that criterion's ``evaluate`` would give it."""
        ...


@dataclass(slots=True)
class Column:
    """One criterion's results over a batch of transcripts: ``usual`` for every transcript but
    those in ``other`` (by index in the batch). A group that clears most transcripts at once (a
    scan that finds nothing) says so without a result per transcript."""

    usual: Result | None
    """The result of every transcript not in ``other`` (``None``: every one is there)."""
    other: dict[int, Result | BaseException]


class Criterion(ABC):
    """A criterion kind. Subclass it, name the ``kind``, give a ``Config``, implement ``evaluate``.

    One instance is built per criterion of a suite, so work done in ``__init__`` (compiling a
    pattern, loading a model) is done once. ``evaluate`` may raise: the engine turns any
    exception into an ``error`` verdict, never a pass.
    """

    kind: ClassVar[str]
    """The name used as ``kind:`` in suite files."""
    Config: ClassVar[type[BaseModel]] = CriterionConfig
    """The kind's suite keys, validated with ``extra="forbid"``."""
    cost: int = 0
    """Relative cost; cheaper criteria run first (regex 0, python 1, classifier 2, judge 3)."""
    expensive: bool = False
    """Skipped for a transcript once one of its gates failed (unless ``--all-criteria``)."""
    pass_threshold: float = 0.5
    """A bare float result passes when it reaches this."""
    in_workers: bool = True
    """May run in worker processes (``--workers``). A kind whose model already spreads one batch
    over every core (a torch classifier) says False: a copy of the model per worker would only
    cost memory; a suite holding one runs its cheap criteria in the engine's process."""
    is_async: bool = False
    """The kind implements ``evaluate_async``: the engine awaits it on its event loop, many
    transcripts at once, each kind's own concurrency limit keeping its window full."""
    together: str | None = None
    """Criteria with the same key are answered by one call (the rubrics of one ``llm_judge``):
    the plan runs them side by side for a transcript, and none of them skips another."""

    def __init__(self, spec: CriterionSpec, config: BaseModel, context: SuiteContext) -> None:
        self.spec = spec
        self.config = config
        self.context = context

    @property
    def name(self) -> str:
        return self.spec.name

    @abstractmethod
    def evaluate(self, transcript: Transcript) -> Result:
        """Judge one transcript: ``True``/``False``, a score in [0, 1], or a new ``Verdict``
        (the engine fills in the criterion's name, version and kind)."""

    async def evaluate_async(self, transcript: Transcript) -> Result:
        """Judge one transcript without blocking the event loop (kinds with ``is_async``)."""
        raise NotImplementedError

    async def evaluate_batch_async(self, transcripts: Sequence[Transcript]
                                   ) -> list[Result | BaseException]:
        """Judge many transcripts at once, on the engine's event loop: how the engine calls a
        criterion of its synchronous front. By default ``evaluate_async`` for each transcript
        concurrently (kinds with ``is_async``), else :meth:`evaluate_batch`. Override it in a
        synchronous kind that awaits something for a whole batch (pairwise judging)."""
        if self.is_async:
            return list(await asyncio.gather(*(self.evaluate_async(t) for t in transcripts),
                                             return_exceptions=True))
        return self.evaluate_batch(transcripts)

    @classmethod
    def expand(cls, spec: CriterionSpec) -> Sequence[CriterionSpec]:
        """The criteria one suite entry stands for: itself (the default), or several, each a
        criterion of its own in the results (an ``llm_judge`` with ``rubrics:`` is one per
        rubric, ``NAME.RUBRIC``). The plan builds each; the suite a run records lists them.
        Raise :class:`~harness.suite.SuiteError` for an entry that cannot be expanded."""
        return (spec,)

    def parts(self) -> Sequence[Criterion]:
        """The criteria this one routes between, in order (a cascade's tiers). The plan runs
        each where its own cost puts it, a later one only where :meth:`route` says so, and
        this criterion's verdict is :meth:`combine` of theirs. Empty (the default): it runs
        itself."""
        return ()

    def route(self, earlier: Sequence[Verdict]) -> bool:
        """Whether the next of :meth:`parts` runs for a transcript, given the verdicts of
        those before it."""
        return True

    def combine(self, verdicts: Sequence[Verdict | None]) -> Result:
        """This criterion's result from its parts' verdicts (``None``: a part routed away)."""
        raise NotImplementedError(f"{type(self).__name__} has parts but no combine()")

    @classmethod
    def group(cls, criteria: Sequence[Criterion]) -> CriterionGroup | None:
        """Criteria of this kind (transcript-scoped, adjacent in cost order) judged together,
        e.g. every pattern of a suite in one scan of each text; ``None``: one at a time."""
        return None

    def evaluate_batch(self, transcripts: Sequence[Transcript]) -> list[Result | BaseException]:
        """Judge many transcripts at once. Override to batch a model or run calls concurrently.

        Return one result per transcript, in order; an exception instance in the list is an
        error for that transcript alone.
        """
        results: list[Result | BaseException] = []
        for transcript in transcripts:
            try:
                results.append(self.evaluate(transcript))
            except Exception as exc:  # noqa: BLE001 - fail closed, per transcript
                results.append(exc)
        return results
