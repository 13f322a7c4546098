"""Compare a run's verdicts and decisions with human labels: one streamed pass over the journal.

Each row (a criterion, or the decision) pairs every label that applies to it with harness's
outcome for the same transcript. A label with a ``criterion`` applies to that criterion only;
one without applies to the decision and to every criterion (a criterion's own label wins).
A criterion with several verdicts on a transcript (message scope) is compared through the
engine's own aggregate (the worst outcome, the lowest score), or verdict by verdict when the
label names a ``message_index``.

Nothing is dropped silently: labels that match no transcript, that name a criterion the suite
does not have, or that were ``skip``; transcripts whose verdict errored, was skipped or is
missing; each is counted (and the first ids listed) in the result.
"""

from __future__ import annotations

import json
import random
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from harness.calibrate import metrics
from harness.calibrate.labels import Label
from harness.errors import UsageError
from harness.inputs.formats import is_content_id
from harness.models import InputError, Transcript
from harness.policy import INPUT_CRITERION, aggregate
from harness.rundir import JOURNAL, check_complete, iter_journal
from harness.text import safe

DECISION = "decision"
"""Name of the decision's row (``(decision)`` in a suite with a criterion named ``decision``);
as a label's ``criterion``, a label about the decision only."""
_DECISION_ONLY = "\x00decision"
"""Label key of a label about the decision only."""
CALIBRATION_FILE = "calibration.json"
LIST_LIMIT = 20
"""Ids listed per kind of problem (all are counted)."""
LENGTH_SAMPLE = 100_000
"""Transcripts per row for the length correlation; larger runs use a seeded random sample."""

LabelKey = tuple[str | None, int | None]
"""``(criterion or None, message_index or None)``."""


def response_length(item: Transcript | InputError) -> int | None:
    """Characters the assistant wrote in a transcript (None for an unreadable record)."""
    if not isinstance(item, Transcript):
        return None
    return sum(len(m.content or "") for m in item.messages if m.role == "assistant")


def journal_stamp(run_dir: Path) -> dict[str, int]:
    """What identifies the run's current state: a re-run or resume changes it."""
    st = (run_dir / JOURNAL).stat()
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns}


@dataclass
class _Row:
    """What one row gathers during the pass."""

    name: str
    kind: str
    soft_expected: bool = True
    labels: int = 0
    pairs: list[tuple[str, str]] = field(default_factory=list)
    scored: list[tuple[float, bool]] = field(default_factory=list)
    human_lengths: list[tuple[int, bool]] = field(default_factory=list)
    problems: dict[str, list[str]] = field(
        default_factory=lambda: {"errored": [], "skipped": [], "missing": []})
    problem_counts: Counter[str] = field(default_factory=Counter)
    lengths: list[tuple[float, int]] = field(default_factory=list)
    lengths_seen: int = 0

    def problem(self, kind: str, tid: str) -> None:
        self.problem_counts[kind] += 1
        if len(self.problems[kind]) < LIST_LIMIT:
            self.problems[kind].append(tid)

    def compare(self, label: Label, outcome: str, score: float | None,
                length: int | None) -> None:
        self.labels += 1
        if outcome in ("error", "skipped", "missing"):
            self.problem({"error": "errored"}.get(outcome, outcome), label.transcript_id)
            return
        self.pairs.append((label.value, outcome))
        human_pass = label.value == "pass"
        if score is not None:
            self.scored.append((score, human_pass))
        if length is not None:
            self.human_lengths.append((length, human_pass))

    def offer_length(self, outcome: str, score: float | None, length: int,
                     rng: random.Random) -> None:
        """Reservoir sample of (score, length) over the whole run (decided, scored outcomes)."""
        if score is None or outcome not in ("pass", "fail"):
            return
        self.lengths_seen += 1
        if len(self.lengths) < LENGTH_SAMPLE:
            self.lengths.append((score, length))
        else:
            j = rng.randrange(self.lengths_seen)
            if j < LENGTH_SAMPLE:
                self.lengths[j] = (score, length)

    def result(self, rng: np.random.Generator, resamples: int) -> dict[str, Any]:
        c = metrics.Confusion.of(self.pairs)
        cis = metrics.bootstrap_confusion(c, rng, resamples)
        row: dict[str, Any] = {
            "name": self.name, "kind": self.kind, "labels": self.labels, "compared": c.n,
            "agree": c.agree, "confusion": c.as_dict(),
            **{k: self.problem_counts[k] for k in ("errored", "skipped", "missing")},
            "problem_ids": {k: v for k, v in self.problems.items() if v},
        }
        for name, metric in metrics.CONFUSION_METRICS.items():
            row[name] = metric(c)
            row[f"{name}_ci"] = cis[name]
        scores = [s for s, _ in self.scored]
        human = [h for _, h in self.scored]
        soft = any(0.0 < s < 1.0 for s in scores)
        row.update(soft=soft, scored=len(scores), auc=None, auc_ci=None, best_threshold=None,
                   best_threshold_agreement=None)
        if soft:
            row["auc"] = metrics.roc_auc(scores, human)
            row["auc_ci"] = metrics.bootstrap_auc(scores, human, rng, resamples)
            best = metrics.best_threshold(scores, human)
            if best is not None:
                row["best_threshold"] = best[0]
                row["best_threshold_agreement"] = best[1] / len(scores)
        row["length_rho"] = metrics.spearman([s for s, _ in self.lengths],
                                             [n for _, n in self.lengths])
        row["length_n"] = len(self.lengths)
        row["length_sampled"] = self.lengths_seen > len(self.lengths)
        row["human_length_rho"] = metrics.spearman(
            [float(h) for _, h in self.human_lengths], [n for n, _ in self.human_lengths])
        return row


