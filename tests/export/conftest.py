"""Fixtures for export tests: reviewed run directories and a real chat-completions server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from exportutil import CORRECTIONS, EXAMPLES, review_into


@pytest.fixture(scope="module")
def corrections_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped corrections example, reviewed."""
    run_dir = tmp_path_factory.mktemp("corrections") / "run"
    review_into(run_dir, CORRECTIONS / "suite.yaml", [CORRECTIONS / "transcripts.jsonl"])
    return run_dir


@pytest.fixture(scope="module")
def hh_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The shipped HH-RLHF pairs, reviewed with the demo suite."""
    run_dir = tmp_path_factory.mktemp("hh") / "run"
    review_into(run_dir, EXAMPLES / "suite.yaml", [EXAMPLES / "transcripts" / "hh_rlhf.jsonl"])
    return run_dir


@dataclass
class CompletionsServer:
    """An OpenAI-compatible ``POST /v1/chat/completions`` on 127.0.0.1, on a random port.

    ``reply(request_json) -> str`` writes the assistant's answer; every request body is kept.
    """

    reply: Callable[[dict[str, Any]], str]
    requests: list[dict[str, Any]] = field(default_factory=list)
    url: str = ""

    def start(self) -> CompletionsServer:
        server = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: Any) -> None:
                pass

            def do_POST(self) -> None:  # noqa: N802 - http.server's naming
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                if self.path.rstrip("/") != "/v1/chat/completions":
                    self._send(404, {"error": {"message": f"no route {self.path}"}})
                    return
                server.requests.append(body)
                text = server.reply(body)
                words = sum(len(m["content"].split()) for m in body["messages"])
                self._send(200, {
                    "id": f"chatcmpl-{len(server.requests)}", "object": "chat.completion",
                    "created": int(time.time()), "model": body["model"],
                    "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                                 "message": {"role": "assistant", "content": text}}],
                    "usage": {"prompt_tokens": words, "completion_tokens": len(text.split()),
                              "total_tokens": words + len(text.split())},
                })

            def _send(self, status: int, payload: dict[str, Any]) -> None:
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)
        self._thread.start()
        self.url = f"http://127.0.0.1:{self._httpd.server_address[1]}/v1"
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()


@pytest.fixture
def completions_server() -> Iterator[Callable[..., CompletionsServer]]:
    """Start servers with ``completions_server(reply)``; all stopped after the test."""
    started: list[CompletionsServer] = []

    def start(reply: Callable[[dict[str, Any]], str]) -> CompletionsServer:
        started.append(CompletionsServer(reply).start())
        return started[-1]

    yield start
    for server in started:
        server.stop()
