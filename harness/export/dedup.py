"""Exact duplicates: one rule for the run's ``train.jsonl`` and for every export.

Two training examples are duplicates when their content is the same: for chat examples, the
messages as written (every field the record gave them, and each assistant turn's weight, 1 when
not set) and the record's tools, compared as canonical JSON (key order does not matter). The
first is kept. A set of 128-bit digests remembers what was written: about 80 MB per million
distinct examples.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from typing import Any

import orjson


def digest(payload: Any) -> bytes:
    """A 128-bit digest of ``payload``'s canonical JSON (key order does not matter)."""
    try:
        blob = orjson.dumps(payload, option=orjson.OPT_SORT_KEYS)
    except TypeError:  # what orjson refuses (integers past 64 bits...), the json module writes
        blob = json.dumps(payload, sort_keys=True, ensure_ascii=False,
                          separators=(",", ":")).encode("utf-8")
    return hashlib.blake2b(blob, digest_size=16).digest()


def training_messages(messages: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    """The messages as trained on: every assistant turn has ``weight`` 0 or 1 (1 when unset)."""
    out = []
    for m in messages:
        if m.get("role") == "assistant":
            weight = m.get("weight")
            m = {**m, "weight": 0 if weight is not None and weight <= 0 else 1}
        out.append(m)
    return out


def messages_key(messages: Sequence[dict[str, Any]],
                 record: dict[str, Any] | None = None) -> bytes:
    """The duplicate key of a chat example (OpenAI-layout messages, and the record's top-level
    tool keys when it has some: the same conversation with other tools is another example)."""
    trained = training_messages(messages)
    return digest({"messages": trained, **record} if record else trained)


class Deduper:
    """Remembers what was written; :meth:`first` is false for an exact repeat."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.seen: set[bytes] = set()
        self.dropped = 0
        """Examples refused as exact duplicates."""

    def first(self, payload: Any) -> bool:
        """True the first time this content is seen (always true when disabled)."""
        return self.first_key(digest(payload)) if self.enabled else True

    def first_messages(self, messages: Sequence[dict[str, Any]],
                       record: dict[str, Any] | None = None) -> bool:
        """:meth:`first` for a chat example, by :func:`messages_key`."""
        return self.first_key(messages_key(messages, record)) if self.enabled else True

    def first_key(self, key: bytes) -> bool:
        """True the first time this key (a digest made elsewhere) is seen."""
        if not self.enabled:
            return True
        if key in self.seen:
            self.dropped += 1
            return False
        self.seen.add(key)
        return True
