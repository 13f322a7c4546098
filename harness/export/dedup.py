"""Exact-duplicate detection with a set of short content digests (16 bytes per example)."""

from __future__ import annotations

import hashlib
import json
from typing import Any


def digest(payload: Any) -> bytes:
    """A 128-bit digest of ``payload``'s canonical JSON (key order does not matter)."""
    blob = json.dumps(payload, sort_keys=True, ensure_ascii=False, separators=(",", ":"))
    return hashlib.blake2b(blob.encode("utf-8"), digest_size=16).digest()


class Deduper:
    """Remembers what was written; :meth:`first` is false for an exact repeat."""

    def __init__(self, enabled: bool = True) -> None:
        self.enabled = enabled
        self.seen: set[bytes] = set()
        self.dropped = 0
        """Examples refused as exact duplicates."""

    def first(self, payload: Any) -> bool:
        """True the first time this content is seen (always true when disabled)."""
        if not self.enabled:
            return True
        key = digest(payload)
        if key in self.seen:
            self.dropped += 1
            return False
        self.seen.add(key)
        return True
