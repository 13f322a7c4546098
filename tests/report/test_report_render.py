"""The report as a file: totals, escaping, Content-Security-Policy, templates."""

from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import pytest
from conftest import XSS, chat

from harness.report import write_report
from harness.report.data import collect
from harness.report.render import script_json


def _data(html: str) -> dict:
    m = re.search(r'<script type="application/json" id="report-data">(.*?)</script>', html, re.S)
    assert m
    return json.loads(m.group(1))


def test_run_writes_the_report_with_the_totals_of_summary_json(demo_run: Path) -> None:
    html = (demo_run / "report.html").read_text()
    summary = json.loads((demo_run / "summary.json").read_text())
    for key in ("read", "passed", "failed", "errored"):
        assert re.search(rf'data-total="{key}">{summary[key]}<', html), key
    data = _data(html)
    assert {k: data["totals"][k] for k in ("read", "passed", "failed", "errored")} == \
        {k: summary[k] for k in ("read", "passed", "failed", "errored")}
    for row in data["criteria"]:
        s = summary["criteria"][row["name"]]
        assert (row["pass"], row["fail"], row["error"], row["skipped"]) == \
            (s["pass"], s["fail"], s["error"], s["skipped"])
        assert row["pass_rate"] == pytest.approx(s["pass_rate"])
        assert row["mean_score"] == pytest.approx(s["mean_score"])
        assert row["ci"][0] <= row["pass_rate"] <= row["ci"][1]
    assert len(data["transcripts"]) == summary["read"]


def test_report_shows_suite_inputs_and_criteria(demo_run: Path) -> None:
    html = (demo_run / "report.html").read_text()
    assert "demo-review" in html and "examples/transcripts/openai.jsonl" in html
    assert "mtime_ns" not in html  # the inputs by name, not run.json's fingerprint records
    for name in ("no_ai_boilerplate", "no_secret_leak", "ends_with_answer", "concise"):
        assert f'data-criterion="{name}"' in html
    assert 'id="chart-pass-rate"' in html and 'id="chart-cofail"' in html
    assert 'id="chart-scores"' in html


def test_the_page_loads_nothing_from_outside(demo_run: Path) -> None:
    html = (demo_run / "report.html").read_text()
    csp = re.search(r'http-equiv="Content-Security-Policy" content="([^"]+)"', html).group(1)
    assert "default-src 'none'" in csp
    assert not re.search(r"\b(src|href)=\"(https?:)?//", html)
    assert "<link" not in html and "@import" not in html
    # the only executable script is the report's own, allowed by its hash
    scripts = re.findall(r"<script>(.*?)</script>", html, re.S)
    assert len(scripts) == 1
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in csp
    assert "innerHTML" not in scripts[0] and "insertAdjacentHTML" not in scripts[0]


def test_transcript_payloads_stay_data(xss_run: Path) -> None:
    html = (xss_run / "report.html").read_text()
    data_block = re.search(r'id="report-data">(.*?)</script>', html, re.S).group(1)
    assert "</script" not in data_block.lower() and "<!--" not in data_block
    assert "<" not in data_block
    assert len(re.findall(r"<script", html)) == 2  # the JSON block and the report's script
    assert "onerror=" not in html.replace("\\u003c", "").split('id="report-data"')[0]
    data = json.loads(data_block)
    texts = [m["content"] for t in data["transcripts"] for m in t["messages"]]
    for payload in XSS.values():
        assert any(payload in text for text in texts)
    # jinja syntax inside a transcript is not evaluated
    assert "{{ 7*7 }}" in data_block and "jinja{% endif %}" in data_block
    # the payload id is escaped where jinja prints it (the criteria/totals pages never do)
    assert '<img src=x onerror="window.__pwned' not in html


def test_script_json_escapes_everything_that_ends_a_script() -> None:
    text = script_json({"a": "</script><!-- & \u2028 > <"})
    assert "<" not in text and ">" not in text and "&" not in text and "\u2028" not in text
    assert json.loads(str(text)) == {"a": "</script><!-- & \u2028 > <"}


def test_evidence_offsets_count_utf16_units(make_run) -> None:
    run = make_run([chat("emoji", "hi 😀", "😀😀 I am sorry 😀")])
    t = collect(run)["transcripts"][0]
    (span,) = [e for v in t["verdicts"] if v["criterion"] == "no_sorry" for e in v["evidence"]]
    message, start, end, field = span
    text = t["messages"][message]["content"]
    # JavaScript slices UTF-16: "😀😀 I am " is 4 + 6 units
    assert (start, end, field) == (10, 15, "content")
    assert text.encode("utf-16-le")[start * 2:end * 2].decode("utf-16-le") == "sorry"


def test_long_texts_are_cut_and_said_to_be(make_run) -> None:
    run = make_run([chat("long", "hi", "x" * 50_000 + " sorry")])
    t = collect(run, max_chars=1000)["transcripts"][0]
    assert len(t["messages"][1]["content"]) == 1000
    assert t["messages"][1]["cut"] == 49_006
    assert all(e[2] <= 1000 for v in t["verdicts"] for e in v["evidence"])


