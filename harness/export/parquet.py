"""Parquet output: the chat layout (``--format parquet``) and the schemas of every layout.

Columns have fixed types for the whole file, so the file loads with ``pandas.read_parquet`` and
with Hugging Face ``datasets.load_dataset("parquet", data_files=...)``. ``criterion_scores`` and
``criterion_versions`` are structs with one field per criterion of the run's suite.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pyarrow as pa

from harness.errors import UsageError
from harness.export.common import counts, prepare
from harness.export.dedup import Deduper
from harness.export.provenance import RunInfo
from harness.export.select import Stats, iter_examples, provenance
from harness.export.sinks import ParquetSink, is_parquet

MESSAGE = pa.struct([
    ("role", pa.string()), ("content", pa.string()), ("name", pa.string()),
    ("tool_calls", pa.string()), ("tool_call_id", pa.string()), ("weight", pa.int64()),
])
"""A chat message; ``tool_calls`` is JSON text, ``weight`` 0/1 on assistant turns, else null."""
MESSAGES = pa.list_(MESSAGE)
CRITERION = pa.struct([
    ("name", pa.string()), ("kind", pa.string()), ("version", pa.string()),
    ("gate", pa.bool_()), ("scope", pa.string()), ("outcome", pa.string()),
    ("score", pa.float64()),
    ("message_scores", pa.list_(pa.struct([("message_index", pa.int64()),
                                           ("outcome", pa.string()),
                                           ("score", pa.float64())]))),
    ("judge_model", pa.string()), ("rubric_hash", pa.string()),
])


def provenance_fields(run: RunInfo, weighted: bool) -> list[pa.Field]:
    """The provenance and evidence columns of an example (see ``select.provenance``)."""
    fields = [
        pa.field("transcript_id", pa.string()), pa.field("source", pa.string()),
        pa.field("suite", pa.string()), pa.field("suite_version", pa.string()),
        pa.field("suite_fingerprint", pa.string()), pa.field("outcome", pa.string()),
        pa.field("decision_score", pa.float64()), pa.field("score", pa.float64()),
    ]
    if run.names:
        fields += [
            pa.field("criterion_scores", pa.struct([(n, pa.float64()) for n in run.names])),
            pa.field("criterion_versions", pa.struct([(n, pa.string()) for n in run.names])),
        ]
    fields += [
        pa.field("masked_messages", pa.list_(pa.int64())),
        pa.field("judge_models", pa.list_(pa.string())),
        pa.field("rubric_hashes", pa.list_(pa.string())),
        pa.field("criteria", pa.list_(CRITERION)),
    ]
    if weighted:
        fields.append(pa.field("weight", pa.float64()))
    return fields


def message_row(message: dict[str, Any]) -> dict[str, Any]:
    """A message as a :data:`MESSAGE` struct value."""
    calls = message.get("tool_calls")
    return {"role": message["role"], "content": message.get("content", ""),
            "name": message.get("name"),
            "tool_calls": json.dumps(calls, ensure_ascii=False) if calls is not None else None,
            "tool_call_id": message.get("tool_call_id"), "weight": message.get("weight")}


def messages_rows(messages: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [message_row(m) for m in messages]


def provenance_row(fields: dict[str, Any], run: RunInfo) -> dict[str, Any]:
    """Provenance fields shaped for the Parquet schema."""
    row = dict(fields)
    if not run.names:
        row.pop("criterion_scores", None)
        row.pop("criterion_versions", None)
    return row


def export_parquet(run_dir: Path, out: Path, options: dict[str, Any]) -> dict[str, Any]:
    """The kept transcripts as Parquet: a ``messages`` column plus provenance columns."""
    run, opts = prepare(run_dir, options)
    if not is_parquet(Path(out)):
        raise UsageError(f"-o {out}: the parquet format writes a .parquet file")
    stats, dedup = Stats(), Deduper(opts.dedup)
    schema = pa.schema([pa.field("messages", MESSAGES),
                        *provenance_fields(run, opts.weight_by is not None)])
    with ParquetSink(Path(out), schema) as sink:
        for example in iter_examples(run, opts, stats):
            messages = example.messages()
            if not dedup.first_messages(messages):
                continue
            sink.add({"messages": messages_rows(messages),
                      **provenance_row(provenance(run, example), run)})
            stats.keep(example)
    return counts("parquet", Path(out), run, opts, stats, sink.rows, dedup)
