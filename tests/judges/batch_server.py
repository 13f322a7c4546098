"""A real OpenAI-compatible Batch API server for tests: files and batches beside chat completions.

:class:`BatchServer` is a :class:`~chat_server.ChatServer` (chat completions keep working, with
their faults) that also serves

- ``POST /v1/files`` (multipart, ``purpose=batch``) and ``GET /v1/files/{id}/content``;
- ``POST /v1/batches``, ``GET /v1/batches/{id}`` and ``GET /v1/batches`` (newest first, with
  ``limit`` and ``after``).

A batch answers ``in_progress`` to its first ``polls_to_finish`` polls, then ends: each request
line is answered the way the chat route answers (``reply``, token usage), into the output file.
Scripting:

- ``hold``: batches stay ``in_progress`` until :meth:`release` (a run killed while it waits);
- ``expire_after``: a batch ``expired`` after answering only its first ``n`` requests (the rest
  in the error file, code ``batch_expired``);
- ``fail_line(line) -> bool``: those requests fail (HTTP 500 in the error file);
- ``fail_validation``: batches end ``failed`` with this message (error code ``fail_code``,
  ``invalid_input`` by default; ``token_limit_exceeded`` as when the organisation's enqueued
  token limit is reached), answering nothing;
- ``fail_polls(n)``: the next ``n`` polls answer 503;
- ``fail_route(route, n, status=..., hang=..., after=...)``: the next ``n`` requests of a route
  (``upload``, ``create``, ``poll``, ``list``, ``download``) answer ``status``, or never answer
  (``hang``, until the server stops); with ``after`` the route does its work first (a batch
  created whose answer is lost on the way, as behind a gateway's 502);
- ``keys``: API key -> project. Set, every route wants a known key (401 otherwise), and files
  and batches belong to the project whose key made them: another project's are 404 and are
  not listed, as with project-scoped keys.

As the real API: an input file over ``max_file_bytes`` (200 MB) is refused (400 "File is too
large."); a running batch reports ``request_counts`` that grow with each poll. A batch whose
``custom_id`` values are not unique, or whose lines do not ``POST`` to
``/v1/chat/completions``, fails validation.

Counters: ``uploads``, ``batches`` (by id, the batch objects), ``created`` (batches created),
``polls``, ``lists``, ``batch_bodies`` (request bodies answered inside batches); ``requests``
(from ChatServer) holds only the normal chat calls.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from email.parser import BytesParser
from email.policy import HTTP
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from chat_server import ChatServer

TERMINAL = {"completed", "expired", "cancelled", "failed"}
ROUTES = {"upload", "create", "poll", "list", "download"}


@dataclass
class Fault:
    """What the next request of a route meets (see ``fail_route``)."""

    status: int = 503
    hang: bool = False
    after: bool = False


@dataclass
class BatchServer(ChatServer):
    """See the module docstring."""

    polls_to_finish: int = 1
    hold: bool = False
    expire_after: int | None = None
    fail_line: Callable[[dict[str, Any]], bool] | None = None
    fail_validation: str | None = None
    fail_code: str = "invalid_input"
    max_file_bytes: int = 200_000_000
    keys: dict[str, str] | None = None
    files: dict[str, bytes] = field(default_factory=dict)
    batches: dict[str, dict[str, Any]] = field(default_factory=dict)
    batch_bodies: list[dict[str, Any]] = field(default_factory=list)
    uploads: int = 0
    polls: int = 0
    lists: int = 0
    _faults_by_route: dict[str, list[Fault]] = field(default_factory=dict)
    _seen_polls: dict[str, int] = field(default_factory=dict)
    _owners: dict[str, str | None] = field(default_factory=dict)  # file or batch id -> project

    @property
    def created(self) -> int:
        """Batches created."""
        return len(self.batches)

    def release(self) -> None:
        """Let held batches end at their next poll."""
        self.hold = False

    def fail_polls(self, n: int) -> None:
        """The next ``n`` polls answer 503."""
        self.fail_route("poll", n)

    def fail_route(self, route: str, n: int = 1, *, status: int = 503, hang: bool = False,
                   after: bool = False) -> None:
        """The next ``n`` requests of ``route`` answer ``status`` or hang (see the module doc)."""
        assert route in ROUTES, route
        with self._lock:
            self._faults_by_route.setdefault(route, []).extend(
                [Fault(status, hang, after)] * n)

    def _fault(self, route: str) -> Fault | None:
        with self._lock:
            queue = self._faults_by_route.get(route)
            return queue.pop(0) if queue else None

    def _inject(self, h: BaseHTTPRequestHandler, fault: Fault) -> None:
        if fault.hang:
            self._stop.wait()
            h.close_connection = True
            return
        self._send(h, fault.status, {"error": {"message": f"scripted {fault.status}"}})

    def _project(self, h: BaseHTTPRequestHandler) -> str | None | bool:
        """The project of the request's key (``None`` without ``keys``); ``False`` once a 401
        was sent."""
        if self.keys is None:
            return None
        key = h.headers.get("authorization", "").removeprefix("Bearer ")
        if key not in self.keys:
            h.close_connection = True  # a body left unread
            self._send(h, 401, {"error": {"message": "Incorrect API key provided",
                                          "code": "invalid_api_key"}})
            return False
        return self.keys[key]

    def _visible(self, object_id: str, project: str | None) -> bool:
        return object_id in self._owners and self._owners[object_id] == project

    # --- routes ----------------------------------------------------------------------------
    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        path = urlsplit(h.path).path.rstrip("/")
        batch_route = path.endswith(("/v1/files", "/v1/batches"))
        raw = h.rfile.read(int(h.headers.get("content-length") or 0)) if batch_route else b""
        project = self._project(h)
        if project is False:
            return
        if path.endswith("/v1/files"):
            self._upload(h, raw, project)
        elif path.endswith("/v1/batches"):
            self._create(h, raw, project)
        else:
            super()._handle(h)

    def _handle_get(self, h: BaseHTTPRequestHandler) -> None:
        url = urlsplit(h.path)
        parts = url.path.rstrip("/").split("/")
        project = self._project(h)
        if project is False:
            return
        if parts[-1] == "batches":
            self._list(h, parse_qs(url.query), project)
        elif len(parts) >= 2 and parts[-2] == "batches":
            self._retrieve(h, parts[-1], project)
        elif len(parts) >= 3 and parts[-1] == "content" and parts[-3] == "files":
            fault = self._fault("download")
            if fault is not None:
                self._inject(h, fault)
            elif not self._visible(parts[-2], project):
                self._send(h, 404, {"error": {"message": f"No such File object: {parts[-2]}"}})
            else:
                self._send_raw(h, 200, self.files[parts[-2]], "application/octet-stream")
        else:
            super()._handle_get(h)

    def _upload(self, h: BaseHTTPRequestHandler, raw: bytes, project: str | None) -> None:
        fault = self._fault("upload")
        if fault is not None and not fault.after:
            self._inject(h, fault)
            return
        head = f"Content-Type: {h.headers.get('content-type')}\r\n\r\n".encode()
        form = BytesParser(policy=HTTP).parsebytes(head + raw)
        fields = {part.get_param("name", header="content-disposition"):
                  part.get_payload(decode=True) for part in form.iter_parts()}
        if fields.get("purpose") != b"batch" or not fields.get("file"):
            self._send(h, 400, {"error": {"message": "expected purpose=batch and a file"}})
            return
        if len(fields["file"]) > self.max_file_bytes:
            self._send(h, 400, {"error": {"message": "File is too large.",
                                          "type": "invalid_request_error"}})
            return
        with self._lock:
            self.uploads += 1
            file_id = f"file-{len(self.files) + 1}"
            self.files[file_id] = fields["file"]
            self._owners[file_id] = project
        if fault is not None:
            self._inject(h, fault)
            return
        self._send(h, 200, {"id": file_id, "object": "file", "purpose": "batch",
                            "bytes": len(fields["file"]), "created_at": int(time.time())})

    def _create(self, h: BaseHTTPRequestHandler, raw: bytes, project: str | None) -> None:
        fault = self._fault("create")
        if fault is not None and not fault.after:
            self._inject(h, fault)
            return
        body = json.loads(raw or b"{}")
        if not self._visible(body.get("input_file_id"), project):
            self._send(h, 400, {"error": {"message": "unknown input_file_id"}})
            return
        with self._lock:
            batch_id = f"batch_{len(self.batches) + 1}"
            total = len(self.files[body["input_file_id"]].splitlines())
            batch = {
                "id": batch_id, "object": "batch", "endpoint": body.get("endpoint"),
                "input_file_id": body["input_file_id"],
                "completion_window": body.get("completion_window"), "status": "in_progress",
                "output_file_id": None, "error_file_id": None, "errors": None,
                "created_at": int(time.time()), "metadata": body.get("metadata"),
                "request_counts": {"total": total, "completed": 0, "failed": 0},
            }
            self.batches[batch_id] = batch
            self._seen_polls[batch_id] = 0
            self._owners[batch_id] = project
        if fault is not None:
            self._inject(h, fault)
            return
        self._send(h, 200, batch)

    def _list(self, h: BaseHTTPRequestHandler, query: dict[str, list[str]],
              project: str | None) -> None:
        fault = self._fault("list")
        if fault is not None:
            self._inject(h, fault)
            return
        limit = int((query.get("limit") or ["20"])[0])
        after = (query.get("after") or [None])[0]
        with self._lock:
            self.lists += 1
            newest_first = [b for b in reversed(self.batches.values())
                            if self._owners.get(b["id"]) == project]
        if after is not None:
            ids = [b["id"] for b in newest_first]
            newest_first = newest_first[ids.index(after) + 1:] if after in ids else []
        page = newest_first[:limit]
        self._send(h, 200, {"object": "list", "data": page,
                            "has_more": len(newest_first) > limit})

    def _retrieve(self, h: BaseHTTPRequestHandler, batch_id: str, project: str | None) -> None:
        with self._lock:
            self.polls += 1
        fault = self._fault("poll")
        if fault is not None:
            self._inject(h, fault)
            return
        if not self._visible(batch_id, project):
            self._send(h, 404, {"error": {"message": f"No batch found with id '{batch_id}'."}})
            return
        with self._lock:
            batch = self.batches[batch_id]
            if batch["status"] not in TERMINAL:
                seen = self._seen_polls[batch_id] = self._seen_polls[batch_id] + 1
                if not self.hold and seen > self.polls_to_finish:
                    self._finish(batch)
                else:  # some of it done meanwhile
                    counts = batch["request_counts"]
                    done = counts["total"] * min(seen, self.polls_to_finish)
                    counts["completed"] = done // (self.polls_to_finish + 1)
            answer = dict(batch)
        self._send(h, 200, answer)

    # --- running a batch -------------------------------------------------------------------
    def _finish(self, batch: dict[str, Any]) -> None:
        """End a batch: answer its lines (called with the lock held)."""
        lines = [json.loads(x) for x in self.files[batch["input_file_id"]].splitlines() if x]
        ids = [line.get("custom_id") for line in lines]
        problem = self.fail_validation
        if len(set(ids)) != len(ids):
            problem = "duplicate custom_id values in the input file"
        elif any(line.get("method") != "POST" or line.get("url") != "/v1/chat/completions"
                 for line in lines):
            problem = "every line must POST to /v1/chat/completions"
        if problem:
            code = self.fail_code if problem == self.fail_validation else "invalid_input"
            batch.update(status="failed", errors={"object": "list", "data": [
                {"code": code, "message": problem}]},
                request_counts={"total": 0, "completed": 0, "failed": 0})
            return
        output, errors = [], []
        for n, line in enumerate(lines):
            cid = line["custom_id"]
            if self.expire_after is not None and n >= self.expire_after:
                errors.append({"id": f"req_{n}", "custom_id": cid, "response": None, "error": {
                    "code": "batch_expired",
                    "message": "This request could not be executed before the completion "
                               "window expired."}})
            elif self.fail_line is not None and self.fail_line(line):
                errors.append({"id": f"req_{n}", "custom_id": cid, "error": None, "response": {
                    "status_code": 500, "request_id": f"r{n}",
                    "body": {"error": {"message": "scripted batch failure", "type": "server"}}}})
            else:
                self.batch_bodies.append(line["body"])
                output.append({"id": f"req_{n}", "custom_id": cid, "error": None, "response": {
                    "status_code": 200, "request_id": f"r{n}",
                    "body": self._completion(line["body"])}})
        for key, rows in (("output_file_id", output), ("error_file_id", errors)):
            if rows:
                file_id = f"file-{len(self.files) + 1}"
                self.files[file_id] = "".join(json.dumps(r) + "\n" for r in rows).encode()
                self._owners[file_id] = self._owners[batch["id"]]
                batch[key] = file_id
        batch["status"] = "expired" if self.expire_after is not None else "completed"
        batch["request_counts"] = {"total": len(lines), "completed": len(output),
                                   "failed": len(errors)}
