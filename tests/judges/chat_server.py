"""A real OpenAI-compatible chat-completions server for tests, scriptable per test.

It listens on 127.0.0.1 on a random port, in a thread per connection (HTTP/1.1 keep-alive), and
answers ``POST /v1/chat/completions`` with the usual JSON, including ``logprobs`` when asked (and
``POST /v1/messages`` the Anthropic way, for the ``anthropic`` judge); other paths get 404.
A test scripts it with:

- ``reply``: a function ``(request_json) -> str | Reply`` giving the assistant's text (default
  ``"Looks fine.\\nVERDICT: PASS"``), or a :class:`Reply` with explicit token logprobs;
- ``latency_s``: fixed delay before each answer;
- ``garbage_body``: answer 200 with a body that is not JSON (every request);
- ``api_key``: answer 401 to a request without ``Authorization: Bearer <api_key>`` (or
  ``x-api-key: <api_key>``, the Anthropic way);
- ``prefix_cache``: act as a provider's prompt-prefix cache: each answer's usage says how many
  of its prompt tokens (system, then messages) begin like an earlier request's,
  ``prompt_tokens_details.cached_tokens`` for chat completions, ``cache_read_input_tokens``
  for messages (with ``cache_creation_input_tokens`` for a system block marked
  ``cache_control`` that was not read from the cache);
- ``tokens_per_period`` (with ``period_s``): a provider's tokens-per-minute limit, with a
  shorter "minute". A request costs the tokens its answer reports (prompt and completion), taken
  from a bucket that holds ``tokens_per_period`` and refills continuously; a request the bucket
  cannot pay for gets a 429 with ``Retry-After`` and ``retry-after-ms`` (the wait until it
  could), counted in ``throttled``; ``admitted`` holds ``(monotonic time, tokens)`` of each
  request answered within the limit.

Faults for the next ``n`` requests (queued in order, one per request):

- ``fail_first(n, status=429, retry_after="1", retry_after_ms=None)``: an HTTP error, with
  ``Retry-After`` / ``retry-after-ms`` headers when given;
- ``reset_first(n)``: the connection is reset (RST) without an answer;
- ``slow_first(n, seconds)``: the answer comes after ``seconds`` (a client timeout);
- ``hang_first(n)``: no answer until the server stops;
- ``garbage_first(n)``: 200 with a body that is not JSON;
- ``null_content_first(n)``: 200 with ``"content": null``;
- ``no_choices_first(n)``: 200 with ``"choices": []``.

:func:`closed_port` gives a local port nothing listens on (an endpoint that is down); a server
can be started on a given ``port`` (the endpoint coming back).

It records every request body (``requests``), its headers (``headers``) and path with the query
string (``paths``), the requests it refused before reading them (``refused``: no such route,
or a wrong key) and the most requests in flight at once (``max_in_flight``).
"""

from __future__ import annotations

import json
import math
import re
import socket
import struct
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

_TOKEN = re.compile(r"\s*[A-Za-z]+|\s*\d|\s*[^\sA-Za-z\d]|\s+")


def tokenize(text: str) -> list[str]:
    """Word-ish tokens: words, single digits, punctuation, each with its leading space."""
    return _TOKEN.findall(text)


@dataclass
class Reply:
    """A scripted answer: text plus, optionally, per-token logprobs.

    ``tokens`` is a list of ``(token, logprob, {alternative: logprob})``; when omitted the text is
    tokenized and every token gets logprob ``default_logprob`` with no alternatives, except
    those listed in ``alternatives`` / ``token_logprobs`` (keyed by negative token index, -1
    being the last token).
    """

    text: str
    tokens: list[tuple[str, float, dict[str, float]]] | None = None
    default_logprob: float = -0.01
    alternatives: dict[int, dict[str, float]] = field(default_factory=dict)
    token_logprobs: dict[int, float] = field(default_factory=dict)

    def token_list(self) -> list[tuple[str, float, dict[str, float]]]:
        """The tokens with logprobs and alternatives, as sent."""
        if self.tokens is not None:
            return self.tokens
        toks = tokenize(self.text)
        n = len(toks)
        out = []
        for i, tok in enumerate(toks):
            lp = self.token_logprobs.get(i - n, self.default_logprob)
            out.append((tok, lp, dict(self.alternatives.get(i - n, {}))))
        return out


