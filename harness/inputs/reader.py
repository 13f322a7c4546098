"""Streaming transcripts out of JSONL, JSONL.gz and Parquet files, one record at a time.

Reading is split in three steps so that a parallel engine can ship raw lines to worker
processes: :func:`iter_raw` (``(source, raw)`` per record, in the reading process),
:func:`decode` (raw bytes to a JSON value) and :func:`parse_record` (a JSON value to
transcripts). None of them raises for bad data: a bad record, line or file becomes an
exception value and then an :class:`InputError` naming ``PATH:LINE`` (Parquet: ``PATH:ROW``;
``PATH`` alone when a whole file cannot be opened).
"""

from __future__ import annotations

import codecs
import contextlib
import json
import os
import re
import zlib
from collections.abc import Generator, Iterable, Iterator, Mapping
from functools import partial
from itertools import chain
from pathlib import Path
from typing import IO, Any, cast

import orjson
from pydantic import ValidationError

from harness.inputs.formats import InputFormat
from harness.inputs.sources import Source, is_url, kind_of, url_fs
from harness.models import InputError, Transcript

PARQUET_BATCH_ROWS = 1024
READ_CHUNK = 1 << 20
GZIP_CHUNK = 1 << 16  # compressed bytes per step: bounds a gzip bomb's output per step
MAX_DEPTH = 64
"""Deepest nesting accepted in ``metadata``, ``tool_calls`` and a message's other fields (they
are written out later)."""
MAX_REASON = 1000

_DIGITS = b"0123456789"
_DIGIT_MAP = bytes(0x30 if 0x30 <= b <= 0x39 else 0x2E for b in range(256))
_LONG_RUN = b"0" * 19  # 19+ digits: maybe an integer orjson would turn into a float
_SURROGATE = re.compile("[\ud800-\udfff]")


class RecordError(ValueError):
    """Why one record (or one file) cannot be read; it becomes that record's InputError."""


# -- step 1: raw records ---------------------------------------------------------------------


def iter_raw(path: str | Path | Source) -> Iterator[tuple[str, bytes | dict[str, Any] | Exception]]:
    """``(source, raw)`` per non-blank record of one file, in order; never raises.

    ``path`` is one file (a local path or a URL) or a :class:`Source`; folders and globs are
    :func:`~harness.inputs.sources.resolve_inputs`' business. ``raw`` is the line's bytes
    (JSONL, JSONL.gz by content), one record's bytes (``.json``), the row as a dict
    (``.parquet``, ``.arrow``; JSON-text ``messages``/``metadata`` decoded) or an exception for
    what could not be read. Blank lines (ASCII whitespace only) are skipped but counted.
    """
    if not isinstance(path, Source):
        name = os.fspath(path) if is_url(os.fspath(path)) else os.fspath(Path(path))
        path = Source(name, name, kind_of(name))
    return iter_source(path)


def iter_source(source: Source) -> Iterator[tuple[str, bytes | dict[str, Any] | Exception]]:
    """:func:`iter_raw` of one :class:`Source`."""
    if source.kind in ("parquet", "arrow"):
        return _iter_table(source)
    return _iter_text(source)


def count_source(source: Source) -> int:
    """How many entries :func:`iter_source` yields, without parsing a record (tables: from
    their batches, not their rows)."""
    if source.kind in ("parquet", "arrow"):
        return sum(1 if isinstance(b, Exception) else b.num_rows
                   for _, b in _table_batches(source))
    return sum(1 for _ in _iter_text(source))


def _open(source: Source) -> IO[bytes]:
    if source.is_url:
        fs, path = url_fs(source.location)
        return cast(IO[bytes], fs.open(path, "rb"))
    return open(source.location, "rb")  # noqa: SIM115 - closed by the caller


