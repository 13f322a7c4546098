"""The compiled plan: a suite's criteria built once, and every rule of running them.

A :class:`Plan` knows the criteria in cost order, where the synchronous front ends and the
asynchronous tail begins, the gate rule (a failed transcript-scoped gate skips the expensive
criteria after it, unless ``all_criteria``), message-scope expansion, result normalisation and
the decision. The engine's synchronous stage (here or in a worker process), its async tail, the
pytest plugin and the Ray actors all run a plan; none of them re-derives a rule.
"""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from collections.abc import Awaitable, Callable, Collection, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from harness.criterion import Column, Criterion, CriterionGroup, SuiteContext
from harness.errors import UsageError
from harness.loop import EngineLoop
from harness.models import Decision, DecisionJSON, Transcript, Verdict, trusted
from harness.options import RunOptions
from harness.plugins import Registry
from harness.policy import aggregate, blocks_expensive, decide, to_verdict
from harness.suite import CriterionSpec, Suite, SuiteError, validate_config

if TYPE_CHECKING:
    from harness.judges.budget import CostBudget

Evaluate = Callable[[Criterion, Sequence[Transcript]], Awaitable[list[list[Verdict]]]]
"""One criterion's verdicts for each of some transcripts (:meth:`Plan.evaluate`)."""


def unavailable_errors() -> tuple[type[BaseException], ...]:
    """Exceptions that stop the run instead of becoming an error verdict (endpoint down)."""
    from harness.judges.base import JudgeUnavailable

    return (JudgeUnavailable,)


