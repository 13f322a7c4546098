"""pandas in, pandas out: ``harness.review_frame(df, suite)`` for notebooks.

Each row of the input frame is one transcript (its messages in ``messages_column``: a list of
``{"role", "content"}`` mappings, an array of them as read from Parquet, or their JSON text).
The rows are streamed through the engine (:meth:`harness.engine.Engine.review`, the core every
other entry point uses) in chunks of ``batch_size``, and the result has one row per input row,
in the input's order and with its index.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson

from harness.engine import CHUNK_SIZE, Engine
from harness.inputs import parse_record
from harness.models import Decision, InputError, Transcript
from harness.options import RunOptions
from harness.plugins import Registry
from harness.policy import aggregate
from harness.suite import Suite

if TYPE_CHECKING:
    import pandas as pd

DECISION_COLUMNS = ("transcript_id", "outcome", "score", "failed", "errored")
"""The first columns of :func:`review_frame`'s result; then ``CRITERION.outcome`` and
``CRITERION.score`` per criterion (suite order), then ``evidence`` and ``explanations``."""


def _messages(value: Any) -> Any:
    """Messages as a list, whatever pandas holds them as (list, numpy array, JSON text)."""
    if isinstance(value, str | bytes):
        try:
            return orjson.loads(value)
        except orjson.JSONDecodeError as exc:
            return ValueError(f"messages are not valid JSON: {exc}")
    if hasattr(value, "tolist") and not isinstance(value, dict):
        return value.tolist()
    return value


def _items(frame: pd.DataFrame, messages_column: str, id_column: str | None,
           registry: Registry, input_format: str) -> Iterator[Transcript | InputError]:
    ids = frame[id_column] if id_column else frame.index
    for label, tid, value in zip(frame.index, ids, frame[messages_column], strict=True):
        messages = _messages(value)
        source = f"<row {label}>"
        if isinstance(messages, Exception):
            yield InputError(source=source, reason=str(messages))
            continue
        parsed = parse_record({"id": str(tid), "messages": messages}, source, registry.formats,
                              input_format)
        if isinstance(parsed, InputError):
            yield parsed
        elif len(parsed) != 1:
            yield InputError(source=source, reason=f"a row must hold one transcript, this one "
                                                   f"holds {len(parsed)}")
        else:
            yield parsed[0]


def _json(value: dict[str, Any]) -> str:
    return orjson.dumps(value).decode() if value else "{}"


class _Columns:
    """The result's columns, filled one decision at a time."""

    def __init__(self, names: list[str]) -> None:
        self.names = names
        self.data: dict[str, list[Any]] = {c: [] for c in DECISION_COLUMNS}
        for name in names:
            self.data[f"{name}.outcome"] = []
            self.data[f"{name}.score"] = []
        self.data["evidence"], self.data["explanations"] = [], []

    def add(self, d: Decision) -> None:
        for column in DECISION_COLUMNS:
            self.data[column].append(getattr(d, column))
        by_name: dict[str, list[Any]] = {}
        for v in d.verdicts:
            by_name.setdefault(v.criterion, []).append(v)
        for name in self.names:
            outcome, score = aggregate(by_name.get(name, []))
            self.data[f"{name}.outcome"].append(outcome)
            self.data[f"{name}.score"].append(score)
        evidence = {n: [s.model_dump() for v in vs for s in v.evidence]
                    for n, vs in by_name.items() if any(v.evidence for v in vs)}
        explanations = {n: "; ".join(v.explanation for v in vs if v.explanation)
                        for n, vs in by_name.items() if any(v.explanation for v in vs)}
        self.data["evidence"].append(_json(evidence))
        self.data["explanations"].append(_json(explanations))


def review_frame(
    frame: pd.DataFrame,
    suite: Suite | Engine | str | Path,
    *,
    messages_column: str = "messages",
    id_column: str | None = None,
    registry: Registry | None = None,
    plugins_dir: str | Path | None = None,
    judge: str | None = None,
    all_criteria: bool = False,
    cache_dir: str | Path | None = None,
    input_format: str = "auto",
    batch_size: int = CHUNK_SIZE,
) -> pd.DataFrame:
    """Review every row of ``frame``; one result row per input row, same order, same index.

    Columns: ``transcript_id`` (``id_column``'s value, else the row's index label),
    ``outcome`` (pass, fail, error), ``score``, ``failed`` and ``errored`` (criterion names),
    then ``CRITERION.outcome`` and ``CRITERION.score`` for each criterion of the suite, then
    ``evidence`` (JSON: criterion -> spans) and ``explanations`` (JSON: criterion -> text). A
    row whose messages cannot be read is decided ``error`` with ``errored == ["input"]``.
    ``suite`` may be an open :class:`Engine` (kept open); ``cache_dir`` keeps judge answers.
    """
    if messages_column not in frame.columns:
        raise KeyError(f"no column {messages_column!r} in the frame (columns: "
                       f"{', '.join(map(str, frame.columns))}); pass messages_column=")
    if id_column is not None and id_column not in frame.columns:
        raise KeyError(f"no column {id_column!r} in the frame")
    if isinstance(suite, Engine):
        return _review(frame, suite, messages_column, id_column, input_format, batch_size)
    options = RunOptions(judge=judge, all_criteria=all_criteria, input_format=input_format,
                         cache_dir=None if cache_dir is None else Path(cache_dir),
                         plugins_dir=None if plugins_dir is None else str(plugins_dir))
    with Engine(suite, registry, options) as engine:
        return _review(frame, engine, messages_column, id_column, input_format, batch_size)


def _review(frame: pd.DataFrame, engine: Engine, messages_column: str, id_column: str | None,
            input_format: str, batch_size: int) -> pd.DataFrame:
    import pandas as pd

    columns = _Columns([c.name for c in engine.suite.criteria])
    items = _items(frame, messages_column, id_column, engine.registry, input_format)
    for decision in engine.review(items, batch_size):
        columns.add(decision)
    if len(columns.data["outcome"]) != len(frame):  # the engine decides every item, in order
        raise RuntimeError(f"{len(columns.data['outcome'])} decisions for {len(frame)} rows")
    # an unreadable row's decision is named after its source: give every row its own id
    ids = frame[id_column] if id_column else frame.index
    columns.data["transcript_id"] = [str(t) for t in ids]
    return pd.DataFrame(columns.data, index=frame.index)
