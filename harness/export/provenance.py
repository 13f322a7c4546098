"""Where an example comes from: the run's suite and criteria, and each verdict's judge and rubric.

Everything is read from the run directory: ``run.json`` (suite name, version, fingerprint and
every criterion's spec) and the verdicts' ``details`` as the criteria recorded them. A judge's
verdict records what actually ran (see :mod:`harness.judges.records`): ``judge`` (the judge,
``PREFIX/MODEL``), ``model`` (the model the endpoint reported) and ``rubric_sha256``; these are
the keys read here. When a verdict has none, the criterion's config in ``run.json`` (``judge``,
inline ``rubric``) is the fallback.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.inputs.sources import input_names
from harness.judges.records import RUBRIC_HASH_LEN, judge_label, rubric_hash
from harness.rundir import JOURNAL, read_meta
from harness.suite import CriterionSpec

__all__ = ["RunInfo", "judge_model", "load_run", "rubric_hash"]


def _model_name(value: Any) -> str | None:
    """The ``PREFIX/MODEL`` of a judge in a suite: a string, or a mapping's ``name``."""
    if isinstance(value, dict):
        value = value.get("name")
    return value if isinstance(value, str) and value else None


def judge_model(details: dict[str, Any]) -> str | None:
    """The judge that ran, from a verdict's ``details`` (``judge`` and the reported ``model``):
    e.g. ``openai/gpt-4o-mini-2024-07-18``."""
    return judge_label(details)


@dataclass
class RunInfo:
    """A run directory's metadata, as exporters need it."""

    run_dir: Path
    suite: str
    suite_version: str
    suite_fingerprint: str
    threshold: float | None
    specs: list[CriterionSpec]
    inputs: list[str] = field(default_factory=list)
    started: str | None = None
    config_judges: dict[str, str] = field(default_factory=dict)
    """Criterion -> judge named in its config or the suite's default (fallback provenance)."""
    config_rubrics: dict[str, str] = field(default_factory=dict)
    """Criterion -> sha256 of the rubric text in its config (fallback provenance)."""

    @property
    def names(self) -> list[str]:
        return [s.name for s in self.specs]

    @property
    def criterion_versions(self) -> dict[str, str]:
        return {s.name: s.version for s in self.specs}

    def spec(self, name: str) -> CriterionSpec | None:
        return next((s for s in self.specs if s.name == name), None)


def load_run(run_dir: str | Path) -> RunInfo:
    """Read ``run.json``; a folder without a journal is not a run directory."""
    run_dir = Path(run_dir)
    if not (run_dir / JOURNAL).is_file():
        raise UsageError(f"{run_dir} is not a run directory (no {JOURNAL}); "
                         "create one with `harness run SUITE INPUT -o RUN_DIR`")
    meta = read_meta(run_dir)
    suite = meta.get("suite") or {}
    specs, judges, rubrics = [], {}, {}
    default_judge = _model_name(suite.get("judge"))
    for c in suite.get("criteria", []):
        config = c.get("config") or {}
        specs.append(CriterionSpec(
            name=c["name"], kind=c["kind"], gate=c.get("gate", True),
            weight=c.get("weight", 1.0), version=str(c.get("version", "1")),
            scope=c.get("scope", "transcript"), description=c.get("description", ""),
        ))
        judge = _model_name(config.get("judge")) or (default_judge if "rubric" in config
                                                      or "rubric_file" in config else None)
        if judge:
            judges[c["name"]] = judge
        if isinstance(config.get("rubric"), str):
            digest = hashlib.sha256(config["rubric"].encode()).hexdigest()
            rubrics[c["name"]] = digest[:RUBRIC_HASH_LEN]
    return RunInfo(
        run_dir=run_dir, suite=str(suite.get("name") or ""),
        suite_version=str(suite.get("version") or ""),
        suite_fingerprint=str(meta.get("suite_fingerprint") or ""),
        threshold=suite.get("threshold"), specs=specs, inputs=input_names(meta.get("inputs", [])),
        started=meta.get("started"), config_judges=judges, config_rubrics=rubrics,
    )
