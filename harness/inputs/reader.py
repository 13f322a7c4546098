"""Streaming transcripts out of JSONL, JSONL.gz and Parquet files, one record at a time.

Reading is split in three steps so that a parallel engine can ship raw lines to worker
processes: :func:`iter_raw` (``(source, raw)`` per record, in the reading process),
:func:`decode` (raw bytes to a JSON value) and :func:`parse_record` (a JSON value to
transcripts). None of them raises for bad data: a bad record, line or file becomes an
exception value and then an :class:`InputError` naming ``PATH:LINE`` (Parquet: ``PATH:ROW``;
``PATH`` alone when a whole file cannot be opened).
"""

from __future__ import annotations

import json
import os
import re
import zlib
from collections.abc import Iterable, Iterator, Mapping
from functools import partial
from pathlib import Path
from typing import IO, Any

import orjson
from pydantic import ValidationError

from harness.inputs.formats import InputFormat
from harness.models import InputError, Transcript

PARQUET_BATCH_ROWS = 1024
READ_CHUNK = 1 << 20
GZIP_CHUNK = 1 << 16  # compressed bytes per step: bounds a gzip bomb's output per step
MAX_DEPTH = 64
"""Deepest nesting accepted in ``metadata`` and ``tool_calls`` (they are journaled later)."""
MAX_REASON = 1000

_DIGITS = b"0123456789"
_DIGIT_MAP = bytes(0x30 if 0x30 <= b <= 0x39 else 0x2E for b in range(256))
_LONG_RUN = b"0" * 19  # 19+ digits: maybe an integer orjson would turn into a float
_SURROGATE = re.compile("[\ud800-\udfff]")


class RecordError(ValueError):
    """Why one record (or one file) cannot be read; it becomes that record's InputError."""


# -- step 1: raw records ---------------------------------------------------------------------


def iter_raw(path: str | Path) -> Iterator[tuple[str, bytes | dict[str, Any] | Exception]]:
    """``(source, raw)`` per non-blank record of one file, in order; never raises.

    ``raw`` is the line's bytes (JSONL, JSONL.gz by content), the row as a dict (``.parquet``,
    JSON-text ``messages``/``metadata`` decoded) or an exception for what could not be read.
    Blank lines (ASCII whitespace only) are skipped but counted.
    """
    name = os.fspath(Path(path))
    if name.endswith(".parquet"):
        return _iter_parquet(Path(path), name)
    return _iter_jsonl(Path(path), name)


def _iter_jsonl(path: Path, name: str) -> Iterator[tuple[str, bytes | Exception]]:
    line_no = 0
    try:
        with path.open("rb") as fh:
            head = fh.read(2)
            fh.seek(0)
            chunks = _gunzip(fh) if head == b"\x1f\x8b" else _plain(fh)
            for line in _lines(chunks):
                line_no += 1
                if line and not line.isspace():
                    yield f"{name}:{line_no}", line
    except Exception as exc:  # noqa: BLE001 - an unreadable file or stream costs only itself
        if line_no == 0 and isinstance(exc, OSError):
            yield name, RecordError(f"cannot read the file: {exc.strerror or exc}")
        else:
            yield f"{name}:{line_no + 1}", RecordError(f"unreadable: {_what(exc)}")


def _plain(fh: IO[bytes]) -> Iterator[bytes]:
    chunks = iter(partial(fh.read, READ_CHUNK), b"")
    first = next(chunks, b"")
    yield first[3:] if first.startswith(b"\xef\xbb\xbf") else first
    yield from chunks


def _gunzip(fh: IO[bytes]) -> Iterator[bytes]:
    """The decompressed bytes of a gzip file (several members allowed, zero padding too)."""
    inflater, fresh, first = zlib.decompressobj(31), True, True
    while data := fh.read(GZIP_CHUNK):
        while data:
            if fresh:
                data = data.lstrip(b"\0")
                if not data:
                    break
                fresh = False
            out = inflater.decompress(data)
            if first and out:
                out, first = out[3:] if out.startswith(b"\xef\xbb\xbf") else out, False
            yield out
            if not inflater.eof:
                break
            data = inflater.unused_data
            inflater, fresh = zlib.decompressobj(31), True
    if not fresh:
        raise EOFError("the gzip stream ends early (truncated file?)")


