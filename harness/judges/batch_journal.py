"""The batch journal: which batch each judge call went into, so a resumed run never pays twice.

One SQLite file, ``judge-batches.sqlite``, next to the judge cache (the run directory, or
``--cache-dir``); in memory when there is no cache directory. :class:`~harness.judges.batch.
Batcher` records each step before the next starts: a batch's custom ids (``open_batch``), its
uploaded input file (``set_file``), its batch id (``set_batch``), the downloaded answers
(``store``), and drops each answer once the call waiting for it has used it (``delivered``).
WAL mode with ``synchronous=NORMAL``, as the cache: durable across a killed process.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from pathlib import Path
from typing import Any, NamedTuple

import orjson

JOURNAL_FILE = "judge-batches.sqlite"
"""The batch journal's file name, next to the judge cache."""


class JournalRow(NamedTuple):
    """What the journal knows of one custom id."""

    state: str
    """``waiting`` (sent, not answered yet), ``ok`` or ``failed`` (answer downloaded)."""
    result: str | None
    """The answer's body (JSON text) or why there is none."""
    ref: int
    file_id: str | None
    batch_id: str | None


class BatchJournal:
    """The batches a judge's calls went into, in SQLite (see the module docstring)."""

    def __init__(self, directory: str | Path | None) -> None:
        target = ":memory:"
        if directory is not None:
            Path(directory).mkdir(parents=True, exist_ok=True)
            target = str(Path(directory) / JOURNAL_FILE)
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(target, timeout=30.0, isolation_level=None,
                                     check_same_thread=False)
        with self._lock:
            self._conn.execute("PRAGMA journal_mode=WAL")
            self._conn.execute("PRAGMA synchronous=NORMAL")  # durable across a kill, as the cache
            self._conn.execute("PRAGMA busy_timeout=30000")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS batches (ref INTEGER PRIMARY KEY AUTOINCREMENT,"
                " judge TEXT NOT NULL, file_id TEXT, batch_id TEXT, status TEXT NOT NULL,"
                " created REAL NOT NULL)")
            self._conn.execute(
                "CREATE TABLE IF NOT EXISTS requests (custom_id TEXT PRIMARY KEY,"
                " ref INTEGER NOT NULL, state TEXT NOT NULL, result TEXT)")
            self._conn.execute("CREATE INDEX IF NOT EXISTS requests_ref ON requests (ref)")

    def _write(self, *statements: tuple[str, Any]) -> sqlite3.Cursor:
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                cursor = None
                for sql, params in statements:
                    if isinstance(params, list):
                        cursor = self._conn.executemany(sql, params)
                    else:
                        cursor = self._conn.execute(sql, params)
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        assert cursor is not None
        return cursor

    def open_batch(self, judge: str, custom_ids: list[str]) -> int:
        """Record a batch about to be uploaded with these custom ids; its reference."""
        with self._lock:
            self._conn.execute("BEGIN IMMEDIATE")
            try:
                ref = self._conn.execute(
                    "INSERT INTO batches (judge, status, created) VALUES (?, 'uploading', ?)",
                    (judge, time.time())).lastrowid
                self._conn.executemany(
                    "INSERT OR REPLACE INTO requests (custom_id, ref, state, result)"
                    " VALUES (?, ?, 'waiting', NULL)", [(cid, ref) for cid in custom_ids])
                self._conn.execute("COMMIT")
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
        assert ref is not None
        return ref

    def set_file(self, ref: int, file_id: str) -> None:
        """The batch's input file is uploaded."""
        self._write(("UPDATE batches SET file_id = ?, status = 'uploaded' WHERE ref = ?",
                     (file_id, ref)))

    def set_batch(self, ref: int, batch_id: str) -> None:
        """The batch is created."""
        self._write(("UPDATE batches SET batch_id = ?, status = 'submitted' WHERE ref = ?",
                     (batch_id, ref)))

    def abandon(self, ref: int) -> None:
        """The batch never started: its requests are no longer waiting for it."""
        self._write(("DELETE FROM requests WHERE ref = ? AND state = 'waiting'", (ref,)),
                    ("UPDATE batches SET status = 'abandoned' WHERE ref = ?", (ref,)))

    def store(self, ref: int, results: dict[str, tuple[str, Any]]) -> None:
        """The batch ended: every request's answer (``ok``, body) or failure (``failed``, why)."""
        rows = [(state, orjson.dumps(payload).decode() if state == "ok" else payload, cid, ref)
                for cid, (state, payload) in results.items()]
        self._write(
            ("UPDATE requests SET state = ?, result = ? WHERE custom_id = ? AND ref = ?", rows),
            ("UPDATE batches SET status = 'done' WHERE ref = ?", (ref,)))

    def lookup(self, custom_id: str) -> JournalRow | None:
        """What is known of a custom id, if anything."""
        with self._lock:
            row = self._conn.execute(
                "SELECT r.state, r.result, r.ref, b.file_id, b.batch_id FROM requests r"
                " JOIN batches b ON b.ref = r.ref WHERE r.custom_id = ?", (custom_id,)).fetchone()
        return None if row is None else JournalRow(*row)

    def members(self, ref: int) -> list[str]:
        """The custom ids still waiting for a batch."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT custom_id FROM requests WHERE ref = ? AND state = 'waiting'",
                (ref,)).fetchall()
        return [r[0] for r in rows]

    def forget(self, custom_id: str) -> None:
        """Drop a custom id whose batch was never sent."""
        self._write(("DELETE FROM requests WHERE custom_id = ?", (custom_id,)))

    def delivered(self, custom_id: str) -> None:
        """The call waiting for this answer has used it (cached it if usable): drop it."""
        with self._lock:  # one statement: its own transaction
            self._conn.execute("DELETE FROM requests WHERE custom_id = ? AND state != 'waiting'",
                               (custom_id,))

    def batches(self) -> list[dict[str, Any]]:
        """Every batch recorded, oldest first (for tests and reports)."""
        with self._lock:
            rows = self._conn.execute(
                "SELECT ref, judge, file_id, batch_id, status FROM batches ORDER BY ref"
            ).fetchall()
        return [dict(zip(("ref", "judge", "file_id", "batch_id", "status"), r, strict=True))
                for r in rows]

    def close(self) -> None:
        with self._lock:
            self._conn.close()
