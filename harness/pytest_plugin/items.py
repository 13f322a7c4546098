"""YAML suites as pytest items: ``suite.yaml::criterion[transcript-id]``, or one per criterion."""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any, cast

import pytest

from harness.models import InputError, Transcript, Verdict
from harness.plugins import PluginError
from harness.policy import INPUT_CRITERION, aggregate, weighted_mean
from harness.pytest_plugin.corpus import Record, param_id
from harness.pytest_plugin.names import PLUGIN_NAME
from harness.pytest_plugin.render import describe
from harness.suite import SuiteError
from harness.text import safe

if TYPE_CHECKING:
    from _pytest._code.code import TerminalRepr  # what pytest's repr_failure returns

    from harness.pytest_plugin.session import ReviewPlugin


class VerdictFailure(Exception):
    """A review item did not pass; the text is its report (evidence, not a traceback)."""


def review_of(node: pytest.Item | pytest.Collector) -> ReviewPlugin:
    return cast("ReviewPlugin", node.config.pluginmanager.get_plugin(PLUGIN_NAME))


class SuiteFile(pytest.File):
    """The ``--review-suite`` file: one item per criterion x transcript (or per criterion)."""

    def collect(self) -> Iterator[pytest.Item]:
        review = review_of(self)
        engine = review.engine()
        if review.mode == "criterion":
            for criterion in engine.criteria:
                yield CriterionItem.from_parent(self, name=criterion.name,
                                                criterion=criterion.name)
            return
        records = review.corpus.records()
        ids = [param_id(r) for r in records]
        seen: dict[str, int] = {}
        for i, pid in enumerate(ids):  # duplicate transcript ids get a -2, -3... suffix
            seen[pid] = seen.get(pid, 0) + 1
            if seen[pid] > 1:
                ids[i] = f"{pid}-{seen[pid]}"
        for criterion in engine.criteria:
            for record, pid in zip(records, ids, strict=True):
                if isinstance(record, InputError):
                    continue  # reported once, by an InputItem
                yield TranscriptItem.from_parent(self, name=f"{criterion.name}[{pid}]",
                                                 criterion=criterion.name, record=record,
                                                 **self._node_id(criterion.name, pid))

    def _node_id(self, name: str, param: str) -> dict[str, Any]:
        """pytest >= 9 keeps ids structured: give the id a parametrized test would have, so
        ``--lf`` and ``--deselect`` find the item by its ``suite::criterion[id]`` string."""
        node_id = getattr(self, "id", None)
        if node_id is None or not hasattr(node_id, "with_params"):
            return {}
        return {"nodeid": node_id.child(name).with_params(param)}

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str | TerminalRepr:
        if isinstance(excinfo.value, SuiteError | PluginError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)


class ReviewItem(pytest.Item):
    """Common to review items: evidence reports instead of tracebacks."""

    def __init__(self, *, criterion: str, record: Record | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.criterion = criterion
        self.record = record
        self.harness_verdicts: list[Verdict] | None = None

    def repr_failure(self, excinfo: pytest.ExceptionInfo[BaseException],
                     style: Any = None) -> str | TerminalRepr:
        if isinstance(excinfo.value, VerdictFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def reportinfo(self) -> tuple[Any, int | None, str]:
        return self.path, None, self.name


class TranscriptItem(ReviewItem):
    """One criterion of the suite on one transcript.

    A gate's item fails when the gate does. A non-gate criterion's item follows the decision
    policy instead: it reports its score and fails only when the transcript fails the suite's
    ``threshold`` and this criterion's score is below it (one that pulled the mean down); an
    error fails it either way (fail-closed).
    """

    def runtest(self) -> None:
        review = review_of(self)
        spec = review.yaml_specs()[self.criterion]
        record = self.record
        assert isinstance(record, Transcript)
        verdicts = review.runner().verdicts(self.criterion, [record])[0]
        self.harness_verdicts = verdicts
        outcome, score = aggregate(verdicts)
        if outcome == "skipped":
            pytest.skip(safe(verdicts[0].explanation if verdicts else "skipped", 300))
        if spec["gate"] or outcome == "error":
            if outcome == "pass":
                return
            raise VerdictFailure(describe(self.criterion, spec["kind"], outcome, record.id,
                                          record.source, verdicts))
        why = self._policy_failure(review, record, score)
        if why is not None:
            raise VerdictFailure(describe(self.criterion, spec["kind"], outcome, record.id,
                                          record.source, verdicts) + "\n" + why)

    def _policy_failure(self, review: ReviewPlugin, record: Transcript,
                        score: float | None) -> str | None:
        """Why the decision policy fails ``record`` through this non-gate criterion, if it
        does: the non-gate mean is below the suite's threshold, and so is this score."""
        engine = review.engine()
        threshold = engine.suite.threshold
        if threshold is None or score is None or score >= threshold:
            return None  # this criterion cannot be what fails the transcript
        runner = review.runner()
        verdicts = [v for c in engine.criteria for v in runner.verdicts(c.name, [record])[0]]
        decision = engine.plan.decide(record, verdicts)
        if decision.failed != ["threshold"]:
            return None  # passed, or failed by a gate (whose own item fails)
        non_gates = [c.spec for c in engine.criteria if not c.spec.gate]
        mean = weighted_mean((aggregate([v for v in verdicts if v.criterion == s.name])[1],
                              s.weight) for s in non_gates)
        shown = "none" if mean is None else f"{mean:.3f}"
        return (f"  the transcript fails the suite threshold {threshold:g}: the non-gate mean "
                f"is {shown}, and this score {score:.3f} is below it")


class InputItem(ReviewItem):
    """A record of the corpus that could not be read: one error item, whatever the criteria.

    Its node id names the corpus file: ``corpus.jsonl::input[unreadable:corpus.jsonl:17]``.
    """

    def runtest(self) -> None:
        record = self.record
        assert isinstance(record, InputError)
        self.harness_verdicts = [Verdict(criterion=INPUT_CRITERION, kind=INPUT_CRITERION,
                                         outcome="error", explanation=record.reason)]
        raise VerdictFailure(describe("unreadable record", INPUT_CRITERION, "error",
                                      record.transcript_id or "(no id)", record.source,
                                      self.harness_verdicts))


class CorpusInputItem(ReviewItem):
    """Per-criterion mode: fails when any record of the corpus could not be read (streamed)."""

    SHOWN = 10

    def runtest(self) -> None:
        bad: list[InputError] = []
        count = 0
        for record in review_of(self).corpus.stream():
            if isinstance(record, InputError):
                count += 1
                if len(bad) < self.SHOWN:
                    bad.append(record)
        if count:
            lines = [f"{count} unreadable record(s) in the corpus:"]
            lines += [f"  {safe(r.source, 300)}: {safe(r.reason, 300)}" for r in bad]
            if count > len(bad):
                lines.append(f"  ... and {count - len(bad)} more")
            raise VerdictFailure("\n".join(lines))


INPUT_SPEC = {"name": INPUT_CRITERION, "kind": INPUT_CRITERION, "version": "", "origin": ""}
"""What an :class:`InputItem` stands for: not a criterion of the suite."""


class CriterionItem(ReviewItem):
    """One criterion of the suite over the whole corpus, against its ``min_pass_rate``."""

    def runtest(self) -> None:
        review = review_of(self)
        runner = review.runner(memo_size=0)
        review.run_over_corpus(self, review.yaml_specs()[self.criterion],
                               lambda transcripts: runner.verdicts(self.criterion, transcripts))
