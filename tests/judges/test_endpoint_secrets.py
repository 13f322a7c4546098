"""Secrets and endpoints: credentials in a URL are refused at load or redacted wherever a URL is
written; endpoints that authenticate with other headers or need query parameters are reached
with `headers` (values from environment variables, never written) and `query`."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from chat_server import ChatServer

from harness.judges.base import JudgeError
from harness.judges.openai_backend import OpenAIBackend
from harness.redact import redact_text, redact_url

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from testutil import chat, write_jsonl  # noqa: E402

PASSWORD = "hunter2-PASSWORD"
SIGNATURE = "s3cr3t-SIGNATURE"


def judge_suite(tmp_path: Path, judge: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(f"""\
name: endpoints
judge:
{judge}
criteria:
  - name: fine
    kind: llm_judge
    rubric: "Is this fine? {{{{ last_assistant }}}}"
""")
    return path


def every_file_text(folder: Path) -> str:
    return "\n".join(p.read_bytes().decode("utf-8", "replace")
                     for p in sorted(folder.rglob("*")) if p.is_file())


@pytest.mark.parametrize("url", [
    f"http://user:{PASSWORD}@127.0.0.1:9/v1",
    f"http://127.0.0.1:9/v1?api_key={PASSWORD}",
    f"http://127.0.0.1:9/v1?sig={PASSWORD}&api-version=2024",
])
def test_a_base_url_with_credentials_is_refused_at_load_without_showing_them(tmp_path, cli, url):
    suite = judge_suite(tmp_path, f"  name: openai/j\n  base_url: {url}")
    data = write_jsonl(tmp_path / "in.jsonl", [chat("hi", "hello")])
    code, out, err = cli("run", suite, data, "-o", tmp_path / "run", "--no-progress")
    assert code == 2
    assert "base_url" in err and "credentials" in err
    assert "api_key_env" in err and "headers" in err  # what to do instead
    assert PASSWORD not in err + out
    assert not (tmp_path / "run").exists() or PASSWORD not in every_file_text(tmp_path / "run")


def test_the_environment_base_url_is_checked_too(monkeypatch):
    monkeypatch.setenv("OPENAI_BASE_URL", f"https://bob:{PASSWORD}@gw.example/v1")
    with pytest.raises(JudgeError, match="credentials") as caught:
        OpenAIBackend("m", {})
    assert PASSWORD not in str(caught.value) and "OPENAI_BASE_URL" in str(caught.value)


def test_azure_style_endpoint_header_from_the_environment_and_query(tmp_path, cli,
                                                                    chat_server: ChatServer,
                                                                    monkeypatch):
    monkeypatch.setenv("AZURE_TEST_KEY", PASSWORD)
    monkeypatch.delenv("OPENAI_API_KEY", raising=False)
    suite = judge_suite(tmp_path, f"""\
  name: openai/gpt-4o-mini
  base_url: {chat_server.base_url}
  headers:
    api-key: AZURE_TEST_KEY
  query:
    api-version: "2024-10-21\"""")
    data = write_jsonl(tmp_path / "in.jsonl", [chat("hi", "hello"), chat("2+2?", "4")])
    code, _, err = cli("run", suite, data, "-o", tmp_path / "run", "--no-progress")
    assert code == 0, err
    assert chat_server.completions == 2
    assert all(h["api-key"] == PASSWORD for h in chat_server.headers)
    # the headers carry the authentication: no placeholder bearer key beside them
    assert all("authorization" not in h for h in chat_server.headers)
    assert all(p == "/v1/chat/completions?api-version=2024-10-21" for p in chat_server.paths)
    written = every_file_text(tmp_path / "run")
    assert PASSWORD not in written  # header values are read from the environment only
    assert "AZURE_TEST_KEY" in written and "2024-10-21" in written  # the settings are recorded


def test_a_header_whose_variable_is_not_set_is_a_clear_error(tmp_path, cli, chat_server):
    suite = judge_suite(tmp_path, f"""\
  name: openai/j
  base_url: {chat_server.base_url}
  headers: {{X-Gateway-Key: NO_SUCH_VARIABLE_FOR_THIS_TEST}}""")
    data = write_jsonl(tmp_path / "in.jsonl", [chat("hi", "hello")])
    code, _, err = cli("run", suite, data, "-o", tmp_path / "run", "--no-progress")
    assert code == 2
    assert "NO_SUCH_VARIABLE_FOR_THIS_TEST" in err and "X-Gateway-Key" in err
    assert chat_server.completions == 0


def test_a_secret_in_query_is_refused(tmp_path, cli, chat_server):
    suite = judge_suite(tmp_path, f"""\
  name: openai/j
  base_url: {chat_server.base_url}
  query: {{api_key: {PASSWORD}}}""")
    data = write_jsonl(tmp_path / "in.jsonl", [chat("hi", "hello")])
    code, _, err = cli("run", suite, data, "-o", tmp_path / "run", "--no-progress")
    assert code == 2 and "headers" in err and PASSWORD not in err


PLUGIN = '''
from harness.hookspecs import hookimpl
from harness.judges.base import JudgeBackend, JudgeResponse


class Gateway(JudgeBackend):
    """A judge whose endpoint takes its credentials in the URL (it says so itself)."""

    def __init__(self, model, options):
        self.name = "gateway/" + model
        self.url = options["base_url"]

    def identity(self):
        return {"name": self.name}

    async def complete(self, request):
        raise RuntimeError("cannot reach " + self.url + ": connection refused")


@hookimpl
def register_judge_backends(register):
    register("gateway", Gateway)
'''


def test_urls_written_to_run_json_report_and_errors_are_redacted(tmp_path, cli):
    """A plugin judge may accept credentials in its URL; harness never writes them."""
    plugins = tmp_path / "plugins"
    plugins.mkdir()
    (plugins / "gateway.py").write_text(PLUGIN)
    url = f"https://bob:{PASSWORD}@gw.example/v1?sig={SIGNATURE}&api-version=1"
    suite = judge_suite(tmp_path, f"  name: gateway/m\n  base_url: \"{url}\"\n  max_attempts: 1")
    data = write_jsonl(tmp_path / "in.jsonl", [chat("hi", "hello")])
    code, out, err = cli("--plugins-dir", plugins, "run", suite, data, "-o", tmp_path / "run",
                         "--no-progress")
    assert code in (0, 3, 4), err
    written = every_file_text(tmp_path / "run")
    for secret in (PASSWORD, SIGNATURE):
        assert secret not in written and secret not in out + err
    assert "https://***@gw.example/v1?sig=***&api-version=1" in (
        tmp_path / "run" / "run.json").read_text()
    assert "gw.example" in (tmp_path / "run" / "report.html").read_text()
    assert "cannot reach https://***@gw.example" in (tmp_path / "run" / "errors.jsonl").read_text()


def test_redaction_rules():
    assert redact_url("https://u:p@host:8443/v1?a=1&token=x#f") == \
        "https://***@host:8443/v1?a=1&token=***#f"
    assert redact_url("https://host/v1?api-version=2024-10-21") == \
        "https://host/v1?api-version=2024-10-21"
    assert redact_url("s3://bucket/key.jsonl?X-Amz-Signature=abc&X-Amz-Credential=def") == \
        "s3://bucket/key.jsonl?X-Amz-Signature=***&X-Amz-Credential=***"
    assert redact_text("GET http://a:b@h/x failed, see https://ok.example/p") == \
        "GET http://***@h/x failed, see https://ok.example/p"
    assert redact_text("no url here") == "no url here"