class Plan:
    """A suite compiled for a run (see the module docstring).

    ``build`` names the criteria to instantiate (default: all those ``options.only`` selects);
    a worker process builds only the synchronous front, and knows the rest by their specs.
    """

    def __init__(self, suite: Suite, registry: Registry, options: RunOptions, *,
                 build: Collection[str] | None = None, budget: CostBudget | None = None
                 ) -> None:
        if suite.threshold is not None and all(c.gate for c in suite.criteria):
            raise SuiteError(f"{suite.path}: `threshold` needs at least one non-gate "
                             "criterion (gate: false) to average")
        if options.judge is not None:  # its own error, never blamed on the suite file
            from harness.judges.override import parse_override

            try:
                parse_override(options.judge)
            except ValueError as exc:
                raise UsageError(str(exc)) from None
        suite, self.expanded_from = expand_suite(suite, registry)
        """An entry a kind expands (:meth:`Criterion.expand`): criterion name -> entry name."""
        self.suite = suite
        """The suite as run: each entry a kind expands replaced by the criteria it stands for."""
        self.registry = registry
        self.options = options
        self.context = SuiteContext(
            registry=registry, suite_dir=suite.directory, variables=suite.variables,
            judge=suite.judge, judge_override=options.judge, cache_dir=options.cache_dir,
            judge_share=options.judge_share, loop=EngineLoop(), budget=budget)
        only = options.only
        self.specs: list[CriterionSpec] = [
            s for s in suite.criteria
            if only is None or s.name in only or self.expanded_from.get(s.name) in only]
        """The criteria of the run, in suite order (the decision's order)."""
        self.rank = {s.name: n for n, s in enumerate(self.specs)}
        self.message_scoped = any(s.scope == "message" for s in self.specs)
        """Whether a verdict may be on one message (and so, on a masked turn)."""
        self.criteria = [self._build(s) for s in self.specs if build is None or s.name in build]
        """The criteria built here, in suite order."""
        self.owners: dict[str, tuple[Criterion, int]] = {}
        """A routing criterion's parts (:meth:`Criterion.parts`): part name -> (owner, index)."""
        units: list[Criterion] = []  # what runs: criteria, and the parts of routing ones
        for criterion in self.criteria:
            parts = list(criterion.parts())
            self.owners.update((p.name, (criterion, k)) for k, p in enumerate(parts))
            units.extend(parts or [criterion])
        self.order = sorted(units, key=lambda c: c.cost)  # stable: suite order in a tier
        front = 0
        while front < len(self.order) and not self.order[front].is_async:
            front += 1
        self.front = self.order[:front]
        """The synchronous criteria that run first, a chunk of transcripts at once."""
        self.steps = _steps(self.front, self.owners)
        """The front as it runs: one criterion, or a group its kind judges in one pass."""
        self.tail = _groups(self.order[front:])
        """The rest (judges), per transcript: each group concurrently, groups in order."""
        self.has_tail = bool(self.tail) or len(self.criteria) < len(self.specs)
        self.in_suite_order = not self.owners and \
            [c.name for c in self.order] == [s.name for s in self.specs]
        """Whether cost order is suite order (verdicts come sorted: :meth:`decide` keeps them)."""

    def _build(self, spec: CriterionSpec) -> Criterion:
        cls = self.registry.kinds.get(spec.kind)
        if cls is None:
            known = ", ".join(sorted(self.registry.kinds))
            raise SuiteError(f"{spec.origin}: criterion '{spec.name}': unknown kind "
                             f"'{spec.kind}' (known kinds: {known})")
        config = validate_config(spec, cls.Config)
        try:
            criterion: Criterion = cls(spec, config, self.context)
        except SuiteError:
            raise
        except Exception as exc:
            raise SuiteError(
                f"{spec.origin}: criterion '{spec.name}' ({spec.kind}): {exc}") from exc
        return criterion

    # --- the gate rule ------------------------------------------------------------------------
    def skips(self, criterion: Criterion, gate: str | None) -> bool:
        """Whether ``criterion`` is skipped for a transcript whose gate ``gate`` failed."""
        return gate is not None and criterion.expensive and not self.options.all_criteria

    def blocks(self, criterion: Criterion, verdicts: Sequence[Verdict]) -> bool:
        """Whether these verdicts of ``criterion`` skip the expensive criteria after it (a
        routing criterion's part never does: its owner's verdict is not known yet)."""
        return self.can_block(criterion) and _worst(verdicts) in ("fail", "error")

    def can_block(self, criterion: Criterion) -> bool:
        """Whether a failure of ``criterion`` may skip the expensive criteria after it."""
        return blocks_expensive(criterion) and criterion.name not in self.owners

    def routed_away(self, criterion: Criterion, verdicts: Sequence[Verdict]) -> bool:
        """Whether a transcript with ``verdicts`` so far skips this part of a routing criterion
        (a cascade's later tier, where the first was confident)."""
        owned = self.owners.get(criterion.name)
        if owned is None or owned[1] == 0:
            return False
        owner = owned[0]
        return not owner.route([v for v in verdicts
                                if self.owners.get(v.criterion, (None, 0))[0] is owner])

    def collapse(self, verdicts: list[Verdict]) -> list[Verdict]:
        """The verdicts with each routing criterion's parts replaced by its own verdict."""
        if not self.owners or not any(v.criterion in self.owners for v in verdicts):
            return verdicts
        out: list[Verdict] = []
        parts: dict[str, tuple[Criterion, list[Verdict | None]]] = {}
        for v in verdicts:
            owned = self.owners.get(v.criterion)
            if owned is None:
                out.append(v)
                continue
            owner, k = owned
            parts.setdefault(owner.name, (owner, [None] * len(owner.parts())))[1][k] = v
        for owner, found in parts.values():
            try:
                result: Any = owner.combine(found)
            except Exception as exc:  # noqa: BLE001 - its error verdict, never a pass
                result = exc
            latency = sum(v.latency_s for v in found if v is not None)
            out.append(_stamped(result, owner, round(latency, 7), None))
        return out

    @staticmethod
    def skipped(criterion: Criterion, gate: str) -> Verdict:
        return to_verdict(Verdict(outcome="skipped",
                                  explanation=f"skipped: gate '{gate}' already failed"),
                          criterion)

    # --- running the criteria -----------------------------------------------------------------
    async def run_front(self, transcripts: Sequence[Transcript],
                        criteria: Sequence[Criterion] | None = None,
                        evaluate: Evaluate | None = None
                        ) -> tuple[list[list[Verdict]], dict[int, str]]:
        """``criteria`` (default: the front) in cost order over a batch of transcripts, each
        over the transcripts none of its gates skipped; the verdicts of each transcript, and
        the gate that failed for each blocked one."""
        verdicts: list[list[Verdict]] = [[] for _ in transcripts]
        blocked: dict[int, str] = {}
        steps = self.steps if criteria is None and evaluate is None else \
            [([c], None) for c in criteria or self.front]
        for step, group in steps:
            if group is not None:  # never skipped (see _steps), judged in one pass
                columns = evaluate_group(group, step, transcripts)
                for criterion, column in zip(step, columns, strict=True):
                    self._record_column(criterion, column, verdicts, blocked)
                continue
            criterion = step[0]
            todo = []
            for i in range(len(transcripts)):
                if self.skips(criterion, blocked.get(i)):
                    verdicts[i].append(self.skipped(criterion, blocked[i]))
                elif not self.routed_away(criterion, verdicts[i]):
                    todo.append(i)
            found = await (evaluate or _evaluate)(criterion, [transcripts[i] for i in todo])
            self._record(criterion, todo, found, verdicts, blocked)
        return verdicts, blocked

    def _record(self, criterion: Criterion, todo: Iterable[int], found: list[list[Verdict]],
                verdicts: list[list[Verdict]], blocked: dict[int, str]) -> None:
        can_block = self.can_block(criterion)
        for i, vs in zip(todo, found, strict=True):
            verdicts[i].extend(vs)
            if can_block and i not in blocked and _worst(vs) in ("fail", "error"):
                blocked[i] = criterion.name

    def _record_column(self, criterion: Criterion, column: Stamped,
                       verdicts: list[list[Verdict]], blocked: dict[int, str]) -> None:
        """:meth:`_record` for a group's column: the usual verdict appended for every
        transcript, then the others put in its place."""
        can_block = self.can_block(criterion)
        usual, other = column
        if usual is not None:
            for vs in verdicts:
                vs.append(usual)
            if can_block and usual.outcome in ("fail", "error"):
                for i in range(len(verdicts)):
                    if i not in other:
                        blocked.setdefault(i, criterion.name)
        for i, verdict in other.items():
            if usual is None:
                verdicts[i].append(verdict)
            else:
                verdicts[i][-1] = verdict
            if can_block and i not in blocked and verdict.outcome in ("fail", "error"):
                blocked[i] = criterion.name

    async def run_tail(self, transcript: Transcript, verdicts: list[Verdict],
                       gate: str | None) -> list[Verdict]:
        """The tail for one transcript, after the front gave ``verdicts`` (and maybe a failed
        ``gate``): the same rule as :meth:`run_front`, a group of criteria at a time."""
        for group in self.tail:
            runs = []
            for criterion in group:
                if gate is not None and self.skips(criterion, gate):
                    verdicts.append(self.skipped(criterion, gate))
                elif not self.routed_away(criterion, verdicts):
                    runs.append(criterion)
            if len(runs) == 1:  # no task to spawn for the common case of one judge
                found = [await evaluate_async(runs[0], transcript)]
            else:
                found = await asyncio.gather(*(evaluate_async(c, transcript) for c in runs))
            for criterion, vs in zip(runs, found, strict=True):
                verdicts.extend(vs)
                if gate is None and self.blocks(criterion, vs):
                    gate = criterion.name
        return verdicts

    def gates_before(self, target: Criterion) -> list[Criterion]:
        """The criteria whose verdicts decide whether ``target`` runs (those that can skip it,
        before it in cost order), then ``target``: one criterion run alone (pytest items)
        goes through :meth:`run_front` with these."""
        parts = list(target.parts()) or [target]
        first = parts[0]
        if not any(p.expensive for p in parts) or self.options.all_criteria:
            return parts
        before = self.order[: self.order.index(first)]
        return [c for c in before if blocks_expensive(c) and c.name not in self.owners
                and not _together(c, first)] + parts

    def decide(self, transcript: Transcript, verdicts: list[Verdict],
               ident: tuple[str, str] | None = None) -> Decision:
        """The decision on a transcript from all its verdicts (routing criteria's parts
        combined, then put in suite order)."""
        verdicts = self.collapse(verdicts)
        if not self.in_suite_order:
            verdicts.sort(key=lambda v: self.rank[v.criterion])
        return decide(transcript, verdicts, self.specs, self.suite.threshold, ident)

    def decisions(self) -> SharedDecisions:
        """:meth:`decide` for the transcripts of one batch, sharing what they have in common."""
        return SharedDecisions(self)

    def close(self) -> None:
        """Release the judge clients, caches and models the criteria share, and the loop."""
        resources = list(self.context.resources.values())
        self.context.resources.clear()
        self.context.loop.close(*(r.aclose() for r in resources if hasattr(r, "aclose")))
        for r in resources:
            if not hasattr(r, "aclose") and hasattr(r, "close"):
                r.close()


