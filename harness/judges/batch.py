"""Judges at batch price: calls collected into OpenAI-compatible batches, answers dispatched back.

A judge with ``batch: true`` does not send its calls one by one. Its runner hands each call
(after a cache miss) to the :class:`Batcher` of the running event loop, which

1. collects requests until ``batch_max_requests`` are waiting, their input file would pass
   ``batch_max_bytes``, or no new request arrived for ``batch_idle_s`` (the streaming engine
   stops handing out requests once ``--max-in-flight`` transcripts wait, so a batch holds at
   most that many); a request larger than ``batch_max_bytes`` alone fits in no batch: its call
   raises :class:`BatchRequestTooLarge` (an ``error`` verdict);
2. writes them as a JSONL of requests, each with a stable ``custom_id`` (the judge cache key of
   the call: the same transcript, rubric and model give the same id), uploads it
   (``POST /files``, purpose ``batch``) and creates the batch (``POST /batches``);
3. polls it every ``batch_poll_s`` (``GET /batches/{id}``, logging its status and counts to the
   ``harness`` logger at INFO when they changed), downloads the output and error files
   (``GET /files/{id}/content``) and dispatches each answer to the call waiting for it.

Every Batch API request is one attempt of the judge's retry policy, given up after its
``timeout_s``; a creation retried after an attempt whose answer was lost (a 502, a timeout)
first looks for a batch made from its input file, so that a batch is never created twice.

**The journal.** Each step is recorded in ``judge-batches.sqlite`` next to the judge cache (the
run directory, or ``--cache-dir``) *before* the next one starts: the custom ids of a batch, then
its input file, then its batch id, then the downloaded answers (kept until the call that waits
for each has used it). A killed run that resumes finds its calls' custom ids there and polls the
same batch again instead of sending anything twice; a kill between the upload and the creation
of a batch is recovered by looking the uploaded file up among the endpoint's batches. A request
whose batch failed it is sent in a new batch when asked again (``--resume`` retrying an errored
verdict), not live. Without a cache directory (``harness.review()`` without ``cache_dir``) the
journal lives in memory.

**Fail-closed.** A request the batch failed, or did not answer before it expired or was
cancelled, and an answer that is not a usable completion, raise :class:`BatchMiss`: the runner
asks it again as a normal call (with retries), whose failure is an ``error`` verdict, never a
pass (a warning says how many of a batch's requests go live, at the full price). A batch that
failed as a whole (``failed``: invalid, or over the organisation's enqueued token limit) does
so only with ``batch_on_failure: live``; by default it stops the run, its requests no longer
waiting for it (``--resume`` sends them in a new batch). A batch that cannot be started (no
Batch API, the endpoint down) or polled (the endpoint down, a key of another project, a bad
key), or whose answers cannot be downloaded, stops the run with
:class:`~harness.judges.base.JudgeUnavailable` (a batch already sent stays journaled:
``--resume`` goes on with it, nothing is asked twice).

**Cost.** An answer's ``cost_usd`` is the judge's per-token prices times ``1 - batch_discount``
(default 0.5: half price).
"""

from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from collections.abc import Awaitable, Callable, Coroutine
from typing import Any, Literal, TypeVar

import orjson
from pydantic import BaseModel, ConfigDict, Field

from harness.judges.base import (
    JudgeError,
    JudgeMisconfigured,
    JudgeRequest,
    JudgeResponse,
    JudgeUnavailable,
)
from harness.judges.batch_journal import JOURNAL_FILE, BatchJournal, JournalRow
from harness.judges.retry import Retrying

__all__ = [
    "BATCH_KEYS", "BatchClient", "BatchFileTooLarge", "BatchJournal", "BatchMiss", "BatchOptions",
    "BatchRequestTooLarge", "Batcher", "JOURNAL_FILE",
]

