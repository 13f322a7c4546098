"""The run directory: a journal written as results come, and the files built from it.

``journal.jsonl`` gets one line per decided transcript (decision and transcript) as soon as a
batch is decided, so a killed run loses at most the batch in flight; ``--resume`` skips every
source already in it. :func:`finalize` streams the journal into the output files.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from harness.models import Decision, Transcript
from harness.suite import Suite

JOURNAL = "journal.jsonl"
RUN_META = "run.json"


class RunDirError(Exception):
    """The run directory cannot be used as asked (exists without --resume, suite changed...)."""


def suite_fingerprint(suite: Suite) -> str:
    data = suite.model_dump(mode="json", exclude={"path"})
    for c in data["criteria"]:
        c.pop("origin", None)
    return hashlib.sha256(json.dumps(data, sort_keys=True).encode()).hexdigest()[:16]


def iter_journal(run_dir: Path) -> Iterator[dict[str, Any]]:
    """Every complete journal entry, in order (a torn last line is ignored)."""
    path = Path(run_dir) / JOURNAL
    if not path.exists():
        return
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            if not line.endswith("\n"):
                return
            yield json.loads(line)


def _repair_journal(path: Path) -> None:
    """Cut a line torn by a kill, so appending goes on from a clean end."""
    if not path.exists():
        return
    with path.open("rb+") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size == 0:
            return
        pos = size
        while pos > 0:
            step = min(65536, pos)
            fh.seek(pos - step)
            chunk = fh.read(step)
            cut = chunk.rfind(b"\n")
            if cut != -1:
                end = pos - step + cut + 1
                if end != size:
                    fh.truncate(end)
                return
            pos -= step
        fh.truncate(0)


class RunWriter:
    """Appends decisions to a run directory's journal; knows what a resumed run can skip."""

    def __init__(self, run_dir: str | Path, suite: Suite, inputs: list[str], *,
                 resume: bool = False, overwrite: bool = False) -> None:
        self.run_dir = Path(run_dir)
        self.suite = suite
        journal = self.run_dir / JOURNAL
        meta_path = self.run_dir / RUN_META
        fingerprint = suite_fingerprint(suite)
        self.done: set[str] = set()
        if journal.exists() and not (resume or overwrite):
            raise RunDirError(f"{self.run_dir} already holds a run: pass --resume to go on with "
                              "it, --overwrite to start again, or choose another directory")
        self.run_dir.mkdir(parents=True, exist_ok=True)
        if resume and journal.exists():
            meta = json.loads(meta_path.read_text()) if meta_path.exists() else {}
            if meta.get("suite_fingerprint") not in (None, fingerprint):
                raise RunDirError(f"{self.run_dir}: the suite changed since this run started; "
                                  "start a new run directory (or --overwrite)")
            _repair_journal(journal)
            self.done = {entry["decision"]["source"] for entry in iter_journal(self.run_dir)}
            meta["resumed"] = [*meta.get("resumed", []), _now()]
        else:
            if journal.exists():
                journal.unlink()
            meta = {"started": _now(), "inputs": inputs}
        meta.update(suite_fingerprint=fingerprint, suite=_suite_info(suite))
        meta_path.write_text(json.dumps(meta, indent=2))
        self._journal: IO[str] = journal.open("a", encoding="utf-8")

    def write(self, decision: Decision, transcript: Transcript | None) -> None:
        # pydantic's own serializer is several times faster than model_dump + json.dumps
        body = transcript.model_dump_json(exclude_none=True) if transcript is not None else "null"
        self._journal.write(f'{{"decision":{decision.model_dump_json()},"transcript":{body}}}\n')

    def flush(self) -> None:
        self._journal.flush()

    def close(self) -> None:
        self._journal.close()


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _suite_info(suite: Suite) -> dict[str, Any]:
    return {
        "name": suite.name,
        "version": suite.version,
        "path": str(suite.path) if suite.path else None,
        "threshold": suite.threshold,
        "judge": suite.judge,
        "criteria": [
            {"name": c.name, "kind": c.kind, "gate": c.gate, "weight": c.weight,
             "version": c.version, "scope": c.scope, "description": c.description,
             "min_pass_rate": c.min_pass_rate, "config": c.config}
            for c in suite.criteria
        ],
    }


def read_meta(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / RUN_META
    return json.loads(path.read_text()) if path.exists() else {}
