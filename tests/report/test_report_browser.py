"""The report in a real headless Chromium: what a reader sees, and that nothing runs or loads.

Needs Debian's chromium and Playwright for Python (driving /usr/bin/chromium, never a
downloaded browser). Without them these tests skip, unless HARNESS_REQUIRE_BROWSER=1.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import REGEX_SUITE, XSS, chat, expect, expect_count

pytestmark = pytest.mark.browser


@dataclass
class Watched:
    """A page with everything it did recorded."""

    page: Any
    url: str
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def expect_count(self, n: int) -> None:
        expect_count(self.page, n)


@pytest.fixture
def open_report(browser: Any) -> Iterator[Any]:
    contexts = []

    def open_(path: Path) -> Watched:
        context = browser.new_context(viewport={"width": 1280, "height": 900})
        contexts.append(context)
        page = context.new_page()
        w = Watched(page, path.resolve().as_uri())
        page.on("request", lambda r: w.requests.append(r.url))
        page.on("console", lambda m: w.console_errors.append(m.text)
                if m.type in ("error", "warning") else None)
        page.on("pageerror", lambda e: w.console_errors.append(f"pageerror: {e}"))

        def on_dialog(d: Any) -> None:
            w.dialogs.append(d.message)
            d.dismiss()

        page.on("dialog", on_dialog)
        # anything but the file itself would be a request leaving the page: refuse it
        context.route("**/*", lambda route: route.continue_() if route.request.url == w.url
                      else route.abort())
        page.goto(w.url)
        page.wait_for_selector("body[data-ready]", timeout=15_000)
        return w

    yield open_
    for context in contexts:
        context.close()


def test_totals_shown_equal_summary_json(open_report, demo_run: Path) -> None:
    w = open_report(demo_run / "report.html")
    summary = json.loads((demo_run / "summary.json").read_text())
    for key in ("read", "passed", "failed", "errored"):
        expect(w.page.locator(f'[data-total="{key}"]')).to_have_text(str(summary[key]))
    w.expect_count(summary["read"])
    assert w.requests == [w.url] and not w.console_errors and not w.dialogs


def test_filtering_search_and_pagination(open_report, demo_run: Path) -> None:
    w = open_report(demo_run / "report.html")
    summary = json.loads((demo_run / "summary.json").read_text())
    page = w.page
    listed = page.locator("#transcript-list > details")
    info = page.locator("#page-info")
    expect(listed).to_have_count(20)
    expect(info).to_have_text("page 1 of 2")
    page.click("#page-next")
    expect(listed).to_have_count(summary["read"] - 20)
    expect(info).to_have_text("page 2 of 2")

    page.select_option("#filter-outcome", "fail")
    w.expect_count(summary["failed"])
    expect(info).to_have_text("page 1 of 1")
    expect(listed).to_have_count(summary["failed"])
    badges = listed.locator(":scope > summary .badge")
    expect(badges).to_have_text(["fail"] * summary["failed"])

    page.select_option("#filter-criterion", "no_secret_leak")
    w.expect_count(summary["criteria"]["no_secret_leak"]["fail"])
    page.select_option("#filter-outcome", "pass")
    w.expect_count(summary["criteria"]["no_secret_leak"]["pass"])

    page.select_option("#filter-criterion", "")
    page.select_option("#filter-outcome", "error")
    w.expect_count(summary["errored"])

    page.select_option("#filter-outcome", "")
    page.fill("#filter-search", "CHAT-003")
    w.expect_count(1)
    expect(page.locator("#transcript-list code.tid")).to_have_text("chat-003")
    page.fill("#filter-search", "LIMIT CAFFEINE")  # message text, case-insensitive
    w.expect_count(1)
    expect(page.locator("#transcript-list code.tid")).to_have_text("hh-001:chosen")
    page.fill("#filter-search", "no transcript says this")
    w.expect_count(0)
    assert not w.console_errors and w.requests == [w.url]


def test_a_transcript_shows_roles_evidence_and_verdicts(open_report, demo_run: Path) -> None:
    w = open_report(demo_run / "report.html")
    page = w.page
    page.fill("#filter-search", "hh-001:rejected")
    w.expect_count(1)
    page.click("#transcript-list > details > summary")
    t = page.locator("#transcript-list > details").first
    # the body is rendered on the toggle event, which may fire after the click returns
    expect(t.locator(".msg .role")).to_have_text(["user", "assistant"])
    marks = t.locator(".msg mark.evidence-span")
    expect(marks).to_have_text(["As an AI language model"])
    expect(marks.first).to_have_attribute("data-criteria", "no_ai_boilerplate")
    verdicts = t.locator(".verdict")
    expect(verdicts).to_have_count(4)
    expect(verdicts.first.locator(".explanation")).to_contain_text("matched 1 time(s)")


def test_xss_payloads_show_as_text_and_run_nothing(open_report, xss_run: Path) -> None:
    w = open_report(xss_run / "report.html")
    page = w.page
    transcripts = page.locator("#transcript-list > details")
    expect(transcripts).to_have_count(len(XSS) + 2)
    for summary in page.locator("#transcript-list > details > summary").all():
        summary.click()
    # every body rendered (on the toggle event) before anything is read
    expect(transcripts.locator(".msg")).to_have_count(2 * (len(XSS) + 2))
    page.locator("#transcript-list details.meta > summary").first.click()
    listed = page.locator("#transcript-list")
    for payload in XSS.values():
        expect(listed).to_contain_text(payload)
    expect(listed).to_contain_text('<img src=x onerror="window.__pwned=\'id\'">')
    assert "49" not in listed.inner_text()
    # the payloads became text nodes, not elements
    expect(listed.locator("script, img, svg, a, iframe")).to_have_count(0)
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.scripts.length") == 2
    # evidence of the <script> criterion is highlighted as text
    expect(listed.locator("mark.evidence-span").filter(has_text="<script>")).not_to_have_count(0)
    assert not w.dialogs and not w.console_errors
    assert w.requests == [w.url]


def test_a_threshold_failure_shows_the_mean_the_threshold_compared(open_report, make_run,
                                                                   tmp_path: Path) -> None:
    suite = tmp_path / "threshold.yaml"
    suite.write_text(REGEX_SUITE + "threshold: 0.9\n")
    run_dir = make_run([chat("rude", "Say hi", "Hello there."),
                        chat("kind", "Say hi", "Hello there, thanks.")], suite=suite)
    w = open_report(run_dir / "report.html")
    w.page.fill("#filter-search", "rude")
    w.expect_count(1)
    expect(w.page.locator("#transcript-list .score")).to_have_text("non-gate mean 0.000 < 0.9")
    w.page.fill("#filter-search", "kind")
    w.expect_count(1)
    expect(w.page.locator("#transcript-list .score")).to_have_text("score 1.000")
