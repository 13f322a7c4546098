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
from conftest import XSS

pytestmark = pytest.mark.browser


@dataclass
class Watched:
    """A page with everything it did recorded."""

    page: Any
    url: str
    requests: list[str] = field(default_factory=list)
    console_errors: list[str] = field(default_factory=list)
    dialogs: list[str] = field(default_factory=list)

    def count(self) -> int:
        return int(self.page.get_attribute("#browser-status", "data-count"))


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
        shown = w.page.inner_text(f'[data-total="{key}"]')
        assert int(shown) == summary[key], key
    assert w.count() == summary["read"]
    assert w.requests == [w.url] and not w.console_errors and not w.dialogs


def test_filtering_search_and_pagination(open_report, demo_run: Path) -> None:
    w = open_report(demo_run / "report.html")
    summary = json.loads((demo_run / "summary.json").read_text())
    page = w.page
    assert page.locator("#transcript-list > details").count() == 20
    assert page.inner_text("#page-info") == "page 1 of 2"
    page.click("#page-next")
    assert page.locator("#transcript-list > details").count() == summary["read"] - 20
    assert page.inner_text("#page-info") == "page 2 of 2"

    page.select_option("#filter-outcome", "fail")
    assert w.count() == summary["failed"]
    assert page.inner_text("#page-info") == "page 1 of 1"
    badges = page.locator("#transcript-list > details .badge").all_inner_texts()
    assert badges and set(badges) == {"fail"}

    page.select_option("#filter-criterion", "no_secret_leak")
    assert w.count() == summary["criteria"]["no_secret_leak"]["fail"]
    page.select_option("#filter-outcome", "pass")
    assert w.count() == summary["criteria"]["no_secret_leak"]["pass"]

    page.select_option("#filter-criterion", "")
    page.select_option("#filter-outcome", "error")
    assert w.count() == summary["errored"]

    page.select_option("#filter-outcome", "")
    page.fill("#filter-search", "CHAT-003")
    assert w.count() == 1
    assert page.inner_text("#transcript-list code.tid") == "chat-003"
    page.fill("#filter-search", "LIMIT CAFFEINE")  # message text, case-insensitive
    assert w.count() == 1
    assert page.inner_text("#transcript-list code.tid") == "hh-001:chosen"
    page.fill("#filter-search", "no transcript says this")
    assert w.count() == 0
    assert not w.console_errors and w.requests == [w.url]


def test_a_transcript_shows_roles_evidence_and_verdicts(open_report, demo_run: Path) -> None:
    w = open_report(demo_run / "report.html")
    page = w.page
    page.fill("#filter-search", "hh-001:rejected")
    page.click("#transcript-list > details > summary")
    t = page.locator("#transcript-list > details").first
    assert t.locator(".msg .role").all_inner_texts() == ["user", "assistant"]
    marks = t.locator(".msg mark.evidence-span")
    assert marks.count() == 1 and marks.first.inner_text() == "As an AI language model"
    assert marks.first.get_attribute("data-criteria") == "no_ai_boilerplate"
    verdicts = t.locator(".verdict")
    assert verdicts.count() == 4
    assert "matched 1 time(s)" in verdicts.first.locator(".explanation").inner_text()


def test_xss_payloads_show_as_text_and_run_nothing(open_report, xss_run: Path) -> None:
    w = open_report(xss_run / "report.html")
    page = w.page
    for summary in page.locator("#transcript-list > details > summary").all():
        summary.click()
    page.locator("#transcript-list details.meta > summary").first.click()
    text = page.inner_text("#transcript-list")
    for payload in XSS.values():
        assert payload in text
    assert "{{ 7*7 }}" in text and "49" not in text
    assert '<img src=x onerror="window.__pwned=\'id\'">' in text
    # the payloads became text nodes, not elements
    listed = page.locator("#transcript-list")
    assert listed.locator("script, img, svg, a, iframe").count() == 0
    assert page.evaluate("typeof window.__pwned") == "undefined"
    assert page.evaluate("document.scripts.length") == 2
    # evidence of the <script> criterion is highlighted as text
    assert "<script>" in listed.locator("mark.evidence-span").all_inner_texts()
    assert not w.dialogs and not w.console_errors
    assert w.requests == [w.url]
