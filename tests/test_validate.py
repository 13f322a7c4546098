"""``harness validate``: the suite compiled, one prompt per judge shown, calls, tokens and cost
estimated; nothing is sent (a real local server counts what reaches it)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent / "judges"))

from chat_server import ChatServer  # noqa: E402
from testutil import chat, write_jsonl, write_suite  # noqa: E402


def test_validate_estimates_and_calls_nothing(tmp_path: Path, cli) -> None:
    with ChatServer() as server:
        suite = write_suite(tmp_path / "s.yaml", f"""\
name: v
judge: {{name: openai/m, base_url: {server.base_url}, price_in_per_mtok: 1000,
         price_out_per_mtok: 2000}}
criteria:
  - {{name: no_sorry, kind: regex, pattern: sorry, expect: absent}}
  - {{name: kind, kind: llm_judge, repeats: 2, max_tokens: 10,
     rubric: "Is it kind? {{{{ last_assistant }}}}"}}
""")
        data = write_jsonl(tmp_path / "in.jsonl", [chat("q", f"answer number {i}", id=f"t{i}")
                                                   for i in range(6)])
        code, out, err = cli("validate", suite, data)
        assert code == 0, err
        assert server.requests == []
    text = " ".join(out.split())
    assert "2 criteria compile; 1 ask a judge" in text
    assert "--- kind (openai/m), on t0:" in out and "answer number 0" in out
    row = next(line for line in out.splitlines() if line.startswith("│ kind"))
    cells = [c.strip() for c in row.strip("│").split("│")]
    assert cells[:3] == ["kind", "openai/m", "12"]  # 6 transcripts x 2 repeats
    assert cells[4] == "120" and float(cells[5]) > 0


def test_validate_says_a_suite_error_in_one_line(tmp_path: Path, cli) -> None:
    suite = write_suite(tmp_path / "s.yaml", "name: v\ncriteria:\n"
                        "  - {name: a, kind: regex, pattern: '(', expect: absent}\n")
    code, out, err = cli("validate", suite)
    assert code == 2 and "bad pattern" in err and len(err.strip().splitlines()) == 1


def test_validate_shows_one_call_for_the_rubrics_of_one_entry(tmp_path: Path, cli) -> None:
    with ChatServer() as server:
        suite = write_suite(tmp_path / "s.yaml", f"""\
name: v
judge: {{name: openai/m, base_url: {server.base_url}}}
criteria:
  - name: q
    kind: llm_judge
    max_tokens: 10
    rubrics:
      kind: "Is it kind? {{{{ last_assistant }}}}"
      short: "Is it short? {{{{ last_assistant }}}}"
""")
        data = write_jsonl(tmp_path / "in.jsonl", [chat("q", f"answer number {i}", id=f"t{i}")
                                                   for i in range(6)])
        code, out, err = cli("validate", suite, data)
        assert code == 0, err
        assert server.requests == []
    assert "2 criteria compile; 2 ask a judge" in " ".join(out.split())
    rows = [line for line in out.splitlines() if line.startswith("│ q")]
    assert len(rows) == 1  # one call per transcript answers both rubrics
    cells = [c.strip() for c in rows[0].strip("│").split("│")]
    assert cells[:3] == ["q (kind, short)", "openai/m", "6"]
    # the prompt shown is the one call's: both rubrics, the transcript quoted once
    shown = out.split("--- q (kind, short) (openai/m), on t0:")[1]
    assert "### Rubric `kind`" in shown and "### Rubric `short`" in shown
    assert "VERDICT kind: <label>\nVERDICT short: <label>" in shown
    assert shown.count("answer number 0") == 1
