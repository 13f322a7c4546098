"""One criterion of a suite on some transcripts, exactly as :class:`harness.Engine` does it.

pytest runs a suite criterion by criterion; the engine runs it transcript batch by transcript
batch. Both must give the same verdicts: message-scoped criteria give one verdict per assistant
message, and an expensive criterion is ``skipped`` for a transcript once a gate earlier in the
engine's cost order failed (unless ``all_criteria``). Gates needed for that are evaluated here
too, remembered in a bounded cache so per-transcript items do not recompute them.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence

from harness.criterion import Criterion
from harness.engine import Engine, aggregate, blocks_expensive, to_verdict
from harness.engine import evaluate as evaluate_criterion
from harness.models import Transcript, Verdict


class CriterionRunner:
    """Evaluates a named criterion of an engine's suite with the engine's skip policy."""

    def __init__(self, engine: Engine, memo_size: int = 4096) -> None:
        self.engine = engine
        self.by_name = {c.name: c for c in engine.criteria}
        self.memo_size = memo_size
        self.memo: OrderedDict[tuple[str, str], list[Verdict]] = OrderedDict()

    def _cached(self, criterion: Criterion, transcripts: list[Transcript]) -> list[list[Verdict]]:
        keys = [(t.source or t.id, criterion.name) for t in transcripts]
        missing = [i for i, key in enumerate(keys) if key not in self.memo]
        found = {i: self.memo[keys[i]] for i in range(len(keys)) if i not in missing}
        if missing:
            fresh = evaluate_criterion(criterion, [transcripts[i] for i in missing])
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
        transcripts = list(transcripts)
        blocked: dict[int, str] = {}
        if target.expensive and not self.engine.all_criteria:
            for gate in self.engine.order:
                if gate is target:
                    break
                todo = [i for i in range(len(transcripts)) if i not in blocked]
                if not blocks_expensive(gate) or not todo:
                    continue
                for i, verdicts in zip(todo, self._cached(gate, [transcripts[i] for i in todo]),
                                       strict=True):
                    if aggregate(verdicts)[0] in ("fail", "error"):
                        blocked[i] = gate.name
        out: list[list[Verdict]] = [[] for _ in transcripts]
        for i, gate in blocked.items():
            out[i] = [to_verdict(Verdict(outcome="skipped",
                                         explanation=f"skipped: gate '{gate}' already failed"),
                                 target)]
        todo = [i for i in range(len(transcripts)) if i not in blocked]
        for i, verdicts in zip(todo, self._cached(target, [transcripts[i] for i in todo]),
                               strict=True):
            out[i] = verdicts
        return out
