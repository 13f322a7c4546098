"""The ``panel`` criterion kind: several criteria vote, one verdict comes out.

Suite keys (besides the common ones)::

    - name: safe
      kind: panel
      aggregate: majority            # or unanimous, mean
      on_disagreement: fail          # or abstain, error
      members:                       # any criterion kinds, each with its own keys
        - {name: no_slurs, kind: regex, pattern: "(?i)idiot", expect: absent}
        - {name: toxicity, kind: classifier, model: ..., label: toxic, expect: low}
        - {name: judge, kind: llm_judge, rubric_file: harmless}

``llm_judge`` takes ``judges: [A, B, C]`` (with the same ``aggregate``/``on_disagreement`` keys)
for a panel of judges sharing one rubric; it is combined by :func:`combine` too.

How members' verdicts combine (``P``, ``F``, ``E``: members that passed, failed, errored;
members that abstained or were skipped do not count):

- ``majority``: pass when ``P > (P+F+E)/2``, fail when ``F`` is; a tie without errors is a
  disagreement; otherwise (errors stand in the way of a majority) ``error``.
- ``unanimous``: every member passed (pass) or every member failed (fail); both passes and fails
  are a disagreement; agreement with some members errored is ``error``.
- ``mean``: the mean of the members' scores against ``threshold`` (default 0.5); any member
  error is ``error``; there is no disagreement.

A disagreement becomes ``on_disagreement``: ``fail`` (default), ``error``, or ``abstain``: the
verdict is ``skipped`` with ``details.abstained`` true, which the decision policy treats like any
skipped verdict (it neither passes nor fails a gate, and adds no score; see
:mod:`harness.policy`) and the summary counts apart. Every member's verdict is kept in
``details.members``; the summary reports the members' agreement (Fleiss' kappa, Krippendorff's
alpha) per panel criterion.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence
from typing import Any, Literal

from pydantic import BaseModel, Field, field_validator

from harness.criterion import Criterion, CriterionConfig, Result, SuiteContext
from harness.hookspecs import hookimpl
from harness.judges.base import JudgeUnavailable
from harness.models import Outcome, Transcript, Verdict
from harness.plan import evaluate
from harness.policy import ABSTAINED, to_verdict
from harness.suite import COMMON_KEYS, CriterionSpec, SuiteError, validate_config

Aggregate = Literal["majority", "unanimous", "mean"]
OnDisagreement = Literal["abstain", "fail", "error"]
MEMBER_KEYS = {"name", "kind", "version", "description"}
"""The common keys a member may have (gate, weight and scope belong to the panel)."""
MAX_MEMBER_TEXT = 1000
"""Characters of a member's explanation kept in the panel's details."""


class PanelConfig(CriterionConfig):
    """Suite keys of ``panel``."""

    members: list[dict[str, Any]] = Field(min_length=2)
    """The voting criteria, each a mapping with ``name``, ``kind`` and its kind's keys."""
    aggregate: Aggregate = "majority"
    """How the members' verdicts combine: majority, unanimous or mean."""
    on_disagreement: OnDisagreement = "fail"
    """What a disagreement gives: fail, error, or abstain (a skipped verdict)."""
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    """For ``mean``: the mean score that passes."""

    @field_validator("members")
    @classmethod
    def _members(cls, value: list[dict[str, Any]]) -> list[dict[str, Any]]:
        names = [check_member(raw, f"members[{i}]")["name"] for i, raw in enumerate(value)]
        if len(set(names)) != len(names):
            raise ValueError("member names must be unique")
        return value


class Panel(BaseModel):
    """How a panel combines its members: shared by ``panel`` and ``llm_judge`` with ``judges``."""

    aggregate: Aggregate = "majority"
    on_disagreement: OnDisagreement = "fail"
    threshold: float = 0.5


def member_record(name: str, verdict: Verdict) -> dict[str, Any]:
    """A member's verdict as kept in the panel's ``details.members``."""
    text = verdict.explanation
    if len(text) > MAX_MEMBER_TEXT:
        text = text[: MAX_MEMBER_TEXT - 1] + "…"
    record: dict[str, Any] = {"name": name, "kind": verdict.kind, "outcome": verdict.outcome,
                              "score": verdict.score, "explanation": text}
    if verdict.details:
        record["details"] = verdict.details
    return record


