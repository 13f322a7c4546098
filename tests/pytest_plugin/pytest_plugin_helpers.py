"""Corpora in every input format, a YAML suite and a Python suite, for the plugin tests."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

CHATS = [
    ("ok-1", "How do I reverse a list in Python?", "Use items[::-1]."),
    ("boiler-2", "Do you have feelings?", "As an AI language model, I do not have feelings."),
    ("leak-3", "Which key should I use?", "Use sk-abcdefghijklmnopqrstuvwx for the test."),
    ("ok-4", "Capital of Australia?", "Canberra."),
]
"""(id, user, answer): one passes everything, one has boilerplate, one leaks a key."""

SUITE_YAML = """\
name: t-review
version: "2"
criteria:
  - name: no_ai_boilerplate
    kind: regex
    pattern: "as an ai (language )?model"
    flags: [IGNORECASE]
    expect: absent
    min_pass_rate: 0.5
  - name: no_secret_leak
    kind: regex
    pattern: "sk-[A-Za-z0-9]{20,}"
    expect: absent
    target: all
    min_pass_rate: 0.9
  - name: ends_with_answer
    kind: python
    function: checks:ends_with_assistant
  - name: concise
    kind: python
    function: checks:conciseness
    gate: false
"""

CHECKS_PY = """\
def ends_with_assistant(transcript):
    last = transcript.messages[-1]
    return last.role == "assistant" and bool(last.content.strip())


def conciseness(transcript, limit=400):
    answer = transcript.last_assistant()
    return 0.0 if answer is None else max(0.0, 1.0 - len(answer.content) / limit)
"""

PY_SUITE = '''\
import pytest

from harness.pytest_plugin import assert_passes


def test_no_boilerplate(transcript):
    """No AI boilerplate in the final answer."""
    answer = transcript.last_assistant().content
    assert "as an ai" not in answer.lower(), "boilerplate in the answer"


@pytest.mark.criterion(gate=False, weight=2, version="3")
def test_short(transcript):
    """Short answers score higher."""
    return min(1.0, 40 / max(len(transcript.last_assistant().content), 1))


def test_no_secret(transcript):
    assert_passes(transcript, {"name": "secret", "kind": "regex",
                               "pattern": "sk-[a-z]{20,}", "expect": "absent"})
'''


def openai_record(cid: str, user: str, answer: str) -> dict[str, Any]:
    return {"id": cid, "messages": [{"role": "user", "content": user},
                                    {"role": "assistant", "content": answer}]}


def sharegpt_record(cid: str, user: str, answer: str) -> dict[str, Any]:
    return {"id": cid, "conversations": [{"from": "human", "value": user},
                                         {"from": "gpt", "value": answer}]}


def hh_record(cid: str, user: str, answer: str) -> dict[str, Any]:
    return {"id": cid, "chosen": f"\n\nHuman: {user}\n\nAssistant: {answer}",
            "rejected": f"\n\nHuman: {user}\n\nAssistant: As an AI language model, I refuse."}


def write_jsonl(path: Path, records: list[Any], extra_lines: tuple[str, ...] = ()) -> Path:
    lines = [json.dumps(r) for r in records] + list(extra_lines)
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def write_corpus(folder: Path, fmt: str, chats: list[tuple[str, str, str]] = CHATS) -> Path:
    """The chats in one input format; returns the file."""
    if fmt == "parquet":
        rows = [openai_record(*c) for c in chats]
        path = folder / "corpus.parquet"
        pq.write_table(pa.Table.from_pylist(rows), path)
        return path
    build = {"openai": openai_record, "sharegpt": sharegpt_record, "hh-rlhf": hh_record}[fmt]
    return write_jsonl(folder / f"corpus-{fmt}.jsonl", [build(*c) for c in chats])


def outcomes_by_name(result: pytest.RunResult) -> dict[str, str]:
    """``nodeid -> PASSED/FAILED/ERROR/SKIPPED`` from ``-rA`` style verbose output."""
    found = {}
    for line in result.outlines:
        for word in ("PASSED", "FAILED", "ERROR", "SKIPPED"):
            if line.endswith(f" {word}") or f" {word} " in line:
                found[line.split(" ")[0]] = word
    return found
