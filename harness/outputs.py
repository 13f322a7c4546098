"""Building a run directory's output files from its journal, streamed."""

from __future__ import annotations

import json
import os
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.parquet as pq

from harness.export.chat import chat_message, record_fields, strict
from harness.export.dedup import Deduper, messages_key
from harness.inputs.ids import IdWatch
from harness.inputs.sources import sealed
from harness.models import Decision, Transcript, with_defaults
from harness.policy import criterion_errored
from harness.rundir import iter_journal, read_meta, write_meta
from harness.stops import RunStopped
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
    ("train_line", pa.int64()), ("threshold_score", pa.float64()),
])
"""``train_line``: the row of ``train.jsonl`` holding the transcript (0-based), null when it is
not there (not passed, or an exact duplicate of an earlier one); ``threshold_score``: with a
suite threshold, the non-gate mean it was compared with."""


def openai_messages(transcript: dict[str, Any]) -> list[dict[str, Any]]:
    """Messages in the OpenAI chat fine-tuning layout, as the record wrote them, with the keys
    OpenAI accepts only (``weight`` 0/1 on assistant turns; see
    :func:`harness.export.chat.chat_message`; ``harness export`` keeps the reasoning and the
    other keys)."""
    out = []
    for m in transcript["messages"]:
        msg = strict(chat_message(m))[0]
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


class PlainView:
    """A plain transcript's train view (every message a bare role and text), made when first
    asked for: the texts are kept as read, and a transcript that fails never pays for its
    ``train.jsonl`` line or its duplicate key. Indexed and unpacked as the view's tuple."""

    __slots__ = ("_made", "pairs", "record")

    def __init__(self, pairs: tuple[tuple[str, str], ...], record: dict[str, Any]) -> None:
        self.pairs = pairs
        self.record = record
        self._made: tuple[int, bytes, bytes] | None = None

    def made(self) -> tuple[int, bytes, bytes]:
        if self._made is None:
            messages = [{"role": role, "content": text} for role, text in self.pairs]
            self._made = (len(messages), orjson.dumps({"messages": messages, **self.record},
                                                      option=orjson.OPT_APPEND_NEWLINE),
                          messages_key(messages, self.record))
        return self._made

    def __getitem__(self, index: int) -> Any:
        return len(self.pairs) if index == 0 else self.made()[index]

    def __iter__(self) -> Iterator[Any]:
        return iter(self.made())

    def __len__(self) -> int:
        return 3

    def __eq__(self, other: object) -> bool:
        return tuple(self) == (tuple(other) if isinstance(other, PlainView | tuple) else other)

    __hash__ = None  # type: ignore[assignment]  # compared as its tuple, never a dict key

    def __reduce__(self) -> tuple[Any, ...]:
        return PlainView, (self.pairs, self.record)


TrainView = tuple[int, bytes, bytes] | PlainView
"""What finalize keeps of a transcript: its message count, ``train.jsonl`` line, duplicate key."""


_PLAIN = frozenset({"role", "content"})
"""A message that set no other field (a reader's plain message) is written as these two."""


def train_view(item: Any) -> TrainView | None:
    """What finalize needs of a transcript: its length, its ``train.jsonl`` line and its
    duplicate key (:func:`harness.export.dedup.messages_key`, the rule exports follow)."""
    if not isinstance(item, Transcript):
        return None
    record = record_fields(item.metadata)  # the record's tools go with its messages
    if all(m.__pydantic_fields_set__ <= _PLAIN for m in item.messages):  # the common case
        view = PlainView(tuple((m.role, m.content) for m in item.messages), record)
        # texts are immutable, the record's tools are not: a criterion could change them
        return view if not record else view.made()
    messages = openai_messages(item.model_dump(mode="json", exclude_none=True))
    return (len(messages),
            orjson.dumps({"messages": messages, **record}, option=orjson.OPT_APPEND_NEWLINE),
            messages_key(messages, record))


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
    # prompt tokens the provider served from its prefix cache: a verdict records them in its
    # details, a total (the report adds up per-criterion totals) as ``tokens_cached``
    cached = verdict.get("tokens_cached")
    if cached is None:
        details = verdict.get("details")
        cached = details.get("cached_tokens") if details else None
    if cached:
        usage["tokens_cached"] = usage.get("tokens_cached", 0) + cached