TERMINAL = frozenset({"completed", "expired", "cancelled", "failed"})
"""Batch statuses after which nothing more will be answered."""
T = TypeVar("T")
log = logging.getLogger("harness")


class BatchOptions(BaseModel):
    """Keys of a judge mapping that send its calls as batches."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    batch: bool = False
    """Send calls through the endpoint's batch API (hours of latency, a lower price)."""
    batch_max_requests: int = Field(default=10_000, ge=1, le=50_000)
    """A batch is sent as soon as this many requests wait (OpenAI accepts up to 50,000)."""
    batch_idle_s: float = Field(default=5.0, gt=0)
    """...or once no new request arrived for this long."""
    batch_poll_s: float = Field(default=30.0, gt=0)
    """Seconds between two polls of a batch's status."""
    batch_discount: float = Field(default=0.5, ge=0, le=1)
    """Fraction taken off the per-token prices for batched calls (0.5: half price)."""
    batch_completion_window: str = "24h"
    """The batch's ``completion_window`` (past it, unanswered requests expire)."""
    batch_max_bytes: int = Field(default=199_000_000, ge=1)
    """A batch's input file never grows past this many bytes: another batch is started
    instead (OpenAI accepts up to 200 MB)."""
    batch_on_failure: Literal["stop", "live"] = "stop"
    """A batch that failed as a whole: ``stop`` the run (``--resume`` sends a new batch), or
    ask its requests ``live``, at the full price."""


BATCH_KEYS = frozenset(BatchOptions.model_fields)
"""Keys of a judge mapping that configure batching (taken out before the backend sees them)."""


class BatchMiss(Exception):
    """The batch gave no usable answer to a request: ask it as a normal call."""


class BatchRequestTooLarge(JudgeError):
    """One request is larger than ``batch_max_bytes``: no batch can hold it (an ``error``
    verdict for its call)."""


class BatchFileTooLarge(JudgeError):
    """The endpoint refused a batch's input file for its size (raised by a client's upload)."""


class BatchClient(ABC):
    """An endpoint's batch API, as a backend provides it (:meth:`JudgeBackend.batch_client`).

    HTTP failures raise :class:`~harness.judges.base.JudgeError` (``retryable``, ``connection``)
    as :meth:`JudgeBackend.complete` does; an input file refused for its size raises
    :class:`BatchFileTooLarge`.
    """

    @abstractmethod
    def line(self, custom_id: str, request: JudgeRequest) -> dict[str, Any]:
        """One line of the batch's input file."""

    @abstractmethod
    def parse(self, body: Any) -> JudgeResponse:
        """An answer's body as a response (full price); raises ``JudgeError`` if unusable."""

    @abstractmethod
    async def upload(self, data: bytes) -> str:
        """Upload the JSONL input file; its file id."""

    @abstractmethod
    async def create(self, file_id: str, completion_window: str) -> dict[str, Any]:
        """Create a batch from an uploaded file; the batch object."""

    @abstractmethod
    async def retrieve(self, batch_id: str) -> dict[str, Any]:
        """The batch object (``status``, ``output_file_id``, ``error_file_id``...)."""

    @abstractmethod
    async def find(self, file_id: str) -> dict[str, Any] | None:
        """The batch created from ``file_id``, if any (recovers a kill during creation)."""

    @abstractmethod
    async def download(self, file_id: str) -> bytes:
        """A file's content."""


Answer = tuple[str, Any, str | None]
"""What a waiting call receives: (``ok``, body, batch id) or (``failed``, reason, batch id)."""