def check_member(raw: Any, where: str) -> dict[str, Any]:
    """A member written inline (a panel's, a cascade's): a mapping with a name and a kind, and
    none of the keys that belong to its owner."""
    if not isinstance(raw, dict) or not raw.get("name") or not raw.get("kind"):
        raise ValueError(f"{where} needs a `name` and a `kind`")
    extra = sorted((set(raw) & COMMON_KEYS) - MEMBER_KEYS)
    if extra:
        raise ValueError(f"member '{raw['name']}': {', '.join(extra)} belong to the owner "
                         "criterion, not to its members")
    return raw


def build_member(owner: Criterion, raw: dict[str, Any]) -> Criterion:
    """A member criterion, named ``OWNER.MEMBER``, built from the registry as a suite's are."""
    registry = owner.context.registry
    cls = registry.kinds.get(raw["kind"])
    if cls is None:
        known = ", ".join(sorted(registry.kinds))
        raise ValueError(f"member '{raw['name']}': unknown kind '{raw['kind']}' "
                         f"(known kinds: {known})")
    common = {k: v for k, v in raw.items() if k in MEMBER_KEYS}
    common["name"] = f"{owner.spec.name}.{raw['name']}"
    config = {k: v for k, v in raw.items() if k not in MEMBER_KEYS}
    spec = CriterionSpec(**common, config=config, origin=owner.spec.origin)
    try:
        member: Criterion = cls(spec, validate_config(spec, cls.Config), owner.context)
    except SuiteError:
        raise
    except Exception as exc:
        raise ValueError(f"member '{raw['name']}' ({raw['kind']}): {exc}") from exc
    return member


def _score_of(v: Verdict) -> float:
    return v.score if v.score is not None else (1.0 if v.outcome == "pass" else 0.0)


def _outcome(panel: Panel, p: int, f: int, e: int, mean: float | None
             ) -> tuple[Outcome | Literal["abstain"], bool]:
    """The panel's outcome from its ``p`` pass, ``f`` fail and ``e`` error votes (and the
    mean score of the decided ones), and whether the members disagreed."""
    n = p + f + e
    if n == 0:
        return "abstain", False
    if panel.aggregate == "mean":
        if e:
            return "error", False
        assert mean is not None
        return ("pass" if mean >= panel.threshold else "fail"), False
    if panel.aggregate == "majority":
        if p * 2 > n:
            return "pass", False
        if f * 2 > n:
            return "fail", False
        if e:
            return "error", False
        return panel.on_disagreement, True
    if p and f:  # unanimous
        return panel.on_disagreement, True
    return ("error" if e else ("pass" if p else "fail")), False


def combine(panel: Panel, named: Sequence[tuple[str, Verdict]]) -> Verdict:
    """The panel's verdict from its members' ``(name, verdict)``, each member's kept."""
    votes = {o: [v for _, v in named if v.outcome == o] for o in ("pass", "fail", "error")}
    p, f, e = (len(votes[o]) for o in ("pass", "fail", "error"))
    n = p + f + e
    decided = votes["pass"] + votes["fail"]
    mean = sum(_score_of(v) for v in decided) / len(decided) if decided else None
    outcome, disagree = _outcome(panel, p, f, e, mean)
    tally = f"{p} pass, {f} fail" + (f", {e} error" if e else "")
    abstained = len(named) - n
    if abstained:
        tally += f", {abstained} abstained"
    details: dict[str, Any] = {
        "aggregate": panel.aggregate, "on_disagreement": panel.on_disagreement,
        "votes": {"pass": p, "fail": f, "error": e, "abstained": abstained},
        "disagreement": disagree,
        "members": [member_record(name, v) for name, v in named],
    }
    stabilities = [v.details["stability"] for _, v in named
                   if isinstance(v.details.get("stability"), int | float)]
    if stabilities:
        details["stability"] = min(stabilities)  # the least stable member's
    common: dict[str, Any] = {
        "latency_s": sum(v.latency_s for _, v in named),
        "cost_usd": sum_known([v.cost_usd for _, v in named]),
        "tokens_in": sum_known([v.tokens_in for _, v in named]),
        "tokens_out": sum_known([v.tokens_out for _, v in named]),
    }
    if outcome == "abstain":
        details[ABSTAINED] = True
        reason = "members disagree" if disagree else "every member abstained"
        return Verdict(outcome="skipped", explanation=f"abstained: {reason} ({tally})",
                       details=details, **common)
    if outcome in ("pass", "fail"):
        details["agreement"] = len(votes[outcome]) / len(named)
    explanation = f"{panel.aggregate}: {tally}" + (" (disagreement)" if disagree else "")
    if outcome == "error":
        errors = "; ".join(f"{name}: {v.explanation}" for name, v in named
                           if v.outcome == "error")
        explanation += f"; {errors}" if errors else ""
    score = None if mean is None else min(1.0, max(0.0, mean))
    return Verdict(outcome=outcome, score=score,
                   explanation=explanation[:4000], details=details, **common)


