"""Preference pairs: ``{"prompt": [...], "chosen": [...], "rejected": [...]}`` per line.

Transcripts that share a prompt form a group: the same ``metadata.pair_id`` (HH-RLHF records
give both sides one), or else identical messages up to their final assistant turn. From each
group one pair is made: the passing candidate with the highest score is ``chosen``, the failing
one with the lowest score is ``rejected``; with ``margin`` set, a group without a failing
candidate pairs its best with a passing one scoring at least ``margin`` lower. Errored
transcripts and ones not ending with an assistant turn take no part. The review decides which
side is chosen, whatever an HH-RLHF record called it (``chosen_pair_role`` keeps the record's
label). The prompt is the messages both sides share (the conversational layout of TRL's
preference trainers); ``chosen``/``rejected`` are the rest, from the first differing assistant
turn, as the records wrote them, with the chosen record's ``tools`` beside them. With
``--weight-by``, ``weight`` is ``P(chosen good) * (1 - P(rejected good))`` from the
score (or criterion score) of each side.

With ``prefer`` (``--prefer NAME``, a ``pairwise`` criterion), that criterion's verdicts pick
the sides instead of the decisions: the candidate it preferred in both orders is ``chosen``,
the other ``rejected``, and ``preference_confidence`` is the judge's probability that the
chosen side is the better one; a tie (the preference flipped with the order) or a candidate
it could not compare makes no pair. With ``min_stability``, candidates with a verdict less
stable than that (judge repeats that agree) take no part.

Two passes over the journal bound memory: the first keeps, per group, the journal positions and
scores of at most three candidates; the second picks up the chosen transcripts' content.
JSONL, or Parquet when OUT ends in ``.parquet``.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa

from harness.errors import UsageError
from harness.export import parquet
from harness.export.chat import chat_message, record_fields, record_metadata
from harness.export.common import counts, prepare
from harness.export.dedup import Deduper
from harness.export.options import ExportOptions
from harness.export.provenance import RunInfo
from harness.export.select import (
    Reviewed,
    Stats,
    criteria_evidence,
    criterion_scores,
    iter_reviewed,
    unstable,
)
from harness.export.sinks import JsonlSink, ParquetSink, Sink, is_parquet
from harness_criteria.pairwise import prompt_key


@dataclass
class Candidate:
    """A transcript's place in the journal and its review score."""

    position: int
    score: float


@dataclass
class Group:
    """The candidates of one prompt that can still become a pair."""

    size: int = 0
    best_pass: Candidate | None = None
    low_pass: Candidate | None = None
    low_fail: Candidate | None = None


def plain(message: Any) -> dict[str, Any]:
    """A message in the OpenAI layout as the record wrote it, without training weight."""
    return chat_message(message.model_dump(mode="json", exclude_none=True))


def group_key(reviewed: Reviewed) -> str | None:
    """``pair:<pair_id>``, else ``prompt:<hash of messages before the final assistant turn>``
    (the grouping the ``pairwise`` criterion uses too)."""
    return prompt_key(reviewed.transcript)


def preference(reviewed: Reviewed, criterion: str) -> tuple[str, float, str]:
    """``(outcome, score, why not)`` of a pairwise criterion's verdict on this candidate."""
    verdict = next((v for v in reviewed.verdicts if v.criterion == criterion), None)
    if verdict is None:
        return "none", 0.0, f"not compared by {criterion}"
    if verdict.outcome == "skipped":
        why = "tie (order-dependent preference)" if verdict.details.get("tie") else \
            f"not compared by {criterion}"
        return "skipped", 0.0, why
    if verdict.outcome == "error":
        return "error", 0.0, f"{criterion} errored"
    return verdict.outcome, _score(verdict.score), ""


def split(chosen: list[dict[str, Any]], rejected: list[dict[str, Any]]) -> int:
    """Length of the shared prompt: the common prefix, cut back to where both sides continue
    with an assistant turn (0 when there is no such point)."""
    cut = 0
    while cut < min(len(chosen), len(rejected)) and chosen[cut] == rejected[cut]:
        cut += 1
    while cut > 0 and not (cut < len(chosen) and cut < len(rejected)
                           and chosen[cut]["role"] == "assistant"
                           and rejected[cut]["role"] == "assistant"):
        cut -= 1
    return cut


def _score(value: float | None) -> float:
    return 0.0 if value is None else value


