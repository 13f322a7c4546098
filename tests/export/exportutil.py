"""Helpers for export tests: reviewing into run directories, reading JSONL."""

from __future__ import annotations

import inspect
import json
from pathlib import Path
from typing import Any

import harness
from harness.api import run as api_run
from harness.engine import Engine
from harness.plugins import get_registry

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
CORRECTIONS = EXAMPLES / "corrections"
_NO_REPORT = {"report": False} if "report" in inspect.signature(api_run).parameters else {}


def review_into(run_dir: Path, suite: Path, inputs: list[Path], *,
                plugins_dir: Path | None = None, all_criteria: bool = False) -> dict[str, Any]:
    """``harness run SUITE INPUTS -o RUN_DIR`` through the Python API; the run's summary."""
    engine = Engine(suite, get_registry(plugins_dir), all_criteria=all_criteria)
    return harness.run(engine, inputs, run_dir, **_NO_REPORT)


def read_jsonl(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def write_jsonl(path: Path, records: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                    encoding="utf-8")
    return path
