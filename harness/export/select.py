"""From a run's journal to training examples: the export policy, applied as the journal streams.

Every decided transcript becomes a :class:`Reviewed` (its messages and the review's evidence as
data). :func:`iter_examples` applies the policy:

- a passing transcript is kept, every assistant turn at weight 1 (a turn the input already had
  at weight 0 stays 0);
- with ``on_fail="mask"``, a failing transcript is kept when masking the assistant messages that
  failed a message-scoped criterion makes it pass: the core decision policy is run again without
  the verdicts on those messages. The masked messages get weight 0 (context the model sees, not
  trained on), the others weight 1. A transcript with errored or skipped verdicts is never
  masked (skipped means a judge never saw it: run the review with ``--all-criteria``);
- ``min_score`` drops examples scoring below it; ``weight_by`` adds a per-example ``weight``;
- ``min_stability`` drops transcripts with a verdict whose ``details.stability`` (judge
  repeats that agree) is below it.

Scores of a masked example are computed over its trained messages only.
"""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, cast

from harness.export.chat import chat_message, record_fields, record_metadata
from harness.export.options import ExportOptions
from harness.export.provenance import RunInfo, judge_model, rubric_hash
from harness.models import Transcript, Verdict
from harness.policy import aggregate, counted, decide, masked_turns, weighted_mean
from harness.rundir import iter_journal
from harness.tally import Tallies


@dataclass
class Reviewed:
    """One decided transcript with the review's evidence."""

    transcript: Transcript
    decision: dict[str, Any]
    verdicts: list[Verdict]

    @property
    def id(self) -> str:
        return self.transcript.id

    @property
    def outcome(self) -> str:
        return cast(str, self.decision["outcome"])


@dataclass
class Example:
    """A transcript as exported: weighted messages, scores and provenance."""

    reviewed: Reviewed
    masked: list[int]
    """Indices of the assistant messages at weight 0: set by ``--on-fail mask``, or by the
    transcript itself (a correction's failed turn)."""
    score: float | None
    """Decision score over the trained messages (the decision's own score when none masked)."""
    criterion_scores: dict[str, float | None]
    """Each criterion's score (its probability, for judges and classifiers), trained messages."""
    weight: float | None = None
    """The soft label ``--weight-by`` asked for (None when that score is missing)."""
    weighted: bool = False
    """Whether ``--weight-by`` was given (then ``weight`` is written, null when missing)."""

    def messages(self) -> list[dict[str, Any]]:
        """OpenAI-layout messages as the record wrote them (:func:`chat_message`); every
        assistant turn carries ``weight`` 0 or 1 (and its ``logprobs`` when the generator gave
        them)."""
        out = []
        for i, m in enumerate(self.reviewed.transcript.messages):
            msg = chat_message(m.model_dump(mode="json", exclude_none=True), logprobs=True)
            if m.role == "assistant":
                trained = i not in self.masked and (m.weight is None or m.weight > 0)
                msg["weight"] = 1 if trained else 0
            out.append(msg)
        return out

    def record(self) -> dict[str, Any]:
        """The record's top-level tool keys (``tools``...), written beside the messages."""
        return record_fields(self.reviewed.transcript.metadata)


