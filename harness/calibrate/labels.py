"""Human labels: read from CSV or JSONL, normalised to ``pass``, ``fail`` or ``skip``.

A label says what the right outcome is. Columns (JSONL keys): ``transcript_id`` and ``label``
(required), ``criterion`` (the label is about that criterion only, or ``decision``: the decision
only; without it, about the whole transcript: compared with the decision and with every
criterion), ``message_index`` (a message-scoped verdict); anything else (``note``, ``mark``...)
is ignored.

Values: ``pass``/``fail``, booleans (``true`` is pass), ``1``/``0``, and ``skip`` (the reviewer
declined: counted, not compared); any other value needs ``--map RAW=pass|fail|skip``. Unknown
values are one error listing them all, with the line of the first occurrence.
"""

from __future__ import annotations

import csv
import json
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from harness.errors import UsageError

LabelValue = Literal["pass", "fail", "skip"]
BUILT_IN: dict[str, LabelValue] = {
    "pass": "pass", "fail": "fail", "true": "pass", "false": "fail", "1": "pass", "0": "fail",
    "skip": "skip",
}
"""Values understood without ``--map`` (compared case-insensitively)."""
MAP_TARGETS: dict[str, LabelValue] = {"pass": "pass", "fail": "fail", "skip": "skip",
                                      "ignore": "skip"}


@dataclass(frozen=True)
class Label:
    """One human label."""

    transcript_id: str
    value: LabelValue
    raw: str
    """The value as written in the file."""
    where: str
    """``file:line``."""
    criterion: str | None = None
    message_index: int | None = None


def parse_map(specs: list[str] | None) -> dict[str, LabelValue]:
    """``["good=pass,bad=fail", "meh=skip"]`` -> ``{"good": "pass", ...}``."""
    mapping: dict[str, LabelValue] = {}
    for spec in specs or []:
        for item in filter(None, (part.strip() for part in spec.split(","))):
            raw, sep, target = item.rpartition("=")
            if not sep or target.strip().lower() not in MAP_TARGETS:
                raise UsageError(f"--map {item!r}: expected RAW=pass, RAW=fail or RAW=skip")
            mapping[raw.strip()] = MAP_TARGETS[target.strip().lower()]
    return mapping


def _raw_text(value: Any) -> str | None:
    if value is None:
        return None
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        return f"{value:g}"
    if isinstance(value, str):
        return value.strip()
    return None


def _rows(path: Path) -> tuple[str, list[tuple[int, dict[str, Any]]]]:
    """``(format, [(line number, record)])``; a line that is no record is an error."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except FileNotFoundError:
        raise UsageError(f"labels file not found: {path}") from None
    except UnicodeDecodeError as exc:
        raise UsageError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    suffix = path.suffix.lower()
    is_jsonl = suffix in (".jsonl", ".ndjson", ".json") or (
        suffix != ".csv" and text.lstrip().startswith("{"))
    rows: list[tuple[int, dict[str, Any]]] = []
    if is_jsonl:
        for number, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as exc:
                raise UsageError(f"{path}:{number}: not JSON ({exc.msg})") from None
            if not isinstance(record, dict):
                raise UsageError(f"{path}:{number}: expected a JSON object per line")
            rows.append((number, record))
        return "jsonl", rows
    reader = csv.DictReader(text.splitlines())
    header = reader.fieldnames or []
    missing = [c for c in ("transcript_id", "label") if c not in header]
    if missing:
        raise UsageError(f"{path}:1: the CSV header has no {' and no '.join(missing)} column "
                         f"(header: {', '.join(header) or 'empty'})")
    for record in reader:
        if None in record:
            raise UsageError(f"{path}:{reader.line_num}: more fields than the header has")
        rows.append((reader.line_num, record))
    return "csv", rows


def read_labels(path: str | Path, mapping: dict[str, LabelValue] | None = None,
                ) -> tuple[str, list[Label]]:
    """``(format, labels)`` of a CSV or JSONL file (skip labels included)."""
    path = Path(path)
    mapping = mapping or {}
    lowered = {k.lower(): v for k, v in mapping.items()}
    fmt, rows = _rows(path)
    labels: list[Label] = []
    unknown: Counter[str] = Counter()
    first_seen: dict[str, str] = {}
    for number, record in rows:
        where = f"{path}:{number}"
        tid = record.get("transcript_id")  # exact: ids may carry any character
        tid = tid if isinstance(tid, str) else _raw_text(tid)
        if not tid or not tid.strip():
            raise UsageError(f"{where}: no transcript_id")
        raw = _raw_text(record.get("label"))
        if raw is None or raw == "":
            raise UsageError(f"{where}: no label for transcript {tid!r}")
        value = mapping.get(raw) or lowered.get(raw.lower()) or BUILT_IN.get(raw.lower())
        if value is None:
            unknown[raw] += 1
            first_seen.setdefault(raw, where)
            continue
        criterion = _raw_text(record.get("criterion")) or None
        index_raw = record.get("message_index")
        message_index = None
        if index_raw not in (None, ""):
            try:
                message_index = int(index_raw)
            except (TypeError, ValueError):
                raise UsageError(f"{where}: message_index {index_raw!r} is not a whole "
                                 "number") from None
        labels.append(Label(tid, value, raw, where, criterion, message_index))
    if unknown:
        listed = ", ".join(f"{raw!r} ({n} at {first_seen[raw]}{' and more' if n > 1 else ''})"
                           for raw, n in unknown.most_common())
        example = ",".join(f"{raw}={target}" for raw, target in
                           zip(unknown, ("pass", "fail", "skip"), strict=False))
        raise UsageError(f"labels not understood: {listed}; labels are pass/fail, true/false, "
                         f"1/0 or skip; say what yours mean with --map RAW=pass|fail|skip "
                         f"(e.g. --map '{example}')")
    return fmt, labels
