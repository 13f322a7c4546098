"""JUnit XML of a run directory, for CI systems.

One ``<testcase>`` per transcript (``classname`` = the suite, ``name`` = the transcript id,
``file`` = where it was read): a failed transcript is a ``<failure>`` listing the failed criteria
with their explanations and evidence, an errored one an ``<error>``; every verdict is in
``<system-out>``. Streamed from the journal: the cases go to a temporary file first, since the
``<testsuite>`` counts come before them.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path
from typing import Any
from xml.sax.saxutils import escape, quoteattr

from harness.rundir import JOURNAL, iter_journal, read_meta

_INVALID_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")
MAX_TEXT = 4000
"""Longest explanation or evidence text copied into the XML."""


def _clean(value: Any, limit: int = MAX_TEXT) -> str:
    text = _INVALID_XML.sub("\ufffd", "" if value is None else str(value))
    return text if len(text) <= limit else text[:limit] + f"… ({len(text) - limit} more)"


def _attr(text: Any) -> str:
    return quoteattr(_clean(text, 1000))


def _verdict_line(v: dict[str, Any]) -> str:
    score = "-" if v["score"] is None else f"{v['score']:.3f}"
    where = "" if v["message_index"] is None else f" message {v['message_index']}"
    return f"{v['criterion']}{where}: {v['outcome']} (score {score}) {v['explanation']}"


def _case(entry: dict[str, Any], suite: str) -> tuple[str, str]:
    d = entry["decision"]
    verdicts = d["verdicts"]
    seconds = sum(v["latency_s"] or 0.0 for v in verdicts)
    head = (f"<testcase classname={_attr(suite)} name={_attr(d['transcript_id'])} "
            f"file={_attr(d['source'])} time=\"{seconds:.6f}\">")
    body = ""
    if d["outcome"] == "fail":
        lines = []
        for v in verdicts:
            if v["criterion"] in d["failed"] and v["outcome"] == "fail":
                lines.append(_verdict_line(v))
                lines += [f"  evidence (message {s['message']}): {s.get('text', '')}"
                          for s in v["evidence"]]
        body = (f"<failure message={_attr('failed: ' + ', '.join(d['failed']))} type=\"fail\">"
                f"{escape(_clean(chr(10).join(lines)))}</failure>")
    elif d["outcome"] == "error":
        lines = [_verdict_line(v) for v in verdicts if v["outcome"] == "error"]
        body = (f"<error message={_attr('errored: ' + ', '.join(d['errored']))} type=\"error\">"
                f"{escape(_clean(chr(10).join(lines)))}</error>")
    out = "\n".join(_verdict_line(v) for v in verdicts)
    return d["outcome"], (f"{head}{body}<system-out>{escape(_clean(out, 4 * MAX_TEXT))}"
                          f"</system-out></testcase>\n")


def write_junit(run_dir: str | Path, out: str | Path) -> dict[str, int]:
    """Write the run's JUnit XML to ``out``; return the counts (tests, failures, errors)."""
    run_dir, out = Path(run_dir), Path(out)
    if not (run_dir / JOURNAL).is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no {JOURNAL})")
    meta = read_meta(run_dir)
    suite = meta.get("suite", {})
    name = f"{suite.get('name', 'harness')} v{suite.get('version', '?')}"
    counts = {"tests": 0, "failures": 0, "errors": 0}
    seconds = 0.0
    with tempfile.TemporaryFile("w+", encoding="utf-8") as cases:
        for entry in iter_journal(run_dir):
            outcome, xml = _case(entry, suite.get("name", "harness"))
            counts["tests"] += 1
            counts["failures"] += outcome == "fail"
            counts["errors"] += outcome == "error"
            seconds += sum(v["latency_s"] or 0.0 for v in entry["decision"]["verdicts"])
            cases.write(xml)
        cases.seek(0)
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        with tmp.open("w", encoding="utf-8") as fh:
            fh.write('<?xml version="1.0" encoding="UTF-8"?>\n')
            attrs = (f"name={_attr(name)} tests=\"{counts['tests']}\" "
                     f"failures=\"{counts['failures']}\" errors=\"{counts['errors']}\" "
                     f"skipped=\"0\" time=\"{seconds:.6f}\"")
            fh.write(f"<testsuites {attrs}>\n<testsuite {attrs} "
                     f"timestamp={_attr(meta.get('started', ''))}>\n")
            shutil.copyfileobj(cases, fh)
            fh.write("</testsuite>\n</testsuites>\n")
        tmp.replace(out)
    return counts
