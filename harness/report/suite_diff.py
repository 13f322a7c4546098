"""What changed between two runs' suites, and which change flipped a decision.

The suites are read from each run's ``run.json`` (the snapshot :class:`harness.rundir.RunWriter`
stores: threshold, default judge, every criterion's kind, gate, weight, version, scope and
config) and from the verdicts (the judge model that answered and the rubric hash it recorded).

A flipped decision is attributed by deciding again with the engine's own policy
(:func:`harness.policy.decide`): run A's verdicts under run B's policy (threshold, gates, weights,
criteria), and B's verdicts under A's policy. If A's verdicts under B's policy already give B's
decision, the policy change explains the flip ("threshold 0.5 -> 0.75"); if B's verdicts under
A's policy do, the changed verdicts explain it ("brevity pass -> fail", with what changed in that
criterion's settings); otherwise both together.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

from harness.judges.records import RUBRIC_HASH_LEN, judge_label, rubric_hash
from harness.models import Verdict, trusted
from harness.policy import INPUT_CRITERION, decide
from harness.suite import CriterionSpec
from harness.text import escape_controls

Outcomes = dict[str, tuple[str, float | None]]
"""Criterion -> its (outcome, score) in one transcript (:func:`harness.policy.aggregate`)."""

MAX_VALUE_CHARS = 60
"""Longer config values are shown cut, with their hash."""

MAX_REMEMBERED = 100_000
"""Distinct criterion outcomes whose re-decisions are remembered (flips share few of them)."""

JUDGE_KEYS = ("rubric", "rubric_file", "evals_spec")
"""Config keys that make a criterion a judged one (it then uses the suite's default judge)."""


def _text(value: Any) -> str:
    """A setting, shown on one line: numbers and strings as they are, the rest as JSON."""
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int | float):
        return f"{value:g}"
    text = value if isinstance(value, str) else json.dumps(value, sort_keys=True)
    text = escape_controls(text.replace("\n", " "))
    if len(text) > MAX_VALUE_CHARS:
        digest = hashlib.sha256(text.encode()).hexdigest()[:8]
        text = f"{text[:MAX_VALUE_CHARS - 12]}… (sha {digest})"
    return text


def _judge_name(value: Any) -> str | None:
    if isinstance(value, dict):
        value = value.get("name")
    return value if isinstance(value, str) and value else None


def _settings(suite: dict[str, Any], c: dict[str, Any], override: str | None) -> dict[str, Any]:
    """One criterion's settings, as compared: an inline rubric by its hash, the judge used."""
    config = dict(c.get("config") or {})
    settings = {k: c.get(k) for k in ("kind", "gate", "weight", "version", "scope")}
    rubric = config.pop("rubric", None)
    if isinstance(rubric, str):
        settings["rubric sha256"] = hashlib.sha256(rubric.encode()).hexdigest()[:RUBRIC_HASH_LEN]
    judged = any(k in (c.get("config") or {}) for k in JUDGE_KEYS)
    judge = override or _judge_name(config.pop("judge", None)) or (
        _judge_name(suite.get("judge")) if judged else None)
    if judge:
        settings["judge"] = judge
    settings.update({f"config {k}": v for k, v in sorted(config.items())})
    return settings


@dataclass
class SuiteSide:
    """One run's suite as the comparison needs it."""

    meta: dict[str, Any]
    judges: dict[str, set[str]] = field(default_factory=dict)
    """Criterion -> judge models that answered (from the verdicts)."""
    rubrics: dict[str, set[str]] = field(default_factory=dict)
    """Criterion -> rubric hashes the verdicts recorded."""

    @property
    def suite(self) -> dict[str, Any]:
        return self.meta.get("suite") or {}

    @property
    def criteria(self) -> dict[str, dict[str, Any]]:
        return {c["name"]: c for c in self.suite.get("criteria", [])}

    @property
    def override(self) -> str | None:
        return _judge_name((self.meta.get("options") or {}).get("judge"))

    @cached_property
    def specs(self) -> list[CriterionSpec]:
        return [CriterionSpec(name=c["name"], kind=c["kind"], gate=c.get("gate", True),
                              weight=c.get("weight", 1.0))
                for c in self.suite.get("criteria", [])]

    @property
    def threshold(self) -> float | None:
        return self.suite.get("threshold")

    def see(self, verdicts: list[dict[str, Any]]) -> None:
        """Note the judge models and rubric hashes a transcript's verdicts recorded."""
        for v in verdicts:
            details = v.get("details") or {}
            if not details:
                continue
            if label := judge_label(details):
                self.judges.setdefault(v["criterion"], set()).add(label)
            if digest := rubric_hash(details):
                self.rubrics.setdefault(v["criterion"], set()).add(digest)


def _change(what: str, a: Any, b: Any, policy: bool, criterion: str | None = None,
            setting: str | None = None) -> dict[str, Any]:
    return {"what": escape_controls(what), "a": _text(a), "b": _text(b), "policy": policy,
            "criterion": criterion and escape_controls(criterion),
            "setting": setting and escape_controls(setting)}


