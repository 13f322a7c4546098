"""Parquet output: the chat layout (``--format parquet``) and the schemas of every layout.

Columns have fixed types for the whole file, so the file loads with ``pandas.read_parquet`` and
with Hugging Face ``datasets.load_dataset("parquet", data_files=...)``. Messages are structs
(tool calls and legacy function calls typed too), the record's ``tools`` and ``functions`` are
columns (a function's ``parameters`` schema as JSON text), ``record_metadata`` is the record's
own metadata as JSON text; what a message holds that the structs have no place for (content
parts that are not text, fields harness does not know) is counted in the dataset card.
``criterion_scores`` and ``criterion_versions`` are structs with one field per criterion of
the run's suite.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa

from harness.errors import UsageError
from harness.export.chat import left_out
from harness.export.common import ALL_DUPLICATES, counts, prepare
from harness.export.dedup import Deduper
from harness.export.provenance import RunInfo
from harness.export.select import Stats, iter_examples, provenance
from harness.export.sinks import ParquetSink, is_parquet
from harness.inputs.formats import content_text

FUNCTION = pa.struct([("name", pa.string()), ("arguments", pa.string())])
"""A function call: its name and its arguments (JSON text, as the chat layout has them)."""
TOOL_CALL = pa.struct([("id", pa.string()), ("type", pa.string()), ("function", FUNCTION)])
MESSAGE = pa.struct([
    ("role", pa.string()), ("content", pa.string()), ("name", pa.string()),
    ("tool_calls", pa.list_(TOOL_CALL)), ("tool_call_id", pa.string()),
    ("function_call", FUNCTION), ("reasoning", pa.string()), ("weight", pa.int64()),
])
"""A chat message, its role as the record spelled it (``developer``, ``function``...);
``content`` null where the record had null; ``weight`` 0/1 on assistant turns, else null."""
MESSAGES = pa.list_(MESSAGE)
FUNCTION_SPEC = pa.struct([("name", pa.string()), ("description", pa.string()),
                           ("parameters", pa.string()), ("strict", pa.bool_())])
"""A function the model may call; ``parameters`` is its JSON schema as JSON text (a schema has
no fixed shape)."""
TOOL = pa.struct([("type", pa.string()), ("function", FUNCTION_SPEC)])
RECORD_FIELDS = [pa.field("tools", pa.list_(TOOL)), pa.field("functions", pa.list_(FUNCTION_SPEC)),
                 pa.field("parallel_tool_calls", pa.bool_())]
"""The record's top-level tool keys, null when it had none."""
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
        pa.field("record_metadata", pa.string()),
    ]
    if weighted:
        fields.append(pa.field("weight", pa.float64()))
    return fields


def message_row(message: dict[str, Any], lost: Counter[str] | None = None) -> dict[str, Any]:
    """A chat message (:func:`~harness.export.chat.chat_message`) as a :data:`MESSAGE` value;
    what the struct has no place for is counted in ``lost``."""
    lost = lost if lost is not None else Counter()
    content = message.get("content")
    if isinstance(content, list):
        text_only = all(isinstance(p, str) or (isinstance(p, dict) and p.get("type", "text")
                                               == "text" and isinstance(p.get("text"), str))
                        for p in content)
        lost["content parts written as their text" if text_only
             else "content parts that are not text"] += 1
        content = content_text(content, "content")
    for key in message:
        if key not in MESSAGE_COLUMNS:
            lost[left_out(key)] += 1
    calls = message.get("tool_calls")
    return {
        "role": message["role"], "content": content, "name": message.get("name"),
        "tool_calls": None if calls is None else [_call_row(c, lost) for c in calls],
        "tool_call_id": message.get("tool_call_id"),
        "function_call": _function_row(message.get("function_call"), "function call", lost),
        "reasoning": message.get("reasoning", message.get("reasoning_content")),
        "weight": message.get("weight"),
    }


MESSAGE_COLUMNS = frozenset({*(f.name for f in MESSAGE.fields), "reasoning_content"})


def messages_rows(messages: list[dict[str, Any]],
                  lost: Counter[str] | None = None) -> list[dict[str, Any]]:
    return [message_row(m, lost) for m in messages]


