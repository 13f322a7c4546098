"""Several rubrics per call: N ``llm_judge`` criteria against one with ``rubrics:`` (N rubrics).

Both suites judge the same ``--n`` transcripts (about 250 words each) with the same ``--rubrics``
rubrics (each a paragraph of criteria), against one local OpenAI-compatible endpoint that
answers after 50 ms. The endpoint is a judge that reads each rubric it is asked about (its
``CHECK(name)`` and the part of the transcript it names) and answers it, one ``VERDICT:`` line or
one ``VERDICT name:`` line per rubric, as asked; it also acts as a provider's prompt-prefix cache
(the prompt tokens a request shares with the longest prefix of an earlier one are "cached").
It prints, for each suite: calls, calls per transcript, prompt tokens (and the share served from
the prefix cache), completion tokens, wall time; then whether every verdict agrees.

    python benchmarks/bench_rubrics.py [--n 300] [--rubrics 5]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import re
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

WORDS = ["the", "answer", "explains", "how", "to", "configure", "a", "service", "and", "why",
         "each", "step", "matters", "for", "user", "who", "asked", "about", "deployment",
         "options", "latency", "costs", "security"]
BLOCK = re.compile(r"\[DATA (\d+)\]\n<<<TRANSCRIPT-(\w+)>>>\n(.*?)\n<<<END-TRANSCRIPT-\2>>>",
                   re.S)


class Endpoint:
    """The judge endpoint, on its own thread and event loop (see the module doc)."""

    def __init__(self, latency: float = 0.05) -> None:
        self.latency = latency
        self.calls = 0
        self.prefixes: set[int] = set()  # hashes of every prefix of every prompt seen
        ready = threading.Event()
        threading.Thread(target=self._serve, args=(ready,), daemon=True).start()
        ready.wait()

    def _serve(self, ready: threading.Event) -> None:
        from aiohttp import web

        async def completions(request: web.Request) -> web.Response:
            body = await request.json()
            self.calls += 1
            await asyncio.sleep(self.latency)
            return web.json_response(self.answer(body))

        async def main() -> None:
            app = web.Application(client_max_size=16 * 2**20)
            app.router.add_post("/v1/chat/completions", completions)
            runner = web.AppRunner(app, access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, "127.0.0.1", 0)
            await site.start()
            self.base_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/v1"  # type: ignore[union-attr]
            ready.set()
            await asyncio.Event().wait()

        asyncio.run(main())

    def answer(self, body: dict[str, Any]) -> dict[str, Any]:
        system, user = (m["content"] for m in body["messages"])
        data = {f"[DATA {n}]": text for n, _, text in BLOCK.findall(user)}

        def verdict(rubric: str) -> str:
            check = re.search(r"CHECK\((\w+)\)", rubric).group(1)  # type: ignore[union-attr]
            text = data[re.search(r"\[DATA \d+\]", rubric).group(0)]  # type: ignore[union-attr]
            return "PASS" if (sum(map(ord, check + text)) % 3) else "FAIL"

        sections = re.findall(r"### Rubric `([\w-]+)`\n\n(.*?)(?=\n\n### Rubric `|\n\nFirst)",
                              system, re.S)
        if sections:
            text = "Checked each.\n" + "\n".join(f"VERDICT {name}: {verdict(rubric)}"
                                                 for name, rubric in sections)
        else:
            text = f"Checked.\nVERDICT: {verdict(system)}"
        tokens = (system + "\n" + user).split()
        cached, running = 0, 0
        for i, token in enumerate(tokens, 1):  # the longest prefix an earlier prompt had
            running = hash((running, token))
            if running in self.prefixes:
                cached = i
            self.prefixes.add(running)
        return {"id": "x", "object": "chat.completion", "created": 0, "model": body["model"],
                "choices": [{"index": 0, "finish_reason": "stop", "logprobs": None,
                             "message": {"role": "assistant", "content": text}}],
                "usage": {"prompt_tokens": len(tokens), "completion_tokens": len(text.split()),
                          "prompt_tokens_details": {"cached_tokens": cached}}}


def transcripts(n: int) -> list[Any]:
    from harness import Message, Transcript

    rng = random.Random(0)
    return [Transcript(id=f"t{i}", messages=[
        Message(role="user", content=f"Question {i}: " + " ".join(rng.choices(WORDS, k=40))),
        Message(role="assistant", content=" ".join(rng.choices(WORDS, k=210)))])
        for i in range(n)]


def rubric(name: str) -> str:
    criteria = " ".join(f"Point {k}: the answer is {name} in respect {k}, with no exception."
                        for k in range(12))
    return f"CHECK({name}) Judge whether the final answer is {name}. {criteria}\n" \
           "{{ last_assistant }}"


def run(endpoint: Endpoint, criteria: list[dict[str, Any]], items: list[Any]) -> dict[str, Any]:
    from harness import Engine

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "suite.json"
        path.write_text(json.dumps({"name": "bench", "criteria": criteria, "judge": {
            "name": "openai/bench", "base_url": endpoint.base_url, "max_concurrency": 32,
            "logprobs": False}}))
        calls, t0 = endpoint.calls, time.perf_counter()
        with Engine(path) as engine:
            decisions = list(engine.review(items))
        wall = time.perf_counter() - t0
    verdicts = [v for d in decisions for v in d.verdicts]
    cached = sum((v.details or {}).get("cached_tokens", 0) for v in verdicts)
    tokens_in = sum(v.tokens_in or 0 for v in verdicts)
    return {"calls": endpoint.calls - calls, "tokens_in": tokens_in, "cached": cached,
            "tokens_out": sum(v.tokens_out or 0 for v in verdicts), "wall_s": wall,
            "labels": {(d.transcript_id, v.criterion.rsplit(".", 1)[-1]): v.outcome
                       for d in decisions for v in d.verdicts}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=300, help="transcripts")
    parser.add_argument("--rubrics", type=int, default=5, help="rubrics")
    args = parser.parse_args()
    names = [f"r{k}" for k in range(args.rubrics)]
    items = transcripts(args.n)
    endpoint = Endpoint()
    separate = [{"name": n, "kind": "llm_judge", "gate": False, "rubric": rubric(n)}
                for n in names]
    together = [{"name": "q", "kind": "llm_judge", "gate": False,
                 "rubrics": {n: rubric(n) for n in names}}]
    results = {f"{args.rubrics} criteria": run(endpoint, separate, items),
               f"rubrics: ({args.rubrics})": run(endpoint, together, items)}
    print(f"{args.n} transcripts, {args.rubrics} rubrics, 50 ms a call, concurrency 32")
    print(f"  {'suite':<14} {'calls':>6} {'per transcript':>15} {'prompt tokens':>14} "
          f"{'from cache':>11} {'out tokens':>11} {'seconds':>8}")
    for label, r in results.items():
        print(f"  {label:<14} {r['calls']:>6} {r['calls'] / args.n:>15.2f} "
              f"{r['tokens_in']:>14,} {r['cached'] / max(r['tokens_in'], 1):>11.0%} "
              f"{r['tokens_out']:>11,} {r['wall_s']:>8.2f}")
    a, b = (r["labels"] for r in results.values())
    same = sum(a[k] == b.get(k) for k in a)
    print(f"  verdicts identical: {same} of {len(a)}")


if __name__ == "__main__":
    main()