class SharedDecisions:
    """:meth:`Plan.decide` over one batch, where many transcripts have the very same verdict
    objects (a group's shared "not found" verdicts, the plan's shared stamped ones): the policy
    runs once for them, and each one's JSON is the first one's with its id and source put in.

    Valid while the batch's verdicts are alive (verdicts are known by identity).
    """

    def __init__(self, plan: Plan) -> None:
        self.plan = plan
        self.known: dict[tuple[int, ...], tuple[Decision, DecisionJSON | None]] = {}

    def decide(self, transcript: Transcript, verdicts: list[Verdict], ident: tuple[str, str],
               own: bool = True) -> tuple[Decision, bytes | None, bytes | None]:
        """The decision; when it is shared, its :func:`~harness.models.compact_json` and its
        shape (:attr:`~harness.models.DecisionJSON.shape`: the same for decisions that differ
        only in their id and source), else ``None`` for both.

        ``own=False`` (a caller that keeps only the JSON): where the JSON is given, the
        decision may be the one shared with other transcripts (its outcome, verdicts, failed
        and errored are this transcript's; its id and source are not)."""
        if self.plan.message_scoped and any(v.message_index is not None for v in verdicts):
            # a verdict on a masked turn decides nothing: the decision depends on the transcript
            return self.plan.decide(transcript, verdicts, ident), None, None
        key = tuple(map(id, verdicts))
        known = self.known.get(key)
        if known is None:
            decision = self.plan.decide(transcript, verdicts, ident)
            self.known[key] = (decision, None)
            return decision, None, None
        first, template = known
        if template is None:  # seen twice: worth a template
            template = DecisionJSON(first)
            self.known[key] = (first, template)
        tid, source = ident
        line = template.of(tid, source)
        shape = None if line is None else template.shape
        if not own and line is not None:
            return first, line, shape
        decision = trusted(Decision, transcript_id=tid, source=source, outcome=first.outcome,
                           score=first.score, threshold_score=first.threshold_score,
                           verdicts=first.verdicts, failed=first.failed,
                           errored=first.errored)
        return decision, line, shape


