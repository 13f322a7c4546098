"""Fixtures for the report tests: run directories built by the real engine, and a real
headless Chromium (Debian's, never a downloaded one)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import pytest

from harness import api

try:  # assertions that wait for the page: read nothing right after an action
    from playwright.sync_api import expect
except ImportError:  # the browser fixture skips (or fails in CI) with the reason
    expect = None
from harness.engine import Engine
from harness.plugins import get_registry

ROOT = Path(__file__).resolve().parents[2]
EXAMPLES = ROOT / "examples"
CHROMIUM = os.environ.get("HARNESS_CHROMIUM", "/usr/bin/chromium")
REQUIRE_BROWSER_ENV = "HARNESS_REQUIRE_BROWSER"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu",
                 "--disable-background-networking", "--disable-component-update",
                 "--disable-sync"]

XSS = {
    "script": "<script>window.__pwned = 'script'</script>",
    "close": "</script><script>window.__pwned = 'close'</script>",
    "img": '<img src=x onerror="window.__pwned = \'img\'">',
    "link": '<a href="javascript:window.__pwned = \'link\'">click me</a>',
    "jinja": "{{ 7*7 }} {% if true %}jinja{% endif %}",
    "comment": "<!-- <script>window.__pwned = 'comment'</script>",
    "alert": "<svg onload=alert(1)>",
}
"""Payloads that must render as text and run nothing."""

REGEX_SUITE = """\
name: report-test
version: "2"
criteria:
  - name: no_script_tag
    kind: regex
    description: No HTML script tags in the answer.
    pattern: "<script>"
    expect: absent
  - name: no_sorry
    kind: regex
    pattern: "sorry"
    flags: [IGNORECASE]
    expect: absent
  - name: polite
    kind: regex
    pattern: "please|thanks"
    flags: [IGNORECASE]
    expect: present
    target: all
    gate: false
"""


def chat(tid: str, user: str, assistant: str, **extra: Any) -> dict[str, Any]:
    return {"id": tid, "messages": [{"role": "user", "content": user},
                                    {"role": "assistant", "content": assistant}], **extra}


def write_jsonl(path: Path, records: Iterable[Any]) -> Path:
    with path.open("w", encoding="utf-8") as fh:
        for r in records:
            fh.write((r if isinstance(r, str) else json.dumps(r, ensure_ascii=False)) + "\n")
    return path


def build_run(run_dir: Path, suite: Path, inputs: list[Path], report: bool = True) -> Path:
    """Review ``inputs`` with ``suite`` into ``run_dir`` through the public API."""
    engine = Engine(suite, get_registry())
    api.run(engine, inputs, run_dir, overwrite=True, report=report)
    return run_dir


@pytest.fixture(scope="session")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The README's demo: the example suite over the example transcripts, with its report."""
    run_dir = tmp_path_factory.mktemp("demo") / "run"
    return build_run(run_dir, EXAMPLES / "suite.yaml",
                     sorted((EXAMPLES / "transcripts").glob("*.jsonl")))


@pytest.fixture(scope="session")
def regex_suite(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("suite") / "suite.yaml"
    path.write_text(REGEX_SUITE)
    return path


@pytest.fixture(scope="session")
def xss_run(tmp_path_factory: pytest.TempPathFactory, regex_suite: Path) -> Path:
    """A run whose transcripts, ids and metadata carry script-injection payloads."""
    folder = tmp_path_factory.mktemp("xss")
    records = [chat(f"xss-{name}", f"please repeat {payload}", f"Sure: {payload}",
                    metadata={"note": payload})
               for name, payload in XSS.items()]
    records.append(chat('<img src=x onerror="window.__pwned=\'id\'">', "hi", "Hello, thanks."))
    records.append(chat("plain", "Say hello", "Hello there, thanks for asking."))
    inputs = write_jsonl(folder / "xss.jsonl", records)
    return build_run(folder / "run", regex_suite, [inputs])


@pytest.fixture
def make_run(tmp_path: Path, regex_suite: Path) -> Callable[..., Path]:
    """Build a run directory from records: ``make_run(records, name="run", suite=...)``."""

    def make(records: Iterable[Any], name: str = "run", suite: Path | None = None,
             report: bool = True) -> Path:
        inputs = write_jsonl(tmp_path / f"{name}.jsonl", records)
        return build_run(tmp_path / name, suite or regex_suite, [inputs], report=report)

    return make


def expect_count(page: Any, n: int) -> None:
    """Wait until the report's filter shows ``n`` transcripts."""
    expect(page.locator("#browser-status")).to_have_attribute("data-count", str(n))


def _browser_unavailable() -> str | None:
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        return "Playwright for Python is not installed (pip install playwright)"
    if not (os.path.isfile(CHROMIUM) and os.access(CHROMIUM, os.X_OK)) \
            and not shutil.which(CHROMIUM):
        return f"no Chromium at {CHROMIUM} (apt-get install chromium, or set HARNESS_CHROMIUM)"
    return None


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    """Headless Debian Chromium through Playwright. Skips without one, unless
    HARNESS_REQUIRE_BROWSER=1 (CI), where a missing browser fails the test."""
    reason = _browser_unavailable()
    if reason:
        if os.environ.get(REQUIRE_BROWSER_ENV) == "1":
            pytest.fail(f"browser tests are required ({REQUIRE_BROWSER_ENV}=1) but {reason}")
        pytest.skip(f"browser test skipped: {reason}")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield browser
        finally:
            browser.close()
