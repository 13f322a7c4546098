"""An ``llm_judge`` with ``rubrics:`` under the pytest plugin: one item per rubric, and the
judge asked once per transcript for all of them, in either mode."""

from __future__ import annotations

import re
import sys
from pathlib import Path

import pytest
from pytest_plugin_helpers import openai_record, outcomes_by_name, write_jsonl

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "judges"))

from chat_server import ChatServer  # noqa: E402


def answer(request: dict) -> str:
    """``long`` fails an answer of more than three words; ``kind`` passes all."""
    system, user = (m["content"] for m in request["messages"])
    quoted = re.search(r"<<<TRANSCRIPT-\w+>>>\n(.*?)\n<<<END-TRANSCRIPT", user, re.S)
    words = len(quoted.group(1).split())
    verdicts = {"long": "FAIL" if words > 3 else "PASS", "kind": "PASS"}
    asked = re.findall(r"^VERDICT ([\w-]+): <label>$", system, re.M)
    return "Checked.\n" + "\n".join(f"VERDICT {name}: {verdicts[name]}" for name in asked)


@pytest.mark.parametrize("mode", ["transcript", "criterion"])
def test_one_item_per_rubric_and_one_call_per_transcript(pytester, mode):
    with ChatServer(reply=answer) as server:
        pytester.makefile(".yaml", suite=f"""\
name: judged
judge: {{name: openai/j, base_url: "{server.base_url}"}}
criteria:
  - name: q
    kind: llm_judge
    min_pass_rate: 0.5
    rubrics:
      long: "Is it at most three words? {{{{ last_assistant }}}}"
      kind: "Is it kind? {{{{ last_assistant }}}}"
""")
        corpus = write_jsonl(pytester.path / "c.jsonl", [
            openai_record("a", "q", "Yes."),
            openai_record("b", "q", "This answer is far too long.")])
        result = pytester.runpytest("--review-suite=suite.yaml", f"--transcripts={corpus}",
                                    f"--review-mode={mode}", "--review-out=out", "-v")
        assert server.completions == 2  # one call per transcript answers both rubrics
    # (pytest's verbose line prints a dot of an item's name as `::`: q::long[b])
    found = {k.removeprefix("suite.yaml::").replace("::", "."): v
             for k, v in outcomes_by_name(result).items() if k.startswith("suite.yaml::")}
    if mode == "criterion":
        assert found == {"q.long": "PASSED", "q.kind": "PASSED"}  # 50% >= min_pass_rate
    else:
        # a gate: b fails q.long, and q.kind (answered by the same call) is not skipped
        assert found == {"q.long[a]": "PASSED", "q.long[b]": "FAILED",
                         "q.kind[a]": "PASSED", "q.kind[b]": "PASSED"}
