"""Token distributions as targets (``--format distill``): one row per trained assistant turn.

A generator's per-token probabilities are a richer target than its sampled tokens. Each trained
assistant turn of a kept transcript (masked turns are context only, never rows) gives one row:
``prompt`` (every message before it, as in ``prompt-completion``), ``completion`` (the turn's
text) and ``tokens``: per generated token its text, log-probability and ``top_logprobs`` (the
top-k alternatives with theirs), read from the message's ``logprobs`` (OpenAI chat-completions
layout). ``tokens_start`` is the character offset in ``completion`` where the generated tokens
begin (0 for a whole generated turn; after the supervisor's interruption for an inline
correction); a turn without ``logprobs`` has ``tokens`` null. A tool-call turn has no text to
complete: it is no row (it stays in later rows' prompts), and the dataset card counts it, as it
counts a completion's reasoning, which the row leaves out. Parquet (``OUT.parquet``) or JSONL.
"""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa

from harness.export import parquet
from harness.export.common import ALL_DUPLICATES, counts, prepare
from harness.export.dedup import Deduper
from harness.export.prompt_completion import completions
from harness.export.select import Stats, iter_examples, provenance
from harness.export.sinks import JsonlSink, ParquetSink, Sink, is_parquet
from harness.inputs.formats import content_text

ALTERNATIVE = pa.struct([("token", pa.string()), ("logprob", pa.float64())])
TOKEN = pa.struct([("token", pa.string()), ("logprob", pa.float64()),
                   ("top_logprobs", pa.list_(ALTERNATIVE))])
"""One generated token: its text, log-probability and the top-k alternatives."""


def tokens_of(message: dict[str, Any]) -> list[dict[str, Any]] | None:
    """The message's generated tokens (``logprobs.content``), normalised; None without."""
    content = (message.get("logprobs") or {}).get("content")
    if not content:
        return None
    return [{"token": str(t["token"]), "logprob": float(t["logprob"]),
             "top_logprobs": [{"token": str(a["token"]), "logprob": float(a["logprob"])}
                              for a in t.get("top_logprobs") or ()]}
            for t in content]


def tokens_start(completion: str, tokens: list[dict[str, Any]] | None) -> int | None:
    """Where the generated tokens begin in ``completion`` (None when they are not its end)."""
    if tokens is None:
        return None
    generated = "".join(t["token"] for t in tokens)
    stripped = generated.strip()
    at = completion.rfind(stripped) if stripped else len(completion)
    return at if at >= 0 and completion[at:].strip() == stripped else None


COMPLETION_KEYS = frozenset({"role", "content", "logprobs"})
"""What a distill row carries of its completion turn (the text, and its tokens)."""
CALL_TURN = "tool-call turns (a distill completion is text)"
ONLY_CALLS = "only tool-call turns to train (a distill completion is text)"


def completion_text(message: dict[str, Any], lost: Counter[str]) -> str | None:
    """The text a distill row trains on, or None for a turn it cannot carry (a tool or
    function call: no text to complete); what the row leaves out is counted in ``lost``."""
    if message.get("tool_calls") or message.get("function_call"):
        lost[CALL_TURN] += 1
        return None
    content = message.get("content")
    if isinstance(content, list):
        parts = all(isinstance(p, str) or (isinstance(p, dict) and isinstance(p.get("text"), str))
                    for p in content)
        if not parts:
            lost["content parts that are not text"] += 1
    for key in message:
        if key in ("reasoning", "reasoning_content"):
            lost["reasoning of a completion"] += 1
        elif key not in COMPLETION_KEYS:
            lost[f"completion field `{key}`"] += 1
    return content_text(content, "content")


def export_distill(run_dir: Path, out: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Kept transcripts' trained assistant turns with their token distributions."""
    run, opts = prepare(run_dir, options)
    out = Path(out)
    stats, dedup = Stats(), Deduper(opts.dedup)
    with_tokens = without = 0
    sink: Sink
    if is_parquet(out):
        schema = pa.schema([pa.field("prompt", parquet.MESSAGES),
                            pa.field("completion", pa.string()),
                            pa.field("completion_index", pa.int64()),
                            pa.field("tokens", pa.list_(TOKEN)),
                            pa.field("tokens_start", pa.int64()), *parquet.RECORD_FIELDS,
                            *parquet.provenance_fields(run, opts.weight_by is not None)])
        sink = ParquetSink(out, schema)
    else:
        sink = JsonlSink(out)
    lost = stats.not_carried
    with sink:
        for example in iter_examples(run, opts, stats):
            meta = provenance(run, example)
            record = example.record()
            wrote = texts = False
            for index, prompt, message in completions(example):
                text = completion_text(message, lost)
                if text is None:
                    continue
                texts = True
                tokens = tokens_of(message)
                # the prompt's earlier turns go without their tokens (each has its own row)
                prompt = [{k: v for k, v in m.items() if k != "logprobs"} for m in prompt]
                if not dedup.first([prompt, text, tokens, record] if record
                                   else [prompt, text, tokens]):
                    continue
                row = {"completion": text, "completion_index": index, "tokens": tokens,
                       "tokens_start": tokens_start(text, tokens)}
                if is_parquet(out):
                    sink.add({"prompt": parquet.messages_rows(prompt, lost), **row,
                              **parquet.record_row(record, lost),
                              **parquet.provenance_row(meta, run)})
                else:
                    sink.add({"prompt": prompt, **row, **record, **meta})
                with_tokens += tokens is not None
                without += tokens is None
                wrote = True
            if wrote:
                stats.keep(example)
            else:
                stats.dropped[ALL_DUPLICATES if texts else ONLY_CALLS] += 1
    return counts("distill", out, run, opts, stats, sink.rows, dedup,
                  turns_with_logprobs=with_tokens, turns_without_logprobs=without)
