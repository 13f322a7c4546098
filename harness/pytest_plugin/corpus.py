"""The corpus of ``--transcripts``: files (or folders of them), read by the core reader."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from harness.inputs import read_transcripts
from harness.models import InputError, Transcript
from harness.plugins import Registry

SUFFIXES = (".jsonl", ".jsonl.gz", ".parquet")
UNSAFE_ID = re.compile(r"[^\w.:/+-]|::")
"""Characters a test id may not hold: -k expressions and node ids stay usable."""
MAX_ID = 80

Record = Transcript | InputError


def expand_paths(paths: list[str], base: Path) -> list[Path]:
    """Files named on the command line; a folder stands for its transcript files, sorted."""
    files: list[Path] = []
    for raw in paths:
        # as spelt (sources read `file:line` as with `harness run`), unless pytest moved away
        path = Path(raw) if Path(raw).is_absolute() or base == Path.cwd() else base / raw
        if path.suffix in (".py", ".yaml", ".yml"):
            raise pytest.UsageError(
                f"--transcripts {raw}: not a transcript file. --transcripts takes every path "
                "after it: put test files and folders before it, or write --transcripts=PATH")
        if path.is_dir():
            found = sorted(p for p in path.rglob("*") if p.is_file() and p.name.endswith(SUFFIXES))
            if not found:
                raise pytest.UsageError(f"--transcripts {raw}: no {', '.join(SUFFIXES)} files "
                                        "in this folder")
            files.extend(found)
        elif path.is_file():
            files.append(path)
        else:
            raise pytest.UsageError(f"--transcripts {raw}: file not found")
    return list(dict.fromkeys(files))  # a file named twice is read once


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

    def __init__(self, paths: list[Path], registry: Registry, input_format: str = "auto") -> None:
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
