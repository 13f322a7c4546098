"""Where an example comes from: the run's suite and criteria, and each verdict's judge and rubric.

Everything is read from the run directory: ``run.json`` (suite name, version, fingerprint and
every criterion's spec) and the verdicts' ``details`` as the criteria recorded them. Judge
criteria name their model and rubric hash in ``details``; when they do not, the criterion's
config in ``run.json`` (``judge``, ``rubric``) is the fallback.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.rundir import JOURNAL, read_meta
from harness.suite import CriterionSpec

JUDGE_KEYS = ("judge_model", "model", "judge")
"""Keys of a verdict's ``details`` that may name the judge model, first found wins."""
RUBRIC_KEYS = ("rubric_hash", "rubric_sha256", "prompt_hash")
"""Keys of a verdict's ``details`` that may carry the rubric hash."""


def _model_name(value: Any) -> str | None:
    if isinstance(value, str) and value:
        return value
    if isinstance(value, dict):
        for key in ("model", "name"):
            if isinstance(value.get(key), str) and value[key]:
                prefix = value.get("backend") or value.get("prefix")
                return f"{prefix}/{value[key]}" if prefix and "/" not in value[key] else value[key]
    return None


def judge_model(details: dict[str, Any]) -> str | None:
    """The judge model a verdict's details name, if any."""
    for key in JUDGE_KEYS:
        name = _model_name(details.get(key))
        if name:
            return name
    return None


def rubric_hash(details: dict[str, Any]) -> str | None:
    """The rubric hash a verdict's details carry, if any."""
    for key in RUBRIC_KEYS:
        value = details.get(key)
        if isinstance(value, str) and value:
            return value
    return None


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
            rubrics[c["name"]] = hashlib.sha256(config["rubric"].encode()).hexdigest()[:16]
    return RunInfo(
        run_dir=run_dir, suite=str(suite.get("name") or ""),
        suite_version=str(suite.get("version") or ""),
        suite_fingerprint=str(meta.get("suite_fingerprint") or ""),
        threshold=suite.get("threshold"), specs=specs, inputs=list(meta.get("inputs", [])),
        started=meta.get("started"), config_judges=judges, config_rubrics=rubrics,
    )
