"""A content-addressed cache of judge answers, in one SQLite file.

The key is the SHA-256 of the judge's identity (backend name, model, endpoint), the rendered
prompt messages, the sampling parameters and the repeat index, so re-running an unchanged suite
makes zero calls and editing one criterion's rubric re-runs only that criterion. Values are the
:class:`~harness.judges.base.JudgeResponse` as JSON. Only successful answers are stored: a call
that failed is tried again next run. (An answer with no parseable verdict *is* stored: it is what
the model said to that prompt; change the rubric, or clear the cache, to ask again.)

The file is in WAL mode and each thread gets its own connection, so many writers (threads or
processes) can share it.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

from harness.judges.base import JudgeRequest, JudgeResponse

CACHE_FILE = "judge-cache.sqlite"
NONCE_KEY_FILE = "judge-nonce.key"
SCHEMA_VERSION = 1


def canonical_json(value: Any) -> str:
    """JSON with sorted keys and no whitespace: equal values give equal text."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def cache_key(
    identity: dict[str, Any],
    request: JudgeRequest,
    *,
    repeat: int = 0,
    extra: dict[str, Any] | None = None,
) -> str:
    """SHA-256 hex of everything that determines a judge's answer."""
    payload = {
        "v": SCHEMA_VERSION,
        "judge": identity,
        "request": request.model_dump(mode="json"),
        "repeat": repeat,
        "extra": extra or {},
    }
    return hashlib.sha256(canonical_json(payload).encode()).hexdigest()


class JudgeCache:
    """SQLite store of judge answers keyed by :func:`cache_key`."""

    def __init__(self, directory: str | Path, *, filename: str = CACHE_FILE):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / filename
        self._local = threading.local()
        self._stats_lock = threading.Lock()
        self.hits = 0
        """Lookups answered from the cache."""
        self.misses = 0
        """Lookups not found."""
        with self._connect() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS answers ("
                " key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
            )

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
        return conn

    def key(
        self,
        identity: dict[str, Any],
        request: JudgeRequest,
        *,
        repeat: int = 0,
        extra: dict[str, Any] | None = None,
    ) -> str:
        """See :func:`cache_key`."""
        return cache_key(identity, request, repeat=repeat, extra=extra)

    def get_json(self, key: str) -> Any | None:
        """The stored value, decoded, or ``None``."""
        row = self._connect().execute("SELECT value FROM answers WHERE key = ?", (key,)).fetchone()
        with self._stats_lock:
            if row is None:
                self.misses += 1
            else:
                self.hits += 1
        return None if row is None else json.loads(row[0])

    def put_json(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value (last writer wins; values for a key are equal)."""
        self._connect().execute(
            "INSERT OR REPLACE INTO answers (key, value, created) VALUES (?, ?, ?)",
            (key, json.dumps(value, ensure_ascii=False), time.time()),
        )

    def get(self, key: str) -> JudgeResponse | None:
        """The stored response, or ``None``."""
        value = self.get_json(key)
        return None if value is None else JudgeResponse.model_validate(value)

    def put(self, key: str, response: JudgeResponse) -> None:
        """Store a response."""
        self.put_json(key, response.model_dump(mode="json"))

    def __len__(self) -> int:
        return self._connect().execute("SELECT COUNT(*) FROM answers").fetchone()[0]

    def close(self) -> None:
        """Close this thread's connection (others close when their thread ends)."""
        conn = getattr(self._local, "conn", None)
        if conn is not None:
            conn.close()
            self._local.conn = None

    def nonce_key(self) -> bytes:
        """The secret that salts prompt nonces (see :mod:`harness.judges.prompting`)."""
        return load_or_create_secret(self.directory / NONCE_KEY_FILE)


def load_or_create_secret(path: Path) -> bytes:
    """A random 32-byte secret kept in ``path`` (created once, mode 0600, race-safe)."""
    try:
        data = path.read_bytes()
        if len(data) >= 32:
            return data
    except FileNotFoundError:
        pass
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secrets.token_bytes(32))
    try:
        os.link(tmp, path)  # fails if another process created it first: theirs wins
    except FileExistsError:
        pass
    finally:
        tmp.unlink()
    return path.read_bytes()
