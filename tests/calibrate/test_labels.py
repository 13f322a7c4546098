"""Reading human labels: CSV and JSONL, booleans, --map, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.calibrate.labels import Label, parse_map, read_labels
from harness.errors import UsageError


def test_csv_with_three_way_labels_mapped(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("transcript_id,label,criterion,note\n"
                    "a,good,,fine\nb,bad,no_sorry,rude\nc,unsure,,\nd,Good,,\n")
    mapping = parse_map(["good=pass,bad=fail", "unsure=skip"])
    fmt, labels = read_labels(path, mapping)
    assert fmt == "csv"
    assert labels == [
        Label("a", "pass", "good", f"{path}:2"),
        Label("b", "fail", "bad", f"{path}:3", criterion="no_sorry"),
        Label("c", "skip", "unsure", f"{path}:4"),
        Label("d", "pass", "Good", f"{path}:5"),  # raw values match case-insensitively
    ]


def test_jsonl_booleans_numbers_and_message_index(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    rows = [{"transcript_id": "a", "label": True}, {"transcript_id": "b", "label": False},
            {"transcript_id": "c", "label": 1, "criterion": "x", "message_index": 3},
            {"transcript_id": " d\t", "label": "FAIL", "note": "<script>"}]
    path.write_text("\n".join(json.dumps(r) for r in rows) + "\n\n")
    fmt, labels = read_labels(path)
    assert fmt == "jsonl"
    assert [(lb.transcript_id, lb.value, lb.criterion, lb.message_index) for lb in labels] == [
        ("a", "pass", None, None), ("b", "fail", None, None), ("c", "pass", "x", 3),
        (" d\t", "fail", None, None)]  # ids are kept exactly


def test_map_overrides_built_in_values(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("transcript_id,label\na,1\nb,0\n")
    # a scale where 1 means "bad"
    _, labels = read_labels(path, parse_map(["1=fail,0=pass"]))
    assert [lb.value for lb in labels] == ["fail", "pass"]


def test_unknown_values_are_one_error_listing_them(tmp_path: Path) -> None:
    path = tmp_path / "labels.csv"
    path.write_text("transcript_id,label\na,good\nb,bad\nc,good\n")
    with pytest.raises(UsageError) as exc:
        read_labels(path)
    message = str(exc.value)
    assert f"'good' (2 at {path}:2 and more)" in message
    assert f"'bad' (1 at {path}:3)" in message
    assert "--map 'good=pass,bad=fail'" in message


@pytest.mark.parametrize("text, where, says", [
    ("id,label\na,pass\n", ":1", "no transcript_id"),
    ("transcript_id,label\na,pass\n,fail\n", ":3", "no transcript_id"),
    ("transcript_id,label\na,\n", ":2", "no label"),
    ("transcript_id,label\na,pass,extra\n", ":2", "more fields"),
])
def test_bad_csv_names_file_and_line(tmp_path: Path, text: str, where: str, says: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(text)
    with pytest.raises(UsageError, match=says) as exc:
        read_labels(path)
    assert f"{path}{where}" in str(exc.value)


def test_bad_jsonl_names_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "labels.jsonl"
    path.write_text('{"transcript_id": "a", "label": "pass"}\n{"transcript_id": \n')
    with pytest.raises(UsageError, match=f"{path}:2: not JSON"):
        read_labels(path)
    path.write_text('{"transcript_id": "a", "label": "pass", "message_index": "x"}\n')
    with pytest.raises(UsageError, match=f"{path}:1: message_index"):
        read_labels(path)


def test_bad_map_and_missing_file(tmp_path: Path) -> None:
    with pytest.raises(UsageError, match="expected RAW=pass"):
        parse_map(["good=yes"])
    with pytest.raises(UsageError, match="expected RAW=pass"):
        parse_map(["good"])
    assert parse_map(["meh=ignore"]) == {"meh": "skip"}
    with pytest.raises(UsageError, match="not found"):
        read_labels(tmp_path / "nope.csv")


def test_csv_saved_by_a_spreadsheet(tmp_path: Path) -> None:
    """A byte-order mark and CRLF line ends (Excel's CSV) read like any CSV."""
    path = tmp_path / "labels.csv"
    path.write_bytes("\ufefftranscript_id,label,note\r\na,TRUE,\"one, two\"\r\n".encode())
    _, labels = read_labels(path)
    assert [(lb.transcript_id, lb.value) for lb in labels] == [("a", "pass")]
