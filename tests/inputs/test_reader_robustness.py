"""Bad bytes, poison records, broken files: each costs exactly its own record (or file), with
its real ``file:line``, and the reader never raises."""

from __future__ import annotations

import gzip
import json
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from testutil import chat

from harness import get_registry
from harness.inputs import decode, iter_raw, parse_record, read_transcripts
from harness.inputs.formats import InputFormat
from harness.inputs.reader import count_records
from harness.models import InputError, Transcript


@pytest.fixture
def formats():
    return get_registry().formats


def read(paths, formats, fmt="auto"):
    return list(read_transcripts(paths, formats, fmt))


def line_of(item: Transcript | InputError) -> int:
    return int(item.source.rsplit(":", 1)[1])


def good_line(i: int) -> bytes:
    return json.dumps(chat(f"q{i}", f"a{i}", id=f"r{i}")).encode()


def write_lines(path: Path, lines: list[bytes], packed: bool = False) -> Path:
    data = b"".join(line + b"\n" for line in lines)
    path.write_bytes(gzip.compress(data) if packed else data)
    return path


def assert_one_bad_line(items, bad: int, total: int) -> None:
    """Every line but ``bad`` is its transcript, in order; ``bad`` is one InputError."""
    assert len(items) == total
    errors = [i for i in items if isinstance(i, InputError)]
    assert [line_of(e) for e in errors] == [bad]
    ok = [i for i in items if isinstance(i, Transcript)]
    assert [line_of(t) for t in ok] == [n for n in range(1, total + 1) if n != bad]
    assert all(t.id == f"r{line_of(t)}" for t in ok)


# 1. invalid UTF-8 costs exactly its own line

@pytest.mark.parametrize(("bad", "total"), [(500, 1000), (4, 7), (1, 3), (3, 3)])
@pytest.mark.parametrize("packed", [False, True], ids=["plain", "gzip"])
def test_invalid_utf8_costs_only_its_own_line(tmp_path, formats, bad, total, packed):
    lines = [good_line(i) for i in range(1, total + 1)]
    lines[bad - 1] = lines[bad - 1].replace(b'"q', b'"\xff\xfeq', 1)
    path = write_lines(tmp_path / "u.jsonl", lines, packed)
    items = read([path], formats)
    assert_one_bad_line(items, bad, total)
    [error] = [i for i in items if isinstance(i, InputError)]
    assert error.source == f"{path}:{bad}"
    assert "UTF-8" in error.reason and "column" in error.reason