def expand_suite(suite: Suite, registry: Registry) -> tuple[Suite, dict[str, str]]:
    """``suite`` with every entry its kind expands (:meth:`Criterion.expand`) replaced by the
    criteria it stands for (``suite`` itself when no kind expands one), and for each of those
    criteria the entry's name. Expanding an expanded suite changes nothing."""
    specs: list[CriterionSpec] = []
    expanded_from: dict[str, str] = {}
    for spec in suite.criteria:
        cls = registry.kinds.get(spec.kind)
        found = list(cls.expand(spec)) if cls is not None else [spec]
        if found != [spec]:
            expanded_from.update((s.name, spec.name) for s in found)
        specs.extend(found)
    if not expanded_from:
        return suite, expanded_from
    seen: set[str] = set()
    for spec in specs:
        if spec.name in seen:
            raise SuiteError(f"{spec.origin}: criterion '{spec.name}' is defined twice "
                             f"(once by expanding '{expanded_from.get(spec.name)}')")
        seen.add(spec.name)
    return suite.model_copy(update={"criteria": specs}), expanded_from


# --- evaluating one criterion -------------------------------------------------------------------
def units(criterion: Criterion, transcript: Transcript) -> list[tuple[int | None, Transcript]]:
    """What a criterion judges of a transcript: the transcript itself or, for message scope,
    the conversation up to each assistant message (with that message's index)."""
    if criterion.spec.scope != "message":
        return [(None, transcript)]
    return [(m, transcript.model_copy(update={"messages": transcript.messages[: m + 1]}))
            for m, message in enumerate(transcript.messages) if message.role == "assistant"]


