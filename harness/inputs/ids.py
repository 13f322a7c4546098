"""Transcript ids that more than one record has: warned about as a run writes them down, and
counted (``duplicate_ids`` in ``summary.json``).

A record's ``id`` names it for every later step (labels, ``harness calibrate``, ``harness diff``,
the report); two different records with one id make those ambiguous. Such records are still
reviewed (nothing is dropped), but not silently. Ids that hash a record's content (records
without an ``id``) are left out: the same such id is the same record, counted as a duplicate
example elsewhere.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson

from harness.inputs.formats import is_content_id
from harness.policy import INPUT_CRITERION
from harness.text import safe

WARNINGS_SHOWN = 5
"""Ids warned about one by one; past them, one line says more exist."""
log = logging.getLogger("harness")


class IdWatch:
    """The ids seen so far (as 64-bit hashes: about 60 bytes each) and how many were seen
    again. With ``warn``, the first repeats are logged as warnings, naming where."""

    def __init__(self, *, warn: bool = False) -> None:
        self.seen: set[int] = set()
        self.duplicates = 0
        self.warn = warn

    def add(self, tid: str, source: str = "") -> bool:
        """Note one transcript's id; True when another transcript had it already."""
        if is_content_id(tid):
            return False
        key = hash(tid)
        if key not in self.seen:
            self.seen.add(key)
            return False
        self.duplicates += 1
        if self.warn and self.duplicates <= WARNINGS_SHOWN:
            log.warning("harness: warning: transcript id %r at %s is another record's id too; "
                        "both are reviewed, but ids should be unique (labels and "
                        "`harness calibrate` cannot tell them apart); counted as duplicate_ids "
                        "in summary.json", safe(tid, 100), safe(source, 200))
        elif self.warn and self.duplicates == WARNINGS_SHOWN + 1:
            log.warning("harness: warning: more transcript ids are used by more than one "
                        "record; see duplicate_ids in summary.json")
        return True

    def observe(self, decision: Any,
                ident: tuple[str, str, Sequence[str]] | None = None) -> None:
        """Note a decision's transcript (a :class:`~harness.models.Decision` or its JSON, or
        its ``(transcript_id, source, errored)`` when known); unreadable records (input errors)
        are not transcripts and are left out."""
        if ident is not None:
            tid, source, errored = ident
            if tuple(errored) != (INPUT_CRITERION,):
                self.add(tid, source)
            return
        if isinstance(decision, bytes | bytearray):
            decision = orjson.loads(decision)
            tid, source, errored = (decision.get("transcript_id", ""), decision.get("source", ""),
                                    decision.get("errored"))
        else:
            tid, source, errored = decision.transcript_id, decision.source, decision.errored
        if errored != [INPUT_CRITERION]:
            self.add(tid, source)