def _iter_text(source: Source) -> Iterator[tuple[str, bytes | Exception]]:
    """JSONL (one record a line) or ``.json`` (an array, or objects), gzip by content."""
    name = source.name
    try:
        fh = _open(source)
    except Exception as exc:  # noqa: BLE001 - an unreadable file costs only itself
        yield name, RecordError(f"cannot read the file: {_reason(exc)}")
        return
    position = "1"
    try:
        with fh:
            first = fh.read(READ_CHUNK)
            if first[:2] == b"\x1f\x8b":
                chunks = _gunzip(chain((first,), iter(partial(fh.read, GZIP_CHUNK), b"")))
            else:
                chunks = _plain(chain((first,), iter(partial(fh.read, READ_CHUNK), b"")))
            if source.kind == "json":
                for number, raw in _json_records(chunks):
                    position = str(number)
                    yield (name if number == 0 else f"{name}:{number}"), raw
                return
            for line_no, line in enumerate(_lines(chunks), 1):
                position = str(line_no + 1)
                if line and not line.isspace():
                    yield f"{name}:{line_no}", line
    except Exception as exc:  # noqa: BLE001 - a broken stream costs only what is left of it
        if position == "1" and isinstance(exc, OSError):
            yield name, RecordError(f"cannot read the file: {_reason(exc)}")
        else:
            yield f"{name}:{position}", RecordError(f"unreadable: {_what(exc)}")


def _reason(exc: BaseException) -> str:
    return str(exc.strerror) if isinstance(exc, OSError) and exc.strerror \
        else f"{type(exc).__name__}: {exc}" if not isinstance(exc, OSError) else str(exc)


def _plain(chunks: Iterator[bytes]) -> Iterator[bytes]:
    first = next(chunks, b"")
    yield first[3:] if first.startswith(b"\xef\xbb\xbf") else first
    yield from chunks


def _gunzip(chunks: Iterable[bytes]) -> Iterator[bytes]:
    """The decompressed bytes of a gzip stream (several members allowed, zero padding too),
    fed ``GZIP_CHUNK`` compressed bytes at a time."""
    inflater, fresh, first = zlib.decompressobj(31), True, True
    for chunk in chunks:
        for at in range(0, len(chunk), GZIP_CHUNK):
            data = chunk[at:at + GZIP_CHUNK]
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


def _iter_table(source: Source) -> Iterator[tuple[str, dict[str, Any] | Exception]]:
    """Rows of a Parquet or Arrow file in bounded batches, ``name:row``."""
    name = source.name
    for start, batch in _table_batches(source):
        if isinstance(batch, Exception):
            yield (name if start == 0 else f"{name}:{start}"), batch
            continue
        for row_no, row in enumerate(_batch_rows(batch, source.messages_column), start):
            yield f"{name}:{row_no}", row


def _table_batches(source: Source) -> Iterator[tuple[int, Any]]:
    """``(first row number, batch)``, or ``(row number, error)`` for what cannot be read
    (``0``: the whole file). Parquet: a row group that cannot be read is one error at its first
    unread row, and reading goes on with the next row group. Arrow (IPC stream, as
    ``datasets.save_to_disk`` writes, or IPC file): reading stops at a broken batch."""
    what = "Parquet" if source.kind == "parquet" else "Arrow"
    try:
        fh = _open(source) if source.is_url else None
        opened = _open_table(source, fh)
    except Exception as exc:  # noqa: BLE001 - a broken file costs only itself
        yield 0, RecordError(f"unreadable {what} file: {_reason(exc)}")
        return
    try:
        if isinstance(opened, str):
            yield 0, RecordError(opened)
            return
        yield from opened
    finally:
        if fh is not None:
            fh.close()


def _open_table(source: Source, fh: IO[bytes] | None) -> Iterator[tuple[int, Any]] | str:
    """The batches of a table file, or why the file cannot be read as asked (a missing
    messages column)."""
    import pyarrow as pa

    if source.kind == "parquet":
        import pyarrow.parquet as pq

        table = pq.ParquetFile(fh if fh is not None else source.location)
        names = table.schema_arrow.names
        batches: Iterator[tuple[int, Any]] = _parquet_groups(table)
    else:
        data = fh if fh is not None else pa.memory_map(source.location)
        try:
            reader = pa.ipc.open_stream(data)
            names, batches = reader.schema.names, _arrow_stream(reader)
        except pa.ArrowInvalid:
            data.seek(0)
            file_reader = pa.ipc.open_file(data)
            names = file_reader.schema.names
            batches = _arrow_stream(file_reader.get_batch(i)
                                    for i in range(file_reader.num_record_batches))
    column = source.messages_column
    if column != "messages" and column not in names:
        return (f"no column {column!r} (--messages-column) in this file; its columns: "
                f"{', '.join(names[:20]) or 'none'}")
    return batches