def test_truncated_gzip_reports_where_it_broke_then_reads_the_next_file(tmp_path, formats):
    lines = [good_line(i) for i in range(1, 2001)]
    whole = gzip.compress(b"".join(line + b"\n" for line in lines))
    cut = tmp_path / "cut.jsonl.gz"
    cut.write_bytes(whole[: len(whole) // 2])
    after = write_lines(tmp_path / "after.jsonl", [good_line(1)])
    items = read([cut, after], formats)
    *head, error, last = items
    assert isinstance(error, InputError) and "truncated" in error.reason
    assert [line_of(t) for t in head] == list(range(1, len(head) + 1))  # every whole line read
    assert error.source == f"{cut}:{len(head) + 1}"
    assert len(head) > 500
    assert isinstance(last, Transcript) and last.source == f"{after}:1"


def test_corrupt_gzip_is_an_error_at_the_line_then_the_next_file(tmp_path, formats):
    lines = [good_line(i) for i in range(1, 3001)]
    data = bytearray(gzip.compress(b"".join(line + b"\n" for line in lines)))
    data[len(data) // 2: len(data) // 2 + 64] = b"\x00" * 64
    bad = tmp_path / "bad.jsonl.gz"
    bad.write_bytes(bytes(data))
    after = write_lines(tmp_path / "after.jsonl", [good_line(1)])
    items = read([bad, after], formats)
    errors = [i for i in items if isinstance(i, InputError)]
    assert len(errors) == 1 and errors[0].source.startswith(f"{bad}:")
    head = items[: items.index(errors[0])]
    assert [line_of(t) for t in head] == list(range(1, len(head) + 1))
    assert line_of(errors[0]) == len(head) + 1
    assert items[-1].source == f"{after}:1"


def test_gzip_with_several_members_and_zero_padding(tmp_path, formats):
    path = tmp_path / "multi.jsonl.gz"
    path.write_bytes(gzip.compress(good_line(1) + b"\n") + gzip.compress(good_line(2) + b"\n")
                     + b"\0" * 16)
    assert [t.id for t in read([path], formats)] == ["r1", "r2"]


# 2. poison records are that record's InputError

def nested(depth: int) -> object:
    value: object = "leaf"
    for _ in range(depth):
        value = {"k": value}
    return value


POISON = {
    "lone surrogate": b'{"id": "r2", "messages": [{"role": "user", "content": "a\\ud800b"}]}',
    "lone surrogate in a key": b'{"id": "r2", "messages": [{"role": "user", "content": "x"}],'
                               b' "metadata": {"\\udc00": 1}}',
    "deep metadata": json.dumps({"id": "r2", "messages": [{"role": "user", "content": "q"}],
                                 "metadata": nested(300)}).encode(),
    "deep extra key": json.dumps({"id": "r2", "messages": [{"role": "user", "content": "q"}],
                                  "extra": nested(100)}).encode(),
    "deep tool_calls": json.dumps({"id": "r2", "messages": [
        {"role": "assistant", "content": "", "tool_calls": [nested(300)]}]}).encode(),
    "deep JSON": b'{"messages": ' + b"[" * 100_000 + b"]" * 100_000 + b"}",
    "huge integer": b'{"id": ' + b"7" * 5000 + b', "messages": []}',
    "NUL byte": b'{"id": "r2", "messages": [{"role": "user", "content": "a\x00b"}]}',
}


@pytest.mark.parametrize("line", POISON.values(), ids=POISON.keys())
def test_poison_record_is_its_own_input_error(tmp_path, formats, line):
    path = write_lines(tmp_path / "p.jsonl", [good_line(1), line, good_line(3)])
    items = read([path], formats)
    assert_one_bad_line(items, 2, 3)
    assert items[1].reason
    for item in items:  # whatever comes out can be journaled
        item.model_dump_json()


def test_depth_reason_is_clear(tmp_path, formats):
    path = write_lines(tmp_path / "d.jsonl", [POISON["deep metadata"]])
    [error] = read([path], formats)
    assert "metadata" in error.reason and "deep" in error.reason and "64" in error.reason


def test_moderate_nesting_is_kept(tmp_path, formats):
    record = {"id": "r1", "messages": [{"role": "user", "content": "q"}], "metadata": nested(60)}
    [t] = read([write_lines(tmp_path / "m.jsonl", [json.dumps(record).encode()])], formats)
    assert t.metadata == nested(60)
    t.model_dump_json()


def boom(record, source):
    raise RuntimeError("plugin bug")


def recurse(record, source):
    return recurse(record, source)


@pytest.mark.parametrize("parse", [boom, recurse])
def test_any_exception_from_a_format_is_the_records_error(parse):
    fmt = {"x": InputFormat("x", lambda r: True, parse)}
    error = parse_record({"id": 7, "messages": []}, "f:1", fmt)
    assert isinstance(error, InputError) and error.source == "f:1"
    assert error.reason.startswith("x: ") and error.transcript_id == "7"


def test_an_exception_from_detect_is_the_records_error():
    def detect(record):
        raise RuntimeError("detector bug")
    error = parse_record({"a": 1}, "f:1", {"x": InputFormat("x", detect, boom)})
    assert isinstance(error, InputError) and "detector bug" in error.reason


def test_a_surrogate_in_a_direct_record_is_an_error_not_a_crash(formats):
    error = parse_record({"messages": [{"role": "user", "content": "q"}],
                          "metadata": {"note": "\ud800"}}, "<record 1>", formats)
    assert isinstance(error, InputError) and "surrogate" in error.reason
    error.model_dump_json()
    error = parse_record({"\ud800": 1}, "<record 2>", formats)
    assert isinstance(error, InputError)
    error.model_dump_json()


# 3. Parquet files that cannot be read

def good_parquet(path: Path, rows: int = 3) -> Path:
    pd.DataFrame({"id": [f"r{i}" for i in range(1, rows + 1)],
                  "messages": [json.dumps(chat(f"q{i}", "a")["messages"])
                               for i in range(1, rows + 1)]}).to_parquet(path)
    return path


@pytest.mark.parametrize("damage", ["empty", "garbage", "truncated", "no footer"])
def test_broken_parquet_is_that_files_error_then_the_next_file(tmp_path, formats, damage):
    path = tmp_path / "bad.parquet"
    whole = good_parquet(tmp_path / "good.parquet").read_bytes()
    path.write_bytes({"empty": b"", "garbage": b"not parquet at all" * 10,
                      "truncated": whole[: len(whole) // 2],
                      "no footer": whole[:-8]}[damage])
    after = write_lines(tmp_path / "after.jsonl", [good_line(1)])
    error, *rest = read([path, after], formats)
    assert isinstance(error, InputError) and error.source == str(path)
    assert "Parquet" in error.reason
    assert [t.source for t in rest] == [f"{after}:1"]
    count_records([path, after])  # the progress bar's count does not crash either


def test_a_bad_parquet_row_is_an_error_at_that_row(tmp_path, formats):
    path = tmp_path / "row.parquet"
    note = pa.array([b"ok", b"ok", b"\xff\xfe", b"ok"], type=pa.binary()).view(pa.string())
    pq.write_table(pa.table({
        "id": [f"r{i}" for i in range(1, 5)],
        "messages": [json.dumps(chat("q", "a")["messages"])] * 4, "note": note}), path)
    items = read([path], formats)
    assert [(type(i).__name__, line_of(i)) for i in items] == [
        ("Transcript", 1), ("Transcript", 2), ("InputError", 3), ("Transcript", 4)]
    assert "UTF-8" in items[2].reason or "utf-8" in items[2].reason


def test_parquet_binary_metadata_that_is_not_text_is_the_rows_error(tmp_path, formats):
    path = tmp_path / "bin.parquet"
    pq.write_table(pa.table({"id": ["r1", "r2"],
                             "messages": [json.dumps(chat("q", "a")["messages"])] * 2,
                             "blob": pa.array([b"text", b"\xff\x00"], type=pa.binary())}), path)
    ok, bad = read([path], formats)
    assert isinstance(ok, Transcript)
    ok.model_dump_json()
    assert isinstance(bad, InputError) and bad.source == f"{path}:2" and "blob" in bad.reason


def test_parquet_bad_json_text_is_the_rows_error(tmp_path, formats):
    path = tmp_path / "j.parquet"
    pd.DataFrame({"messages": ['[{"role": "user", "content": "q"}]', "[oops"]}).to_parquet(path)
    ok, bad = read([path], formats)
    assert isinstance(ok, Transcript)
    assert bad.source == f"{path}:2" and "`messages` is not JSON" in bad.reason


# 4. missing or unreadable files

def test_missing_file_and_directory_are_their_own_errors(tmp_path, formats):
    after = write_lines(tmp_path / "after.jsonl", [good_line(1)])
    items = read([tmp_path / "nope.jsonl", tmp_path, tmp_path / "nope.parquet", after], formats)
    assert [type(i).__name__ for i in items] == ["InputError"] * 3 + ["Transcript"]
    assert [i.source for i in items[:3]] == [str(tmp_path / "nope.jsonl"), str(tmp_path),
                                             str(tmp_path / "nope.parquet")]


# 5. orjson with a faithful fallback

def test_integers_past_64_bits_are_kept_exactly(tmp_path, formats):
    big = 2**70
    line = (f'{{"id": {big}, "messages": [{{"role": "user", "content": "q"}}], '
            f'"metadata": {{"n": {-big}, "m": 18446744073709551616}}}}').encode()
    [t] = read([write_lines(tmp_path / "b.jsonl", [line])], formats)
    assert t.id == str(big) and t.metadata == {"n": -big, "m": 2**64}


def test_json_error_gives_message_and_column(tmp_path, formats):
    path = write_lines(tmp_path / "e.jsonl", [b'{"messages": [1,, 2]}'])
    [error] = read([path], formats)
    assert error.reason.startswith("invalid JSON") and "column 17" in error.reason


def test_bom_crlf_and_blank_lines(tmp_path, formats):
    path = tmp_path / "w.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + good_line(1) + b"\r\n\r\n  \t\n" + good_line(4) + b"\r\n")
    items = read([path], formats)
    assert all(isinstance(t, Transcript) for t in items)
    assert [line_of(t) for t in items] == [1, 4]


# 6. iter_raw / decode / parse_record, the split for worker processes

def test_iter_raw_yields_line_bytes_with_sources(tmp_path):
    path = write_lines(tmp_path / "r.jsonl", [good_line(1), b"", b"{bad", b"\xff"])
    raws = list(iter_raw(path))
    assert raws == [(f"{path}:1", good_line(1)), (f"{path}:3", b"{bad"), (f"{path}:4", b"\xff")]
    assert decode(raws[0][1]) == json.loads(good_line(1))
    assert isinstance(decode(b"{bad"), Exception) and isinstance(decode(b"\xff"), Exception)
    record, error = {"a": 1}, ValueError("x")
    assert decode(record) is record and decode(error) is error


def test_iter_raw_parquet_rows_are_decoded_dicts(tmp_path):
    path = good_parquet(tmp_path / "t.parquet", 2)
    (s1, r1), (s2, _) = iter_raw(path)
    assert (s1, s2) == (f"{path}:1", f"{path}:2")
    assert r1 == {"id": "r1", "messages": chat("q1", "a")["messages"]}


def test_read_transcripts_is_iter_raw_decode_parse_record(tmp_path, formats):
    path = write_lines(tmp_path / "c.jsonl", [good_line(1), b"{bad", POISON["deep metadata"]])
    composed = []
    for source, raw in iter_raw(path):
        parsed = parse_record(decode(raw), source, formats)
        composed.extend([parsed] if isinstance(parsed, InputError) else parsed)
    assert composed == read([path], formats)


def test_count_records_of_a_missing_file_does_not_raise(tmp_path):
    assert count_records([tmp_path / "nope.jsonl"]) == 1  # its one error


def test_corrupt_parquet_data_is_an_error_at_the_row_then_the_next_row_group(tmp_path, formats):
    path = tmp_path / "groups.parquet"
    rows = 40
    pq.write_table(pa.table({
        "id": [f"r{i}" for i in range(1, rows + 1)],
        "messages": [json.dumps(chat(f"q{i}" * 50, "a")["messages"]) for i in range(1, rows + 1)],
    }), path, row_group_size=10, compression="snappy")
    page = pq.ParquetFile(path).metadata.row_group(1).column(1).data_page_offset
    data = bytearray(path.read_bytes())
    data[page: page + 200] = b"\xff" * 200  # the `messages` page of rows 11-20
    path.write_bytes(bytes(data))
    after = write_lines(tmp_path / "after.jsonl", [good_line(1)])
    *items, last = read([path, after], formats)
    assert last.source == f"{after}:1"
    [error] = [i for i in items if isinstance(i, InputError)]
    assert error.source == f"{path}:11" and "rows 11-20" in error.reason
    assert [t.id for t in items if isinstance(t, Transcript)] == [
        f"r{i}" for i in range(1, rows + 1) if not 11 <= i <= 20]
