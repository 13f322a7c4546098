"""Token distributions as targets (``--format distill``): one row per trained assistant turn.

A generator's per-token probabilities are a richer target than its sampled tokens. Each trained
assistant turn of a kept transcript (masked turns are context only, never rows) gives one row:
``prompt`` (every message before it, as in ``prompt-completion``), ``completion`` (the turn's
text) and ``tokens``: per generated token its text, log-probability and ``top_logprobs`` (the
top-k alternatives with theirs), read from the message's ``logprobs`` (OpenAI chat-completions
layout). ``tokens_start`` is the character offset in ``completion`` where the generated tokens
begin (0 for a whole generated turn; after the supervisor's interruption for an inline
correction); a turn without ``logprobs`` has ``tokens`` null. Parquet (``OUT.parquet``) or JSONL.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pyarrow as pa

from harness.export import parquet
from harness.export.common import counts, prepare
from harness.export.dedup import Deduper
from harness.export.prompt_completion import completions
from harness.export.select import Stats, iter_examples, provenance
from harness.export.sinks import JsonlSink, ParquetSink, Sink, is_parquet

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
                            pa.field("tokens_start", pa.int64()),
                            *parquet.provenance_fields(run, opts.weight_by is not None)])
        sink = ParquetSink(out, schema)
    else:
        sink = JsonlSink(out)
    with sink:
        for example in iter_examples(run, opts, stats):
            meta = provenance(run, example)
            wrote = False
            for index, prompt, message in completions(example):
                text = message.get("content", "")
                tokens = tokens_of(message)
                if not dedup.first([prompt, text, tokens]):
                    continue
                row = {"completion": text, "completion_index": index, "tokens": tokens,
                       "tokens_start": tokens_start(text, tokens)}
                if is_parquet(out):
                    sink.add({"prompt": parquet.messages_rows(prompt), **row,
                              **parquet.provenance_row(meta, run)})
                else:
                    sink.add({"prompt": [{k: v for k, v in m.items() if k != "logprobs"}
                                         for m in prompt], **row, **meta})
                with_tokens += tokens is not None
                without += tokens is None
                wrote = True
            if wrote:
                stats.keep(example)
    return counts("distill", out, run, opts, stats, sink.rows, dedup,
                  turns_with_logprobs=with_tokens, turns_without_logprobs=without)