class _Flight:
    """One batch this process follows: the futures of the calls waiting for it."""

    def __init__(self) -> None:
        self.futures: dict[str, asyncio.Future[Answer]] = {}
        self.task: asyncio.Task[None] | None = None

    def future(self, custom_id: str) -> asyncio.Future[Answer]:
        fut = self.futures.get(custom_id)
        if fut is None:
            fut = self.futures[custom_id] = asyncio.get_running_loop().create_future()
        return fut

    def deliver(self, results: dict[str, tuple[str, Any]], batch_id: str | None) -> None:
        for cid, fut in self.futures.items():
            if not fut.done():
                state, payload = results.get(
                    cid, ("failed", f"batch {batch_id} has no answer for it"))
                fut.set_result((state, payload, batch_id))

    def raise_(self, exc: BaseException) -> None:
        for fut in self.futures.values():
            if not fut.done():
                fut.set_exception(exc)
                fut.exception()  # retrieved: no "never retrieved" warning for unclaimed ones


class Batcher:
    """Collects one judge's requests on one event loop, runs the batches, dispatches answers.

    Uploads, creations and downloads are retried under the judge's retry policy
    (``retrying``); a poll is retried up to ``breaker_after`` attempts, after which the run stops.
    Each attempt is given the policy's ``timeout_s``.
    """

    def __init__(
        self,
        name: str,
        client: BatchClient,
        options: BatchOptions,
        journal: BatchJournal,
        *,
        retrying: Retrying,
        breaker_after: int = 10,
    ) -> None:
        self.name = name
        self.client = client
        self.options = options
        self.journal = journal
        self._retrying = retrying
        self._breaker_after = max(1, breaker_after)
        self._timeout_s = retrying.policy.timeout_s
        self._pending: dict[str, tuple[bytes, asyncio.Future[Answer]]] = {}  # id -> its line
        self._pending_bytes = 0
        self._flights: dict[str, _Flight] = {}  # custom id -> the flight it waits for
        self._resumed: dict[int, _Flight] = {}  # journal ref -> flight of an earlier run
        self._tasks: set[asyncio.Task[None]] = set()
        self._timer: asyncio.Task[None] | None = None
        self._last_arrival = 0.0
        self.created = 0
        """Batches this object created (for tests and reports)."""

    # --- the calls' side ------------------------------------------------------------------------
    async def submit(self, custom_id: str, request: JudgeRequest) -> tuple[JudgeResponse, str]:
        """The batch's answer to ``request`` (at the batch price) and the batch id.

        Raises :class:`BatchMiss` when the batch gave no usable answer, or
        :class:`~harness.judges.base.JudgeUnavailable` when its batch cannot be followed.
        """
        state, payload, batch_id = await asyncio.shield(self._attach(custom_id, request))
        if state != "ok":
            raise BatchMiss(f"batch {batch_id}: {payload}" if batch_id else str(payload))
        try:
            response = self.client.parse(payload)
        except JudgeError as exc:
            raise BatchMiss(f"batch {batch_id}: unusable answer: {exc}") from None
        if response.cost_usd is not None:
            cost = response.cost_usd * (1.0 - self.options.batch_discount)
            response = response.model_copy(update={"cost_usd": cost})
        return response, batch_id or ""

    def delivered(self, custom_id: str) -> None:
        """The answer to ``custom_id`` is used (and cached when usable): forget it."""
        self.journal.delivered(custom_id)

    def _attach(self, custom_id: str, request: JudgeRequest) -> asyncio.Future[Answer]:
        loop = asyncio.get_running_loop()
        if custom_id in self._pending:
            return self._pending[custom_id][1]
        flight = self._flights.get(custom_id)
        if flight is not None:
            return flight.future(custom_id)
        row = self.journal.lookup(custom_id)
        if row is not None and row.state == "ok":  # downloaded before a kill
            fut: asyncio.Future[Answer] = loop.create_future()
            fut.set_result(("ok", orjson.loads(row.result or "null"), row.batch_id))
            return fut
        if row is not None and row.state == "waiting" and row.file_id is not None:
            flight = self._resumed.get(row.ref)  # sent by an earlier run: follow it
            if flight is None:
                flight = self._resumed[row.ref] = _Flight()
                flight.task = self._spawn(self._follow_earlier(flight, row))
            self._flights[custom_id] = flight
            return flight.future(custom_id)
        if row is not None:  # never sent (the upload did not finish), or failed: a new batch
            self.journal.forget(custom_id)
        line = orjson.dumps(self.client.line(custom_id, request), option=orjson.OPT_APPEND_NEWLINE)
        limit = self.options.batch_max_bytes
        if len(line) > limit:
            raise BatchRequestTooLarge(
                f"judge {self.name}: this request is {len(line):,} bytes as a line of a batch "
                f"file, more than batch_max_bytes ({limit:,}): no batch can hold it")
        if self._pending_bytes + len(line) > limit:  # the waiting ones go without it
            self._flush()
        fut = loop.create_future()
        self._pending[custom_id] = (line, fut)
        self._pending_bytes += len(line)
        if len(self._pending) >= self.options.batch_max_requests:
            self._flush()
        else:
            self._last_arrival = time.monotonic()
            if self._timer is None or self._timer.done():
                self._timer = loop.create_task(self._flush_when_idle())
        return fut

    async def _flush_when_idle(self) -> None:
        while self._pending:
            wait = self._last_arrival + self.options.batch_idle_s - time.monotonic()
            if wait <= 0:
                self._flush()
                return
            await asyncio.sleep(wait)

    def _flush(self) -> None:
        pending, self._pending, self._pending_bytes = self._pending, {}, 0
        if not pending:
            return
        flight = _Flight()
        for cid, (_, fut) in pending.items():
            flight.futures[cid] = fut
            self._flights[cid] = flight
        flight.task = self._spawn(self._send(flight, {cid: ln for cid, (ln, _) in pending.items()}))

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # --- the batch's side ------------------------------------------------------------------------
    async def _send(self, flight: _Flight, lines: dict[str, bytes]) -> None:
        """Upload, create, follow a new batch."""
        ref = self.journal.open_batch(self.name, list(lines))
        try:
            data = b"".join(lines.values())
            what = f"upload the batch file ({len(lines):,} requests, {len(data):,} bytes)"
            try:
                file_id = await self._retry(what, self.client.upload, data)
            except JudgeError as exc:  # nothing was sent
                self.journal.abandon(ref)
                raise self._cannot_start(exc) from exc
            self.journal.set_file(ref, file_id)
            try:
                batch = await self._create(ref, file_id)
            except JudgeError as exc:  # the file stays journaled: --resume creates it
                raise self._cannot_start(exc) from exc
            await self._follow(flight, ref, batch)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting calls
            flight.raise_(exc)
        finally:
            self._forget(flight)

    async def _follow_earlier(self, flight: _Flight, row: JournalRow) -> None:
        """Follow a batch an earlier run sent (creating it if that run was killed first)."""
        try:
            batch: dict[str, Any] | None = None
            if row.batch_id is not None:  # status unknown: polled at once
                batch = {"id": row.batch_id, "status": None}
            else:
                assert row.file_id is not None
                try:
                    batch = await self._create(row.ref, row.file_id, recover=True)
                except JudgeError as exc:
                    raise self._cannot_start(exc) from exc
            await self._follow(flight, row.ref, batch)
        except asyncio.CancelledError:
            raise
        except BaseException as exc:  # noqa: BLE001 - handed to the waiting calls
            flight.raise_(exc)
        finally:
            self._resumed.pop(row.ref, None)
            self._forget(flight)

    def _cannot_start(self, exc: JudgeError) -> JudgeUnavailable:
        """No batch could be started: stop the run rather than pay live prices unasked (the
        client's error says why: no Batch API, a file too large, the endpoint down...)."""
        hint = ""
        if isinstance(exc, BatchFileTooLarge):
            hint = (f"; the endpoint refused the file's size: lower batch_max_bytes (now "
                    f"{self.options.batch_max_bytes:,})")
        return JudgeUnavailable(f"judge {self.name}: no batch could be started ({exc}){hint}",
                                connection=exc.connection)

    def _cannot_poll(self, batch_id: str, exc: JudgeError) -> JudgeUnavailable:
        """A batch could not be polled: stop the run; it stays journaled, never paid twice."""
        kept = f"batch {batch_id} stays journaled and is not sent again: --resume polls it"
        if isinstance(exc, JudgeMisconfigured):  # a bad key, a key of another project
            return JudgeMisconfigured(f"judge {self.name}: batch {batch_id} could not be "
                                      f"polled ({exc}); {kept} (with a key of the project "
                                      "that created it)")
        tries = f"{self._breaker_after} failures in a row: " if exc.retryable else ""
        return JudgeUnavailable(f"judge {self.name}: batch {batch_id} could not be polled "
                                f"({tries}{exc}); {kept}", connection=True)

    def _forget(self, flight: _Flight) -> None:
        for cid in flight.futures:
            if self._flights.get(cid) is flight:
                del self._flights[cid]

    async def _create(self, ref: int, file_id: str, *, recover: bool = False) -> dict[str, Any]:
        """The batch of an uploaded file, created now and journaled. An attempt after one
        whose answer was lost (a 502, a timeout: the batch may exist), and with ``recover``
        (an earlier run was killed after the upload) the first too, looks for a batch made
        from the file before creating one."""
        tried = recover
        sent = False

        async def attempt() -> dict[str, Any]:
            nonlocal tried, sent
            if tried and (found := await self._timed(self.client.find, file_id)) is not None:
                return found
            tried = True
            batch = await self._timed(self.client.create, file_id,
                                      self.options.batch_completion_window)
            sent = True
            return batch

        batch = await self._retry("create the batch", attempt, timed=False)
        if sent or not recover:
            self.created += 1
        self.journal.set_batch(ref, str(batch["id"]))
        return batch

    async def _follow(self, flight: _Flight, ref: int, batch: dict[str, Any]) -> None:
        """Poll until the batch ends, then download, journal and dispatch its answers."""
        batch_id = str(batch["id"])
        said: tuple[Any, ...] | None = None
        while batch.get("status") not in TERMINAL:
            if batch.get("status") is not None:
                await self._retrying.sleep(self.options.batch_poll_s)
            try:
                batch = await self._retrying(self._timed, self.client.retrieve, batch_id,
                                             attempts=self._breaker_after)
            except JudgeError as exc:  # never abandoned: it may be answering, and paid for
                raise self._cannot_poll(batch_id, exc) from exc
            said = self._progress(batch, said)
        status = batch.get("status")
        why = _batch_errors(batch) or f"the batch ended {status} before answering it"
        if status == "failed" and self.options.batch_on_failure == "stop":
            self.journal.abandon(ref)  # nothing of it was answered: --resume sends a new batch
            raise JudgeUnavailable(
                f"judge {self.name}: batch {batch_id} failed ({why}); none of its requests was "
                "answered or asked live. --resume sends them in a new batch (once the cause is "
                "fixed, or the limit has room again); `batch_on_failure: live` asks them as live "
                "calls at the full price instead")
        try:
            results = await self._results(batch)
        except JudgeError as exc:
            raise JudgeUnavailable(
                f"judge {self.name}: the answers of batch {batch_id} could not be downloaded "
                f"({exc}); --resume downloads them again", connection=True) from exc
        for cid in self.journal.members(ref):
            results.setdefault(cid, ("failed", why))
        self.journal.store(ref, results)
        missed = sum(state != "ok" for state, _ in results.values())
        if missed:
            log.warning("judge %s: batch %s ended %s with %d of %d requests unanswered (%s); "
                        "they are asked as live calls, at the full price", self.name, batch_id,
                        status, missed, len(results), why if status != "completed" else
                        "failed requests")
        flight.deliver(results, batch_id)

    def _progress(self, batch: dict[str, Any], said: tuple[Any, ...] | None) -> tuple[Any, ...]:
        """Log the batch's status and counts when they changed since ``said``; what was said."""
        counts = batch.get("request_counts")
        counts = counts if isinstance(counts, dict) else {}
        now = (batch.get("status"), *(counts.get(k) for k in ("completed", "failed", "total")))
        if now != said:
            status, completed, failed, total = (x or 0 for x in now)
            line = f"judge {self.name}: batch {batch.get('id')} {status}"
            if total:
                line += f", {completed + failed:,} of {total:,} done"
                line += f" ({failed:,} failed)" if failed else ""
            log.info("%s", line)
        return now

    async def _results(self, batch: dict[str, Any]) -> dict[str, tuple[str, Any]]:
        """Every answer (``ok``, body) and failure (``failed``, why) in the batch's output and
        error files."""
        results: dict[str, tuple[str, Any]] = {}
        for key in ("error_file_id", "output_file_id"):  # an answer wins over an error
            file_id = batch.get(key)
            if not file_id:
                continue
            data = await self._retry(f"download {key}", self.client.download, file_id)
            for line in data.splitlines():
                parsed = _result_line(line)
                if parsed is not None:
                    results[parsed[0]] = parsed[1]
        return results

    async def _retry(self, what: str, call: Callable[..., Awaitable[T]], *args: Any,
                     timed: bool = True) -> T:
        """``call(*args)`` under the retry policy, each attempt timed (unless it times its own
        requests); its last error (of the same class) says what could not be done."""
        try:
            if not timed:
                return await self._retrying(call, *args)
            return await self._retrying(self._timed, call, *args)
        except JudgeError as exc:
            raise type(exc)(f"could not {what}: {exc}", retryable=exc.retryable,
                            retry_after=exc.retry_after, connection=exc.connection) from exc

    async def _timed(self, call: Callable[..., Awaitable[T]], *args: Any) -> T:
        """``call(*args)``, given up after the judge's ``timeout_s`` (a retryable error)."""
        try:
            async with asyncio.timeout(self._timeout_s):
                return await call(*args)
        except TimeoutError:
            raise JudgeError(f"no answer within timeout_s ({self._timeout_s:g}s)",
                             retryable=True, connection=True) from None

    async def aclose(self) -> None:
        """Stop following batches (they stay journaled) and drop unsent requests."""
        tasks = [t for t in (self._timer, *self._tasks) if t is not None and not t.done()]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for _, fut in self._pending.values():
            fut.cancel()
        self._pending.clear()