def _parquet_groups(table: Any) -> Iterator[tuple[int, Any]]:
    sizes = [table.metadata.row_group(i).num_rows for i in range(table.num_row_groups)]
    start = 0
    for group, size in enumerate(sizes):
        row_no = start
        try:
            for batch in table.iter_batches(batch_size=PARQUET_BATCH_ROWS, row_groups=[group]):
                yield row_no + 1, batch
                row_no += batch.num_rows
        except Exception as exc:  # noqa: BLE001
            yield row_no + 1, RecordError(
                f"unreadable Parquet data (row group {group}, rows {row_no + 1}-{start + size}):"
                f" {type(exc).__name__}: {exc}")
        start += size


def _arrow_stream(batches: Iterable[Any]) -> Iterator[tuple[int, Any]]:
    row_no = 0
    try:
        for batch in batches:
            yield row_no + 1, batch
            row_no += batch.num_rows
    except Exception as exc:  # noqa: BLE001 - a stream cannot go on past a broken batch
        yield row_no + 1, RecordError(f"unreadable Arrow data from row {row_no + 1}: "
                                      f"{type(exc).__name__}: {exc}")


def _batch_rows(batch: Any, column: str = "messages") -> Iterator[dict[str, Any] | Exception]:
    try:
        rows = batch.to_pylist()
    except Exception:  # noqa: BLE001 - find the bad rows one by one
        rows = None
    if rows is not None:
        for row in rows:
            yield _parquet_row(row, column)
        return
    for i in range(batch.num_rows):
        try:
            [row] = batch.slice(i, 1).to_pylist()
        except Exception as exc:  # noqa: BLE001
            yield RecordError(f"unreadable row: {type(exc).__name__}: {exc}")
        else:
            yield _parquet_row(row, column)


def _parquet_row(row: dict[str, Any], column: str = "messages") -> dict[str, Any] | Exception:
    if column != "messages":
        row["messages"] = row.pop(column, None)
    messages = row.get("messages")
    if isinstance(messages, str | bytes):
        value = decode(messages)
        if isinstance(value, Exception):
            return RecordError(f"`{column}` is not JSON: {value}")
        row["messages"] = value
    meta = row.get("metadata")
    if isinstance(meta, str | bytes):
        value = decode(meta)
        if not isinstance(value, Exception):
            row["metadata"] = value
    for key in ("tools", "functions"):
        if isinstance(row.get(key), list):
            row[key] = [_table_function(item) for item in row[key]]
    return {k: v for k, v in row.items() if v is not None}


def _table_function(item: Any) -> Any:
    """A tool (or legacy function) from a table column, as the chat layout has it: the fields
    the column's struct left null dropped, a ``parameters`` schema stored as JSON text (as
    ``harness export --format parquet`` writes it) decoded."""
    if not isinstance(item, dict):
        return item
    out = {k: _table_function(v) if k == "function" else v
           for k, v in item.items() if v is not None}
    if isinstance(out.get("parameters"), str):
        value = decode(out["parameters"])
        if isinstance(value, dict):
            out["parameters"] = value
    return out


# -- .json files: records split out of an array (or a sequence of objects), streamed -----------

_JSON_STRUCT = re.compile(r'["\[\]{},]')
_JSON_STRING_END = re.compile(r'["\\]')
_WHITESPACE = " \t\r\n"
_RAW_DECODE = json.JSONDecoder().raw_decode
_Step = Generator[tuple[int, bytes | Exception], None, bool]  # records, then: go on?
_EMPTY_ELEMENT = "invalid JSON: an empty array element (a comma too many)"


def _json_records(chunks: Iterator[bytes]) -> Iterator[tuple[int, bytes | Exception]]:
    """``(number, bytes)`` per record of a ``.json`` file, without holding more than one record
    (and one chunk) in memory: the elements of a top-level array (numbered 1, 2, ...), or
    top-level objects one after another (numbered by the line each starts on). The bytes are
    decoded later like a JSONL line; ``(0, error)`` when the file is no such thing.

    Bytes that are not UTF-8 pass through unchanged (``surrogateescape``) for the decoder to
    report. (ijson, measured, is no slower, but it stops at the first bad record, reads a lone
    surrogate as ``?`` and NaN or a 20-digit integer as an error, and gives no line numbers.)
    """
    text = codecs.getincrementaldecoder("utf-8")("surrogateescape")
    split = _JsonSplitter()
    for chunk in chain(chunks, [None]):
        yield from split.feed(text.decode(b"", final=True) if chunk is None else text.decode(chunk))
        if split.mode == "stopped":
            return
    yield from split.end()


