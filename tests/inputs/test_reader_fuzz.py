"""Fuzzing the reader: files mixing good records with garbage. It never raises, yields exactly
one item (transcripts or an InputError) per non-blank line, keeps every good record intact at
its own line, and every InputError names the line it came from."""

from __future__ import annotations

import gzip
import json
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from harness import get_registry
from harness.inputs import read_transcripts
from harness.models import InputError, Transcript

FORMATS = get_registry().formats
FUZZ = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAX_INT_DIGITS = 4300  # Python's limit on int <-> str: longer integers are an error


@dataclass
class Line:
    data: bytes
    expected: dict[str, Any] | None  # the good record's content, or None: an error


def blank(data: bytes, first: bool = False) -> bool:
    """A blank line (ASCII whitespace only; the file's first line without its UTF-8 BOM)."""
    if first and data.startswith(b"\xef\xbb\xbf"):
        data = data[3:]
    return not data.strip()


text = st.text(max_size=40)  # any Unicode text but lone surrogates
scalars = st.one_of(st.none(), st.booleans(), text,
                    st.integers(min_value=-(2**200), max_value=2**200),
                    st.floats(allow_nan=False))
json_values = st.recursive(scalars, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(text, inner, max_size=4)), max_leaves=12)


@st.composite
def good_line(draw: st.DrawFn) -> Line:
    record = {"messages": [{"role": "user", "content": draw(text)},
                           {"role": "assistant", "content": draw(text)}],
              "metadata": {"extra": draw(json_values)}}
    if draw(st.booleans()):
        record["id"] = draw(st.one_of(text.filter(bool), st.integers(-(2**100), 2**100)))
    data = json.dumps(record, ensure_ascii=draw(st.booleans())).encode()
    return Line(data, record)


@st.composite
def hh_line(draw: st.DrawFn) -> Line:
    chars = st.characters(exclude_categories=["Cs"], exclude_characters="\n")
    q, a, b = (draw(st.text(chars, min_size=1, max_size=20)) for _ in range(3))
    record = {"chosen": f"\n\nHuman: {q}\n\nAssistant: {a}",
              "rejected": f"\n\nHuman: {q}\n\nAssistant: {b}"}
    return Line(json.dumps(record).encode(), record)


@st.composite
def bad_utf8_line(draw: st.DrawFn) -> Line:
    good = draw(good_line()).data
    at = draw(st.integers(0, len(good)))
    bad = draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xe9t\xe9", b"\x80"]))
    return Line(good[:at] + bad + good[at:], None)


@st.composite
def nul_line(draw: st.DrawFn) -> Line:
    good = draw(good_line()).data
    at = draw(st.integers(1, len(good) - 1))
    return Line(good[:at] + b"\x00" + good[at:], None)


@st.composite
def deep_line(draw: st.DrawFn) -> Line:
    depth = draw(st.one_of(st.integers(0, 80), st.integers(80, 3000), st.just(100_000)))
    body = b"[" * depth + b"1" + b"]" * depth
    line = b'{"messages": [{"role": "user", "content": "q"}], "metadata": {"x": ' + body + b"}}"
    if depth + 1 > 64:  # the metadata object is the first level
        return Line(line, None)
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return Line(line, {"messages": [{"role": "user", "content": "q"}], "metadata": {"x": value}})


@st.composite
def huge_number_line(draw: st.DrawFn) -> Line:
    digits = draw(st.one_of(st.integers(1, 40), st.integers(4000, 6000)))
    number = draw(st.sampled_from("123456789")) + draw(st.text("0123456789", min_size=digits - 1,
                                                               max_size=digits - 1))
    sign = draw(st.sampled_from(["", "-"]))
    line = ('{"messages": [{"role": "user", "content": "q"}], "metadata": {"n": '
            f"{sign}{number}}}}}")
    if digits > MAX_INT_DIGITS:
        return Line(line.encode(), None)
    record = {"messages": [{"role": "user", "content": "q"}], "metadata": {"n": int(sign + number)}}
    return Line(line.encode(), record)


@st.composite
def random_line(draw: st.DrawFn) -> Line:
    data = draw(st.binary(max_size=60)).replace(b"\n", b"")
    if data.startswith(b"\x1f\x8b"):  # gzip's magic: a file starting so is read as gzip
        data = data[1:]
    return Line(data, None)  # blank or an error: random bytes are no transcript


blank_line = st.sampled_from([b"", b" ", b"\t", b"\r", b"  \t \r"]).map(lambda b: Line(b, None))
lines = st.lists(st.one_of(good_line(), hh_line(), bad_utf8_line(), nul_line(), deep_line(),
                           huge_number_line(), random_line(), blank_line), max_size=25)


def write(folder: Path, content: list[Line], crlf: bool, packed: bool) -> Path:
    end = b"\r\n" if crlf else b"\n"
    data = b"".join(line.data + end for line in content)
    path = folder / ("f.jsonl.gz" if packed else "f.jsonl")
    path.write_bytes(gzip.compress(data) if packed else data)
    return path


def by_line(items: list[Transcript | InputError], path: Path) -> dict[int, list[Any]]:
    out: dict[int, list[Any]] = {}
    for item in items:
        assert item.source.startswith(f"{path}:")
        line = int(item.source[len(f"{path}:"):].split(":")[0])
        out.setdefault(line, []).append(item)
    return out


def check_good(line: Line, got: list[Any]) -> None:
    record = line.expected
    assert all(isinstance(t, Transcript) for t in got), got
    if "chosen" in record:
        assert len(got) == 2
        assert [t.messages[-1].content for t in got] == [
            record[side].rsplit("Assistant: ", 1)[1] for side in ("chosen", "rejected")]
        return
    [t] = got
    assert [m.content for m in t.messages] == [m["content"] for m in record["messages"]]
    assert t.metadata == record["metadata"]
    if "id" in record:
        assert t.id == str(record["id"])
    t.model_dump_json()  # it can be journaled


@FUZZ
@given(content=lines, crlf=st.booleans(), packed=st.booleans())
def test_reader_never_raises_and_accounts_for_every_line(content, crlf, packed):
    with tempfile.TemporaryDirectory() as folder:
        path = write(Path(folder), content, crlf, packed)
        items = list(read_transcripts([path], FORMATS))
    got = by_line(items, path)
    expected_lines = {n for n, line in enumerate(content, 1) if not blank(line.data, n == 1)}
    assert set(got) == expected_lines
    for n in expected_lines:
        line = content[n - 1]
        if line.expected is not None:
            check_good(line, got[n])
        else:
            assert len(got[n]) == 1 and isinstance(got[n][0], InputError), got[n]
            assert got[n][0].reason
            got[n][0].model_dump_json()


@FUZZ
@given(content=st.lists(good_line(), min_size=1, max_size=30), cut=st.floats(0, 1))
def test_a_truncated_gzip_file_keeps_every_line_before_the_break(content, cut):
    data = gzip.compress(b"".join(line.data + b"\n" for line in content))
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "t.jsonl.gz"
        path.write_bytes(data[: int(len(data) * cut)])
        items = list(read_transcripts([path], FORMATS))
    errors = [i for i in items if isinstance(i, InputError)]
    assert len(errors) <= 1
    assert not errors or items[-1] is errors[0]  # the break ends the file
    good = items[: len(items) - len(errors)]
    for n, t in enumerate(good, 1):
        assert t.source == f"{path}:{n}"
        check_good(content[n - 1], [t])
    if errors:
        assert errors[0].source == f"{path}:{len(good) + 1}"
    else:
        assert len(good) in (0, len(content))  # nothing to read, or all of it
