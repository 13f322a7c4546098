"""One criterion of a suite on some transcripts, exactly as :class:`harness.Engine` does it.

pytest runs a suite criterion by criterion; the engine runs it transcript batch by transcript
batch. Both run the engine's compiled plan (:class:`harness.plan.Plan`): its message scope, its
gate rule (an expensive criterion is ``skipped`` for a transcript once a gate earlier in cost
order failed, unless ``all_criteria``) and its result normalisation. The gates a criterion
depends on are evaluated too, remembered in a bounded cache so per-transcript items do not
recompute them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from harness.criterion import Criterion
from harness.engine import Engine
from harness.models import Transcript, Verdict
from harness.plan import evaluate


class CriterionRunner:
    """Evaluates a named criterion of an engine's suite through the engine's plan."""

    def __init__(self, engine: Engine, memo_size: int = 4096) -> None:
        self.plan = engine.plan
        self.by_name = {c.name: c for c in engine.criteria}
        self.memo_size = memo_size
        self.memo: OrderedDict[tuple[str, str], list[Verdict]] = OrderedDict()

    async def _cached(self, criterion: Criterion, transcripts: Sequence[Transcript]
                      ) -> list[list[Verdict]]:
        keys = [(t.source or t.id, criterion.name) for t in transcripts]
        missing = [i for i, key in enumerate(keys) if key not in self.memo]
        found = {i: self.memo[keys[i]] for i in range(len(keys)) if i not in missing}
        if missing:
            fresh = await evaluate(criterion, [transcripts[i] for i in missing])
            for i, verdicts in zip(missing, fresh, strict=True):
                found[i] = verdicts
                if self.memo_size:
                    self.memo[keys[i]] = verdicts
            while len(self.memo) > self.memo_size:
                self.memo.popitem(last=False)
        for key in keys:
            if key in self.memo:
                self.memo.move_to_end(key)
        return [[v.model_copy() for v in found[i]] for i in range(len(keys))]

    def verdicts(self, name: str, transcripts: Sequence[Transcript]) -> list[list[Verdict]]:
        """The verdicts of criterion ``name`` for each transcript."""
        target = self.by_name[name]
        found, _ = self.plan.context.loop.run(self.plan.run_front(
            list(transcripts), self.plan.gates_before(target), evaluate=self._cached))
        return [[v for v in self.plan.collapse(vs) if v.criterion == name] for vs in found]