class _JsonSplitter:
    """The state of :func:`_json_records` between chunks. Between records, a record is skipped
    over by the stdlib's C parser when it is whole in the buffer (the fast path); otherwise, or
    when it is not valid JSON, token by token, which also finds where a broken record ends so
    that the next one is read."""

    def __init__(self) -> None:
        self.buf, self.pos, self.start = "", 0, 0  # start: where the current record starts
        self.closers: list[str] = []  # the bracket each open one expects: its length is the depth
        self.mode: str | None = None  # "array", "objects", "done" (after the array), "stopped"
        self.in_string, self.fresh, self.count = False, False, 0  # fresh: an element is next
        self.mark, self.mark_line = 0, 1  # the line number at buf[mark], counted forward only

    def line_at(self, at: int) -> int:
        self.mark_line += self.buf.count("\n", self.mark, at)
        self.mark = at
        return self.mark_line

    def record(self, begin: int, end: int) -> bytes:
        return self.buf[begin:end].strip(_WHITESPACE).encode("utf-8", "surrogateescape")

    def feed(self, text: str) -> Iterator[tuple[int, bytes | Exception]]:
        """The records ``text`` completes (what is consumed is dropped first, once per chunk)."""
        keep = min(self.start, self.pos)
        self.line_at(keep)
        self.buf, self.pos, self.start, self.mark = (self.buf[keep:] + text, self.pos - keep,
                                                     self.start - keep, 0)
        going = True
        while going:
            if self.mode in (None, "done") or (self.mode == "objects" and not self.closers):
                going = yield from self._between()
            else:
                going = yield from self._scan()

    def _between(self) -> _Step:
        """One step at the top level; whether to go on."""
        buf, pos = self.buf, self.pos
        while pos < len(buf) and buf[pos] in _WHITESPACE:
            pos += 1
        self.pos = pos
        if pos == len(buf):
            return False
        char = buf[pos]
        if self.mode is None and char == "[":
            self.mode, self.pos, self.start, self.fresh = "array", pos + 1, pos + 1, True
            self.closers.append("]")
        elif self.mode != "done" and char == "{":
            self.mode, self.start = "objects", pos
            try:
                end = _RAW_DECODE(buf, pos)[1]
            except ValueError:  # not whole here, or broken: token by token
                self.closers.append("}")
                self.pos = pos + 1
            else:
                self.count += 1
                yield self.line_at(pos), self.record(pos, end)
                self.pos = self.start = end
        elif self.mode is None:
            yield 0, RecordError(f"not a JSON array or object (starts with {char!r}); "
                                 "a .json file holds an array of records or an object")
            self.mode = "stopped"
        else:
            line, after = self.line_at(pos), "array" if self.mode == "done" else "object"
            yield (self.count + 1 if self.mode == "done" else line), RecordError(
                f"invalid JSON: unexpected {char!r} after the {after} at line {line}")
            self.mode = "stopped"
        return self.mode != "stopped"

    def _scan(self) -> _Step:
        """Tokens inside the array or an object record, up to its end or the buffer's; whether
        to go on."""
        buf, pos, closers, array = self.buf, self.pos, self.closers, self.mode == "array"
        if self.fresh:
            if (at := self._element(pos)) is None:
                return False
            pos, self.fresh = at, False
        while True:
            if self.in_string:
                match = _JSON_STRING_END.search(buf, pos)
                if match is None:
                    self.pos = len(buf)
                    return False
                if match[0] == '"':
                    self.in_string, pos = False, match.end()
                elif match.end() < len(buf):
                    pos = match.end() + 1  # an escape: the escaped character is skipped
                else:
                    self.pos = match.start()  # the escaped character is not read yet
                    return False
                continue
            match = _JSON_STRUCT.search(buf, pos)
            if match is None:
                self.pos = len(buf)
                return False
            char, pos = match[0], match.end()
            if char == '"':
                self.in_string = True
            elif char in "[{":
                closers.append("]" if char == "[" else "}")
            elif char == "," and array and len(closers) == 1:
                self.count += 1
                yield self.count, self.record(self.start, match.start()) or RecordError(
                    _EMPTY_ELEMENT)
                self.start = pos
                if (at := self._element(pos)) is None:
                    self.fresh = True
                    return False
                pos = at
            elif char in "]}":
                if closers.pop() != char:
                    yield (self.count + 1 if array else self.line_at(self.start)), RecordError(
                        f"invalid JSON: a {char} closes a bracket it does not match (the rest "
                        "of the file is not read)")
                    self.mode = "stopped"
                    return False
                if not closers:
                    yield from self._closed(match.start(), pos)
                    return True

    def _element(self, pos: int) -> int | None:
        """Where to read on from, for the array element at ``pos``: past it when it is whole in
        the buffer (the fast path: the stdlib's C parser), else its start; ``None`` when the
        buffer ends first."""
        buf = self.buf
        while pos < len(buf) and buf[pos] in _WHITESPACE:
            pos += 1
        if pos == len(buf):
            self.pos = pos
            return None
        if buf[pos] in '{["':
            with contextlib.suppress(ValueError):
                return _RAW_DECODE(buf, pos)[1]
        return pos

    def _closed(self, at: int, end: int) -> Iterator[tuple[int, bytes | Exception]]:
        """The top-level bracket closing at ``at``: the array, or an object record."""
        if self.mode == "array":
            element = self.record(self.start, at)
            if element or self.count:
                self.count += 1
                yield self.count, element or RecordError(_EMPTY_ELEMENT)
            self.mode = "done"
        else:
            self.count += 1
            yield self.line_at(self.start), self.record(self.start, end)
        self.pos = self.start = end

    def end(self) -> Iterator[tuple[int, bytes | Exception]]:
        """What the end of the file says: nothing when it closed what it opened."""
        if self.mode is None:
            yield 0, RecordError("the file is empty (a .json file holds an array of records or "
                                 "an object)")
        elif self.mode == "array" or (self.mode == "objects" and self.closers):
            where = self.count + 1 if self.mode == "array" else self.line_at(self.start)
            yield where, RecordError(f"invalid JSON: the file ends inside the "
                                     f"{'array' if self.mode == 'array' else 'object'} "
                                     "(truncated file?)")


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


