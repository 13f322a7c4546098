"""Streaming transcripts out of JSONL, JSONL.gz and Parquet files, one record at a time."""

from __future__ import annotations

import contextlib
import gzip
import json
from collections.abc import Iterable, Iterator, Mapping
from pathlib import Path
from typing import IO, Any

from pydantic import ValidationError

from harness.inputs.formats import InputFormat
from harness.models import InputError, Transcript

PARQUET_BATCH_ROWS = 1024


def _open_text(path: Path) -> IO[str]:
    with path.open("rb") as fh:
        magic = fh.read(2)
    if magic == b"\x1f\x8b":
        return gzip.open(path, "rt", encoding="utf-8", newline="\n")
    return path.open(encoding="utf-8", newline="\n")


def iter_jsonl(path: Path) -> Iterator[tuple[str, Any]]:
    """``(source, record)`` per non-blank line; ``record`` is an exception for a bad line."""
    with _open_text(path) as fh:
        line_no = 0
        while True:
            try:
                line = fh.readline()
            except (UnicodeDecodeError, OSError, EOFError) as exc:
                yield f"{path}:{line_no + 1}", ValueError(f"unreadable: {exc}")
                return
            if not line:
                return
            line_no += 1
            if not line.strip():
                continue
            try:
                yield f"{path}:{line_no}", json.loads(line.rstrip("\r\n"))
            except json.JSONDecodeError as exc:
                reason = f"invalid JSON: {exc.msg} at column {exc.colno}"
                yield f"{path}:{line_no}", ValueError(reason)


def iter_parquet(path: Path) -> Iterator[tuple[str, Any]]:
    """``(source, row)`` per Parquet row, read in bounded batches; ``source`` is file:row."""
    import pyarrow.parquet as pq

    row_no = 0
    for batch in pq.ParquetFile(path).iter_batches(batch_size=PARQUET_BATCH_ROWS):
        for row in batch.to_pylist():
            row_no += 1
            messages = row.get("messages")
            if isinstance(messages, str):
                try:
                    row["messages"] = json.loads(messages)
                except json.JSONDecodeError as exc:
                    yield f"{path}:{row_no}", ValueError(f"`messages` is not JSON: {exc.msg}")
                    continue
            if isinstance(row.get("metadata"), str):
                with contextlib.suppress(json.JSONDecodeError):
                    row["metadata"] = json.loads(row["metadata"])
            yield f"{path}:{row_no}", {k: v for k, v in row.items() if v is not None}


def iter_records(path: str | Path) -> Iterator[tuple[str, Any]]:
    path = Path(path)
    if path.suffix == ".parquet":
        return iter_parquet(path)
    return iter_jsonl(path)


def count_records(paths: Iterable[str | Path]) -> int | None:
    """How many records the files hold, for a progress bar; ``None`` when that would cost a
    decompression pass (gzip). Counts lines, so blank lines make it a slight overestimate."""
    import pyarrow.parquet as pq

    total = 0
    for path in map(Path, paths):
        if path.suffix == ".parquet":
            total += pq.ParquetFile(path).metadata.num_rows
            continue
        with path.open("rb") as fh:
            if fh.read(2) == b"\x1f\x8b":
                return None
            fh.seek(0)
            last = b"\n"
            while chunk := fh.read(1 << 20):
                total += chunk.count(b"\n")
                last = chunk[-1:]
            total += last != b"\n"
    return total


def _describe(error: Exception) -> str:
    if isinstance(error, ValidationError):
        parts = []
        for err in error.errors():
            loc = ".".join(str(x) for x in err["loc"])
            parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
        return "; ".join(parts)
    if isinstance(error, KeyError):
        return f"missing key {error}"
    return str(error)


def parse_record(
    record: Any, source: str, formats: Mapping[str, InputFormat], input_format: str = "auto"
) -> list[Transcript] | InputError:
    """Turn one record into transcripts, or say clearly why it cannot be."""
    if isinstance(record, Exception):
        return InputError(source=source, reason=str(record))
    if not isinstance(record, dict):
        return InputError(source=source,
                          reason=f"a record must be a JSON object, got {type(record).__name__}")
    if input_format == "auto":
        fmt = next((f for f in formats.values() if f.detect(record)), None)
        if fmt is None:
            shapes = "; ".join(f.description or f.name for f in formats.values())
            keys = ", ".join(sorted(map(str, record))[:8]) or "none"
            return InputError(source=source,
                              reason=f"unknown record shape (keys: {keys}); expected {shapes}")
    else:
        fmt = formats[input_format]
    try:
        return fmt.parse(record, source)
    except (ValueError, TypeError, KeyError, ValidationError) as exc:
        rid = record.get("id")
        return InputError(source=source, reason=f"{fmt.name}: {_describe(exc)}",
                          transcript_id=str(rid) if isinstance(rid, str | int) else None)


def read_transcripts(
    paths: Iterable[str | Path],
    formats: Mapping[str, InputFormat],
    input_format: str = "auto",
) -> Iterator[Transcript | InputError]:
    """Every transcript of every file in order; a bad record yields an :class:`InputError`."""
    if input_format != "auto" and input_format not in formats:
        raise ValueError(f"unknown input format {input_format!r}; known: {sorted(formats)}")
    for path in paths:
        if not Path(path).is_file():
            raise FileNotFoundError(f"input file not found: {path}")
        for source, record in iter_records(path):
            parsed = parse_record(record, source, formats, input_format)
            if isinstance(parsed, InputError):
                yield parsed
            else:
                yield from parsed
