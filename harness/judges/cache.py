"""A content-addressed cache of judge answers, in one SQLite file.

The key is the SHA-256 of the judge's identity (backend name, model, endpoint), the rendered
prompt messages, the sampling parameters and the repeat index, so re-running an unchanged suite
makes zero calls and editing one criterion's rubric re-runs only that criterion. Values are the
:class:`~harness.judges.base.JudgeResponse` as JSON. Only usable answers are stored: a call that
failed, an answer with no text, and an answer with no parseable verdict are asked again next run.

The file is in WAL mode and each thread gets its own connection, so many writers (threads or
processes) can share it. A run gets its cache object from the run's shared resources and closes
it (every connection it opened) when the run ends.
"""

from __future__ import annotations

import hashlib
import os
import secrets
import sqlite3
import threading
import time
from pathlib import Path
from typing import Any

import orjson

from harness.canonical import canonical_bytes
from harness.judges.base import JudgeRequest, JudgeResponse

CACHE_FILE = "judge-cache.sqlite"
NONCE_KEY_FILE = "judge-nonce.key"
SCHEMA_VERSION = 1


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
    return hashlib.sha256(canonical_bytes(payload)).hexdigest()


class JudgeCache:
    """SQLite store of judge answers keyed by :func:`cache_key`."""

    def __init__(self, directory: str | Path, *, filename: str = CACHE_FILE):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.path = self.directory / filename
        self._local = threading.local()
        self._lock = threading.Lock()
        self._conns: list[sqlite3.Connection] = []
        with self._connect() as conn:
            conn.execute(
                "CREATE TABLE IF NOT EXISTS answers ("
                " key TEXT PRIMARY KEY, value TEXT NOT NULL, created REAL NOT NULL)"
            )

    def _connect(self) -> sqlite3.Connection:
        conn = getattr(self._local, "conn", None)
        if conn is None:
            # Used by one thread only; check_same_thread=False lets close() close it from any.
            conn = sqlite3.connect(self.path, timeout=30.0, isolation_level=None,
                                   check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA busy_timeout=30000")
            self._local.conn = conn
            with self._lock:
                self._conns.append(conn)
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

    def _get_text(self, key: str) -> str | None:
        row = self._connect().execute("SELECT value FROM answers WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def get_json(self, key: str) -> Any | None:
        """The stored value, decoded, or ``None``."""
        text = self._get_text(key)
        return None if text is None else orjson.loads(text)

    def put_json(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value (last writer wins; values for a key are equal)."""
        self._connect().execute(
            "INSERT OR REPLACE INTO answers (key, value, created) VALUES (?, ?, ?)",
            (key, orjson.dumps(value).decode(), time.time()),
        )

    def get(self, key: str) -> JudgeResponse | None:
        """The stored response, or ``None``."""
        text = self._get_text(key)
        return None if text is None else JudgeResponse.model_validate_json(text)

    def put(self, key: str, response: JudgeResponse) -> None:
        """Store a response."""
        self._connect().execute(
            "INSERT OR REPLACE INTO answers (key, value, created) VALUES (?, ?, ?)",
            (key, response.model_dump_json(), time.time()),
        )

    def __len__(self) -> int:
        return int(self._connect().execute("SELECT COUNT(*) FROM answers").fetchone()[0])

    def close(self) -> None:
        """Close every connection this object opened (it reopens one if used again)."""
        with self._lock:
            conns, self._conns = self._conns, []
        for conn in conns:
            conn.close()
        self._local = threading.local()

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
