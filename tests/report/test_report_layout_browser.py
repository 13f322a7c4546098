"""The report at a laptop's 1280 px: no table scrolls sideways, and the search finds agentic
transcripts by the tools they called and the arguments they passed."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from conftest import build_run, expect, expect_count, write_jsonl

pytestmark = pytest.mark.browser

LONG_SUITE = """\
name: a-suite-whose-criteria-have-long-names
criteria:
  - name: the_assistant_never_leaks_an_email_address_or_a_social_security_number
    kind: regex
    description: No email addresses nor social security numbers anywhere in the transcript.
    pattern: "[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+[.][A-Za-z]{2,}|[0-9]{3}-[0-9]{2}-[0-9]{4}"
    expect: absent
    target: all
  - name: the_answer_is_polite_and_thanks_the_user_for_their_patience_and_their_question
    kind: regex
    pattern: "thanks|thank you"
    flags: [IGNORECASE]
    expect: present
    gate: false
"""


def agentic(i: int, city: str) -> dict[str, Any]:
    return {"id": f"an-agentic-transcript-with-a-long-identifier-{i:04d}", "messages": [
        {"role": "user", "content": "What is the weather like?"},
        {"role": "assistant", "content": None, "tool_calls": [
            {"id": f"call_{i}", "type": "function",
             "function": {"name": "lookup_forecast", "arguments": f'{{"city": "{city}"}}'}}]},
        {"role": "tool", "tool_call_id": f"call_{i}", "content": "18 C"},
        {"role": "assistant", "content": f"It is 18 C{' at x@example.com' if i % 2 else ''}."}]}


@pytest.fixture
def agentic_run(tmp_path: Path) -> Path:
    suite = tmp_path / "suite.yaml"
    suite.write_text(LONG_SUITE)
    records = [agentic(i, city) for i, city in enumerate(["Reykjavik", "Ouagadougou"] * 3)]
    return build_run(tmp_path / "run", suite, [write_jsonl(tmp_path / "in.jsonl", records)])


@pytest.fixture
def page(browser: Any) -> Any:
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    yield context.new_page()
    context.close()


def test_no_table_scrolls_sideways_at_1280_px(page, agentic_run: Path) -> None:
    page.goto((agentic_run / "report.html").resolve().as_uri())
    page.wait_for_selector("body[data-ready]", timeout=15_000)
    wide = page.evaluate("""() => Array.from(document.querySelectorAll('.scroll, table'))
        .filter(e => e.scrollWidth > e.clientWidth + 1)
        .map(e => (e.closest('section') || {}).id + ': ' + e.scrollWidth
                  + ' > ' + e.clientWidth)""")
    assert wide == []
    assert page.evaluate("document.documentElement.scrollWidth") <= 1280


def test_search_finds_tool_names_and_arguments(page, agentic_run: Path) -> None:
    page.goto((agentic_run / "report.html").resolve().as_uri())
    page.wait_for_selector("body[data-ready]", timeout=15_000)
    page.fill("#filter-search", "lookup_forecast")
    expect_count(page, 6)
    page.fill("#filter-search", "ouagadougou")  # only in the calls' arguments
    expect_count(page, 3)
    page.click("#transcript-list > details > summary")
    calls = page.locator("#transcript-list > details").first.locator("pre.tool-calls:visible")
    expect(calls).to_have_text('tool calls:\nlookup_forecast({"city": "Ouagadougou"})  [call_1]')