@dataclass
class Pairing:
    """First pass: the groups and, at the end, the positions to pair."""

    margin: float | None
    options: ExportOptions | None = None
    groups: dict[str, Group] = field(default_factory=dict)
    skipped: Counter[str] = field(default_factory=Counter)

    def add(self, position: int, reviewed: Reviewed) -> None:
        if reviewed.outcome == "error":
            self.skipped["errored"] += 1
            return
        key = group_key(reviewed)
        if key is None:
            self.skipped["no final assistant turn"] += 1
            return
        opts = self.options
        if opts is not None and unstable(reviewed.verdicts, opts):
            self.skipped[f"stability below {opts.min_stability}"] += 1
            return
        outcome, score = reviewed.outcome, _score(reviewed.decision.get("score"))
        if opts is not None and opts.prefer:
            outcome, score, why = preference(reviewed, opts.prefer)
            if why:
                self.skipped[why] += 1
                return
        group = self.groups.setdefault(key, Group())
        group.size += 1
        cand = Candidate(position, score)
        if outcome == "pass":
            if group.best_pass is None or cand.score > group.best_pass.score:
                group.best_pass = cand
            if group.low_pass is None or cand.score < group.low_pass.score:
                group.low_pass = cand
        elif group.low_fail is None or cand.score < group.low_fail.score:
            group.low_fail = cand

    def choose(self) -> tuple[dict[int, int], Counter[str]]:
        """``chosen position -> rejected position`` and why other groups made no pair."""
        chosen: dict[int, int] = {}
        why: Counter[str] = Counter()
        for group in self.groups.values():
            if group.size < 2:
                why["single candidate"] += 1
            elif group.best_pass is None:
                why["no passing candidate"] += 1
            elif group.low_fail is not None:
                chosen[group.best_pass.position] = group.low_fail.position
            elif (self.margin is not None and group.low_pass is not None
                  and group.best_pass.score - group.low_pass.score >= self.margin
                  and group.low_pass.position != group.best_pass.position):
                chosen[group.best_pass.position] = group.low_pass.position
            else:
                why["no failing candidate" + (" or none lower by the margin"
                                              if self.margin is not None else "")] += 1
        return chosen, why


def pair_weight(run: RunInfo, opts: ExportOptions, good: Reviewed, bad: Reviewed) -> float | None:
    """``P(chosen good) * (1 - P(rejected good))`` from the score ``--weight-by`` names."""
    def p(r: Reviewed) -> float | None:
        if opts.weight_by == "score":
            return r.decision.get("score")
        return criterion_scores(run, r.verdicts).get(opts.weight_by or "")
    a, b = p(good), p(bad)
    return None if a is None or b is None else a * (1.0 - b)


def pair_row(run: RunInfo, opts: ExportOptions, key: str, good: Reviewed,
             bad: Reviewed) -> dict[str, Any] | None:
    """The pair's record (messages, provenance and evidence of both sides), or None."""
    a = [plain(m) for m in good.transcript.messages]
    b = [plain(m) for m in bad.transcript.messages]
    cut = split(a, b)
    if cut == 0 or cut == len(a) or cut == len(b):
        return None
    good_ev, bad_ev = criteria_evidence(run, good), criteria_evidence(run, bad)
    row = {
        "prompt": a[:cut], "chosen": a[cut:], "rejected": b[cut:],
        "pair_key": key, "chosen_id": good.id, "rejected_id": bad.id,
        "chosen_source": good.transcript.source, "rejected_source": bad.transcript.source,
        "chosen_pair_role": good.transcript.metadata.get("pair_role"),
        "chosen_outcome": good.outcome, "rejected_outcome": bad.outcome,
        "chosen_score": good.decision.get("score"), "rejected_score": bad.decision.get("score"),
        "chosen_criterion_scores": criterion_scores(run, good.verdicts),
        "rejected_criterion_scores": criterion_scores(run, bad.verdicts),
        "suite": run.suite, "suite_version": run.suite_version,
        "suite_fingerprint": run.suite_fingerprint,
        "criterion_versions": run.criterion_versions,
        "judge_models": sorted({c["judge_model"] for c in good_ev + bad_ev if c["judge_model"]}),
        "rubric_hashes": sorted({c["rubric_hash"] for c in good_ev + bad_ev if c["rubric_hash"]}),
        "chosen_criteria": good_ev, "rejected_criteria": bad_ev,
        "chosen_record_metadata": record_metadata(good.transcript.metadata),
        "rejected_record_metadata": record_metadata(bad.transcript.metadata),
        **record_fields(good.transcript.metadata),
    }
    if opts.weight_by is not None:
        row["weight"] = pair_weight(run, opts, good, bad)
    if opts.prefer:
        row["preference_confidence"] = preference(good, opts.prefer)[1]
    return row


