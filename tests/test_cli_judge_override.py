"""`--judge`: a model override keeps the suite judge's endpoint; a mapping gives its own."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from testutil import chat, write_jsonl, write_suite

sys.path.insert(0, str(Path(__file__).resolve().parent / "judges"))

from chat_server import ChatServer  # noqa: E402

from harness.judges.override import apply_override, parse_override  # noqa: E402


def _suite(tmp_path: Path, server: ChatServer) -> Path:
    return write_suite(tmp_path / "suite.yaml", f"""\
name: judged
judge:
  name: openai/suite-model
  base_url: {server.base_url}
  api_key_env: OVERRIDE_TEST_KEY
  price_in_per_mtok: 5
criteria:
  - name: polite
    kind: llm_judge
    rubric: "Polite? {{{{ last_assistant }}}}"
""")


@pytest.fixture
def corpus(tmp_path: Path) -> Path:
    return write_jsonl(tmp_path / "in.jsonl", [chat("hi", "hello there")])


def test_a_model_override_keeps_the_suite_endpoint_and_key(
        tmp_path: Path, corpus: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVERRIDE_TEST_KEY", "the-suite-key")
    with ChatServer() as server:
        code, _, err = cli("run", _suite(tmp_path, server), corpus, "-o", tmp_path / "run",
                           "--judge", "openai/other-model", "--no-report")
    assert code == 0, err
    assert [r["model"] for r in server.requests] == ["other-model"]
    assert server.headers[0]["authorization"] == "Bearer the-suite-key"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["passed"] == 1


def test_a_mapping_override_gives_its_own_endpoint(
        tmp_path: Path, corpus: Path, cli, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OVERRIDE_TEST_KEY", "the-suite-key")
    with ChatServer() as suite_server, \
            ChatServer(reply=lambda req: "Rude.\nVERDICT: FAIL") as other:
        override = json.dumps({"model": "openai/mapped", "base_url": other.base_url})
        code, _, err = cli("run", _suite(tmp_path, suite_server), corpus, "-o",
                           tmp_path / "run", "--judge", override, "--no-report")
    assert code == 0, err
    assert suite_server.requests == []
    assert [r["model"] for r in other.requests] == ["mapped"]
    # the suite's api_key_env still applies: only base_url was overridden
    assert other.headers[0]["authorization"] == "Bearer the-suite-key"
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert summary["failed"] == 1


def test_the_override_resolution() -> None:
    suite = {"name": "openai/a", "base_url": "http://x/v1", "api_key_env": "K",
             "max_concurrency": 8, "price_in_per_mtok": 1.0}
    # another model of the same backend: endpoint and runner settings kept, prices dropped
    assert apply_override("openai/b", [suite]) == {
        "name": "openai/b", "base_url": "http://x/v1", "api_key_env": "K", "max_concurrency": 8}
    # the same model: every option kept
    assert apply_override("openai/a", ["openai/z", suite]) == suite
    # another backend: nothing kept
    assert apply_override("anthropic/c", [suite]) == {"name": "anthropic/c"}
    # the override's own keys win; YAML or JSON; `model` for `name`
    assert apply_override("{name: openai/b, base_url: 'http://y/v1'}", [suite])["base_url"] \
        == "http://y/v1"
    assert parse_override('{"model": "openai/b"}') == {"name": "openai/b"}
    assert parse_override("name: openai/b\nmax_concurrency: 2") == {
        "name": "openai/b", "max_concurrency": 2}
    assert apply_override("openai/b", []) == {"name": "openai/b"}


@pytest.mark.parametrize(("value", "says"), [
    ("{name: [", "neither PREFIX/MODEL nor a YAML/JSON mapping"),
    ("{base_url: 'http://y'}", "needs `name: PREFIX/MODEL`"),
    ('{"name": "openai/a", "model": "openai/b"}', "not both"),
])
def test_a_bad_override_is_a_clear_usage_error(
        value: str, says: str, tmp_path: Path, corpus: Path, cli) -> None:
    with ChatServer() as server:
        code, _, err = cli("run", _suite(tmp_path, server), corpus, "-o", tmp_path / "run",
                           "--judge", value)
    assert code == 2 and says in err and server.requests == []
