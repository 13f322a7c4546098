"""Malformed records: reported with file and line, the rest still read, nothing lost."""

from __future__ import annotations

from testutil import chat, write_jsonl

from harness import get_registry
from harness.inputs import read_transcripts
from harness.models import InputError, Transcript


def test_malformed_lines_are_reported_with_line_numbers(tmp_path):
    path = write_jsonl(tmp_path / "bad.jsonl", [
        chat("q", "a"),                                   # 1 ok
        '{"messages": [',                                 # 2 bad JSON
        "",                                               # 3 blank: skipped, still counted
        '"just a string"',                                # 4 not an object
        {"text": "no known shape"},                       # 5 unknown shape
        {"messages": [{"role": "user", "content": 3}]},   # 6 wrong type
        {"messages": []},                                 # 7 empty
        {"id": ["x"], "messages": [{"role": "user", "content": "q"}]},  # 8 bad id
        chat("q2", "a2"),                                 # 9 ok
    ])
    items = list(read_transcripts([path], get_registry().formats))
    errors = {i.source.rsplit(":", 1)[1]: i.reason for i in items if isinstance(i, InputError)}
    assert set(errors) == {"2", "4", "5", "6", "7", "8"}
    assert errors["2"].startswith("invalid JSON")
    assert "JSON object" in errors["4"]
    assert "unknown record shape" in errors["5"] and "text" in errors["5"]
    assert "messages.0.content" in errors["6"] or "content" in errors["6"]
    assert "non-empty" in errors["7"]
    assert "id" in errors["8"]
    assert [i.source.rsplit(":", 1)[1] for i in items if isinstance(i, Transcript)] == ["1", "9"]


def test_every_line_is_one_item(tmp_path):
    lines = [chat(f"q{i}", "a") if i % 3 else "{broken" for i in range(300)]
    path = write_jsonl(tmp_path / "many.jsonl", lines)
    items = list(read_transcripts([path], get_registry().formats))
    assert len(items) == 300
    assert sum(isinstance(i, InputError) for i in items) == 100


def test_undecodable_bytes_are_an_error_not_a_crash(tmp_path):
    path = tmp_path / "latin1.jsonl"
    path.write_bytes(b'{"messages": [{"role": "user", "content": "caf\xe9"}]}\n')
    [item] = list(read_transcripts([path], get_registry().formats))
    assert isinstance(item, InputError) and "invalid UTF-8" in item.reason


def test_count_records_for_the_progress_bar(tmp_path):
    import gzip

    import pandas as pd

    from harness.inputs.reader import count_records

    plain = tmp_path / "a.jsonl"
    plain.write_text('{"x": 1}\n{"x": 2}\n{"x": 3}')  # no final newline
    table = tmp_path / "b.parquet"
    pd.DataFrame({"messages": ["[]"] * 5}).to_parquet(table)
    assert count_records([plain, table]) == 8
    packed = tmp_path / "c.jsonl.gz"
    with gzip.open(packed, "wt") as fh:
        fh.write('{"x": 1}\n')
    assert count_records([plain, packed]) is None  # counting would cost a decompression
