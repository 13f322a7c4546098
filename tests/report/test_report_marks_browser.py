"""Labels from the report, in a real headless Chromium: mark verdicts and decisions, export the
labels JSONL, calibrate with it; hostile transcript ids stay text.

Needs Debian's chromium and Playwright for Python (see test_report_browser.py); skips without
them unless HARNESS_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import chat, expect, expect_count

pytestmark = pytest.mark.browser

HOSTILE_ID = "q\"'><script>window.__pwned='id'</script><img src=x onerror=\"window.__pwned=1\">"
RECORDS = [
    chat("plain-1", "Say hello", "Hello there, thanks for asking."),
    chat("sorry-1", "Help me", "Sorry, I cannot help, thanks."),
    chat(HOSTILE_ID, "Say hi <script>window.__pwned='msg'</script>", "Hi, thanks."),
]


@pytest.fixture
def page_of(browser: Any) -> Iterator[Any]:
    contexts = []

    def open_(path: Path, context: Any = None) -> Any:
        if context is None:
            context = browser.new_context(accept_downloads=True)
            contexts.append(context)
        page = context.new_page()
        page.dialogs = []

        def on_dialog(d: Any) -> None:
            page.dialogs.append(d.message)
            d.accept()

        page.on("dialog", on_dialog)
        page.errors = []
        page.on("pageerror", lambda e: page.errors.append(str(e)))
        page.goto(path.resolve().as_uri())
        page.wait_for_selector("body[data-ready]", timeout=15_000)
        return page

    yield open_
    for context in contexts:
        context.close()


def open_transcript(page: Any, tid: str) -> Any:
    page.fill("#filter-search", tid)
    expect_count(page, 1)
    transcript = page.locator("#transcript-list > details").first
    transcript.locator(":scope > summary").click()
    transcript.locator(".decision-mark .mark-box").wait_for()  # filled on the toggle event
    return transcript


def expect_marks(page: Any, n: int) -> None:
    expect(page.locator("#marks-count")).to_have_attribute("data-count", str(n))


def export(page: Any, folder: Path) -> Path:
    with page.expect_download() as download:
        page.click("#marks-export")
    path = folder / "labels.jsonl"
    download.value.save_as(path)
    return path


def test_mark_export_and_calibrate(page_of, make_run, tmp_path: Path, cli) -> None:
    run_dir = make_run(RECORDS)
    page = page_of(run_dir / "report.html")
    expect(page.locator("#marks-count")).to_have_text("no marks yet")
    expect(page.locator("#marks-export")).to_be_disabled()

    sorry = open_transcript(page, "sorry-1")
    decision = sorry.locator(".decision-mark")
    expect(decision.locator(".mark-label")).to_have_text("Is decision fail right?")
    decision.locator(".mark-note").fill("an apology is fine here")
    decision.get_by_role("button", name="✗ wrong").click()
    verdict = sorry.locator(".verdict").filter(has_text="no_sorry")
    verdict.get_by_role("button", name="✓ right").click()
    verdict.locator(".mark-note").fill("it does say sorry")
    expect_marks(page, 2)
    expect(sorry.locator("summary .marked-note")).to_contain_text("2 marks")

    plain = open_transcript(page, "plain-1")
    plain.locator(".verdict").filter(has_text="polite").get_by_role(
        "button", name="✗ wrong").click()
    # a mark clicked twice is undone
    right = plain.locator(".decision-mark").get_by_role("button", name="✓ right")
    right.click()
    expect_marks(page, 4)
    right.click()
    expect_marks(page, 3)

    labels = export(page, tmp_path)
    lines = [json.loads(line) for line in labels.read_text().splitlines()]
    assert sorted(lines, key=lambda r: (r["transcript_id"], r.get("criterion", ""))) == [
        {"transcript_id": "plain-1", "label": "fail", "criterion": "polite", "mark": "wrong",
         "harness": "pass"},
        {"transcript_id": "sorry-1", "label": "pass", "mark": "wrong", "harness": "fail",
         "note": "an apology is fine here"},
        {"transcript_id": "sorry-1", "label": "fail", "criterion": "no_sorry", "mark": "right",
         "harness": "fail", "note": "it does say sorry"},
    ]
    assert not page.errors and not page.dialogs

    code, out, err = cli("calibrate", run_dir, "--labels", labels, "--bootstrap", "50")
    assert code == 0, err
    rows = {r["name"]: r for r in json.loads((run_dir / "calibration.json").read_text())["rows"]}
    # the decision mark (no criterion) is compared with the decision and the criteria without
    # a mark of their own
    assert rows["decision"]["confusion"]["human_pass"] == {"pass": 0, "fail": 1}
    assert rows["no_sorry"]["confusion"]["human_fail"] == {"pass": 0, "fail": 1}
    # polite: plain-1 marked wrong (disagrees); sorry-1 says "thanks", people pass it (agrees)
    assert rows["polite"]["compared"] == 2 and rows["polite"]["agree"] == 1
    assert rows["no_script_tag"]["compared"] == 1

    # the rebuilt report shows the calibration, and the marks are still in this browser
    again = page_of(run_dir / "report.html", page.context)
    table = again.locator("#calibration-table")
    expect(table.locator("tr[data-calibration]")).to_have_count(4)
    expect(table.locator('tr[data-calibration="decision"] td').nth(1)).to_have_text("1")
    expect(again.locator("#calibration-stale")).to_have_count(0)
    expect_marks(again, 3)
    pressed = open_transcript(again, "sorry-1").locator('.mark-btn[aria-pressed="true"]')
    expect(pressed).to_have_count(2)


def test_hostile_ids_stay_text_through_marks_and_export(page_of, make_run, tmp_path: Path,
                                                         cli) -> None:
    run_dir = make_run(RECORDS)
    page = page_of(run_dir / "report.html")
    transcript = open_transcript(page, "window.__pwned='id'")
    expect(transcript.locator("code.tid")).to_have_text(HOSTILE_ID)
    transcript.locator(".decision-mark .mark-note").fill("</script><script>window.__pwned=2"
                                                        "</script>")
    transcript.locator(".decision-mark").get_by_role("button", name="✓ right").click()
    transcript.locator(".verdict").first.get_by_role("button", name="✗ wrong").click()
    expect_marks(page, 2)
    page.fill("#filter-search", "")  # re-rendered from the marks
    expect_count(page, len(RECORDS))
    assert page.evaluate("typeof window.__pwned") == "undefined"
    expect(page.locator("#transcript-list script, #transcript-list img")).to_have_count(0)
    assert page.evaluate("document.scripts.length") == 2
    labels = export(page, tmp_path)
    records = [json.loads(line) for line in labels.read_text().splitlines()]
    assert {r["transcript_id"] for r in records} == {HOSTILE_ID}
    assert not page.errors and not page.dialogs

    code, out, err = cli("calibrate", run_dir, "--labels", labels, "--bootstrap", "0")
    assert code == 0, err
    result = json.loads((run_dir / "calibration.json").read_text())
    assert result["labels"]["unmatched"]["labels"] == 0
    assert {r["name"]: r["compared"] for r in result["rows"]}["decision"] == 1
    again = page_of(run_dir / "report.html", page.context)
    assert again.evaluate("typeof window.__pwned") == "undefined"
    assert again.evaluate("document.scripts.length") == 2
    assert not again.errors and not again.dialogs


def test_clear_marks(page_of, make_run) -> None:
    run_dir = make_run(RECORDS)
    page = page_of(run_dir / "report.html")
    open_transcript(page, "plain-1").locator(".decision-mark").get_by_role(
        "button", name="✓ right").click()
    expect_marks(page, 1)
    page.click("#marks-clear")
    expect_marks(page, 0)
    assert page.dialogs
    expect(page.locator("#marks-export")).to_be_disabled()
    reloaded = page_of(run_dir / "report.html", page.context)
    expect_marks(reloaded, 0)
