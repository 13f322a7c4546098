"""Helpers for correction tests: a real chat server playing generator and supervisor, and the
shipped corrections example reviewed with a suite that names them."""

from __future__ import annotations

import json
import shutil
import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "judges"))

from chat_server import ChatServer  # noqa: E402

import harness  # noqa: E402

CORRECTIONS = Path(__file__).resolve().parents[2] / "examples" / "corrections"
RIGHT = "17 × 20 = 340 and 17 × 4 = 68, so 17 × 24 = 408."
REASON = "recompute the product step by step."


def is_supervisor(request: dict[str, Any]) -> bool:
    return "You are a supervisor" in request["messages"][0]["content"]


def interruptions(request: dict[str, Any]) -> int:
    """How many times the conversation sent to the generator was interrupted so far."""
    return sum(m["content"].count("No, ") for m in request["messages"])


@dataclass
class Models:
    """One local server; replies depend on who asks (generator or supervisor)."""

    server: ChatServer
    generator: Callable[[dict[str, Any]], str] = lambda req: RIGHT
    supervisor: Callable[[dict[str, Any]], str] = lambda req: REASON
    seen: list[str] = field(default_factory=list)

    def reply(self, request: dict[str, Any]) -> str:
        who = "supervisor" if is_supervisor(request) else "generator"
        self.seen.append(who)
        return (self.supervisor if who == "supervisor" else self.generator)(request)

    def requests(self, who: str) -> list[dict[str, Any]]:
        return [r for r in self.server.requests if is_supervisor(r) == (who == "supervisor")]


def serve() -> Iterator[Models]:
    """A chat server whose replies the returned :class:`Models` scripts."""
    holder: dict[str, Models] = {}
    with ChatServer(reply=lambda req: holder["m"].reply(req)) as server:
        holder["m"] = Models(server)
        yield holder["m"]


def reviewed(tmp_path: Path, models: Models, *, supervisor: bool = True, copies: int = 0) -> Path:
    """The corrections example, with a suite naming the generator and supervisor, reviewed;
    with ``copies`` more records identical to ``corrected-product`` but for their ids."""
    folder = tmp_path / "corrections"
    shutil.copytree(CORRECTIONS, folder)
    data = folder / "transcripts.jsonl"
    original = next(r for r in map(json.loads, data.open()) if r["id"] == "corrected-product")
    with data.open("a") as out:
        for i in range(copies):
            out.write(json.dumps({**original, "id": f"copy-{i}"}) + "\n")
    suite = folder / "suite.yaml"
    url = models.server.base_url
    extra = f"generator: {{name: openai/gen, base_url: '{url}', max_concurrency: 4}}\n"
    if supervisor:
        extra += f"supervisor: {{name: openai/sup, base_url: '{url}'}}\n"
    suite.write_text(suite.read_text() + extra)
    run_dir = tmp_path / "run"
    harness.run(harness.Engine(suite), [folder / "transcripts.jsonl"], run_dir, report=False)
    return run_dir