_PLAIN = frozenset({"role", "content"})


def _unwritable(transcripts: list[Transcript]) -> str | None:
    """Why a parsed transcript could not be journaled later, or ``None``."""
    for t in transcripts:
        if not isinstance(t, Transcript):
            return f"the format returned {type(t).__name__}, not a Transcript"
        if t.metadata and (why := _check_value(t.metadata)) is not None:
            return f"metadata{why}"
        for i, m in enumerate(t.messages):
            if m.__pydantic_fields_set__ <= _PLAIN:  # a reader's plain message: text only
                continue
            for key in ("tool_calls", "function_call", "wire", "extra"):
                value = getattr(m, key)
                if value and (why := _check_value(value)) is not None:
                    # wire and extra hold the message's own keys: named as the record has them
                    return f"messages[{i}]{'' if key in ('wire', 'extra') else '.' + key}{why}"
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
    paths: Iterable[str | Path | Source],
    formats: Mapping[str, InputFormat],
    input_format: str = "auto",
) -> Iterator[Transcript | InputError]:
    """Every transcript of every file (a path, a URL or a :class:`Source`) in order; a bad
    record, line or file yields an :class:`InputError` and reading goes on."""
    if input_format != "auto" and input_format not in formats:
        raise ValueError(f"unknown input format {input_format!r}; known: {sorted(formats)}")
    for path in paths:
        for source, raw in iter_raw(path):
            parsed = parse_record(decode(raw), source, formats, input_format)
            if isinstance(parsed, InputError):
                yield parsed
            else:
                yield from parsed


def _count_lines(fh: IO[bytes]) -> int:
    """Lines that hold more than white space (the reader skips the others)."""
    return sum(1 for line in fh if not line.isspace())


def count_records(paths: Iterable[str | Path | Source]) -> int | None:
    """How many records the inputs hold, for a progress bar; ``None`` when that would cost a
    pass over the data (gzip, ``.json``, a URL). Empty lines are not records; a line of only
    spaces still counts (a slight overestimate); a file that cannot be read counts as its one
    error."""
    total = 0
    for item in paths:
        source = item if isinstance(item, Source) else Source(str(item), str(item),
                                                               kind_of(str(item)))
        if source.is_url or source.kind == "json":
            return None
        try:
            if source.kind == "parquet":
                import pyarrow.parquet as pq

                total += pq.ParquetFile(source.location).metadata.num_rows
                continue
            if source.kind == "arrow":
                total += count_source(source)
                continue
            with open(source.location, "rb") as fh:
                if fh.read(2) == b"\x1f\x8b":
                    return None
                fh.seek(0)
                total += _count_lines(fh)
        except Exception:  # noqa: BLE001 - the reader reports it as one error
            total += 1
    return total
