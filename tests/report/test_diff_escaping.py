"""`harness diff` on untrusted runs: control and bidi characters are shown escaped."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import chat

from harness.report.diff import compare

EVIL_ID = "t\x1b[2J\x1b]0;pwned\x07\u202eevil\u200b"
"""Clears the screen, sets the terminal title, reverses the text after it."""
EVIL_ID_SHOWN = "t\\x1b[2J\\x1b]0;pwned\\x07\\u202eevil\\u200b"
RAW = ("\x1b", "\x07", "\u202e", "\u200b", "\u2066")

SUITE = """\
name: "evil\\e[31m suite"
version: "{version}"
criteria:
  - name: "no_sorry\\e[8m\\u202e"
    kind: regex
    pattern: "{pattern}"
    flags: [IGNORECASE]
    expect: absent
"""


def _runs(make_run, tmp_path: Path) -> tuple[Path, Path]:
    suite_a = tmp_path / "a.yaml"
    suite_a.write_text(SUITE.format(version="1", pattern="sorry"))
    suite_b = tmp_path / "b.yaml"
    suite_b.write_text(SUITE.format(version="2", pattern="sorry|apolog\\\\w+"))
    records = [chat(EVIL_ID, "hi", "I apologise\x1b[2J\u202e, thanks."), chat("ok", "hi", "fine")]
    return make_run(records, name="a", suite=suite_a), make_run(records, name="b", suite=suite_b)


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in _strings(k) + _strings(v)]
    if isinstance(value, list | tuple):
        return [s for v in value for s in _strings(v)]
    return []


def test_diff_prints_ids_and_criterion_names_escaped(make_run, tmp_path: Path, cli,
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "240")
    run_a, run_b = _runs(make_run, tmp_path)
    code, stdout, err = cli("diff", run_a, run_b)
    assert code == 0, err
    assert not [c for c in RAW if c in stdout], repr(stdout)
    flat = "".join(stdout.split())
    assert EVIL_ID_SHOWN in flat and "no_sorry\\x1b[8m\\u202e" in flat


def test_compare_results_hold_no_raw_control_characters(make_run, tmp_path: Path) -> None:
    run_a, run_b = _runs(make_run, tmp_path)
    d = compare(run_a, run_b)
    assert d["flipped"] == 1
    (flip,) = d["flips"]
    assert flip["id"] == EVIL_ID_SHOWN
    assert flip["changed"][0]["criterion"] == "no_sorry\\x1b[8m\\u202e"
    assert [c["name"] for c in d["criteria"]] == ["no_sorry\\x1b[8m\\u202e"]
    assert d["a"]["suite"] == "evil\\x1b[31m suite"
    for s in _strings(d):
        assert not [c for c in RAW if c in s], repr(s)


def test_escape_controls_can_keep_newlines() -> None:
    from harness.text import escape_controls

    text = "line 1\nline\x1b 2\t\u202e"
    assert escape_controls(text, keep="\n") == "line 1\nline\\x1b 2\\t\\u202e"
    assert escape_controls(text) == "line 1\\nline\\x1b 2\\t\\u202e"


def test_diff_page_stays_html_escaped(make_run, tmp_path: Path, cli) -> None:
    run_a, run_b = _runs(make_run, tmp_path)
    out = tmp_path / "diff.html"
    code, _, err = cli("diff", run_a, run_b, "-o", out)
    assert code == 0, err
    html = out.read_text(encoding="utf-8")
    assert not [c for c in RAW if c in html]
    assert f"<code>{EVIL_ID_SHOWN}</code>" in html


def test_ids_that_look_like_rich_markup_print_as_they_are(make_run, tmp_path: Path,
                                                          cli) -> None:
    from rich.console import Console

    from harness.report.plugin import diff_tables

    run_a, run_b = _runs(make_run, tmp_path)
    d = compare(run_a, run_b)
    d["flips"][0]["id"] = "[/x] [bold]y[/bold]"
    console = Console(record=True, width=200)
    for table in diff_tables(d, 10):
        console.print(table)
    assert "[/x] [bold]y[/bold]" in console.export_text()
