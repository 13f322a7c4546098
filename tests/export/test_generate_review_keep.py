"""The generate -> review -> keep loop (examples/generate_review_keep.py), against a real local
chat-completions server, and (slow) against the embedded SmolLM2 model."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest
from exportutil import EXAMPLES, read_jsonl, write_jsonl


@pytest.fixture
def completions_server(completions_server):
    """The conftest server, for tests that talk to it through the openai SDK."""
    pytest.importorskip("openai")
    return completions_server


def load_loop():
    spec = importlib.util.spec_from_file_location("generate_review_keep",
                                                  EXAMPLES / "generate_review_keep.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def scripted(request: dict) -> str:
    """Hedges on the tea prompt, answers the others."""
    question = request["messages"][-1]["content"]
    if "tea" in question:
        return "As an AI language model, I have never tasted tea."
    return f"A short, direct answer to: {question}"


def test_keeps_passing_candidates_until_the_target(completions_server, tmp_path, capsys):
    server = completions_server(scripted)
    out, report = tmp_path / "kept.jsonl", tmp_path / "report.json"
    code = load_loop().main([
        str(EXAMPLES / "prompts.jsonl"), "--base-url", server.url, "--model", "gen-1",
        "--target", "3", "--per-prompt", "1", "--batch-size", "2", "-o", str(out),
        "--report", str(report), "--candidates-out", str(tmp_path / "cands.jsonl")])
    assert code == 0
    # sleep (kept), tea (rejected), bike (kept), plants (kept): then generation stops
    assert len(server.requests) == 4
    assert server.requests[0]["model"] == "gen-1" and server.requests[0]["seed"] == 0
    kept = read_jsonl(out)
    assert [k["metadata"]["prompt_id"] for k in kept] == ["sleep", "bike", "plants"]
    assert kept[0]["messages"][-1] == {"role": "assistant", "weight": 1,
                                       "content": "A short, direct answer to: How can I fall "
                                                  "asleep faster? Give two tips."}
    assert kept[0]["metadata"]["suite"] == "generate-review-keep"
    assert kept[0]["metadata"]["generator"] == "openai/gen-1"
    data = json.loads(report.read_text())
    assert (data["generated"], data["kept"], data["acceptance_rate"]) == (4, 3, 0.75)
    assert data["criteria"]["no_ai_boilerplate"]["acceptance_rate"] == 0.75
    assert data["criteria"]["complete_answer"]["acceptance_rate"] == 1.0
    printed = capsys.readouterr().out
    assert "generated 4, kept 3 (acceptance 75%)" in printed and "no_ai_boilerplate" in printed
    assert len(read_jsonl(tmp_path / "cands.jsonl")) == 4


def test_candidates_run_out_before_the_target(completions_server, tmp_path):
    server = completions_server(lambda req: "As an AI model, no.")
    out = tmp_path / "kept.jsonl"
    code = load_loop().main([
        str(EXAMPLES / "prompts.jsonl"), "--base-url", server.url, "--model", "m",
        "--target", "1", "--max-candidates", "3", "-o", str(out)])
    assert code == 1
    assert len(server.requests) == 3 and out.read_text() == ""


def test_rounds_use_new_seeds_and_candidates_feed_pairs(completions_server, tmp_path):
    """Every candidate kept aside can be reviewed again and exported as preference pairs."""
    server = completions_server(
        lambda req: "As an AI language model: no." if req["seed"] == 0 else "Sure: here it is.")
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"id": "x", "prompt": "Say something."}])
    cands = tmp_path / "cands.jsonl"
    code = load_loop().main([str(prompts), "--base-url", server.url, "--model", "m",
                             "--target", "1", "--per-prompt", "2", "--batch-size", "1",
                             "-o", str(tmp_path / "kept.jsonl"), "--candidates-out", str(cands)])
    assert code == 0 and [r["seed"] for r in server.requests] == [0, 1]
    from exportutil import review_into

    from harness.export import export_run

    review_into(tmp_path / "run", EXAMPLES / "loop_suite.yaml", [cands])
    export_run(tmp_path / "run", tmp_path / "pairs.jsonl", "pairs")
    (pair,) = read_jsonl(tmp_path / "pairs.jsonl")
    assert pair["chosen"][0]["content"] == "Sure: here it is."
    assert pair["rejected"][0]["content"].startswith("As an AI language model")


def test_a_bad_prompt_file_is_a_usage_error(tmp_path, capsys):
    bad = tmp_path / "p.jsonl"
    bad.write_text('{"id": "a", "prompt": "fine"}\n{"id": "b"}\n')
    code = load_loop().main([str(bad), "--base-url", "http://127.0.0.1:9/v1", "--model", "m",
                             "--target", "1", "-o", str(tmp_path / "k.jsonl")])
    assert code == 2 and f"{bad}:2" in capsys.readouterr().err


@pytest.mark.slow
def test_the_embedded_model_offline(tmp_path, monkeypatch):
    chat_model = pytest.importorskip("harness_local_models.chat_model")
    try:
        chat_model.find_gguf()
    except chat_model.ModelNotInstalledError as exc:
        pytest.skip(str(exc))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HARNESS_TORCH_THREADS", "1")
    out, report = tmp_path / "kept.jsonl", tmp_path / "r.json"
    code = load_loop().main([
        str(EXAMPLES / "prompts.jsonl"), "--suite", str(EXAMPLES / "suite.yaml"),
        "--target", "2", "--per-prompt", "1", "--max-new-tokens", "32",
        "--temperature", "0", "-o", str(out), "--report", str(report)])
    data = json.loads(report.read_text())
    assert code == 0 and data["generator"] == "local/smollm2" and data["kept"] == 2
    kept = read_jsonl(out)
    assert all(k["messages"][-1]["content"].strip() for k in kept)
    assert all(k["metadata"]["tokens_out"] <= 32 for k in kept)


def test_the_shipped_prompts_parse():
    lines = [json.loads(x) for x in Path(EXAMPLES / "prompts.jsonl").read_text().splitlines()]
    assert len(lines) == 8 and all(r["messages"][-1]["role"] == "user" for r in lines)
