"""OpenAI chat fine-tuning JSONL: ``{"messages": [...], "tools": [...], "metadata": {...}}`` per
line.

Messages are written as the record wrote them (roles, null content, content parts, tool and
legacy function calls, reasoning, fields harness does not read), and the record's ``tools``
(legacy ``functions``, ``parallel_tool_calls``) beside them. Every assistant turn carries
``weight`` 1 (trained) or 0 (masked context), the only values OpenAI accepts. ``metadata`` holds
the provenance and the review's evidence; the soft label of ``--weight-by`` is
``metadata.weight`` (OpenAI's own ``weight`` is 0/1 per message). With ``messages_only`` a line
is just ``{"messages": [...]}`` (and the tools), its messages with the keys OpenAI accepts only
(reasoning, logprobs and keys harness does not know are counted in the card as not carried), and
the metadata goes, line for line, to ``OUT.provenance.jsonl``, for uploaders that reject unknown
keys.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.export.chat import left_out, strict
from harness.export.common import ALL_DUPLICATES, counts, prepare
from harness.export.dedup import Deduper
from harness.export.select import Stats, iter_examples, provenance
from harness.export.sinks import JsonlSink, is_parquet


def sidecar_path(out: Path) -> Path:
    """Where ``messages_only`` puts the provenance: ``OUT.provenance.jsonl`` after the whole
    output name, like the card (``sft.jsonl.gz`` -> ``sft.jsonl.gz.provenance.jsonl``), so two
    exports in one folder never share it."""
    return out.with_name(f"{out.name}.provenance.jsonl")


def strip_to_openai(messages: list[dict[str, Any]], stats: Stats) -> list[dict[str, Any]]:
    """The messages with only the keys OpenAI's fine-tuning accepts; what goes is counted in
    the card."""
    out = []
    for m in messages:
        kept, left = strict(m)
        for key in left:
            stats.not_carried[left_out(key)] += 1
        out.append(kept)
    return out


def export_openai(run_dir: Path, out: Path, options: dict[str, Any]) -> dict[str, Any]:
    """The kept transcripts in the OpenAI chat fine-tuning layout."""
    run, opts = prepare(run_dir, options)
    out = Path(out)
    if is_parquet(out):
        raise UsageError(f"-o {out}: the openai format is JSONL; for Parquet use --format parquet")
    stats, dedup = Stats(), Deduper(opts.dedup)
    with ExitStack() as stack:
        sink = stack.enter_context(JsonlSink(out))
        side = stack.enter_context(JsonlSink(sidecar_path(out))) if opts.messages_only else None
        for example in iter_examples(run, opts, stats):
            messages, record = example.messages(), example.record()
            if side is not None:  # strict lines, for uploaders that reject unknown keys
                messages = strip_to_openai(messages, stats)
            if not dedup.first_messages(messages, record):
                stats.dropped[ALL_DUPLICATES] += 1
                continue
            meta = provenance(run, example)
            if side is not None:
                sink.add({"messages": messages, **record})
                side.add(meta)
            else:
                sink.add({"messages": messages, **record, "metadata": meta})
            stats.keep(example)
    extra = {"provenance_file": str(sidecar_path(out))} if opts.messages_only else {}
    return counts("openai", out, run, opts, stats, sink.rows, dedup, **extra)