def _spends(verdict: dict[str, Any]) -> bool:
    """Whether :func:`add_usage` would add anything of this verdict (asked of it, on nothing)."""
    nothing = {"tokens_in": 0, "tokens_out": 0, "cost_usd": None}
    usage = dict(nothing)
    add_usage(usage, verdict)
    return usage != nothing


def _remember(cache: dict[bytes, Any], key: bytes, value: Any) -> Any:
    """``cache[key] = value``, the cache forgotten first when it holds ``SHAPES_MOST``."""
    if len(cache) >= SHAPES_MOST:
        cache.clear()
    cache[key] = value
    return value


def with_hit_rate(usage: dict[str, Any]) -> dict[str, Any]:
    """``usage`` with ``tokens_cached`` and ``cache_hit_rate``: the share of the prompt tokens
    the provider served from its prompt-prefix cache (``None`` without prompt tokens)."""
    cached = usage.get("tokens_cached", 0)
    tokens_in = usage["tokens_in"]
    return {**usage, "tokens_cached": cached,
            "cache_hit_rate": round(cached / tokens_in, 4) if tokens_in else None}


def finalize(run_dir: str | Path, timings: dict[str, Any] | None = None, *,
             stop: RunStopped | None = None, workers: int = 1,
             live: LiveOutputs | None = None) -> dict[str, Any]:
    """Write results, decisions, train/rejected/errors sets and the summary; return the summary.

    Every file is written beside its final name and renamed into place at the end, and
    ``run.json`` says ``finalizing`` meanwhile: a kill leaves either the old outputs or the new
    ones, and a state that says which. The run is ``complete`` once done, or ``stopped`` (it
    ended early for ``stop`` and can be resumed). The outputs ``live`` wrote while the run
    decided are kept when they hold the whole journal (one uninterrupted pass); otherwise the
    journal is read, with the inputs again (``workers`` processes for a large run).
    """
    run_dir = Path(run_dir)
    meta = read_meta(run_dir)
    write_meta(run_dir, {**meta, "state": "finalizing"})
    suite = meta.get("suite", {})
    stats: dict[str, int] = {}
    if live is not None:
        live.out.close()
    if live is not None and stop is None and live.whole():
        out = live.out
    else:
        specs, inputs = _specs_and_inputs(meta)
        with _Outputs(run_dir, specs, inputs) as out:
            for entry in iter_journal(run_dir, allow_incomplete=True, stats=stats,
                                      render=train_view, workers=workers):
                out.add(entry["decision"], entry["transcript"])
    state = "stopped" if stop else "complete"
    summary = {
        "suite": {"name": suite.get("name"), "version": suite.get("version")},
        **out.counts,
        "pass_rate": out.counts["passed"] / out.counts["read"] if out.counts["read"] else None,
        "train_duplicates": out.train_dedup.dropped,
        "duplicate_ids": out.ids.duplicates,
        "inputs_failed": out.inputs_failed(),
        "not_decided": stats.get("not_decided", 0),
        "bad_journal_lines": stats.get("bad_journal_lines", 0),
        "state": state,
        **({"stop": stop.stop.value, "stop_reason": str(stop)} if stop else {}),
        "usage": with_hit_rate(out.usage),
        "criteria": out.criteria(),
        "timings": timings or {},
    }
    _tmp(run_dir / "summary.json").write_text(json.dumps(summary, indent=2))
    for name in (*_Outputs.FILES, "summary.json"):
        os.replace(_tmp(run_dir / name), run_dir / name)
    meta = read_meta(run_dir)
    write_meta(run_dir, {**meta, "inputs": sealed(meta.get("inputs", [])), "state": state})
    return summary


def _specs_and_inputs(meta: dict[str, Any]) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """The run's criteria by name and its inputs' names, from its ``run.json``."""
    specs = {c["name"]: c for c in meta.get("suite", {}).get("criteria", [])}
    return specs, [i["path"] for i in meta.get("inputs", []) if isinstance(i, dict)]


HELD_MOST = 1 << 16
"""Records :class:`LiveOutputs` holds, at most, waiting for an earlier one."""
SHAPES_MOST = 4096
"""Shared decisions' shapes remembered, at most (then forgotten, and learnt again)."""