def sum_known(values: list[Any]) -> Any:
    """The sum of the values that are known (``None``: none is)."""
    known = [v for v in values if v is not None]
    return sum(known) if known else None


async def judge_members(members: Sequence[tuple[str, Criterion]],
                        transcript: Transcript) -> list[tuple[str, Verdict]]:
    """Every member's verdict for one transcript, async members concurrently.

    :class:`~harness.judges.base.JudgeUnavailable` propagates (the engine stops the run).
    """

    async def one(member: Criterion) -> Verdict:
        if not member.is_async:
            return (await evaluate(member, [transcript]))[0][0]
        try:
            result: Result | BaseException = await member.evaluate_async(transcript)
        except JudgeUnavailable:
            raise
        except Exception as exc:  # noqa: BLE001 - a member's failure is its error verdict
            result = exc
        return to_verdict(result, member)

    verdicts = await asyncio.gather(*(one(m) for _, m in members))
    return [(name, v) for (name, _), v in zip(members, verdicts, strict=True)]


async def members_batch(members: Sequence[tuple[str, Criterion]],
                        transcripts: Sequence[Transcript]) -> list[list[tuple[str, Verdict]]]:
    """Every member's verdict for each transcript, each member over the whole batch."""
    per_member = [[found[0] for found in await evaluate(m, transcripts)] for _, m in members]
    return [[(name, per_member[j][i]) for j, (name, _) in enumerate(members)]
            for i in range(len(transcripts))]


class PanelCriterion(Criterion):
    """Member criteria vote; their verdicts are kept in the panel's verdict."""

    kind = "panel"
    Config = PanelConfig

    def __init__(self, spec: CriterionSpec, config: PanelConfig, context: SuiteContext):
        super().__init__(spec, config, context)
        self.panel = Panel(aggregate=config.aggregate, on_disagreement=config.on_disagreement,
                           threshold=config.threshold)
        self.pass_threshold = config.threshold
        self.members = [(raw["name"], self._build(raw)) for raw in config.members]
        criteria = [m for _, m in self.members]
        # instance attributes: the engine orders and places a panel by what its members need
        self.cost = max(m.cost for m in criteria)
        self.expensive = any(m.expensive for m in criteria)
        self.in_workers = all(m.in_workers for m in criteria)
        self.is_async = any(m.is_async for m in criteria)

    def _build(self, raw: dict[str, Any]) -> Criterion:
        return build_member(self, raw)

    def evaluate(self, transcript: Transcript) -> Result:
        [result] = self.evaluate_batch([transcript])
        if isinstance(result, BaseException):
            raise result
        return result

    def evaluate_batch(self, transcripts: Sequence[Transcript]) -> list[Result | BaseException]:
        return self.context.loop.run(self.evaluate_batch_async(transcripts))

    async def evaluate_batch_async(self, transcripts: Sequence[Transcript]
                                   ) -> list[Result | BaseException]:
        return [combine(self.panel, named)
                for named in await members_batch(self.members, transcripts)]

    async def evaluate_async(self, transcript: Transcript) -> Result:
        return combine(self.panel, await judge_members(self.members, transcript))


@hookimpl
def register_criterion_kinds(register: Callable[[type[Criterion]], None]) -> None:
    register(PanelCriterion)