def closed_port() -> int:
    """A local TCP port nothing listens on (connections to it are refused)."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class ChatServer:
    """See the module docstring."""

    reply: Callable[[dict[str, Any]], str | Reply] = lambda req: "Looks fine.\nVERDICT: PASS"
    latency_s: float = 0.0
    garbage_body: bool = False
    model: str = "test-judge"
    served_model: str | None = None
    """The model named in answers (default: the one requested)."""
    api_key: str | None = None
    prefix_cache: bool = False
    refused: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    headers: list[dict[str, str]] = field(default_factory=list)
    paths: list[str] = field(default_factory=list)
    """The path of every request, its query string included."""
    max_in_flight: int = 0
    port: int = 0
    tokens_per_period: int | None = None
    period_s: float = 60.0
    throttled: int = 0
    """Requests refused with a 429 for the token limit."""
    admitted: list[tuple[float, int]] = field(default_factory=list)
    """``(time.monotonic(), tokens)`` of each request answered within the token limit."""
    _bucket: tuple[float, float] | None = None  # (level, monotonic time of that level)
    _faults: list[tuple[str, dict[str, Any]]] = field(default_factory=list)
    _prompts: list[list[str]] = field(default_factory=list)
    _in_flight: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _httpd: ThreadingHTTPServer | None = None

    # --- scripting -------------------------------------------------------------------------
    def _queue(self, n: int, kind: str, **params: Any) -> None:
        with self._lock:
            self._faults.extend([(kind, params)] * n)

    def fail_first(
        self, n: int, status: int = 429, retry_after: str | None = "1",
        retry_after_ms: str | None = None,
    ) -> None:
        """Make the next ``n`` requests fail with ``status`` (and Retry-After headers)."""
        self._queue(n, "status", status=status, retry_after=retry_after,
                    retry_after_ms=retry_after_ms)

    def reset_first(self, n: int) -> None:
        """Reset the connection of the next ``n`` requests without answering."""
        self._queue(n, "reset")

    def slow_first(self, n: int, seconds: float) -> None:
        """Answer the next ``n`` requests after ``seconds``."""
        self._queue(n, "slow", seconds=seconds)

    def hang_first(self, n: int) -> None:
        """Make the next ``n`` requests hang until the server stops."""
        self._queue(n, "hang")

    def garbage_first(self, n: int) -> None:
        """Answer the next ``n`` requests with a body that is not JSON."""
        self._queue(n, "garbage")

    def null_content_first(self, n: int) -> None:
        """Answer the next ``n`` requests with ``"content": null``."""
        self._queue(n, "null_content")

    def no_choices_first(self, n: int) -> None:
        """Answer the next ``n`` requests with no choices."""
        self._queue(n, "no_choices")

    @property
    def base_url(self) -> str:
        assert self._httpd is not None
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}/v1"

    @property
    def completions(self) -> int:
        """Requests received on the completions route."""
        return len(self.requests)

    # --- lifecycle -------------------------------------------------------------------------
    def start(self) -> ChatServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:  # keep test output quiet
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server naming
                server._handle(self)

            def do_GET(self) -> None:  # noqa: N802 - http.server naming
                server._handle_get(self)

        class Server(ThreadingHTTPServer):
            daemon_threads = True
            request_queue_size = 256

            def handle_error(self, request: Any, client_address: Any) -> None:
                pass  # resets and clients that went away are the point of these tests

        self._httpd = Server(("127.0.0.1", self.port), Handler)
        threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        ).start()
        return self

    def stop(self) -> None:
        self._stop.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()

    def __enter__(self) -> ChatServer:
        return self.start()

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # --- handling --------------------------------------------------------------------------
    def _handle_get(self, h: BaseHTTPRequestHandler) -> None:
        """GET routes (none here; see ``batch_server.BatchServer``)."""
        self._send(h, 404, {"error": {"message": f"no route {h.path}"}})

    def _handle(self, h: BaseHTTPRequestHandler) -> None:
        length = int(h.headers.get("content-length") or 0)
        raw = h.rfile.read(length)
        path = h.path.split("?")[0].rstrip("/")
        anthropic = path == "/v1/messages"
        if not anthropic and path != "/v1/chat/completions":
            with self._lock:
                self.refused += 1
            self._send(h, 404, {"error": {"message": f"no route {h.path}"}})
            return
        bearer = h.headers.get("authorization", "").removeprefix("Bearer ")
        if self.api_key is not None and self.api_key not in (bearer, h.headers.get("x-api-key")):
            with self._lock:
                self.refused += 1
            error = {"message": "Incorrect API key provided", "code": "invalid_api_key"}
            self._send(h, 401, {"error": error})
            return
        body = json.loads(raw or b"{}")
        with self._lock:
            self.requests.append(body)
            self.headers.append({k.lower(): v for k, v in h.headers.items()})
            self.paths.append(h.path)
            self._in_flight += 1
            h.in_flight = True  # type: ignore[attr-defined]  # until its answer goes out
            self.max_in_flight = max(self.max_in_flight, self._in_flight)
            kind, params = self._faults.pop(0) if self._faults else ("", {})
        completion = None
        if not kind and self.tokens_per_period is not None:
            completion = self._completion(body)
            wait = self._take_tokens(completion["usage"]["total_tokens"])
            if wait > 0:
                kind, params = "throttle", {"wait": wait}
        try:
            if kind == "throttle":  # at once, as a provider's limiter does
                headers = {"Retry-After": str(math.ceil(params["wait"])),
                           "retry-after-ms": str(math.ceil(params["wait"] * 1000))}
                error = {"message": "Rate limit reached for tokens per min (TPM)",
                         "type": "tokens", "code": "rate_limit_exceeded"}
                self._send(h, 429, {"error": error}, headers)
                return
            if kind == "hang":
                self._stop.wait()
                return
            if kind == "reset":
                h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER,
                                        struct.pack("ii", 1, 0))
                h.connection.close()  # RST: the client sees "connection reset"
                h.close_connection = True
                return
            if kind == "slow":
                self._stop.wait(params["seconds"])
            if self.latency_s:
                time.sleep(self.latency_s)
            if kind == "status":
                status = params["status"]
                headers = {}
                if params["retry_after"] is not None:
                    headers["Retry-After"] = params["retry_after"]
                if params["retry_after_ms"] is not None:
                    headers["retry-after-ms"] = params["retry_after_ms"]
                error = {"message": f"scripted {status}", "type": "test", "code": str(status)}
                self._send(h, status, {"error": error}, headers)
                return
            if self.garbage_body or kind == "garbage":
                self._send_raw(h, 200, b"this is not json {", "application/json")
                return
            completion = completion or self._completion(body)
            if kind == "null_content":
                completion["choices"][0]["message"]["content"] = None
                completion["choices"][0]["logprobs"] = None
            elif kind == "no_choices":
                completion["choices"] = []
            if anthropic:
                completion = self._as_anthropic(completion, body)
            self._send(h, 200, completion)
        finally:
            self._answered(h)

    def _answered(self, h: BaseHTTPRequestHandler) -> None:
        """The request is no longer in flight: counted before its answer is written, since a
        client may send its next request as soon as it reads the answer."""
        if getattr(h, "in_flight", False):
            h.in_flight = False  # type: ignore[attr-defined]
            with self._lock:
                self._in_flight -= 1

    def _take_tokens(self, tokens: int) -> float:
        """Take ``tokens`` from the limit's bucket: 0, or the seconds until it could (nothing
        taken)."""
        assert self.tokens_per_period is not None
        capacity, now = float(self.tokens_per_period), time.monotonic()
        rate = capacity / self.period_s
        with self._lock:
            level, at = self._bucket or (capacity, now)
            level = min(capacity, level + (now - at) * rate)
            if level < tokens:
                self.throttled += 1
                self._bucket = (level, now)
                return (tokens - level) / rate
            self._bucket = (level - tokens, now)
            self.admitted.append((now, tokens))
            return 0.0

    def _completion(self, body: dict[str, Any]) -> dict[str, Any]:
        reply = self.reply(body)
        if isinstance(reply, str):
            reply = Reply(reply)
        text = reply.text
        logprobs = None
        if body.get("logprobs"):
            top_n = int(body.get("top_logprobs") or 0)
            toks = reply.token_list()
            content = []
            for tok, lp, alts in toks:
                top = [{"token": tok, "logprob": lp, "bytes": list(tok.encode())}]
                for alt, alt_lp in sorted(alts.items(), key=lambda kv: -kv[1]):
                    if alt != tok:
                        top.append({"token": alt, "logprob": alt_lp, "bytes": list(alt.encode())})
                top.sort(key=lambda e: -e["logprob"])
                content.append(
                    {
                        "token": tok,
                        "logprob": lp,
                        "bytes": list(tok.encode()),
                        "top_logprobs": top[:top_n],
                    }
                )
            logprobs = {"content": content, "refusal": None}
        system, prompt = self._prompt_tokens(body)
        cached = self._cached_prefix(system + prompt) if self.prefix_cache else 0
        prompt_tokens = len(system) + len(prompt)
        completion_tokens = len(tokenize(text))
        return {
            "id": f"chatcmpl-{len(self.requests)}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": self.served_model or body.get("model", self.model),
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text},
                    "logprobs": logprobs,
                    "finish_reason": "stop",
                }
            ],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
                **({"prompt_tokens_details": {"cached_tokens": cached}}
                   if self.prefix_cache else {}),
            },
        }

    @staticmethod
    def _prompt_tokens(body: dict[str, Any]) -> tuple[list[str], list[str]]:
        """The tokens of a request's system prompt (the Messages API's ``system``) and of its
        messages' contents, in order."""
        system = body.get("system") or ""
        if isinstance(system, list):
            system = "".join(block.get("text", "") for block in system)
        prompt = [t for m in body["messages"] for t in tokenize(str(m.get("content", "")))]
        return tokenize(system), prompt

    def _cached_prefix(self, tokens: list[str]) -> int:
        """Tokens ``tokens`` shares with the longest prefix of an earlier prompt (then kept)."""
        best = 0
        with self._lock:
            for earlier in self._prompts:
                n = 0
                for a, b in zip(earlier, tokens, strict=False):
                    if a != b:
                        break
                    n += 1
                best = max(best, n)
            self._prompts.append(tokens)
        return best

    def _as_anthropic(self, completion: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
        """A chat completion as an Anthropic Messages API answer."""
        text = (completion["choices"] or [{"message": {}}])[0]["message"].get("content")
        usage = completion["usage"]
        read = (usage.get("prompt_tokens_details") or {}).get("cached_tokens", 0)
        marked = isinstance(body.get("system"), list) and any(
            "cache_control" in block for block in body["system"])
        written = (max(0, len(self._prompt_tokens(body)[0]) - read)
                   if marked and self.prefix_cache else 0)
        return {
            "id": "msg_test", "type": "message", "role": "assistant",
            "model": completion["model"],
            "content": [{"type": "text", "text": text}] if text is not None else [],
            "stop_reason": "end_turn", "stop_sequence": None,
            "usage": {"input_tokens": usage["prompt_tokens"] - read - written,
                      "output_tokens": usage["completion_tokens"],
                      **({"cache_read_input_tokens": read,
                          "cache_creation_input_tokens": written} if read or written else {})},
        }

    def _send(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        payload: dict[str, Any],
        headers: dict[str, str] | None = None,
    ) -> None:
        self._send_raw(h, status, json.dumps(payload).encode(), "application/json", headers)

    def _send_raw(
        self,
        h: BaseHTTPRequestHandler,
        status: int,
        data: bytes,
        ctype: str,
        headers: dict[str, str] | None = None,
    ) -> None:
        self._answered(h)
        h.send_response(status)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(data)))
        for key, value in (headers or {}).items():
            h.send_header(key, value)
        h.end_headers()
        h.wfile.write(data)


def main() -> None:
    """Serve from the command line (for benchmarks): prints the base URL, runs until killed."""
    import argparse

    parser = argparse.ArgumentParser(description="OpenAI-compatible test chat server")
    parser.add_argument("--latency", type=float, default=0.0, help="seconds before each answer")
    parser.add_argument("--reply", default="Clear and correct.\nVERDICT: PASS")
    args = parser.parse_args()
    server = ChatServer(reply=lambda req: args.reply, latency_s=args.latency).start()
    print(server.base_url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