async def evaluate(criterion: Criterion, transcripts: Sequence[Transcript]
                   ) -> list[list[Verdict]]:
    """One criterion's verdicts for each transcript, the whole batch at once (one verdict per
    assistant message for message scope), normalised and stamped."""
    owners: list[tuple[int, int | None]] = []
    batch: list[Transcript] = []
    for i, transcript in enumerate(transcripts):
        for m, unit in units(criterion, transcript):
            owners.append((i, m))
            batch.append(unit)
    started = time.perf_counter()
    results = await _batch(criterion, batch)
    each = round((time.perf_counter() - started) / max(len(batch), 1), 7)
    out: list[list[Verdict]] = [[] for _ in transcripts]
    shared: dict[tuple[bool | float, int | None], Verdict] = {}
    for (i, m), result in zip(owners, results, strict=True):
        if type(result) is bool or type(result) is float:  # equal results, one verdict
            verdict = shared.get((result, m))
            if verdict is None:
                verdict = shared[result, m] = _stamped(result, criterion, each, m)
            out[i].append(verdict)
        else:
            out[i].append(_stamped(result, criterion, each, m))
    return out


Stamped = tuple[Verdict | None, dict[int, Verdict]]
"""A :class:`~harness.criterion.Column` of verdicts, stamped: the usual one and the others."""


def evaluate_group(group: CriterionGroup, criteria: list[Criterion],
                   transcripts: Sequence[Transcript]) -> list[Stamped]:
    """A group's verdicts, per criterion, as columns (transcript-scoped: one each), stamped:
    the usual verdict once, for every transcript that has it."""
    started = time.perf_counter()
    columns: list[Column]
    try:
        by_columns = getattr(group, "evaluate_columns", None)
        if by_columns is not None:
            columns = by_columns(transcripts)
        else:
            columns = [_as_column(rs) for rs in group.evaluate_batch(transcripts)]
    except Exception:  # noqa: BLE001 - as for one criterion: each judged alone
        columns = [_as_column(Criterion.evaluate_batch(c, transcripts)) for c in criteria]
    each = round((time.perf_counter() - started) / max(len(transcripts) * len(criteria), 1), 7)
    return [_stamped_column(c, col, each) for c, col in zip(criteria, columns, strict=True)]


def _as_column(results: list[Any]) -> Column:
    """A group's results for one criterion as a column: a verdict object handed out for many
    transcripts (a kind's shared "not found" verdict) is the usual one."""
    seen = Counter(id(r) for r in results if isinstance(r, Verdict))
    common = max(seen, key=seen.__getitem__, default=None)
    if common is None or seen[common] < 2:
        return Column(None, dict(enumerate(results)))
    return Column(next(r for r in results if id(r) == common),
                  {i: r for i, r in enumerate(results) if id(r) != common})


def _stamped_column(criterion: Criterion, column: Column, latency: float) -> Stamped:
    """The column stamped: the usual verdict copied (a kind's own object) and stamped once, so
    every transcript that has it shares one verdict; no per-transcript object where nothing
    differs."""
    usual = column.usual
    return (None if usual is None else _stamped(
                usual.model_copy() if isinstance(usual, Verdict) else usual,
                criterion, latency, None),
            {i: _stamped(r, criterion, latency, None) for i, r in column.other.items()})