@dataclass
class Stats:
    """Counts over the journal, for the dataset card."""

    read: int = 0
    outcomes: Counter[str] = field(default_factory=Counter)
    kept: int = 0
    kept_masked: int = 0
    messages_masked: int = 0
    dropped: Counter[str] = field(default_factory=Counter)
    """Reason -> transcripts not exported."""
    unscored: int = 0
    tallies: Tallies = field(default_factory=Tallies)
    not_carried: Counter[str] = field(default_factory=Counter)
    """What the format has no place for -> how many times it was left out of the output."""

    def observe(self, reviewed: Reviewed) -> None:
        self.read += 1
        self.outcomes[reviewed.outcome] += 1
        self.tallies.add(reviewed.verdicts)  # one per transcript, or per assistant message

    def keep(self, example: Example) -> None:
        """Count a transcript that made it into the output."""
        self.kept += 1
        if example.masked:
            self.kept_masked += 1
            self.messages_masked += len(example.masked)

    def criterion_table(self, run: RunInfo) -> dict[str, dict[str, Any]]:
        """Per criterion: verdict counts, pass rate over decided verdicts and mean score (as in
        the run's ``summary.json``: a message-scoped criterion has a verdict per message)."""
        return {spec.name: {"kind": spec.kind, "version": spec.version, "gate": spec.gate,
                            "scope": spec.scope, **self.tallies.row(spec.name)}
                for spec in run.specs}

    def as_dict(self) -> dict[str, Any]:
        return {"read": self.read, "passed": self.outcomes["pass"],
                "failed": self.outcomes["fail"], "errored": self.outcomes["error"],
                "kept": self.kept, "kept_masked": self.kept_masked,
                "messages_masked": self.messages_masked, "dropped": dict(self.dropped),
                "unscored": self.unscored, "not_carried": dict(self.not_carried)}


def iter_reviewed(run: RunInfo, stats: Stats) -> Iterator[Reviewed]:
    """Every decided transcript of the journal, streamed (unreadable input records skipped)."""
    for entry in iter_journal(run.run_dir):
        decision, raw = entry["decision"], entry.get("transcript")
        if raw is None:
            stats.read += 1
            stats.outcomes["error"] += 1
            stats.dropped["input error"] += 1
            continue
        verdicts = [Verdict.model_validate(v) for v in decision["verdicts"]]
        reviewed = Reviewed(Transcript.model_validate(raw), decision, verdicts)
        stats.observe(reviewed)
        yield reviewed


def criterion_scores(run: RunInfo, verdicts: list[Verdict]) -> dict[str, float | None]:
    """Each criterion's aggregate score (the minimum over its message verdicts)."""
    by_name: dict[str, list[Verdict]] = defaultdict(list)
    for v in verdicts:
        by_name[v.criterion].append(v)
    return {name: aggregate(by_name.get(name, []))[1] for name in run.names}


def criteria_evidence(run: RunInfo, reviewed: Reviewed) -> list[dict[str, Any]]:
    """Per criterion: version, outcome, score, per-message scores, judge model, rubric hash."""
    by_name: dict[str, list[Verdict]] = defaultdict(list)
    for v in reviewed.verdicts:
        by_name[v.criterion].append(v)
    rows = []
    for spec in run.specs:
        verdicts = by_name.get(spec.name, [])
        outcome, score = aggregate(verdicts)
        details = next((v.details for v in verdicts if v.details), {})
        rows.append({
            "name": spec.name, "kind": spec.kind, "version": spec.version, "gate": spec.gate,
            "scope": spec.scope, "outcome": outcome, "score": score,
            "message_scores": [{"message_index": v.message_index, "outcome": v.outcome,
                                "score": v.score}
                               for v in verdicts if v.message_index is not None],
            "judge_model": judge_model(details) or run.config_judges.get(spec.name),
            "rubric_hash": rubric_hash(details) or run.config_rubrics.get(spec.name),
        })
    return rows


def mask_plan(run: RunInfo, reviewed: Reviewed) -> tuple[list[int] | None, str, list[Verdict]]:
    """For a failing transcript: the messages to mask, or None and why it cannot be masked."""
    if reviewed.outcome == "error":
        return None, "errored", []
    if any(v.outcome == "skipped" for v in reviewed.verdicts):
        return None, "failed (criteria skipped: review with --all-criteria to mask)", []
    if any(v.outcome == "error" for v in reviewed.verdicts):
        return None, "failed (a criterion errored)", []
    messages = reviewed.transcript.messages
    masked = sorted({v.message_index for v in reviewed.verdicts
                     if v.outcome == "fail" and v.message_index is not None
                     and 0 <= v.message_index < len(messages)
                     and messages[v.message_index].role == "assistant"})
    if not masked:
        return None, "failed (not on assistant messages)", []
    kept = [v for v in reviewed.verdicts if v.message_index not in masked]
    again = decide(reviewed.transcript, kept, run.specs, run.threshold)
    if again.outcome != "pass":
        return None, "failed (not only on assistant messages)", []
    trained = [i for i, m in enumerate(messages) if m.role == "assistant" and i not in masked
               and (m.weight is None or m.weight > 0)]
    if not trained:
        return None, "failed (every assistant message masked)", []
    return masked, "", kept