def _text(value: Any, what: str, lost: Counter[str]) -> str | None:
    """A text column's value; anything else is written as JSON text, and counted."""
    if value is None or isinstance(value, str):
        return value
    lost[f"{what} that is not text (written as JSON text)"] += 1
    return json.dumps(value, ensure_ascii=False, sort_keys=True)


def _unknown(value: dict[str, Any], known: tuple[str, ...], what: str, lost: Counter[str]) -> None:
    for key in value:
        if key not in known:
            lost[f"{what} field `{key}`"] += 1


def _function_row(fn: Any, what: str, lost: Counter[str]) -> dict[str, Any] | None:
    if fn is None:
        return None
    if not isinstance(fn, dict):
        lost[f"{what} that is not an object"] += 1
        return None
    _unknown(fn, ("name", "arguments"), what, lost)
    return {"name": _text(fn.get("name"), f"{what} name", lost),
            "arguments": _text(fn.get("arguments"), f"{what} arguments", lost)}


def _call_row(call: dict[str, Any], lost: Counter[str]) -> dict[str, Any]:
    _unknown(call, ("id", "type", "function"), "tool call", lost)
    return {"id": _text(call.get("id"), "tool-call id", lost),
            "type": _text(call.get("type"), "tool-call type", lost),
            "function": _function_row(call.get("function"), "tool-call function", lost)}


def _spec_row(spec: Any, what: str, lost: Counter[str]) -> dict[str, Any] | None:
    if not isinstance(spec, dict):
        lost[f"{what} that is not an object"] += 1
        return None
    _unknown(spec, ("name", "description", "parameters", "strict"), what, lost)
    strict = spec.get("strict")
    if strict is not None and not isinstance(strict, bool):
        lost[f"{what} `strict` that is not true or false"] += 1
        strict = None
    parameters = spec.get("parameters")
    return {"name": _text(spec.get("name"), f"{what} name", lost),
            "description": _text(spec.get("description"), f"{what} description", lost),
            "parameters": None if parameters is None
            else json.dumps(parameters, ensure_ascii=False),
            "strict": strict}


def _tool_row(tool: Any, lost: Counter[str]) -> dict[str, Any] | None:
    if not isinstance(tool, dict):
        lost["tool that is not an object"] += 1
        return None
    _unknown(tool, ("type", "function"), "tool", lost)
    fn = tool.get("function")
    return {"type": _text(tool.get("type"), "tool type", lost),
            "function": None if fn is None else _spec_row(fn, "tool function", lost)}


def record_row(record: dict[str, Any], lost: Counter[str] | None = None) -> dict[str, Any]:
    """The record's tool keys (:func:`~harness.export.chat.record_fields`) as the
    :data:`RECORD_FIELDS` columns; what they have no place for is counted in ``lost``."""
    lost = lost if lost is not None else Counter()
    row: dict[str, Any] = {"tools": None, "functions": None, "parallel_tool_calls": None}
    for key, each in (("tools", _tool_row),
                      ("functions", lambda f, n: _spec_row(f, "function", n))):
        value = record.get(key)
        if value is None:
            continue
        if not isinstance(value, list):
            lost[f"`{key}` that is not a list"] += 1
            continue
        row[key] = [each(item, lost) for item in value]
    parallel = record.get("parallel_tool_calls")
    if parallel is not None:
        if isinstance(parallel, bool):
            row["parallel_tool_calls"] = parallel
        else:
            lost["`parallel_tool_calls` that is not true or false"] += 1
    return row


def provenance_row(fields: dict[str, Any], run: RunInfo) -> dict[str, Any]:
    """Provenance fields shaped for the Parquet schema."""
    row = dict(fields)
    row["record_metadata"] = json.dumps(row.get("record_metadata") or {}, ensure_ascii=False,
                                        default=str)
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
    schema = pa.schema([pa.field("messages", MESSAGES), *RECORD_FIELDS,
                        *provenance_fields(run, opts.weight_by is not None)])
    with ParquetSink(Path(out), schema) as sink:
        for example in iter_examples(run, opts, stats):
            messages, record = example.messages(), example.record()
            if not dedup.first_messages(messages, record):
                stats.dropped[ALL_DUPLICATES] += 1
                continue
            sink.add({"messages": messages_rows(messages, stats.not_carried),
                      **record_row(record, stats.not_carried),
                      **provenance_row(provenance(run, example), run)})
            stats.keep(example)
    return counts("parquet", Path(out), run, opts, stats, sink.rows, dedup)