def _lines(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """The lines of a byte stream, without their ``\\n``; an error in the stream propagates
    after every complete line before it."""
    tail: list[bytes] = []
    for chunk in chunks:
        lines = chunk.split(b"\n")
        if len(lines) == 1:
            tail.append(chunk)
            continue
        if tail:
            tail.append(lines[0])
            lines[0] = b"".join(tail)
            tail = []
        last = lines.pop()
        yield from lines
        if last:
            tail = [last]
    if tail:
        yield b"".join(tail)


def _what(exc: BaseException) -> str:
    if isinstance(exc, zlib.error):
        return f"corrupt gzip data ({exc})"
    if isinstance(exc, EOFError):
        return str(exc)
    return f"{type(exc).__name__}: {exc}"


def _iter_parquet(path: Path, name: str) -> Iterator[tuple[str, dict[str, Any] | Exception]]:
    """Rows in bounded batches; a row group that cannot be read is one error at its first
    unread row, and reading goes on with the next row group."""
    try:
        import pyarrow.parquet as pq

        table = pq.ParquetFile(path)
        sizes = [table.metadata.row_group(i).num_rows for i in range(table.num_row_groups)]
    except Exception as exc:  # noqa: BLE001 - a broken file costs only itself
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
        yield name, RecordError(f"unreadable Parquet file: {reason}")
        return
    start = 0
    for group, size in enumerate(sizes):
        row_no = start
        try:
            for batch in table.iter_batches(batch_size=PARQUET_BATCH_ROWS, row_groups=[group]):
                for row in _batch_rows(batch):
                    row_no += 1
                    yield f"{name}:{row_no}", row
        except Exception as exc:  # noqa: BLE001
            yield f"{name}:{row_no + 1}", RecordError(
                f"unreadable Parquet data (row group {group}, rows {row_no + 1}-{start + size}):"
                f" {type(exc).__name__}: {exc}")
        start += size


def _batch_rows(batch: Any) -> Iterator[dict[str, Any] | Exception]:
    try:
        rows = batch.to_pylist()
    except Exception:  # noqa: BLE001 - find the bad rows one by one
        rows = None
    if rows is not None:
        for row in rows:
            yield _parquet_row(row)
        return
    for i in range(batch.num_rows):
        try:
            [row] = batch.slice(i, 1).to_pylist()
        except Exception as exc:  # noqa: BLE001
            yield RecordError(f"unreadable Parquet row: {type(exc).__name__}: {exc}")
        else:
            yield _parquet_row(row)


def _parquet_row(row: dict[str, Any]) -> dict[str, Any] | Exception:
    messages = row.get("messages")
    if isinstance(messages, str | bytes):
        value = decode(messages)
        if isinstance(value, Exception):
            return RecordError(f"`messages` is not JSON: {value}")
        row["messages"] = value
    meta = row.get("metadata")
    if isinstance(meta, str | bytes):
        value = decode(meta)
        if not isinstance(value, Exception):
            row["metadata"] = value
    return {k: v for k, v in row.items() if v is not None}


# -- step 2: decode ---------------------------------------------------------------------------


def decode(raw: Any) -> Any:
    """The JSON value of one line's bytes (or text), else an exception saying why; never
    raises. Anything else (a Parquet row, an exception) passes through unchanged.

    orjson does the work; the stdlib parser takes over for what orjson rejects or would
    change (integers past 64 bits, NaN), so that no record it accepted is lost.
    """
    if not isinstance(raw, bytes):
        if isinstance(raw, str):
            try:
                raw = raw.encode()
            except UnicodeEncodeError:  # lone surrogates: the exact reading says where
                return _decode_exactly(raw)
        elif isinstance(raw, bytearray | memoryview):
            raw = bytes(raw)
        else:
            return raw
    try:
        value = orjson.loads(raw)
    except Exception:  # noqa: BLE001 - the exact reading below says why, or accepts it
        return _decode_exactly(raw)
    if len(raw) - len(raw.translate(None, _DIGITS)) >= 19 \
            and _LONG_RUN in raw.translate(_DIGIT_MAP):
        return _decode_exactly(raw)
    return value


def _decode_exactly(raw: bytes | str) -> Any:
    """The stdlib's reading of a line, with a reason (and column) when it is not JSON."""
    if isinstance(raw, bytes):
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError as exc:
            return RecordError(f"invalid UTF-8: byte 0x{raw[exc.start]:02x} at column "
                               f"{exc.start + 1} ({exc.reason})")
    else:
        text = raw
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        return RecordError(f"invalid JSON: {exc.msg} at column {exc.colno}")
    except RecursionError:
        return RecordError("invalid JSON: nested too deeply")
    except Exception as exc:  # noqa: BLE001 - e.g. an integer of thousands of digits
        return RecordError(f"invalid JSON: {str(exc).split('; use ')[0]}")
    if ("\\u" in text or text is raw) and (char := _surrogate_in(value)):
        return RecordError(_lone_surrogate(char))
    return value


def _surrogate_in(value: Any) -> str | None:
    """A lone surrogate in a string or key of a decoded JSON value (walked without
    recursion: the value may be ~1,000 levels deep), else ``None``."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            if not item.isascii() and (found := _SURROGATE.search(item)):
                return found[0]
        elif isinstance(item, dict):
            stack.extend(item)
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return None


def _lone_surrogate(char: str) -> str:
    return f"a lone surrogate {char!a} in a string (not Unicode text)"


def _bad_value(value: Any, depth: int = 0) -> str | None:
    """Why ``value`` cannot be journaled as JSON (nested too deep, a lone surrogate, binary
    data that is not UTF-8), with where, as ``.key[0]: why``; ``None`` when it can."""
    if isinstance(value, str):
        if value.isascii() or (found := _SURROGATE.search(value)) is None:
            return None
        return ": " + _lone_surrogate(found[0])
    if isinstance(value, dict | list | tuple):
        if depth >= MAX_DEPTH:
            return f": nested too deep (more than {MAX_DEPTH} levels)"
        items = value.items() if isinstance(value, dict) else enumerate(value)
        for key, item in items:
            if isinstance(key, str) and (why := _bad_value(key)) is not None:
                return why
            if not _plain_value(item) and (why := _bad_value(item, depth + 1)) is not None:
                step = f"[{key}]" if isinstance(key, int) else f".{_printable(str(key))[:40]}"
                if depth < 8:
                    return step + why
                return why if why.startswith(".…") else ".…" + why
        return None
    if isinstance(value, bytes):
        try:
            value.decode("utf-8")
        except UnicodeDecodeError:
            return ": binary data that is not UTF-8 text"
    return None


def _plain_value(item: Any) -> bool:
    """Cannot hold anything unwritable: numbers, None, ASCII strings (the common case)."""
    return item is None or isinstance(item, int | float) or (type(item) is str and item.isascii())


# -- step 3: parse ----------------------------------------------------------------------------


def _describe(error: Exception) -> str:
    if isinstance(error, ValidationError):
        parts = []
        for err in error.errors():
            loc = ".".join(str(x) for x in err["loc"])
            parts.append(f"{loc}: {err['msg']}" if loc else err["msg"])
        return "; ".join(parts)
    if isinstance(error, KeyError):
        return f"missing key {error}"
    if isinstance(error, ValueError | TypeError):
        return str(error)
    return f"{type(error).__name__}: {error}"


def _error(source: str, reason: str, record: Any = None) -> InputError:
    """An InputError that can always be written out (no lone surrogates, bounded length)."""
    rid = record.get("id") if isinstance(record, dict) else None
    tid = str(rid) if isinstance(rid, str | int) and not isinstance(rid, bool) else None
    if len(reason) > MAX_REASON:
        reason = reason[: MAX_REASON - 1] + "…"
    if tid is not None and len(tid) > MAX_REASON:
        tid = None
    return InputError(source=_printable(source), reason=_printable(reason),
                      transcript_id=None if tid is None else _printable(tid))


def _printable(text: str) -> str:
    if text.isascii() or not _SURROGATE.search(text):
        return text
    return text.encode("utf-8", "backslashreplace").decode("utf-8")


def _check_value(value: Any) -> str | None:
    """:func:`_bad_value`, with orjson's serializer as the fast path: what it writes without
    a complaint and with at most ``MAX_DEPTH`` brackets in all is fine."""
    try:
        blob = orjson.dumps(value)
    except Exception:  # noqa: BLE001 - maybe unwritable, maybe only unknown to orjson
        return _bad_value(value)
    if blob.count(b"{") + blob.count(b"[") <= MAX_DEPTH:
        return None
    return _bad_value(value)


def _unwritable(transcripts: list[Transcript]) -> str | None:
    """Why a parsed transcript could not be journaled later, or ``None``."""
    for t in transcripts:
        if not isinstance(t, Transcript):
            return f"the format returned {type(t).__name__}, not a Transcript"
        if t.metadata and (why := _check_value(t.metadata)) is not None:
            return f"metadata{why}"
        for i, m in enumerate(t.messages):
            if m.tool_calls and (why := _check_value(m.tool_calls)) is not None:
                return f"messages[{i}].tool_calls{why}"
    return None


def parse_record(
    record: Any, source: str, formats: Mapping[str, InputFormat], input_format: str = "auto"
) -> list[Transcript] | InputError:
    """Turn one decoded record into transcripts, or say clearly why it cannot be; never raises
    for bad data (any exception from a format is the record's error)."""
    if isinstance(record, Exception):
        return _error(source, str(record) or type(record).__name__)
    if not isinstance(record, dict):
        return _error(source, f"a record must be a JSON object, got {type(record).__name__}")
    fmt = None
    try:
        if input_format == "auto":
            for candidate in formats.values():
                if candidate.detect(record):
                    fmt = candidate
                    break
            else:
                shapes = "; ".join(f.description or f.name for f in formats.values())
                keys = ", ".join(sorted(map(str, record))[:8]) or "none"
                return _error(source, f"unknown record shape (keys: {keys}); expected {shapes}")
        else:
            fmt = formats[input_format]
        transcripts = fmt.parse(record, source)
        if not isinstance(transcripts, list):
            transcripts = list(transcripts)
        why = _unwritable(transcripts)
    except Exception as exc:  # noqa: BLE001 - a poison record costs only itself
        where = f"{fmt.name}: " if fmt is not None else "format detection: "
        return _error(source, where + _describe(exc), record)
    if why is not None:
        return _error(source, f"{fmt.name}: {why}", record)
    return transcripts


# -- all three --------------------------------------------------------------------------------


def read_transcripts(
    paths: Iterable[str | Path],
    formats: Mapping[str, InputFormat],
    input_format: str = "auto",
) -> Iterator[Transcript | InputError]:
    """Every transcript of every file in order; a bad record, line or file yields an
    :class:`InputError` and reading goes on."""
    if input_format != "auto" and input_format not in formats:
        raise ValueError(f"unknown input format {input_format!r}; known: {sorted(formats)}")
    for path in paths:
        for source, raw in iter_raw(path):
            parsed = parse_record(decode(raw), source, formats, input_format)
            if isinstance(parsed, InputError):
                yield parsed
            else:
                yield from parsed


def count_records(paths: Iterable[str | Path]) -> int | None:
    """How many records the files hold, for a progress bar; ``None`` when that would cost a
    decompression pass (gzip). Counts lines, so blank lines make it a slight overestimate; a
    file that cannot be read counts as its one error."""
    total = 0
    for path in map(Path, paths):
        try:
            if path.suffix == ".parquet":
                import pyarrow.parquet as pq

                total += pq.ParquetFile(path).metadata.num_rows
                continue
            with path.open("rb") as fh:
                if fh.read(2) == b"\x1f\x8b":
                    return None
                fh.seek(0)
                last = b"\n"
                while chunk := fh.read(READ_CHUNK):
                    total += chunk.count(b"\n")
                    last = chunk[-1:]
                total += last != b"\n"
        except Exception:  # noqa: BLE001 - the reader reports it as one error
            total += 1
    return total
