"""Fewer garbage-collector passes while a stream of transcripts is reviewed.

Each chunk of records makes tens of thousands of short-lived objects (messages, verdicts,
decisions), and CPython's default thresholds run a young collection every 700 of them and, now
and then, a full one over every object the process holds (its modules, pydantic's schemas,
models). Measured on the regex benchmark, that was a third of the engine's time. Reference
counting frees these objects anyway; the collector only finds cycles, which the hot path does
not make. So while a stream runs, the objects made before it are frozen out of the collector's
view and it runs a hundred times less often; both are put back when the stream ends.
"""

from __future__ import annotations

import contextlib
import gc
import threading
from collections.abc import Iterator

THRESHOLDS = (100_000, 50, 1_000)
"""Young generation every 100,000 allocations (CPython: 700), the older ones less often."""

_lock = threading.Lock()
_active = 0
_saved: tuple[int, int, int] | None = None


@contextlib.contextmanager
def fewer_collections() -> Iterator[None]:
    """Collect less often inside the block (nested or concurrent blocks share one setting;
    the caller's thresholds and frozen set come back when the last block ends)."""
    global _active, _saved
    with _lock:
        _active += 1
        if _active == 1:
            _saved = gc.get_threshold()
            gc.freeze()
            gc.set_threshold(*THRESHOLDS)
    try:
        yield
    finally:
        with _lock:
            _active -= 1
            if _active == 0 and _saved is not None:
                gc.set_threshold(*_saved)
                gc.unfreeze()
                _saved = None

