"""JUnit XML of a run, from `harness run --junit` and `harness report --junit`."""

from __future__ import annotations

import json
import xml.etree.ElementTree as ET
from pathlib import Path

from conftest import chat, write_jsonl

from harness.report.junit import write_junit


def test_one_testcase_per_transcript_with_failures_and_errors(demo_run: Path,
                                                              tmp_path: Path) -> None:
    out = tmp_path / "junit.xml"
    counts = write_junit(demo_run, out)
    summary = json.loads((demo_run / "summary.json").read_text())
    suite = ET.parse(out).getroot().find("testsuite")
    assert int(suite.get("tests")) == summary["read"] == counts["tests"]
    assert int(suite.get("failures")) == summary["failed"]
    assert int(suite.get("errors")) == summary["errored"]
    cases = suite.findall("testcase")
    assert len(cases) == summary["read"]
    failed = {c.get("name"): c.find("failure") for c in cases if c.find("failure") is not None}
    assert len(failed) == summary["failed"]
    assert "no_ai_boilerplate" in failed["hh-001:rejected"].get("message")
    assert "As an AI language model" in failed["hh-001:rejected"].text
    assert sum(c.find("error") is not None for c in cases) == summary["errored"]


def test_control_characters_and_markup_do_not_break_the_xml(make_run, tmp_path: Path) -> None:
    run = make_run([chat('x"<&\x01', "hi", "Sorry \x07</testcase><script>")])
    out = tmp_path / "j.xml"
    write_junit(run, out)
    (case,) = ET.parse(out).getroot().iter("testcase")
    assert case.get("name") == 'x"<&\ufffd'
    assert "evidence (message 1): <script>" in case.find("failure").text


def test_run_and_report_commands_write_junit(tmp_path: Path, cli, regex_suite: Path) -> None:
    inputs = write_jsonl(tmp_path / "in.jsonl", [chat("a", "hi", "hello thanks"),
                                                 chat("b", "hi", "sorry")])
    out = tmp_path / "ci" / "junit.xml"
    code, stdout, err = cli("run", regex_suite, inputs, "-o", tmp_path / "run", "--junit", out)
    assert code == 0, err
    assert f"junit: {out} (2 tests, 1 failures, 0 errors)" in stdout
    assert ET.parse(out).getroot().find("testsuite").get("tests") == "2"
    again = tmp_path / "again.xml"
    code, stdout, err = cli("report", tmp_path / "run", "--junit", again)
    assert code == 0, err
    assert again.read_text().count("<testcase ") == 2
