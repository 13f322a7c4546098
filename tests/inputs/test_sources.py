"""Which inputs a run reads: files, folders, globs, .json files, URLs, saved datasets, Parquet
columns, resolved by the one rule every entry point uses (harness.inputs.sources)."""

from __future__ import annotations

import gzip
import json
import os
import tracemalloc
import uuid
from pathlib import Path

import orjson
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from testutil import chat, write_jsonl

from harness.inputs import (
    InputSpecError,
    first_seqs,
    iter_entries,
    resolve_inputs,
    same_inputs,
)
from harness.inputs.reader import READ_CHUNK, _json_records, iter_raw, read_transcripts
from harness.models import InputError
from harness.plugins import get_registry

fsspec = pytest.importorskip("fsspec")


def put(path: Path, records: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return write_jsonl(path, records)


def names(sources) -> list[str]:
    return [s.name for s in sources]


def positions(sources) -> list[str]:
    return [position for _, position, _ in iter_entries(sources)]


def read(specs, **kw) -> list:
    return list(read_transcripts(resolve_inputs(specs, **kw), get_registry().formats))


@pytest.fixture
def tree(tmp_path, monkeypatch) -> Path:
    """data/ with files at two levels, a hidden folder, a _SUCCESS marker and a README."""
    monkeypatch.chdir(tmp_path)
    data = tmp_path / "data"
    put(data / "b.jsonl", [chat("q", "b1"), chat("q", "b2")])
    put(data / "a" / "x.jsonl", [chat("q", "ax")])
    put(data / "a.jsonl", [chat("q", "a1")])
    put(data / ".cache" / "hidden.jsonl", [chat("q", "hidden")])
    (data / "_SUCCESS").write_text("")
    (data / "README.md").write_text("# not transcripts\n")
    with gzip.open(data / "c.jsonl.gz", "wt") as fh:
        fh.write(json.dumps(chat("q", "c1")) + "\n")
    return data


def test_a_folder_stands_for_its_readable_files_recursively_sorted(tree):
    sources = resolve_inputs(["data/"])
    assert names(sources) == ["data/a/x.jsonl", "data/a.jsonl", "data/b.jsonl",
                              "data/c.jsonl.gz"]
    assert positions(sources) == ["data/a/x.jsonl:1", "data/a.jsonl:1", "data/b.jsonl:1",
                                  "data/b.jsonl:2", "data/c.jsonl.gz:1"]
    assert [t.messages[-1].content for t in read(["data"])] == ["ax", "a1", "b1", "b2", "c1"]


def test_globs_files_and_repeats(tree):
    assert names(resolve_inputs(["data/*.jsonl"])) == ["data/a.jsonl", "data/b.jsonl"]
    assert names(resolve_inputs(["data/**/*.jsonl"])) == [
        "data/a/x.jsonl", "data/a.jsonl", "data/b.jsonl"]
    # a file reached twice (named, then through its folder) is read once, where first named
    assert names(resolve_inputs(["data/b.jsonl", "./data/b.jsonl", "data"])) == [
        "data/b.jsonl", "data/a/x.jsonl", "data/a.jsonl", "data/c.jsonl.gz"]
    # a file named on its own is read whatever its name
    (tree / "notes.txt").write_text(json.dumps(chat("q", "txt")) + "\n")
    assert [t.messages[-1].content for t in read(["data/notes.txt"])] == ["txt"]


def test_what_names_nothing_readable_is_a_clear_error(tree, tmp_path):
    (tmp_path / "empty").mkdir()
    cases = {
        "missing.jsonl": "input file not found: missing.jsonl",
        "empty": "input folder empty holds no file harness can read",
        "data/*.parquet": "input pattern data/*.parquet matches no file",
        "data/*.md": "matches 1 file(s), none of them readable",
    }
    for spec, message in cases.items():
        with pytest.raises(InputSpecError, match=message.replace("*", r"\*").replace("(", r"\(")
                           .replace(")", r"\)")):
            resolve_inputs([spec])


# -- .json files --------------------------------------------------------------------------------


def test_json_array_single_object_and_positions(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    records = [chat("q1", "first", id="r1"), chat("q2", "second", id="r2")]
    Path("array.json").write_text(json.dumps(records, indent=2))
    Path("one.json").write_text(json.dumps(records[0], indent=2))
    got = read(["array.json", "one.json"])
    assert [(t.id, t.source) for t in got] == [
        ("r1", "array.json:1"), ("r2", "array.json:2"), ("r1", "one.json:1")]


def test_a_malformed_json_file_says_which_file_and_record(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    good = json.dumps(chat("q", "ok", id="ok"))
    Path("truncated.json").write_text(f"[{good}, {good[:-5]}")
    Path("bad-element.json").write_text(f'[{good}, {{"messages": [1,, 2]}}, {good}]')
    Path("mismatched.json").write_text(f'[{good}, {{"messages": [}}, {good}]')
    Path("not-json.json").write_text("hello")
    Path("trailing.json").write_text(f"[{good}] and more")
    got = read(["truncated.json", "bad-element.json", "mismatched.json", "not-json.json",
                "trailing.json"])
    errors = [(e.source, e.reason) for e in got if isinstance(e, InputError)]
    assert [t.source for t in got if not isinstance(t, InputError)] == [
        "truncated.json:1", "bad-element.json:1", "bad-element.json:3", "mismatched.json:1",
        "trailing.json:1"]
    assert errors[0][0] == "truncated.json:2" and "ends inside the array" in errors[0][1]
    assert errors[1][0] == "bad-element.json:2" and errors[1][1].startswith("invalid JSON")
    assert errors[2][0] == "mismatched.json:2" and "does not match" in errors[2][1]
    assert errors[3][0] == "not-json.json" and "not a JSON array or object" in errors[3][1]
    assert errors[4][0] == "trailing.json:2" and "after the array" in errors[4][1]


TRICKY = [{"messages": [{"role": "user", "content": 'a "quoted" ] } , [ { \\ \\" x'},
                        {"role": "assistant", "content": "é ✓ \u2028 \n line"}], "id": i,
           "metadata": {"n": [1, [2, {"d": []}]], "s": "\\"}} for i in range(5)] + [{"id": 9}]


def test_json_bytes_that_are_not_utf8_cost_only_their_record(tmp_path):
    good = json.dumps(chat("q", "ok")).encode()
    (tmp_path / "latin1.json").write_bytes(b"[" + good + b', {"messages": "caf\xe9"}, ' + good
                                          + b"]")
    got = read([tmp_path / "latin1.json"])
    assert [type(t).__name__ for t in got] == ["Transcript", "InputError", "Transcript"]
    assert got[1].source.endswith("latin1.json:2") and "invalid UTF-8: byte 0xe9" in got[1].reason


def test_json_records_read_as_a_jsonl_line_is(tmp_path):
    """A .json record is decoded like a JSONL line: an integer past 64 bits kept exactly, NaN
    accepted, a lone surrogate escape that record's error (not a "?"), the rest read on."""
    records = [chat("q", "big", metadata={"n": 2**70}),
               chat("q", "nan", metadata={"x": float("nan")}),
               chat("q", "a\ud800b"), chat("q", "ok")]
    (tmp_path / "values.json").write_text(json.dumps(records))  # NaN, "a\\ud800b" as written
    got = read([tmp_path / "values.json"])
    assert [type(t).__name__ for t in got] == ["Transcript", "Transcript", "InputError",
                                               "Transcript"]
    assert got[0].metadata == {"n": 2**70} and str(got[1].metadata) == "{'x': nan}"
    assert got[2].source.endswith("values.json:3") and "lone surrogate" in got[2].reason


@pytest.mark.parametrize("size", [1, 2, 3, 7, 64, 10_000])
def test_json_records_split_at_any_chunk_boundary(size):
    """Records come out whole whatever the chunking: the file is never held whole."""
    for blob in (json.dumps(TRICKY).encode(), json.dumps(TRICKY, indent=1).encode(),
                 b"\n".join(json.dumps(r).encode() for r in TRICKY)):
        chunks = iter([blob[i:i + size] for i in range(0, len(blob), size)])
        got = [orjson.loads(raw) for _, raw in _json_records(chunks)]
        assert got == TRICKY


def split_json(blob: bytes, size: int) -> list[tuple[int, object]]:
    """``_json_records`` over ``blob`` read ``size`` bytes at a time: ``(number, value)``, an
    error as its message."""
    chunks = iter([blob[i:i + size] for i in range(0, len(blob), size)])
    return [(n, str(raw) if isinstance(raw, Exception) else orjson.loads(raw))
            for n, raw in _json_records(chunks)]


EMPTY = "the file is empty (a .json file holds an array of records or an object)"
COMMA = "invalid JSON: an empty array element (a comma too many)"
JSON_CASES = {
    b"": [(0, EMPTY)],
    b" \n\t ": [(0, EMPTY)],
    b" [ \n ] ": [],
    # elements of any kind; brackets, braces and escaped quotes inside strings are text
    b'[1, "a]", [2, [3]], null, {"k": "}"}, "\\"]\\\\"]': [
        (1, 1), (2, "a]"), (3, [2, [3]]), (4, None), (5, {"k": "}"}), (6, '"]\\')],
    b"[1,]": [(1, 1), (2, COMMA)],
    b"[,1]": [(1, COMMA), (2, 1)],
    b"[1,,2]": [(1, 1), (2, COMMA), (3, 2)],
    b"42": [(0, "not a JSON array or object (starts with '4'); a .json file holds an array "
                "of records or an object")],
    # top-level objects one after another: numbered by the line each starts on
    b'{"a": 1}\n\n{"b": "}"}\n  {"c":\n [1]}': [(1, {"a": 1}), (3, {"b": "}"}), (4, {"c": [1]})],
    b'{"a": 1}\n [2]': [(1, {"a": 1}),
                        (2, "invalid JSON: unexpected '[' after the object at line 2")],
    b'{"a": 1}\n{"b": ': [
        (1, {"a": 1}), (2, "invalid JSON: the file ends inside the object (truncated file?)")],
    b'{"a": ]}': [(1, "invalid JSON: a ] closes a bracket it does not match (the rest of the "
                      "file is not read)")],
    # a last element not closed by "]" is not known to be whole
    b'[{"a": 1}': [(1, "invalid JSON: the file ends inside the array (truncated file?)")],
}


@pytest.mark.parametrize("blob", list(JSON_CASES), ids=lambda b: repr(b)[:30])
def test_json_records_edge_cases_at_any_chunking(blob):
    for size in (1, 3, len(blob) or 1):
        assert split_json(blob, size) == JSON_CASES[blob], size


def test_json_gz_with_a_bom_and_a_record_larger_than_a_read(tmp_path):
    """A .json.gz (gzip by content) and a plain .json starting with a UTF-8 BOM; a record of
    several read chunks comes out whole, at its number."""
    big = chat("q", "x" * (2 * READ_CHUNK + 17), id="big")
    records = [chat("q", "é ✓", id="a"), big, chat("q", "c", id="c")]
    blob = b"\xef\xbb\xbf" + json.dumps(records, ensure_ascii=False, indent=1).encode()
    (tmp_path / "a.json.gz").write_bytes(gzip.compress(blob))
    (tmp_path / "b.json").write_bytes(blob)
    got = read([tmp_path / "a.json.gz", tmp_path / "b.json"])
    assert [(Path(t.source).name, t.id) for t in got] == [
        ("a.json.gz:1", "a"), ("a.json.gz:2", "big"), ("a.json.gz:3", "c"),
        ("b.json:1", "a"), ("b.json:2", "big"), ("b.json:3", "c")]
    assert got[1].messages[-1].content == big["messages"][-1]["content"]


def test_a_json_array_is_streamed_not_held_whole(tmp_path):
    """Reading a 16 MB array holds a few read chunks (1 MB) and a record, not the file."""
    record = json.dumps(chat("q", "y" * 4000))
    path = tmp_path / "big.json"
    with path.open("w") as fh:
        fh.write("[" + ",\n".join([record] * 4000) + "]")
    tracemalloc.start()
    try:
        count = sum(not isinstance(raw, Exception) for _, raw in iter_raw(path))
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert count == 4000
    assert path.stat().st_size > 15 * READ_CHUNK and peak < 6 * READ_CHUNK, peak


# -- URLs ---------------------------------------------------------------------------------------


@pytest.fixture
def memfs():
    """A fresh folder on fsspec's in-memory filesystem."""
    fs = fsspec.filesystem("memory")
    root = f"memory://harness-{uuid.uuid4().hex[:8]}"
    yield fs, root
    fs.rm(root, recursive=True)


def test_memory_urls_folders_globs_and_gzip(memfs):
    fs, root = memfs
    fs.pipe(f"{root}/corpus/b.jsonl", b"\n".join(orjson.dumps(chat("q", f"b{i}"))
                                                   for i in range(2)))
    fs.pipe(f"{root}/corpus/a/part.jsonl.gz", gzip.compress(orjson.dumps(chat("q", "gz"))))
    fs.pipe(f"{root}/corpus/list.json", orjson.dumps([chat("q", "j")]))
    fs.pipe(f"{root}/corpus/_SUCCESS", b"")
    assert names(resolve_inputs([f"{root}/corpus"])) == [
        f"{root}/corpus/a/part.jsonl.gz", f"{root}/corpus/b.jsonl", f"{root}/corpus/list.json"]
    assert names(resolve_inputs([f"{root}/corpus/*.jsonl"])) == [f"{root}/corpus/b.jsonl"]
    got = read([f"{root}/corpus/"])
    assert [(t.source, t.messages[-1].content) for t in got] == [
        (f"{root}/corpus/a/part.jsonl.gz:1", "gz"), (f"{root}/corpus/b.jsonl:1", "b0"),
        (f"{root}/corpus/b.jsonl:2", "b1"), (f"{root}/corpus/list.json:1", "j")]
    with pytest.raises(InputSpecError, match="input file not found"):
        resolve_inputs([f"{root}/nothing.jsonl"])
    with pytest.raises(InputSpecError, match="matches no file"):
        resolve_inputs([f"{root}/corpus/*.parquet"])


def test_a_url_records_size_and_time_and_a_change_is_seen(memfs):
    fs, root = memfs
    fs.pipe(f"{root}/a.jsonl", orjson.dumps(chat("q", "a")))
    [source] = resolve_inputs([f"{root}/a.jsonl"])
    before = source.describe()
    assert before["size"] > 0 and before["mtime_ns"] and before["resolved"].startswith("memory")
    assert same_inputs([before], [source.describe()])
    fs.pipe(f"{root}/a.jsonl", orjson.dumps(chat("q", "a changed")))
    assert not same_inputs([before], [source.describe()])


def test_file_urls_read_as_local_paths(tree):
    url = f"file://{tree}"
    assert [s.location for s in resolve_inputs([url])] == \
        [str(tree / n) for n in ("a/x.jsonl", "a.jsonl", "b.jsonl", "c.jsonl.gz")]
    assert positions(resolve_inputs([f"{url}/b.jsonl"])) == [f"{url}/b.jsonl:1",
                                                            f"{url}/b.jsonl:2"]
    assert names(resolve_inputs([f"{url}/*.jsonl"])) == [f"{url}/a.jsonl", f"{url}/b.jsonl"]


# -- tables: saved datasets and Parquet columns -------------------------------------------------


CHAT_ROWS = [{"id": f"d{i}", "chat": [{"role": "user", "content": f"q{i}"},
                                      {"role": "assistant", "content": f"a{i}"}],
              "lang": "en"} for i in range(7)]


def test_a_saved_dataset_is_read_as_transcripts_streamed(tmp_path, monkeypatch):
    datasets = pytest.importorskip("datasets")
    monkeypatch.chdir(tmp_path)
    data = datasets.Dataset.from_list(CHAT_ROWS)
    data.save_to_disk("saved", num_shards=2)
    datasets.DatasetDict({"train": data, "test": data.select(range(2))}).save_to_disk("splits")
    sources = resolve_inputs(["saved"], messages_column="chat")
    assert names(sources) == ["saved/data-00000-of-00002.arrow", "saved/data-00001-of-00002.arrow"]
    got = read(["saved"], messages_column="chat")
    assert [t.id for t in got] == [r["id"] for r in CHAT_ROWS]
    assert got[0].messages[1].content == "a0" and got[0].metadata == {"lang": "en"}
    assert got[-1].source == "saved/data-00001-of-00002.arrow:3"
    assert sum(s.count() for s in sources) == len(CHAT_ROWS)
    # a DatasetDict: each split in its own order; a dataset found inside a folder too
    assert names(resolve_inputs(["splits"])) == ["splits/train/data-00000-of-00001.arrow",
                                                 "splits/test/data-00000-of-00001.arrow"]
    assert len(read(["."], messages_column="chat")) == 7 + 7 + 2


def test_a_saved_dataset_and_parquet_from_a_url(tmp_path, memfs):
    datasets = pytest.importorskip("datasets")
    fs, root = memfs
    datasets.Dataset.from_list(CHAT_ROWS).save_to_disk(tmp_path / "saved")
    for path in (tmp_path / "saved").iterdir():
        fs.pipe(f"{root}/saved/{path.name}", path.read_bytes())
    pq.write_table(pa.Table.from_pylist(CHAT_ROWS), tmp_path / "t.parquet", row_group_size=4)
    fs.pipe(f"{root}/tables/t.parquet", (tmp_path / "t.parquet").read_bytes())
    for spec in (f"{root}/saved", f"{root}/tables/"):
        got = read([spec], messages_column="chat")
        assert [t.id for t in got] == [r["id"] for r in CHAT_ROWS], spec
    assert got[-1].source == f"{root}/tables/t.parquet:7"


def test_parquet_with_another_chat_column(tmp_path):
    path = tmp_path / "chats.parquet"
    pq.write_table(pa.Table.from_pylist(CHAT_ROWS), path, row_group_size=3)
    got = read([path], messages_column="chat")
    assert [t.id for t in got] == [r["id"] for r in CHAT_ROWS]
    assert all(isinstance(t, InputError) for t in read([path]))  # no `messages` column
    [error] = read([path], messages_column="conversation")
    assert error.source == os.fspath(path) and "no column 'conversation'" in error.reason
    assert "chat" in error.reason  # the columns there are are listed


def test_count_matches_what_is_read(tree, tmp_path):
    (tree / "broken.jsonl.gz").write_bytes(gzip.compress(b'{"a": 1}\n' * 3)[:-12])
    pq.write_table(pa.Table.from_pylist(CHAT_ROWS), tree / "t.parquet", row_group_size=2)
    sources = resolve_inputs([tree])
    for source in sources:
        assert source.count() == sum(1 for _ in source.records()), source.name
    # where each file starts in a run's numbering: what an engine reading files apart needs
    starts = {position: seq for seq, position, _ in iter_entries(sources)
              if position.endswith(":1")}
    assert first_seqs(sources) == [starts[f"{s.name}:1"] for s in sources]


def test_input_names_read_for_people():
    from harness.inputs.sources import input_names

    recorded = [{"path": f"data/{n}.jsonl", "resolved": f"/x/data/{n}.jsonl", "size": 1}
                for n in range(12)]
    assert input_names(recorded[:2]) == ["data/0.jsonl", "data/1.jsonl"]
    assert input_names(recorded)[-1] == "and 2 more" and len(input_names(recorded)) == 11
    assert input_names(["old/run.jsonl"]) == ["old/run.jsonl"]  # older runs recorded paths


def test_a_glob_skips_what_a_folder_skips(tmp_path, monkeypatch):
    """Names starting with `_` or `.` (`_SUCCESS`, `_SKIP.jsonl`, `.cache/`) are skipped by a
    glob's wildcards as they are inside a folder; spelt out, or matched by a pattern that
    itself starts with `_`, they are read."""
    monkeypatch.chdir(tmp_path)
    for name in ("d/a.jsonl", "d/_SKIP.jsonl", "d/.hidden.jsonl", "d/_tmp/b.jsonl",
                 "d/sub/c.jsonl", "d/.cache/e.jsonl"):
        put(tmp_path / name, [chat("q", "a")])
    folder = names(resolve_inputs(["d"]))
    assert folder == ["d/a.jsonl", "d/sub/c.jsonl"]
    assert names(resolve_inputs(["d/*.jsonl"])) == ["d/a.jsonl"]
    assert names(resolve_inputs(["d/**/*.jsonl"])) == folder
    assert names(resolve_inputs(["d/*"])) == folder
    # asked for by name, or by a pattern that starts with `_`: read
    assert names(resolve_inputs(["d/_SKIP.jsonl"])) == ["d/_SKIP.jsonl"]
    assert names(resolve_inputs(["d/_*.jsonl"])) == ["d/_SKIP.jsonl"]
    assert names(resolve_inputs(["d/_tmp/*.jsonl"])) == ["d/_tmp/b.jsonl"]