def pairs_schema(run: RunInfo, weighted: bool, preferred: bool = False) -> pa.Schema:
    scores = pa.struct([(n, pa.float64()) for n in run.names]) if run.names else pa.string()
    versions = pa.struct([(n, pa.string()) for n in run.names]) if run.names else pa.string()
    fields = [
        ("prompt", parquet.MESSAGES), ("chosen", parquet.MESSAGES),
        ("rejected", parquet.MESSAGES), ("pair_key", pa.string()), ("chosen_id", pa.string()),
        ("rejected_id", pa.string()), ("chosen_source", pa.string()),
        ("rejected_source", pa.string()), ("chosen_pair_role", pa.string()),
        ("chosen_outcome", pa.string()), ("rejected_outcome", pa.string()),
        ("chosen_score", pa.float64()), ("rejected_score", pa.float64()),
        ("chosen_criterion_scores", scores), ("rejected_criterion_scores", scores),
        ("suite", pa.string()), ("suite_version", pa.string()),
        ("suite_fingerprint", pa.string()), ("criterion_versions", versions),
        ("judge_models", pa.list_(pa.string())), ("rubric_hashes", pa.list_(pa.string())),
        ("chosen_criteria", pa.list_(parquet.CRITERION)),
        ("rejected_criteria", pa.list_(parquet.CRITERION)),
        *((f.name, f.type) for f in parquet.RECORD_FIELDS),
        ("chosen_record_metadata", pa.string()), ("rejected_record_metadata", pa.string()),
    ]
    if weighted:
        fields.append(("weight", pa.float64()))
    if preferred:
        fields.append(("preference_confidence", pa.float64()))
    return pa.schema(fields)


def _parquet_row(row: dict[str, Any], run: RunInfo, lost: Counter[str]) -> dict[str, Any]:
    row = {**row, **{k: parquet.messages_rows(row[k], lost)
                     for k in ("prompt", "chosen", "rejected")},
           **parquet.record_row(row, lost),
           **{k: json.dumps(row[k], ensure_ascii=False, default=str)
              for k in ("chosen_record_metadata", "rejected_record_metadata")}}
    if not run.names:
        for k in ("chosen_criterion_scores", "rejected_criterion_scores", "criterion_versions"):
            row[k] = None
    return row


def export_pairs(run_dir: Path, out: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Preference pairs from the run's transcripts that share a prompt."""
    run, opts = prepare(run_dir, options)
    out = Path(out)
    stats, dedup = Stats(), Deduper(opts.dedup)
    if opts.prefer and opts.prefer not in run.names:
        raise UsageError(f"--prefer {opts.prefer!r}: expected a pairwise criterion of suite "
                         f"{run.suite!r}: {', '.join(run.names) or '(none)'}")
    pairing = Pairing(opts.margin, opts)
    for position, reviewed in enumerate(iter_reviewed(run, stats)):
        pairing.add(position, reviewed)
    chosen, why = pairing.choose()
    wanted = set(chosen) | set(chosen.values())
    rejected_of = {r: c for c, r in chosen.items()}
    held: dict[int, Reviewed] = {}
    sink: Sink = (ParquetSink(out, pairs_schema(run, opts.weight_by is not None,
                                                bool(opts.prefer)))
                  if is_parquet(out) else JsonlSink(out))
    made = 0
    with sink:
        for position, reviewed in enumerate(iter_reviewed(run, Stats())):
            if position not in wanted:
                continue
            partner = chosen.get(position, rejected_of.get(position))
            if partner not in held:
                held[position] = reviewed
                continue
            other = held.pop(partner)
            good, bad = (reviewed, other) if position in chosen else (other, reviewed)
            key = group_key(good) or ""
            if opts.min_score is not None and _score(good.decision.get("score")) < opts.min_score:
                why[f"chosen score below {opts.min_score}"] += 1
                continue
            row = pair_row(run, opts, key, good, bad)
            if row is None:
                why["no shared prompt"] += 1
                continue
            tools = record_fields(row)
            if record_fields(bad.transcript.metadata) != tools:
                stats.not_carried["the rejected side's tools (a pair has the chosen side's)"] += 1
            if not dedup.first([row["prompt"], row["chosen"], row["rejected"], tools] if tools
                               else [row["prompt"], row["chosen"], row["rejected"]]):
                continue
            sink.add(_parquet_row(row, run, stats.not_carried) if is_parquet(out) else row)
            made += 1
    stats.kept = made
    return counts("pairs", out, run, opts, stats, sink.rows, dedup, groups=len(pairing.groups),
                  pairs=made, unpaired=dict(why), not_grouped=dict(pairing.skipped))
