"""The ``cascade`` criterion kind: a cheap first tier decides where it is confident, a second
tier (usually an LLM judge) only where it is not.

```yaml
- name: refusal
  kind: cascade
  first: {name: head, kind: classifier, model: local/minilm-head, label: refusal}
  then: {name: judge, kind: llm_judge, rubric_file: harmlessness}
  band: [0.25, 0.75]     # first's score strictly inside: ask `then`; elsewhere first decides
```

The plan runs each tier where its own cost puts it (a classifier in the synchronous front, a
batch at a time; the judge in the async tail) and asks ``then`` only for the transcripts routed
to it (:meth:`harness.criterion.Criterion.route`). The verdict is the deciding tier's, with
``details.tier`` (``first`` or ``then``), both scores, and each tier's verdict. A band edge at 0
or 1 includes it, so ``band: [0, 1]`` sends every transcript to both tiers: the run to tune the
band on (``harness calibrate --tune-cascade``). A first tier that errs routes to ``then``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from pydantic import field_validator, model_validator

from harness.criterion import Criterion, CriterionConfig, Result, SuiteContext
from harness.hookspecs import hookimpl
from harness.models import Transcript, Verdict
from harness.plan import evaluate
from harness.suite import CriterionSpec
from harness_criteria.panel import build_member, check_member, member_record, sum_known

TIERS = ("first", "then")


class CascadeConfig(CriterionConfig):
    """Suite keys of ``cascade``."""

    first: dict[str, Any]
    """The first tier: a criterion with a soft score, written inline (``name``, ``kind``...)."""
    then: dict[str, Any]
    """The second tier, asked where the first is not confident (usually an ``llm_judge``)."""
    band: tuple[float, float] = (0.0, 1.0)
    """``[lo, hi]``: a first score strictly inside goes to ``then``."""

    @field_validator("first", "then")
    @classmethod
    def _member(cls, value: dict[str, Any]) -> dict[str, Any]:
        return check_member(value, "a tier")

    @field_validator("band")
    @classmethod
    def _band(cls, value: tuple[float, float]) -> tuple[float, float]:
        lo, hi = value
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"[{lo:g}, {hi:g}] must be within [0, 1], low end first")
        return value

    @model_validator(mode="after")
    def _names(self) -> CascadeConfig:
        if self.first["name"] == self.then["name"]:
            raise ValueError("the tiers need different names")
        return self


def in_band(score: float | None, band: tuple[float, float]) -> bool:
    """Whether a first-tier score goes on to ``then``: strictly inside the band (an edge at 0
    or 1 included); an unscored or errored first tier goes on too."""
    lo, hi = band
    return score is None or ((lo < score or lo == 0.0) and (score < hi or hi == 1.0))


class Cascade(Criterion):
    """A cheap first tier decides where confident; a second tier (a judge) where not."""

    kind = "cascade"
    Config = CascadeConfig
    config: CascadeConfig

    def __init__(self, spec: CriterionSpec, config: CascadeConfig, context: SuiteContext):
        super().__init__(spec, config, context)
        if spec.scope == "message":
            raise ValueError("a cascade judges whole transcripts: scope must be transcript")
        self.tiers = [build_member(self, config.first), build_member(self, config.then)]

    def parts(self) -> Sequence[Criterion]:
        return self.tiers

    def route(self, earlier: Sequence[Verdict]) -> bool:
        if not earlier or earlier[0].outcome == "skipped":  # a failed gate skipped the tiers
            return False
        first = earlier[0]
        return first.outcome == "error" or in_band(first.score, self.config.band)

    def combine(self, verdicts: Sequence[Verdict | None]) -> Result:
        first, then = verdicts
        if first is None:
            raise ValueError("the first tier gave no verdict")
        asked = then is not None and then.outcome != "skipped"
        chosen = then if asked else first
        assert chosen is not None
        details: dict[str, Any] = {
            "tier": "then" if asked else "first", "band": list(self.config.band),
            "first_score": first.score, "then_score": then.score if then else None,
            "tiers": {name: member_record(name, v) for name, v in zip(
                TIERS, verdicts, strict=True) if v is not None}}
        return Verdict(outcome=chosen.outcome, score=chosen.score, evidence=chosen.evidence,
                       explanation=f"{details['tier']} ({chosen.kind}): {chosen.explanation}",
                       raw=chosen.raw, details=details,
                       **{field: sum_known([getattr(v, field) for v in (first, then) if v])
                          for field in ("cost_usd", "tokens_in", "tokens_out")})

    def evaluate(self, transcript: Transcript) -> Result:
        """One transcript on its own (the engine runs each tier where its cost puts it)."""
        return self.context.loop.run(self._tiers(transcript))

    async def _tiers(self, transcript: Transcript) -> Result:
        first = (await evaluate(self.tiers[0], [transcript]))[0][0]
        then = (await evaluate(self.tiers[1], [transcript]))[0][0] \
            if self.route([first]) else None
        return self.combine([first, then])


@hookimpl
def register_criterion_kinds(register: Callable[[type[Criterion]], None]) -> None:
    register(Cascade)
