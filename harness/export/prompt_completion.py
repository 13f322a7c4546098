"""Prompt/completion form, for trainers that mask by prompt only.

Each trained assistant turn of a kept transcript is one example: ``prompt`` is every message
before it (masked turns included: the model sees them, is never trained to write them) and
``completion`` is that turn. A corrected transcript (flawed turn, "No, ...", correction) gives
one example whose prompt ends with the supervisor's objection and whose completion is the
correction. Messages are in the conversational layout TRL reads (``[{"role", "content"}]``), as
the record wrote them (a tool-call turn is a completion like any other), with the record's
``tools`` beside them; ``completion_index`` is the turn's index in the transcript. JSONL, or
Parquet when OUT ends in ``.parquet``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from harness.export import parquet
from harness.export.common import ALL_DUPLICATES, counts, prepare, strip_weight
from harness.export.dedup import Deduper
from harness.export.select import Example, Stats, iter_examples, provenance
from harness.export.sinks import JsonlSink, ParquetSink, Sink, is_parquet


def completions(example: Example) -> Iterator[tuple[int, list[dict[str, Any]], dict[str, Any]]]:
    """``(index, prompt messages, completion message)`` per trained assistant turn."""
    messages = example.messages()
    for i, m in enumerate(messages):
        if m["role"] == "assistant" and m.get("weight") == 1:
            yield i, strip_weight(messages[:i]), strip_weight([m])[0]


def export_prompt_completion(run_dir: Path, out: Path, options: dict[str, Any]) -> dict[str, Any]:
    """Kept transcripts as prompt/completion examples (JSONL or Parquet)."""
    run, opts = prepare(run_dir, options)
    out = Path(out)
    stats, dedup = Stats(), Deduper(opts.dedup)
    sink: Sink
    if is_parquet(out):
        schema = pa.schema([pa.field("prompt", parquet.MESSAGES),
                            pa.field("completion", parquet.MESSAGES),
                            pa.field("completion_index", pa.int64()), *parquet.RECORD_FIELDS,
                            *parquet.provenance_fields(run, opts.weight_by is not None)])
        sink = ParquetSink(out, schema)
    else:
        sink = JsonlSink(out)
    lost = stats.not_carried
    with sink:
        for example in iter_examples(run, opts, stats):
            meta = provenance(run, example)
            record = example.record()
            wrote = False
            for index, prompt, completion in completions(example):
                if not dedup.first([prompt, completion, record] if record
                                   else [prompt, completion]):
                    continue
                if is_parquet(out):
                    row = {"prompt": parquet.messages_rows(prompt, lost),
                           "completion": parquet.messages_rows([completion], lost),
                           "completion_index": index, **parquet.record_row(record, lost),
                           **parquet.provenance_row(meta, run)}
                else:
                    row = {"prompt": prompt, "completion": [completion],
                           "completion_index": index, **record, **meta}
                sink.add(row)
                wrote = True
            if wrote:
                stats.keep(example)
            else:
                stats.dropped[ALL_DUPLICATES] += 1
    return counts("prompt-completion", out, run, opts, stats, sink.rows, dedup)