async def evaluate_async(criterion: Criterion, transcript: Transcript) -> list[Verdict]:
    """One criterion's verdicts for one transcript, awaited (the tail, per transcript).
    :func:`unavailable_errors` propagate: they stop the run."""
    if not criterion.is_async:  # a synchronous criterion after an async one in cost order
        return (await evaluate(criterion, [transcript]))[0]
    todo = units(criterion, transcript)
    started = time.perf_counter()
    results: list[Any]
    if len(todo) == 1:  # no task to spawn for the common case
        try:
            results = [await criterion.evaluate_async(todo[0][1])]
        except Exception as exc:  # noqa: BLE001 - becomes the verdict (or stops the run)
            results = [exc]
    else:
        results = await asyncio.gather(*(criterion.evaluate_async(u) for _, u in todo),
                                       return_exceptions=True)
    each = round((time.perf_counter() - started) / max(len(todo), 1), 7)
    stop = unavailable_errors()
    for result in results:
        if isinstance(result, stop) or (isinstance(result, BaseException)
                                        and not isinstance(result, Exception)):
            raise result  # the endpoint is down; an interrupt, a cancellation
    return [_stamped(r, criterion, each, m) for (m, _), r in zip(todo, results, strict=True)]


def _steps(front: list[Criterion], parts: Collection[str] = ()
           ) -> list[tuple[list[Criterion], CriterionGroup | None]]:
    """The front cut into steps: each run of criteria of one kind that judges them together
    (:meth:`Criterion.group`; transcript-scoped, not expensive and not a routing criterion's
    part, so nothing skips one of them alone) is one step with its group, a run of one
    included (a group shares its verdicts); any other criterion is a step of its own."""
    def groupable(c: Criterion) -> bool:
        return (type(c).group is not Criterion.group and c.spec.scope == "transcript"
                and not c.expensive and c.name not in parts)

    runs: list[list[Criterion]] = []
    for criterion in front:
        if runs and type(runs[-1][0]) is type(criterion) and groupable(criterion) \
                and groupable(runs[-1][0]):
            runs[-1].append(criterion)
        else:
            runs.append([criterion])
    steps: list[tuple[list[Criterion], CriterionGroup | None]] = []
    for run in runs:
        group = type(run[0]).group(run) if groupable(run[0]) else None
        steps.extend([(run, group)] if group is not None else [([c], None) for c in run])
    return steps


def _groups(criteria: list[Criterion]) -> list[list[Criterion]]:
    """Criteria grouped so that each group runs concurrently; a new group starts after a
    criterion that can skip the ones after it (the same result as running in order), unless
    one call answers both (:attr:`Criterion.together`)."""
    groups: list[list[Criterion]] = []
    current: list[Criterion] = []
    for i, criterion in enumerate(criteria):
        current.append(criterion)
        after = criteria[i + 1] if i + 1 < len(criteria) else None
        if blocks_expensive(criterion) and (after is None or not _together(criterion, after)):
            groups.append(current)
            current = []
    if current:
        groups.append(current)
    return groups


def _together(a: Criterion, b: Criterion) -> bool:
    """Whether one call answers both (:attr:`Criterion.together`): neither skips the other."""
    return a.together is not None and a.together == b.together


async def _batch(criterion: Criterion, units: list[Transcript]) -> list[Any]:
    """The batch's results, or one at a time when it fails as a whole (to isolate the
    culprit)."""
    try:
        results = await criterion.evaluate_batch_async(units)
        if len(results) != len(units):
            raise RuntimeError(f"evaluate_batch returned {len(results)} results "
                               f"for {len(units)} transcripts")
        return results
    except Exception:  # noqa: BLE001 - isolate the culprit: one at a time
        return Criterion.evaluate_batch(criterion, units)


def _stamped(result: Any, criterion: Criterion, latency: float, message: int | None) -> Verdict:
    verdict = to_verdict(result, criterion)
    fields = verdict.__dict__  # straight into the fields: the hot path
    if not fields["latency_s"]:
        fields["latency_s"] = latency
    if message is not None:
        fields["message_index"] = message
    return verdict


def _worst(verdicts: Sequence[Verdict]) -> str:
    """:func:`~harness.policy.aggregate`'s outcome (one verdict: its own, the common case)."""
    return verdicts[0].outcome if len(verdicts) == 1 else aggregate(verdicts)[0]


_evaluate = evaluate  # Plan.run_front's default (its parameter has the same name)
