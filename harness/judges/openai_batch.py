"""The OpenAI Batch API (files and batches) for ``openai/MODEL`` judges with ``batch: true``.

Speaks the same endpoint as :class:`~harness.judges.openai_backend.OpenAIBackend`, with its
session, key and error mapping: ``POST /files`` (multipart, purpose ``batch``), ``POST
/batches`` (endpoint ``/v1/chat/completions``), ``GET /batches/{id}``, ``GET /batches`` (to
find the batch of an uploaded file after a kill) and ``GET /files/{id}/content``. Errors are
:class:`~harness.judges.base.JudgeError`: connection failures and 408/409/429/5xx retryable; a
file refused as too large (413, or OpenAI's 400 "File is too large.") is a
:class:`~harness.judges.batch.BatchFileTooLarge`; a 404 says what it means on each route (no
Batch API on ``/files`` and ``/batches``, a batch of another project on a poll).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import aiohttp
import orjson

from harness.judges.base import JudgeError, JudgeRequest, JudgeResponse
from harness.judges.batch import BatchClient, BatchFileTooLarge
from harness.judges.http import short, status_error

if TYPE_CHECKING:
    from harness.judges.openai_backend import OpenAIBackend

ENDPOINT = "/v1/chat/completions"
"""The ``url`` of every request line and the batch's ``endpoint``."""
FIND_PAGES = 20
"""Pages of 100 batches looked through to find the batch of a file."""
NO_BATCH_API = ("or the endpoint does not serve the Batch API (/files and /batches): remove "
                "`batch: true`")
"""What a 404 or 405 on the routes that start a batch may mean."""
NOT_VISIBLE = ("a batch is visible only to keys of the project that created it, at the "
               "base_url it was created at")
"""What a 404 on a poll means."""


class OpenAIBatchClient(BatchClient):
    """Files and batches on an OpenAI-compatible endpoint."""

    def __init__(self, backend: OpenAIBackend) -> None:
        self.backend = backend
        self.root = backend.url.removesuffix("/chat/completions")

    def line(self, custom_id: str, request: JudgeRequest) -> dict[str, Any]:
        return {"custom_id": custom_id, "method": "POST", "url": ENDPOINT,
                "body": self.backend.payload(request)}

    def parse(self, body: Any) -> JudgeResponse:
        return self.backend.to_response(body)

    async def _call(self, method: str, path: str, *, raw: bool = False,
                    hints: dict[int, str] | None = None, **kwargs: Any) -> Any:
        """One request; ``hints`` adds, by status, what an error answer means on this route."""
        session = await self.backend._sessions.get()
        name = self.backend.name
        if self.backend.query:  # the judge's `query` goes with every call (api-version...)
            kwargs["params"] = {**self.backend.query, **kwargs.get("params", {})}
        try:
            async with session.request(method, self.root + path, **kwargs) as resp:
                body = await resp.read()
                status, headers = resp.status, resp.headers
        except aiohttp.ClientConnectionError as exc:
            raise JudgeError(f"cannot reach {name}: {type(exc).__name__}: {short(str(exc))}",
                             retryable=True, connection=True) from exc
        except aiohttp.ClientError as exc:
            raise JudgeError(f"bad answer from {name}: {type(exc).__name__}: "
                             f"{short(str(exc))}", retryable=True) from exc
        if status >= 400:
            message = _message(body)
            if status == 413 or (status == 400 and "too large" in message.lower()):
                raise BatchFileTooLarge(f"HTTP {status} from {name} ({method} {path}): "
                                        f"{short(message)}")
            error = status_error(f"{name} ({method} {path})", status, message, headers)
            hint = (hints or {}).get(status)
            if hint:
                error = type(error)(f"{error}; {hint}", retryable=error.retryable,
                                    retry_after=error.retry_after, connection=error.connection)
            raise error
        if status >= 300:
            raise JudgeError(f"HTTP {status} from {name} ({method} {path})")
        if raw:
            return body
        try:
            data = orjson.loads(body)
        except orjson.JSONDecodeError as exc:
            raise JudgeError(f"bad response from {name} ({method} {path}): not JSON",
                             retryable=True) from exc
        if not isinstance(data, dict):
            raise JudgeError(f"bad response from {name} ({method} {path}): not an object")
        return data

    async def upload(self, data: bytes) -> str:
        form = aiohttp.FormData()
        form.add_field("purpose", "batch")
        form.add_field("file", data, filename="harness-batch.jsonl",
                       content_type="application/jsonl")
        payload = form()
        answer = await self._call("POST", "/files", data=payload,
                                  headers={"Content-Type": payload.content_type},
                                  hints={404: NO_BATCH_API, 405: NO_BATCH_API})
        return _id(answer, "file")

    async def create(self, file_id: str, completion_window: str) -> dict[str, Any]:
        body = {"input_file_id": file_id, "endpoint": ENDPOINT,
                "completion_window": completion_window,
                "metadata": {"created_by": "harness"}}
        answer: dict[str, Any] = await self._call(
            "POST", "/batches", data=orjson.dumps(body),
            hints={404: NO_BATCH_API, 405: NO_BATCH_API})
        _id(answer, "batch")
        return answer

    async def retrieve(self, batch_id: str) -> dict[str, Any]:
        answer: dict[str, Any] = await self._call("GET", f"/batches/{batch_id}",
                                                  hints={404: NOT_VISIBLE})
        _id(answer, "batch")
        return answer

    async def find(self, file_id: str) -> dict[str, Any] | None:
        after: str | None = None
        for _ in range(FIND_PAGES):
            params = {"limit": "100", **({"after": after} if after else {})}
            page = await self._call("GET", "/batches", params=params)
            data = page.get("data") or []
            for batch in data:
                if isinstance(batch, dict) and batch.get("input_file_id") == file_id:
                    return batch
            if not page.get("has_more") or not data:
                return None
            after = data[-1].get("id")
        return None

    async def download(self, file_id: str) -> bytes:
        data: bytes = await self._call("GET", f"/files/{file_id}/content", raw=True)
        return data


def _id(answer: dict[str, Any], what: str) -> str:
    value = answer.get("id")
    if not isinstance(value, str) or not value:
        raise JudgeError(f"the endpoint's {what} object has no id: {short(str(answer), 120)}")
    return value


def _message(raw: bytes) -> str:
    try:
        data = orjson.loads(raw)
        if isinstance(data, dict) and isinstance(data.get("error"), dict):
            return str(data["error"].get("message"))
    except orjson.JSONDecodeError:
        pass
    return raw.decode(errors="replace") or "(empty body)"