def _outcome(verdicts: list[dict[str, Any]]) -> tuple[str, float | None]:
    if not verdicts:
        return "missing", None
    return aggregate(verdicts)


class _Labels:
    """The labels indexed by transcript id, with what could not be used counted."""

    def __init__(self, labels: list[Label], names: list[str], decision: str,
                 selected: list[str] | None) -> None:
        self.by_id: dict[str, dict[LabelKey, Label]] = {}
        self.read = len(labels)
        self.skipped: Counter[str] = Counter()
        self.duplicates = 0
        self.unknown_criterion: Counter[str] = Counter()
        self.not_selected = 0
        for label in labels:
            if label.value == "skip":
                self.skipped[label.raw] += 1
                continue
            criterion = _DECISION_ONLY if label.criterion == decision else label.criterion
            if criterion not in (None, _DECISION_ONLY) and criterion not in names:
                self.unknown_criterion[criterion] += 1
                continue
            if selected and label.criterion is not None and label.criterion not in selected:
                self.not_selected += 1
                continue
            own = self.by_id.setdefault(label.transcript_id, {})
            key = (criterion, label.message_index)
            if key in own:
                self.duplicates += 1
            own[key] = label  # the last one wins
        self.used = sum(len(v) for v in self.by_id.values())

    def counts(self, unmatched: list[str]) -> dict[str, Any]:
        """What ``calibration.json`` says of the labels read, given the ids matched nowhere."""
        return {"read": self.read, "used": self.used, "skipped": dict(self.skipped),
                "duplicates": self.duplicates,
                "unknown_criterion": dict(self.unknown_criterion),
                "not_selected": self.not_selected,
                "unmatched": {"labels": sum(len(self.by_id[tid]) for tid in unmatched),
                              "transcripts": len(unmatched), "ids": unmatched[:LIST_LIMIT]}}


def _rows(specs: dict[str, dict[str, Any]], criteria: list[str] | None
          ) -> tuple[str, dict[str | None, _Row]]:
    """The decision's name in the table, and a row per criterion compared (``criteria``, or
    all) and for the decision, whose key is ``None`` (a criterion may be named anything)."""
    decision = DECISION if DECISION not in specs else f"({DECISION})"
    for wanted in criteria or []:
        if wanted not in specs and wanted != decision:
            raise UsageError(f"--criterion {wanted!r}: the suite has no such criterion "
                             f"(it has: {', '.join([*specs, decision])})")
    rows: dict[str | None, _Row] = {name: _Row(name, spec["kind"]) for name, spec in specs.items()
                                    if not criteria or name in criteria}
    if not criteria or decision in criteria:
        rows[None] = _Row(decision, DECISION)
    return decision, rows


def calibrate(run_dir: str | Path, labels: list[Label], *, criteria: list[str] | None = None,
              seed: int = 0, resamples: int = metrics.BOOTSTRAP,
              labels_file: str | None = None, labels_format: str | None = None,
              mapping: dict[str, str] | None = None) -> dict[str, Any]:
    """The calibration of a run against labels, as written to ``calibration.json``."""
    run_dir = Path(run_dir)
    meta = check_complete(run_dir)
    suite = meta.get("suite", {})
    specs = {c["name"]: c for c in suite.get("criteria", [])}
    decision, rows = _rows(specs, criteria)
    names = [name for name in rows if name is not None]
    index = _Labels(labels, list(specs), decision, criteria)
    length_rng = random.Random(f"{seed}:lengths")
    matched: set[str] = set()
    seen_ids: Counter[str] = Counter()
    sources: dict[str, list[str]] = {}
    errored_transcripts = 0
    for entry in iter_journal(run_dir, render=response_length):
        d, length = entry["decision"], entry["transcript"]
        tid = d["transcript_id"]
        by_criterion: dict[str, list[dict[str, Any]]] = {}
        for v in d["verdicts"]:
            by_criterion.setdefault(v["criterion"], []).append(v)
        outcomes: dict[str | None, tuple[str, float | None]] = {
            name: _outcome(by_criterion.get(name, [])) for name in names}
        outcomes[None] = (d["outcome"], d["score"])
        if length is not None:  # every transcript, labelled or not: the length bias
            for name, row in rows.items():
                row.offer_length(*outcomes[name], length, length_rng)
        own = index.by_id.get(tid)
        if own is None:
            continue
        matched.add(tid)
        seen_ids[tid] += 1
        if len(sources.setdefault(tid, [])) < 3:
            sources[tid].append(d["source"])
        errored_transcripts += d["outcome"] == "error"
        _compare(rows, own, d, outcomes, by_criterion, length)
    refuse_ambiguous(seen_ids, sources)
    unmatched = [tid for tid in index.by_id if tid not in matched]
    results = []
    for row in rows.values():
        results.append(row.result(metrics.seeded(f"{seed}:{row.name}"), resamples))
    return {
        "version": 1,
        "run": {"dir": str(run_dir), "suite": suite.get("name"),
                "suite_version": suite.get("version"), "journal": journal_stamp(run_dir)},
        "labels": {
            "file": labels_file, "format": labels_format, "map": mapping or {},
            **index.counts(unmatched),
            "matched_transcripts": len(matched),
            "errored_transcripts": errored_transcripts,
            "ids_in_run_more_than_once": sum(1 for n in seen_ids.values() if n > 1),
        },
        "bootstrap": {"resamples": resamples, "seed": seed, "level": metrics.CI_LEVEL,
                      "method": "percentile, resampling the compared pairs"},
        "rows": results,
        "judge_agreement": judge_agreement(run_dir, names),
    }