def _result_line(line: bytes) -> tuple[str, tuple[str, Any]] | None:
    """``(custom_id, (state, body or reason))`` from one line of an output or error file."""
    try:
        item = orjson.loads(line)
        cid = item.get("custom_id") if isinstance(item, dict) else None
    except orjson.JSONDecodeError:
        return None
    if not isinstance(cid, str):
        return None
    response = item.get("response") if isinstance(item.get("response"), dict) else {}
    body, status, error = response.get("body"), response.get("status_code"), item.get("error")
    if status == 200 and isinstance(body, dict) and not error:
        return cid, ("ok", body)
    reason = None
    if isinstance(error, dict):
        reason = f"{error.get('code') or 'error'}: {error.get('message') or ''}".strip(": ")
    elif isinstance(body, dict) and isinstance(body.get("error"), dict):
        reason = f"HTTP {status}: {body['error'].get('message')}"
    return cid, ("failed", reason or f"HTTP {status}")


def _batch_errors(batch: dict[str, Any]) -> str | None:
    """The reasons a batch gives for failing as a whole (validation errors)."""
    errors = batch.get("errors")
    data = errors.get("data") if isinstance(errors, dict) else None
    if not data:
        return None
    return "; ".join(": ".join(str(e[k]) for k in ("code", "message") if e.get(k)) for e in data
                     if isinstance(e, dict))[:500] or None
