"""Provenance from judge verdicts (a real llm_judge on a local endpoint, and a judge-like
plugin), and when a failing transcript may not be masked."""

from __future__ import annotations

import hashlib
import json
import sys
import textwrap
from pathlib import Path

import pytest
from exportutil import read_jsonl, review_into, write_jsonl

import harness
from harness.engine import Engine
from harness.export import export_run
from harness.plugins import get_registry
from harness.report.data import collect

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "judges"))

from chat_server import ChatServer  # noqa: E402

PLUGIN = '''
from harness import Criterion, CriterionConfig, Verdict, hookimpl


class ScoredConfig(CriterionConfig):
    rubric: str = ""
    judge: str | None = None
    report_details: bool = True
    explode_on: str | None = None


class Scored(Criterion):
    """Probability that the last assistant turn is polite (says please), like a judge would."""

    kind = "scored"
    Config = ScoredConfig
    cost = 3
    expensive = True

    def evaluate(self, transcript):
        text = transcript.last_assistant().content
        if self.config.explode_on and self.config.explode_on in text:
            raise RuntimeError("backend down")
        p = 0.9 if "please" in text.lower() else 0.2
        details = ({"judge": "openai/test-judge", "model": "test-judge-0613",
                    "rubric_sha256": "r-123"} if self.config.report_details else {})
        return Verdict(outcome="pass" if p >= 0.5 else "fail", score=p, details=details)


@hookimpl
def register_criterion_kinds(register):
    register(Scored)
'''


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    folder = tmp_path / "plugins"
    folder.mkdir()
    (folder / "scored_kind.py").write_text(PLUGIN)
    return folder


def suite(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(textwrap.dedent(body))
    return path


def chat(tid: str, *turns: str) -> dict:
    roles = ["user", "assistant"]
    return {"id": tid, "messages": [{"role": roles[i % 2], "content": t}
                                    for i, t in enumerate(turns)]}


def test_judge_model_rubric_hash_and_probability_are_exported(tmp_path, plugins):
    s = suite(tmp_path, """
        name: polite
        version: "7"
        judge: local/smollm2
        criteria:
          - name: polite
            kind: scored
            version: "2"
            rubric: "Is the answer polite?"
          - name: polite_by_config
            kind: scored
            gate: false
            rubric: "Is it polite, really?"
            report_details: false
    """)
    inputs = write_jsonl(tmp_path / "in.jsonl", [chat("a", "Pass the salt", "Here, please.")])
    review_into(tmp_path / "run", s, [inputs], plugins_dir=plugins)
    out = tmp_path / "t.jsonl"
    export_run(tmp_path / "run", out, "openai", {"weight_by": "polite"})
    (row,) = read_jsonl(out)
    meta = row["metadata"]
    assert meta["suite_version"] == "7"
    assert meta["criterion_versions"] == {"polite": "2", "polite_by_config": "1"}
    assert meta["criterion_scores"] == {"polite": 0.9, "polite_by_config": 0.9}
    assert meta["weight"] == 0.9
    by_name = {c["name"]: c for c in meta["criteria"]}
    assert by_name["polite"]["judge_model"] == "openai/test-judge-0613"  # what ran
    assert by_name["polite"]["rubric_hash"] == "r-123"
    # nothing in the verdict: the criterion's config and the suite's judge tell
    assert by_name["polite_by_config"]["judge_model"] == "local/smollm2"
    expected = hashlib.sha256(b"Is it polite, really?").hexdigest()[:16]
    assert by_name["polite_by_config"]["rubric_hash"] == expected
    assert meta["judge_models"] == ["local/smollm2", "openai/test-judge-0613"]
    assert meta["rubric_hashes"] == sorted(["r-123", expected])


JUDGE_SUITE = """\
name: judged
judge: openai/configured-model
criteria:
  - name: polite
    kind: llm_judge
    judge: {{name: openai/asked-model, base_url: "{base_url}"}}
    rubric: "Is the answer polite? {{{{ last_assistant }}}}"
"""


def test_a_real_judge_run_records_what_ran_and_exports_it(tmp_path):
    reply = "It says please.\nVERDICT: PASS"
    with ChatServer(reply=lambda req: reply, served_model="served-model-2024") as server:
        suite = tmp_path / "suite.yaml"
        suite.write_text(JUDGE_SUITE.format(base_url=server.base_url))
        inputs = write_jsonl(tmp_path / "in.jsonl", [chat("a", "Pass the salt", "Here, please.")])
        with Engine(suite, get_registry(), cache_dir=tmp_path / "run") as engine:
            harness.run(engine, [inputs], tmp_path / "run", report=False)
        assert server.completions == 1

    verdict = json.loads((tmp_path / "run" / "journal.jsonl").read_text().splitlines()[0])
    details = next(v for v in verdict["decision"]["verdicts"] if v["criterion"] == "polite")
    details = details["details"]
    rubric = hashlib.sha256(b"Is the answer polite? {{ last_assistant }}").hexdigest()[:16]
    assert details["judge"] == "openai/asked-model"
    assert details["model"] == "served-model-2024"  # what the endpoint reported
    assert details["rubric_sha256"] == rubric

    export_run(tmp_path / "run", tmp_path / "t.jsonl", "openai")
    (row,) = read_jsonl(tmp_path / "t.jsonl")
    (criterion,) = row["metadata"]["criteria"]
    assert criterion["judge_model"] == "openai/served-model-2024"  # not the suite's config
    assert criterion["rubric_hash"] == rubric
    assert row["metadata"]["judge_models"] == ["openai/served-model-2024"]

    (row,) = collect(tmp_path / "run")["criteria"]
    assert row["judge"] == "openai/served-model-2024"  # the report's judge column


MASK_SUITE = """
    name: masks
    criteria:
      - name: no_shouting
        kind: regex
        scope: message
        pattern: "[A-Z]{5,}"
        expect: absent
        target: last_assistant
      - name: polite
        kind: scored
        explode_on: "BOOM"
"""


def test_a_failed_message_gate_does_not_skip_the_judges_masking_needs(tmp_path, plugins):
    s = suite(tmp_path, MASK_SUITE)
    inputs = write_jsonl(tmp_path / "in.jsonl", [
        chat("fixed", "hi", "HELLO THERE", "No, not so loud.", "Sorry, hello please.")])
    review_into(tmp_path / "run", s, [inputs], plugins_dir=plugins)
    export_run(tmp_path / "run", tmp_path / "a.jsonl", "openai", {"on_fail": "mask"})
    (row,) = read_jsonl(tmp_path / "a.jsonl")
    assert [m.get("weight") for m in row["messages"]] == [None, 0, None, 1]
    assert row["metadata"]["criterion_scores"]["polite"] == 0.9


def test_errors_and_non_message_failures_are_never_masked(tmp_path, plugins):
    s = suite(tmp_path, MASK_SUITE)
    inputs = write_jsonl(tmp_path / "in.jsonl", [
        chat("errored", "hi", "LOUD NOISES", "No.", "BOOM please"),
        chat("rude", "hi", "go away"),
    ])
    review_into(tmp_path / "run", s, [inputs], plugins_dir=plugins, all_criteria=True)
    result = export_run(tmp_path / "run", tmp_path / "a.jsonl", "openai", {"on_fail": "mask"})
    assert result["examples"] == 0
    assert result["dropped"] == {"errored": 1, "failed (not on assistant messages)": 1}