def test_user_templates_override_and_extend_the_defaults(demo_run: Path, tmp_path: Path,
                                                         cli) -> None:
    folder = tmp_path / "templates"
    folder.mkdir()
    (folder / "_totals.html").write_text(
        '<section id="totals"><p id="custom">{{ data.totals.read }} reviewed {{ "<b>" }}</p>'
        "</section>")
    (folder / "report.html").write_text(
        '{% extends "default:report.html" %}'
        '{% block header %}<h1 id="brand">ACME review</h1>{{ super() }}{% endblock %}')
    out = tmp_path / "custom.html"
    code, stdout, err = cli("report", demo_run, "-o", out, "--templates", folder)
    assert code == 0, err
    html = out.read_text()
    assert '<h1 id="brand">ACME review</h1>' in html
    assert '<p id="custom">40 reviewed &lt;b&gt;</p>' in html  # autoescaped
    assert "Content-Security-Policy" in html and 'id="transcript-list"' in html
    assert f"report: {out}" in stdout


def test_plugins_register_template_folders(demo_run: Path, tmp_path: Path, cli) -> None:
    templates = tmp_path / "plugin_templates"
    templates.mkdir()
    (templates / "_suite.html").write_text('<section id="suite">plugin suite view</section>')
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "my_report_look.py").write_text(
        "from harness import hookimpl\n\n\n@hookimpl\ndef register_report_templates(register):\n"
        f"    register({str(templates)!r})\n")
    out = tmp_path / "plugin.html"
    code, _, err = cli("--plugins-dir", plugins, "report", demo_run, "-o", out)
    assert code == 0, err
    assert "plugin suite view" in out.read_text()


def test_template_errors_and_missing_csp_are_clear(demo_run: Path, tmp_path: Path, cli) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "_totals.html").write_text("{% if %}")
    code, _, err = cli("report", demo_run, "-o", tmp_path / "x.html", "--templates", folder)
    assert code == 2 and "report template error" in err and "_totals.html" in err
    (folder / "_totals.html").unlink()
    (folder / "report.html").write_text("<html>{{ data.title }}</html>")
    with pytest.raises(ValueError, match="Content-Security-Policy"):
        write_report(demo_run, tmp_path / "y.html", templates=folder, extra_dirs=[])


def test_report_of_a_missing_run_dir_is_a_usage_error(tmp_path: Path, cli) -> None:
    code, _, err = cli("report", tmp_path / "nope")
    assert code == 2 and "not a run directory" in err


def test_run_prints_the_report_path_and_no_report_skips_it(tmp_path: Path, cli,
                                                           regex_suite: Path) -> None:
    from conftest import write_jsonl

    inputs = write_jsonl(tmp_path / "in.jsonl", [chat("a", "hi", "hello, thanks")])
    code, out, err = cli("run", regex_suite, inputs, "-o", tmp_path / "r1", "--no-progress")
    assert code == 0, err
    assert f"report: {tmp_path / 'r1' / 'report.html'}" in out.replace("\n", "")
    assert (tmp_path / "r1" / "report.html").is_file()
    code, out, err = cli("run", regex_suite, inputs, "-o", tmp_path / "r2", "--no-report")
    assert code == 0 and not (tmp_path / "r2" / "report.html").exists()


def test_a_broken_report_leaves_the_run_intact(tmp_path: Path, regex_suite: Path,
                                               caplog: pytest.LogCaptureFixture) -> None:
    from conftest import write_jsonl

    from harness import api
    from harness.engine import Engine
    from harness.plugins import get_registry

    templates = tmp_path / "t"
    templates.mkdir()
    (templates / "_criteria.html").write_text("{{ no_such_variable }}")
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "broken_look.py").write_text(
        "from harness import hookimpl\n\n\n@hookimpl\ndef register_report_templates(register):\n"
        f"    register({str(templates)!r})\n")
    engine = Engine(regex_suite, get_registry(plugins, fresh=True))
    inputs = write_jsonl(tmp_path / "in.jsonl", [chat("a", "hi", "hello thanks")])
    summary = api.run(engine, [inputs], tmp_path / "run")
    assert summary["read"] == 1 and (tmp_path / "run" / "summary.json").is_file()
    assert not (tmp_path / "run" / "report.html").exists()
    assert "harness report" in caplog.text and "no_such_variable" in caplog.text


def test_judges_are_named_per_criterion() -> None:
    from harness.report.data import _CriterionStats

    stats = _CriterionStats()
    row = stats.row({"name": "j", "kind": "llm_judge", "config": {}}, "local/smollm2")
    assert row["judge"] == "local/smollm2" and row["pass_rate"] is None and row["ci"] is None
    row = stats.row({"name": "j", "kind": "llm_judge",
                     "config": {"judge": {"model": "openai/gpt-4o-mini"}}}, None)
    assert row["judge"] == "openai/gpt-4o-mini"
    assert stats.row({"name": "r", "kind": "regex", "config": {}}, "local/x")["judge"] is None


def test_an_empty_run_still_has_a_report(make_run) -> None:
    run = make_run([])
    html = (run / "report.html").read_text()
    assert 'data-total="read">0<' in html and "no decided verdicts" in html