class LiveOutputs:
    """The output files written while a fresh run decides, so that finalize reads nothing
    again: each decided transcript comes with its :func:`train_view` as read (the engine's
    ``views``), is held until every earlier one has come (decisions complete out of order),
    and goes to the files in input order, as finalize's pass over the journal would send it.

    A transcript without a view (an engine that takes none) gives up: finalize then reads the
    journal and the inputs as before.
    """

    def __init__(self, run_dir: Path, meta: dict[str, Any]) -> None:
        self.run_dir = run_dir
        self.out = _Outputs(run_dir, *_specs_and_inputs(meta))
        self.given_up = False
        self.next = 0
        """The ``seq`` of the first record not yet written."""
        self.held: dict[int, list[Any]] = {}
        """Decided transcripts (:class:`~harness.stages.Finished`) by record, not yet written."""
        self.shapes: dict[bytes, dict[str, Any]] = {}
        """A shared decision's dict by its shape (:attr:`~harness.stages.Finished.shape`)."""

    def add(self, finished: Any) -> None:
        """One decided transcript (a :class:`~harness.stages.Finished`)."""
        if self.given_up:
            return
        if finished.view is False:
            self.given_up, self.held = True, {}
            return
        self.held.setdefault(finished.seq, []).append(finished)
        if len(self.held) > HELD_MOST:  # an earlier record never came (none of its transcripts
            self.given_up, self.held = True, {}  # is handed out): memory stays bounded
            return
        while (ready := self.held.get(self.next)) is not None and len(ready) >= ready[0].count:
            del self.held[self.next]
            self.next += 1
            for f in sorted(ready, key=lambda f: f.sub):
                self.out.add(self._decision(f), f.view, f.shape)

    def _decision(self, f: Any) -> dict[str, Any]:
        """The decision of a :class:`~harness.stages.Finished` as a dict with every field
        (read once per shape: a shared decision differs from its first only in id and source)."""
        if f.shape is None:
            return with_defaults(Decision, orjson.loads(f.json()))
        known = self.shapes.get(f.shape)
        if known is None:
            known = _remember(self.shapes, f.shape,
                              with_defaults(Decision, orjson.loads(f.json())))
        return {**known, "transcript_id": f.transcript_id, "source": f.source}

    def whole(self) -> bool:
        """Whether every transcript decided went to the files."""
        return not self.given_up and not self.held

    def close(self) -> None:
        """Close the files, and remove those finalize did not take (a failed run's)."""
        self.out.close()
        for name in _Outputs.FILES:
            _tmp(self.run_dir / name).unlink(missing_ok=True)