def least_stability(verdicts: list[Verdict]) -> float | None:
    """The lowest ``details.stability`` of these verdicts (None when none records one)."""
    found = [v.details["stability"] for v in verdicts
             if isinstance(v.details.get("stability"), int | float)]
    return min(found) if found else None


def unstable(verdicts: list[Verdict], options: ExportOptions) -> bool:
    """Whether a verdict is less stable than ``--min-stability`` asks."""
    if options.min_stability is None:
        return False
    low = least_stability(verdicts)
    return low is not None and low < options.min_stability


def to_example(run: RunInfo, reviewed: Reviewed, options: ExportOptions,
               stats: Stats) -> Example | None:
    """The policy for one transcript: an example, or None (counted in ``stats.dropped``)."""
    if reviewed.outcome == "pass":
        # turns the transcript itself masks (a correction's mistake) are context, as for the
        # policy: their verdicts are in no score
        masked = sorted(masked_turns(reviewed.transcript))
        verdicts = counted(reviewed.verdicts, reviewed.transcript)
    elif options.on_fail == "mask":
        plan, reason, verdicts = mask_plan(run, reviewed)
        if plan is None:
            stats.dropped[reason] += 1
            return None
        masked = plan
    else:
        stats.dropped["errored" if reviewed.outcome == "error" else "failed"] += 1
        return None
    if unstable(reviewed.verdicts, options):
        stats.dropped[f"stability below {options.min_stability}"] += 1
        return None
    scores = criterion_scores(run, verdicts)
    score = weighted_mean((scores[s.name], s.weight) for s in run.specs)
    if options.min_score is not None and (score is None or score < options.min_score):
        stats.dropped[f"score below {options.min_score}"] += 1
        return None
    example = Example(reviewed, masked, score, scores)
    if options.weight_by is not None:
        example.weighted = True
        example.weight = score if options.weight_by == "score" else scores.get(options.weight_by)
        if example.weight is None:
            stats.unscored += 1
    return example


def iter_examples(run: RunInfo, options: ExportOptions, stats: Stats) -> Iterator[Example]:
    """The exportable examples of the run, streamed, before deduplication."""
    for reviewed in iter_reviewed(run, stats):
        example = to_example(run, reviewed, options, stats)
        if example is not None:
            yield example


def provenance(run: RunInfo, example: Example) -> dict[str, Any]:
    """The example's provenance and the review's evidence, as flat fields."""
    reviewed = example.reviewed
    evidence = criteria_evidence(run, reviewed)
    fields = {
        "transcript_id": reviewed.id,
        "source": reviewed.transcript.source,
        "suite": run.suite,
        "suite_version": run.suite_version,
        "suite_fingerprint": run.suite_fingerprint,
        "outcome": reviewed.outcome,
        "decision_score": reviewed.decision.get("score"),
        "score": example.score,
        "criterion_scores": example.criterion_scores,
        "criterion_versions": run.criterion_versions,
        "masked_messages": example.masked,
        "judge_models": sorted({c["judge_model"] for c in evidence if c["judge_model"]}),
        "rubric_hashes": sorted({c["rubric_hash"] for c in evidence if c["rubric_hash"]}),
        "criteria": evidence,
        "record_metadata": record_metadata(reviewed.transcript.metadata),
    }
    if example.weighted:
        fields["weight"] = example.weight
    return fields
