"""A generated corpus and suite whose decisions by the old (batch) engine are saved as a fixture.

``python tests/core_corpus.py OUT_DIR`` writes ``corpus.jsonl`` (3,000 records: OpenAI
chat, ShareGPT, HH-RLHF pairs, broken lines) and ``suite.yaml`` + ``checks.py`` into OUT_DIR.
The same function makes the corpus in the test, so only the decisions are stored.
"""

from __future__ import annotations

import json
import random
import sys
from pathlib import Path

SUITE = """\
name: core-fixture
version: "1"
threshold: 0.5
criteria:
  - name: no_boilerplate
    kind: regex
    pattern: "as an ai (language )?model"
    flags: [IGNORECASE]
    expect: absent
  - name: no_secret
    kind: regex
    pattern: "sk-[A-Za-z0-9]{20,}"
    expect: absent
    target: all
  - name: per_turn_polite
    kind: regex
    pattern: "\\\\b(stupid|idiot)\\\\b"
    expect: absent
    scope: message
    target: last_assistant
  - name: ends_with_answer
    kind: python
    function: checks:ends_with_assistant
  - name: concise
    kind: python
    function: checks:conciseness
    gate: false
    weight: 2
  - name: shouty
    kind: python
    function: checks:not_shouting
    gate: false
"""

CHECKS = '''\
from harness import Transcript


def ends_with_assistant(transcript: Transcript) -> bool:
    last = transcript.messages[-1]
    return last.role == "assistant" and bool(last.content.strip())


def conciseness(transcript: Transcript) -> float:
    answer = transcript.last_assistant()
    return 0.0 if answer is None else max(0.0, 1.0 - len(answer.content) / 400)


def not_shouting(transcript: Transcript) -> float:
    answer = transcript.last_assistant()
    if answer is None:
        raise ValueError("no assistant message")
    letters = [c for c in answer.content if c.isalpha()]
    return 1.0 - sum(c.isupper() for c in letters) / max(len(letters), 1)
'''

WORDS = ("the", "answer", "is", "simple", "keep", "going", "sleep", "water", "code", "python",
         "list", "sorted", "value", "error", "check", "result", "because")
BAD = ("As an AI language model", "sk-" + "a" * 24, "you are stupid", "THIS IS LOUD")


def _text(rng: random.Random) -> str:
    words = [rng.choice(WORDS) for _ in range(rng.randint(1, 60))]
    if rng.random() < 0.12:
        words.insert(rng.randint(0, len(words)), rng.choice(BAD))
    return " ".join(words)


def records(n: int = 3000, seed: int = 7) -> list[str]:
    """Lines of the corpus (JSON text, some deliberately broken)."""
    rng = random.Random(seed)
    lines = []
    for i in range(n):
        r = rng.random()
        turns = rng.randint(1, 3)
        if r < 0.03:
            lines.append(rng.choice(['{"messages": [', '{"conversations": 3}', "[]",
                                     '{"messages": [{"role": "narrator", "content": "x"}]}']))
        elif r < 0.15:
            chosen = "".join(f"\n\nHuman: {_text(rng)}\n\nAssistant: {_text(rng)}"
                             for _ in range(turns))
            rejected = "".join(f"\n\nHuman: {_text(rng)}\n\nAssistant: {_text(rng)}"
                               for _ in range(turns))
            lines.append(json.dumps({"chosen": chosen, "rejected": rejected}))
        elif r < 0.3:
            conv = []
            for _ in range(turns):
                conv += [{"from": "human", "value": _text(rng)},
                         {"from": "gpt", "value": _text(rng)}]
            if rng.random() < 0.1:
                conv.pop()
            lines.append(json.dumps({"id": f"sg-{i}", "conversations": conv}))
        else:
            msgs = [{"role": "system", "content": "Be brief."}] if rng.random() < 0.3 else []
            for _ in range(turns):
                msgs += [{"role": "user", "content": _text(rng)},
                         {"role": "assistant", "content": _text(rng)}]
            if rng.random() < 0.05:
                msgs.append({"role": "user", "content": "and?"})
            if rng.random() < 0.03:
                msgs[-1]["content"] = "  "
            lines.append(json.dumps({"id": f"chat-{i}", "messages": msgs}))
    return lines


def write(out: Path, n: int = 3000) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    (out / "corpus.jsonl").write_text("\n".join(records(n)) + "\n", encoding="utf-8")
    (out / "suite.yaml").write_text(SUITE, encoding="utf-8")
    (out / "checks.py").write_text(CHECKS, encoding="utf-8")
    return out


def summarise(decision: dict) -> dict:
    """What must stay identical across engines: outcome, score and every verdict's result."""
    return {
        "id": decision["transcript_id"].rsplit("/", 1)[-1],
        "source": decision["source"].rsplit("/", 1)[-1],
        "outcome": decision["outcome"], "failed": decision["failed"],
        "errored": decision["errored"],
        "score": None if decision["score"] is None else round(decision["score"], 9),
        "verdicts": [[v["criterion"], v["outcome"], v["message_index"],
                      None if v["score"] is None else round(v["score"], 9)]
                     for v in decision["verdicts"]],
    }


if __name__ == "__main__":
    write(Path(sys.argv[1]))