class _Outputs:
    """The output files of a run, written beside their names while decisions are added."""

    FILES = ("results.parquet", "decisions.parquet", "train.jsonl", "rejected.jsonl",
             "errors.jsonl")

    def __init__(self, run_dir: Path, specs: dict[str, dict[str, Any]],
                 inputs: list[str]) -> None:
        self.specs = specs
        self.errored_by: Counter[str] = Counter()  # criterion -> transcripts it errored on
        # records, unreadable, why
        self.by_input: dict[str, list[Any]] = {name: [0, 0, ""] for name in inputs}
        self.counts = {"read": 0, "passed": 0, "failed": 0, "errored": 0, "input_errors": 0,
                       "criterion_errors": 0, "transcripts_with_errors": 0}
        self.tallies = Tallies()
        self.usage: dict[str, Any] = {"tokens_in": 0, "tokens_out": 0, "cost_usd": None}
        self.train_dedup = Deduper()  # train.jsonl holds each example once, as exports do
        self.train_rows = 0  # lines written to train.jsonl
        self.ids = IdWatch()  # ids that more than one record has
        # a shape's results rows, error verdicts, and whether a verdict spent tokens or money
        self.shapes: dict[bytes, tuple[list[tuple[Any, ...]], list[dict[str, Any]], bool]] = {}
        self.results = _Table(run_dir / "results.parquet", RESULTS_SCHEMA)
        self.decisions = _Table(run_dir / "decisions.parquet", DECISIONS_SCHEMA)
        self.train, self.rejected, self.errors = (
            open(_tmp(run_dir / name), "wb")  # noqa: SIM115 - closed in __exit__
            for name in ("train.jsonl", "rejected.jsonl", "errors.jsonl"))

    def __enter__(self) -> _Outputs:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        """Close the files (again: nothing)."""
        if self.train.closed:
            return
        for fh in (self.train, self.rejected, self.errors):
            fh.close()
        self.results.close()
        self.decisions.close()

    def add(self, d: dict[str, Any], t: TrainView | None,
            shape: bytes | None = None) -> None:
        """One decision ``d`` and its transcript's :func:`train_view` (``None``: unreadable);
        decisions of one ``shape`` differ only in their id and source."""
        counts = self.counts
        counts["read"] += 1
        counts[{"pass": "passed", "fail": "failed", "error": "errored"}[d["outcome"]]] += 1
        train_line = None
        if d["outcome"] == "pass" and t is not None and self.train_dedup.first_key(t[2]):
            self.train.write(t[1])
            train_line, self.train_rows = self.train_rows, self.train_rows + 1
        self.decisions.add(d["transcript_id"], d["source"], d["outcome"], d["score"],
                           d["failed"], d["errored"], t[0] if t else 0, train_line,
                           d.get("threshold_score"))
        known = self.shapes.get(shape) if shape is not None else None
        if known is None:
            verdicts = d["verdicts"]
            known = ([self.row(v) for v in verdicts],
                     [v for v in verdicts if v["outcome"] == "error"],
                     any(map(_spends, verdicts)))
            if shape is not None:
                _remember(self.shapes, shape, known)
        rows, bad, spends = known
        tid, source = d["transcript_id"], d["source"]
        for v, row in zip(d["verdicts"], rows, strict=True):
            name = v["criterion"]
            if name in self.specs:
                self.tallies[name].add(v["outcome"], v["score"], v["details"])
            if spends:
                add_usage(self.usage, v)
            self.results.add(tid, source, *row)
        self.errored_by.update(d["errored"])
        self.count_input(d, t is None)
        if t is None:
            counts["input_errors"] += 1
        elif bad:
            counts["criterion_errors"] += len(bad)
            counts["transcripts_with_errors"] += criterion_errored(d["errored"])
        if t is not None:
            self.ids.add(d["transcript_id"])
        if d["outcome"] == "fail":
            failing = [v for v in d["verdicts"] if v["outcome"] == "fail"]
            self.rejected.write(orjson.dumps({
                "transcript_id": d["transcript_id"], "source": d["source"],
                "failed": d["failed"], "score": d["score"],
                "evidence": {v["criterion"]: v["evidence"] for v in failing},
                "explanations": {v["criterion"]: v["explanation"] for v in failing},
            }, option=orjson.OPT_APPEND_NEWLINE))
        if bad:  # every criterion error is listed, whatever the decision made of it
            self.errors.write(orjson.dumps({
                "transcript_id": d["transcript_id"], "source": d["source"],
                "kind": "input" if t is None else "criterion",
                "decision": d["outcome"], "errored": [v["criterion"] for v in bad],
                "reason": "; ".join(f"{v['criterion']}: {v['explanation']}" for v in bad),
            }, option=orjson.OPT_APPEND_NEWLINE))

    def row(self, v: dict[str, Any]) -> tuple[Any, ...]:
        """A verdict's row of ``results.parquet``, after the transcript's id and source."""
        name = v["criterion"]
        return (name, v["kind"], v["version"], self.specs.get(name, {}).get("gate", True),
                v["outcome"], v["score"], v["message_index"], _json(v["evidence"]),
                v["explanation"], v["raw"], v["latency_s"], v["cost_usd"], v["tokens_in"],
                v["tokens_out"], _json(v["details"]))

    def count_input(self, d: dict[str, Any], unreadable: bool) -> None:
        source = d["source"]  # path, path:line or, for a pair, path:line:side
        tally = next((self.by_input[name] for name in (source, *(
            source.rsplit(":", n)[0] for n in (1, 2))) if name in self.by_input), None)
        if tally is not None:
            tally[0] += 1
            if unreadable:
                tally[1] += 1
                tally[2] = tally[2] or d["verdicts"][0]["explanation"]

    def inputs_failed(self) -> list[dict[str, Any]]:
        """The inputs none of whose records could be read, each with the first reason."""
        return [{"path": name, "records": n, "reason": why}
                for name, (n, bad, why) in self.by_input.items() if n and bad == n]

    def criteria(self) -> dict[str, Any]:
        return {name: {"kind": spec["kind"], "gate": spec["gate"], **self.tallies.row(name),
                       "errored_transcripts": self.errored_by[name]}
                for name, spec in self.specs.items()}