def _compare(rows: dict[str | None, _Row], own: dict[LabelKey, Label],
             d: dict[str, Any], outcomes: dict[str | None, tuple[str, float | None]],
             by_criterion: dict[str, list[dict[str, Any]]], length: int | None) -> None:
    """Compare one labelled transcript's labels (``own``) with its decision ``d`` (and the
    outcomes of its criteria), row by row."""
    unreadable = d["errored"] == [INPUT_CRITERION]
    general = own.get((None, None))
    for name, row in rows.items():
        if name is None:
            label = own.get((_DECISION_ONLY, None)) or general
            if label is not None:
                row.compare(label, "error" if unreadable else d["outcome"], d["score"], length)
            continue
        label = own.get((name, None)) or general
        if label is not None:
            outcome, score = ("error", None) if unreadable else outcomes[name]
            row.compare(label, outcome, score, length)
        for (criterion, message_index), label in own.items():
            if criterion != name or message_index is None:
                continue
            verdicts = [v for v in by_criterion.get(name, [])
                        if v["message_index"] == message_index]
            outcome, score = ("error", None) if unreadable else _outcome(verdicts)
            row.compare(label, outcome, score, length)


def refuse_ambiguous(seen: Counter[str], sources: dict[str, list[str]]) -> None:
    """A :class:`UsageError` when a labelled id names more than one record of the run: the label
    cannot say which one it is about. (Ids that hash a record's content name the same content:
    each occurrence is compared.)"""
    ambiguous = [tid for tid, n in seen.items() if n > 1 and not is_content_id(tid)]
    if not ambiguous:
        return
    shown = "; ".join(f"{safe(tid, 80)!r} ({', '.join(safe(s, 120) for s in sources[tid])}"
                      f"{', ...' if seen[tid] > len(sources[tid]) else ''})"
                      for tid in ambiguous[:5])
    more = f" and {len(ambiguous) - 5} more" if len(ambiguous) > 5 else ""
    raise UsageError(f"the labels name {len(ambiguous)} transcript id(s) that more than one "
                     f"record of the run has: {shown}{more}; a label cannot say which record "
                     "it is about. Give the records unique ids and review them again, or "
                     "leave those ids out of the labels")


AGREEMENT_HINTS = ("agreement", "kappa", "alpha", "stability", "position_bias", "abstained")


def _flat(key: str, value: Any) -> dict[str, Any]:
    if isinstance(value, dict):
        return {k: v for sub, item in value.items() for k, v in _flat(f"{key}.{sub}", item).items()}
    return {key: value}


def judge_agreement(run_dir: Path, names: list[str]) -> dict[str, dict[str, Any]]:
    """Per criterion, what ``summary.json`` records of its judges' own consistency, when the
    run has any: a panel's ``agreement`` (Fleiss' kappa, Krippendorff's alpha), repeats'
    ``mean_stability``, pairwise ``position_bias``, ``abstained``; nested values flattened
    (``agreement.fleiss_kappa``)."""
    path = run_dir / "summary.json"
    try:
        summary = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return {}
    out: dict[str, dict[str, Any]] = {}
    for name in names:
        row = (summary.get("criteria") or {}).get(name) or {}
        found = {k: v for key, value in row.items() if any(h in key for h in AGREEMENT_HINTS)
                 for k, v in _flat(key, value).items()}
        if found:
            out[name] = found
    return out


def read_calibration(run_dir: str | Path) -> dict[str, Any] | None:
    """``RUN_DIR/calibration.json`` as the report shows it: None when there is none;
    ``stale`` is true when the run changed since (re-run or resumed)."""
    run_dir = Path(run_dir)
    try:
        result: dict[str, Any] = json.loads(
            (run_dir / CALIBRATION_FILE).read_text(encoding="utf-8"))
        stamp = result["run"]["journal"]
        rows = result["rows"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if not isinstance(rows, list):
        return None
    try:
        result["stale"] = stamp != journal_stamp(run_dir)
    except OSError:
        result["stale"] = True
    return result
