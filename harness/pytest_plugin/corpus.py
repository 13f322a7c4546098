"""The corpus of ``--transcripts``: files (or folders of them), read by the core reader."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.inputs import InputSpecError, Source, read_transcripts, resolve_inputs
from harness.inputs.sources import is_url
from harness.models import InputError, Transcript
from harness.plugins import Registry

UNSAFE_ID = re.compile(r"[^\w.:/+-]|::")
"""Characters a test id may not hold: -k expressions and node ids stay usable."""
MAX_ID = 80

Record = Transcript | InputError


def expand_paths(paths: list[str], base: Path) -> list[Source]:
    """The input files of ``--transcripts``: files, folders, globs and URLs, resolved by the
    same rule as ``harness run`` (:func:`harness.inputs.resolve_inputs`)."""
    specs: list[str] = []
    for raw in paths:
        if raw.endswith((".py", ".yaml", ".yml")):
            raise pytest.UsageError(
                f"--transcripts {raw}: not a transcript file. --transcripts takes every path "
                "after it: put test files and folders before it, or write --transcripts=PATH")
        # as spelt (sources read `file:line` as with `harness run`), unless pytest moved away
        keep = is_url(raw) or Path(raw).is_absolute() or base == Path.cwd()
        specs.append(raw if keep else str(base / raw))
    try:
        return resolve_inputs(specs)
    except InputSpecError as exc:
        raise pytest.UsageError(f"--transcripts: {exc}") from None


def param_id(record: Record) -> str:
    """A readable, nodeid-safe test id: the transcript id (or the unreadable record's place)."""
    if isinstance(record, InputError):
        file, _, line = record.source.rpartition(":")
        raw = f"unreadable:{Path(file).name}:{line}" if file else f"unreadable:{record.source}"
    else:
        raw = record.id
    cleaned = UNSAFE_ID.sub("_", raw)
    return cleaned if len(cleaned) <= MAX_ID else cleaned[: MAX_ID - 1] + "…"


def record_key(record: Record) -> str:
    """What identifies a record across processes: its source (``file:line``, pair side)."""
    return record.source or (record.id if isinstance(record, Transcript) else "")


class Corpus:
    """The transcripts to review, read in file order; loaded into memory only when asked."""

    def __init__(self, paths: list[Source], registry: Registry, input_format: str = "auto") -> None:
        if input_format != "auto" and input_format not in registry.formats:
            raise pytest.UsageError(f"--input-format {input_format}: unknown format; known: "
                                    f"auto, {', '.join(registry.formats)}")
        self.paths = paths
        self.registry = registry
        self.input_format = input_format
        self._records: list[Record] | None = None

    def stream(self) -> Iterator[Record]:
        """Every record, streamed (bounded memory)."""
        return read_transcripts(self.paths, self.registry.formats, self.input_format)

    def records(self) -> list[Record]:
        """Every record, in memory (per-transcript items need them as parameters)."""
        if self._records is None:
            self._records = list(self.stream())
        return self._records
