"""What `harness correct` shows its supervisor: each failed criterion as its own rule, with its own
finding, and a judge's rubric in words (its template variables named, never raw `{{ ... }}`)."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

from chat_server import ChatServer
from correctutil import CORRECTIONS, REASON, RIGHT, is_supervisor
from testutil import write_jsonl

import harness
from harness.cli import main


def is_judge(request: dict[str, Any]) -> bool:
    return "VERDICT" in request["messages"][0]["content"] and not is_supervisor(request)


def reply(request: dict[str, Any]) -> str:
    if is_supervisor(request):
        return REASON
    if is_judge(request):
        rude = "398" in request["messages"][-1]["content"]
        return "Curt and wrong.\nVERDICT: FAIL" if rude else "Kind.\nVERDICT: PASS"
    return RIGHT


def test_two_failed_criteria_are_two_rules_and_the_rubric_is_not_a_template(tmp_path: Path):
    with ChatServer(reply=reply) as server:
        shutil.copy(CORRECTIONS / "tutor_checks.py", tmp_path)
        url = server.base_url
        suite = tmp_path / "suite.yaml"
        suite.write_text(f"""\
name: tutor
judge: {{name: openai/judge, base_url: '{url}'}}
generator: {{name: openai/gen, base_url: '{url}'}}
supervisor: {{name: openai/sup, base_url: '{url}'}}
criteria:
  - name: arithmetic_checks_out
    kind: python
    scope: message
    description: Every "a op b = c" the assistant turn states is true.
    function: tutor_checks:arithmetic_checks_out
  - name: polite
    kind: llm_judge
    scope: message
    description: The tutor answers kindly.
    rubric: |
      Is this reply kind to the student? The reply: {{{{ last_assistant }}}}
      {{% if last_user %}}The question: {{{{ last_user | trim }}}}{{% endif %}}
""")
        data = write_jsonl(tmp_path / "in.jsonl", [{"id": "t1", "messages": [
            {"role": "user", "content": "What is 17 × 24?"},
            {"role": "assistant", "content": "17 × 24 = 398, obviously."}]}])
        run = tmp_path / "run"
        summary = harness.run(harness.Engine(suite), [data], run, report=False)
        assert summary["failed"] == 1
        assert main(["correct", str(run), "-o", str(tmp_path / "fixed"), "--no-report"]) == 0
        [asked] = [r["messages"][1]["content"] for r in server.requests if is_supervisor(r)]
    assert "{{" not in asked and "{%" not in asked
    assert "The reply: [the assistant message under review]" in asked
    assert "The question: [the last user message]" in asked
    assert "The message broke 2 rules." in asked
    first, second = asked.split("Rule 1: ", 1)[1].split("Rule 2: ", 1)
    assert first.startswith("arithmetic_checks_out: Every")
    assert "The review's finding" in first and "Curt and wrong" not in first
    assert second.startswith("polite: The tutor answers kindly.")
    assert "Curt and wrong" in second