def suite_changes(a: SuiteSide, b: SuiteSide) -> list[dict[str, Any]]:
    """Every setting that differs, ``{"what", "a", "b", "policy"}``; ``policy`` marks what the
    decision rule reads (threshold, criteria, gates, weights)."""
    changes = []
    for key, policy in (("version", False), ("threshold", True)):
        if a.suite.get(key) != b.suite.get(key):
            changes.append(_change(f"suite {key}", a.suite.get(key), b.suite.get(key), policy))
    if _judge_name(a.suite.get("judge")) != _judge_name(b.suite.get("judge")):
        changes.append(_change("suite judge", _judge_name(a.suite.get("judge")),
                               _judge_name(b.suite.get("judge")), False))
    if a.override != b.override:
        changes.append(_change("--judge", a.override, b.override, False))
    ca, cb = a.criteria, b.criteria
    for name in dict.fromkeys([*ca, *cb]):
        if name not in cb:
            changes.append(_change(f"{name}", "present", "removed", True))
            continue
        if name not in ca:
            changes.append(_change(f"{name}", "absent", "added", True))
            continue
        sa = _settings(a.suite, ca[name], a.override)
        sb = _settings(b.suite, cb[name], b.override)
        for key in dict.fromkeys([*sa, *sb]):
            if sa.get(key) != sb.get(key):
                changes.append(_change(f"{name} {key}", sa.get(key), sb.get(key),
                                       key in ("gate", "weight"), name, key))
        for label, seen_a, seen_b in (("judge model (answered)", a.judges, b.judges),
                                      ("rubric sha256 (used)", a.rubrics, b.rubrics)):
            va, vb = sorted(seen_a.get(name, ())), sorted(seen_b.get(name, ()))
            if va and vb and va != vb:
                changes.append(_change(f"{name} {label}", ", ".join(va), ", ".join(vb), False,
                                       name, label))
    return changes


def _outcome_under(outcomes: Outcomes, side: SuiteSide, ident: tuple[str, str]) -> str:
    """The decision the engine's policy of ``side`` takes on these criterion outcomes."""
    verdicts = [trusted(Verdict, criterion=name, outcome=o, score=s)  # values from a verdict
                for name, (o, s) in outcomes.items()]
    return decide(None, verdicts, side.specs, side.threshold, ident=ident).outcome


def _direction(before: float | None, after: float | None) -> str:
    if before is None or after is None:
        return "appeared" if before is None else "gone"
    return "fell" if after < before else "rose"


def _describe(name: str, before: tuple[str, float | None], after: tuple[str, float | None],
              notes: list[str]) -> str:
    if before[0] != after[0]:
        text = f"{name} {before[0]} -> {after[0]}"
    else:  # the direction, not the numbers: flips that share a cause are counted together
        text = f"{name} score {_direction(before[1], after[1])}"
    text = escape_controls(text)
    return f"{text} ({'; '.join(notes)})" if notes else text


class Attribution:
    """Names the cause of each flipped decision, from the two suites."""

    def __init__(self, a: SuiteSide, b: SuiteSide, changes: list[dict[str, Any]]) -> None:
        self.a, self.b = a, b
        self.policy = ", ".join(f"{c['what']} {c['a']} -> {c['b']}"
                                for c in changes if c["policy"])
        self.settings: dict[str, list[str]] = {}
        self._decided: dict[tuple[Any, ...], tuple[bool, bool]] = {}
        """(A's outcomes, B's outcomes, B's decision) -> (B's policy explains, B's verdicts do)."""
        for c in changes:
            if c["criterion"] and not c["policy"]:
                self.settings.setdefault(c["criterion"], []).append(
                    f"{c['setting']} {c['a']} -> {c['b']}")

    def notes(self, name: str) -> list[str]:
        """What changed in a criterion's settings (run.json), and in the judge model or rubric
        hash its verdicts recorded (A's, against B's seen so far: this transcript's included)."""
        notes = list(self.settings.get(escape_controls(name), []))
        for label, seen_a, seen_b in (("judge model", self.a.judges, self.b.judges),
                                      ("rubric sha256", self.a.rubrics, self.b.rubrics)):
            va, vb = sorted(seen_a.get(name, ())), sorted(seen_b.get(name, ()))
            if va and vb and va != vb and not any(n.startswith(label) for n in notes):
                notes.append(escape_controls(f"{label} {', '.join(va)} -> {', '.join(vb)}"))
        return notes

    def cause(self, ident: tuple[str, str], before: Outcomes, after: Outcomes,
              outcome_b: str) -> str:
        """Why A's decision became ``outcome_b``, in a few words."""
        if INPUT_CRITERION in before or INPUT_CRITERION in after:
            return "input record readable in one run only"
        names = sorted(set(before) | set(after))
        absent = ("absent", None)
        differ = [n for n in names if before.get(n, absent)[0] != after.get(n, absent)[0]] or \
            [n for n in names if before.get(n) != after.get(n)]  # else: scores that moved
        changed = [_describe(n, before.get(n, absent), after.get(n, absent), self.notes(n))
                   for n in differ]
        verdicts = ", ".join(changed) or "the same verdicts"
        if not self.policy:
            return verdicts
        key = (tuple(sorted(before.items())), tuple(sorted(after.items())), outcome_b)
        if (known := self._decided.get(key)) is None:
            known = (_outcome_under(before, self.b, ident) == outcome_b,
                     _outcome_under(after, self.a, ident) == outcome_b)
            if len(self._decided) < MAX_REMEMBERED:
                self._decided[key] = known
        by_policy, by_verdicts = known
        if by_policy and not by_verdicts:
            return self.policy
        if by_verdicts and not by_policy:
            return verdicts
        if by_policy:
            return f"{self.policy} (or {verdicts})"
        return f"{self.policy} with {verdicts}"
