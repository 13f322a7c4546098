"""Building a run directory's output files from its journal, streamed."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from harness.export.dedup import Deduper, messages_key
from harness.models import Transcript
from harness.rundir import iter_journal, read_meta, write_meta
from harness.tally import Tallies

ROWS_PER_WRITE = 8192

RESULTS_SCHEMA = pa.schema([
    ("transcript_id", pa.string()), ("source", pa.string()), ("criterion", pa.string()),
    ("kind", pa.string()), ("version", pa.string()), ("gate", pa.bool_()),
    ("outcome", pa.string()), ("score", pa.float64()), ("message_index", pa.int64()),
    ("evidence", pa.string()), ("explanation", pa.string()), ("raw", pa.string()),
    ("latency_s", pa.float64()), ("cost_usd", pa.float64()), ("tokens_in", pa.int64()),
    ("tokens_out", pa.int64()), ("details", pa.string()),
])
DECISIONS_SCHEMA = pa.schema([
    ("transcript_id", pa.string()), ("source", pa.string()), ("outcome", pa.string()),
    ("score", pa.float64()), ("failed", pa.list_(pa.string())),
    ("errored", pa.list_(pa.string())), ("n_messages", pa.int64()),
])

OPENAI_MESSAGE_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id")


def openai_messages(transcript: dict[str, Any]) -> list[dict[str, Any]]:
    """Messages in the OpenAI chat fine-tuning layout (``weight`` 0/1 on assistant turns)."""
    out = []
    for m in transcript["messages"]:
        msg = {k: m[k] for k in OPENAI_MESSAGE_KEYS if m.get(k) is not None}
        if m["role"] == "assistant" and m.get("weight") is not None:
            msg["weight"] = 1 if m["weight"] > 0 else 0
        out.append(msg)
    return out


def _tmp(path: Path) -> Path:
    return path.with_name(path.name + ".tmp")


class _Table:
    """Rows (tuples in schema order) buffered and written to Parquet in bounded chunks."""

    def __init__(self, path: Path, schema: pa.Schema) -> None:
        self.schema = schema
        self.rows: list[tuple[Any, ...]] = []
        self.writer = pq.ParquetWriter(_tmp(path), schema)

    def add(self, *values: Any) -> None:
        self.rows.append(values)
        if len(self.rows) >= ROWS_PER_WRITE:
            self.flush()

    def flush(self) -> None:
        if self.rows:
            columns = zip(*self.rows, strict=True)
            arrays = [pa.array(column, type=field.type)
                      for column, field in zip(columns, self.schema, strict=True)]
            self.writer.write_table(pa.Table.from_arrays(arrays, schema=self.schema))
            self.rows = []

    def close(self) -> None:
        self.flush()
        self.writer.close()


def _json(value: list[Any] | dict[str, Any]) -> str:
    if not value:
        return "[]" if isinstance(value, list) else "{}"
    return orjson.dumps(value).decode()


def train_view(item: Any) -> tuple[int, bytes, bytes] | None:
    """What finalize needs of a transcript: its length, its ``train.jsonl`` line and its
    duplicate key (:func:`harness.export.dedup.messages_key`, the rule exports follow)."""
    if not isinstance(item, Transcript):
        return None
    messages = openai_messages(item.model_dump(mode="json", exclude_none=True))
    return (len(messages), orjson.dumps({"messages": messages}, option=orjson.OPT_APPEND_NEWLINE),
            messages_key(messages))


def add_usage(usage: dict[str, Any], verdict: dict[str, Any]) -> None:
    """Add a verdict's tokens and cost to ``usage`` (the summary's totals; the cost stays
    ``None`` while no verdict has one: judges without prices). Tokens spent at no known price
    set ``cost_partial``: the cost, if any, covers only the rest."""
    usage["tokens_in"] += verdict["tokens_in"] or 0
    usage["tokens_out"] += verdict["tokens_out"] or 0
    if verdict["cost_usd"] is not None:
        usage["cost_usd"] = (usage["cost_usd"] or 0.0) + verdict["cost_usd"]
    elif verdict["tokens_in"] or verdict["tokens_out"]:
        usage["cost_partial"] = True
    if verdict.get("cost_partial"):
        usage["cost_partial"] = True


def finalize(run_dir: str | Path, timings: dict[str, Any] | None = None, *,
             state: str = "complete", stop_reason: str | None = None,
             workers: int = 1) -> dict[str, Any]:
    """Write results, decisions, train/rejected/errors sets and the summary; return the summary.

    Every file is written beside its final name and renamed into place at the end, and
    ``run.json`` says ``finalizing`` meanwhile: a kill leaves either the old outputs or the new
    ones, and a state that says which. ``state`` is what the run is once done (``complete``,
    or ``stopped`` for a run that ended early and can be resumed). ``workers`` processes read
    the inputs again for a large run.
    """
    run_dir = Path(run_dir)
    meta = read_meta(run_dir)
    write_meta(run_dir, {**meta, "state": "finalizing"})
    suite = meta.get("suite", {})
    specs = {c["name"]: c for c in suite.get("criteria", [])}
    counts = {"read": 0, "passed": 0, "failed": 0, "errored": 0, "input_errors": 0,
              "criterion_errors": 0, "transcripts_with_errors": 0}
    tallies = Tallies()
    usage: dict[str, Any] = {"tokens_in": 0, "tokens_out": 0, "cost_usd": None}
    train_dedup = Deduper()  # train.jsonl holds each training example once, as exports do
    stats: dict[str, int] = {}
    tmp_files = [run_dir / n for n in ("train.jsonl", "rejected.jsonl", "errors.jsonl")]

    results = _Table(run_dir / "results.parquet", RESULTS_SCHEMA)
    decisions = _Table(run_dir / "decisions.parquet", DECISIONS_SCHEMA)
    line = orjson.OPT_APPEND_NEWLINE
    with (open(_tmp(tmp_files[0]), "wb") as train_jsonl,
          open(_tmp(tmp_files[1]), "wb") as rejected,
          open(_tmp(tmp_files[2]), "wb") as errors):
        for entry in iter_journal(run_dir, allow_incomplete=True, stats=stats,
                                  render=train_view, workers=workers):
            d, t = entry["decision"], entry["transcript"]
            counts["read"] += 1
            counts[{"pass": "passed", "fail": "failed", "error": "errored"}[d["outcome"]]] += 1
            decisions.add(d["transcript_id"], d["source"], d["outcome"], d["score"], d["failed"],
                          d["errored"], t[0] if t else 0)
            bad = []
            for v in d["verdicts"]:
                name = v["criterion"]
                if v["outcome"] == "error":
                    bad.append(v)
                if name in specs:
                    tallies[name].add(v["outcome"], v["score"], v["details"])
                add_usage(usage, v)
                results.add(d["transcript_id"], d["source"], name, v["kind"], v["version"],
                            specs.get(name, {}).get("gate", True), v["outcome"], v["score"],
                            v["message_index"], _json(v["evidence"]), v["explanation"], v["raw"],
                            v["latency_s"], v["cost_usd"], v["tokens_in"], v["tokens_out"],
                            _json(v["details"]))
            if t is None:
                counts["input_errors"] += 1
            elif bad:
                counts["criterion_errors"] += len(bad)
                counts["transcripts_with_errors"] += 1
            if d["outcome"] == "pass" and train_dedup.first_key(t[2]):
                train_jsonl.write(t[1])
            elif d["outcome"] == "fail":
                failing = [v for v in d["verdicts"] if v["outcome"] == "fail"]
                rejected.write(orjson.dumps({
                    "transcript_id": d["transcript_id"], "source": d["source"],
                    "failed": d["failed"], "score": d["score"],
                    "evidence": {v["criterion"]: v["evidence"] for v in failing},
                    "explanations": {v["criterion"]: v["explanation"] for v in failing},
                }, option=line))
            if bad:  # every criterion error is listed, whatever the decision made of it
                errors.write(orjson.dumps({
                    "transcript_id": d["transcript_id"], "source": d["source"],
                    "kind": "input" if t is None else "criterion",
                    "decision": d["outcome"], "errored": [v["criterion"] for v in bad],
                    "reason": "; ".join(f"{v['criterion']}: {v['explanation']}" for v in bad),
                }, option=line))
    for table in (results, decisions):
        table.close()

    criteria = {name: {"kind": spec["kind"], "gate": spec["gate"], **tallies.row(name)}
                for name, spec in specs.items()}
    summary = {
        "suite": {"name": suite.get("name"), "version": suite.get("version")},
        **counts,
        "pass_rate": counts["passed"] / counts["read"] if counts["read"] else None,
        "train_duplicates": train_dedup.dropped,
        "not_decided": stats.get("not_decided", 0),
        "bad_journal_lines": stats.get("bad_journal_lines", 0),
        "state": state,
        **({"stop_reason": stop_reason} if stop_reason else {}),
        "usage": usage,
        "criteria": criteria,
        "timings": timings or {},
    }
    _tmp(run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    for name in ("results.parquet", "decisions.parquet", "train.jsonl", "rejected.jsonl",
                 "errors.jsonl", "summary.json"):
        os.replace(_tmp(run_dir / name), run_dir / name)
    write_meta(run_dir, {**read_meta(run_dir), "state": state})
    return summary
