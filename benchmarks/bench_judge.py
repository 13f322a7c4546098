"""Judge throughput: a judge-only suite against a local endpoint with a fixed latency.

Starts the test chat-completions server (``tests/judges/chat_server.py``) in its own process,
answering every call after ``--latency`` seconds (default 0.05), reviews transcripts with one
``llm_judge`` criterion through the engine (no cache, so every judgement is a call), and prints
judgements per second at each concurrency limit with the ratio to the bound
``concurrency / latency``, plus the client CPU per judgement (the SDK's HTTP stack dominates it;
on a loaded machine CPU, not the endpoint, is what limits the ratio).

    python benchmarks/bench_judge.py [--latency 0.05] [--concurrency 16 64] [--seconds 3]
"""

from __future__ import annotations

import argparse
import importlib
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT)]

from harness import Engine, Message, Transcript  # noqa: E402
from harness.plugins import build_registry, load_plugins  # noqa: E402


def registry():
    pm = load_plugins()
    for name in ("criteria.llm_judge", "harness.judges.backends"):
        if not pm.has_plugin(name):
            pm.register(importlib.import_module(name), name=name)
    return build_registry(pm)


def transcripts(n: int, offset: int = 0) -> list[Transcript]:
    return [
        Transcript(
            id=f"t{offset + i}",
            messages=[
                Message(role="user", content=f"Question {offset + i}: what is {i} + {i}?"),
                Message(role="assistant", content=f"It is {2 * i}. Please ask again anytime."),
            ],
        )
        for i in range(n)
    ]


def run(base_url: str, concurrency: int, latency: float, seconds: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        suite = Path(tmp) / "suite.yaml"
        suite.write_text(
            "name: bench-judge\n"
            f"judge:\n  name: openai/bench\n  base_url: {base_url}\n"
            f"  max_concurrency: {concurrency}\n"
            "criteria:\n  - name: helpful\n    kind: llm_judge\n    rubric_file: helpfulness\n"
        )
        bound = concurrency / latency
        n = max(concurrency * 4, int(bound * seconds))
        engine = Engine(suite, registry(), batch_size=n)  # no cache_dir: every judgement calls
        list(engine.review(transcripts(concurrency, offset=10**6)))  # warm-up: connections
        items = transcripts(n)
        cpu0, t0 = time.process_time(), time.perf_counter()
        decisions = list(engine.review(items))
        elapsed, cpu = time.perf_counter() - t0, time.process_time() - cpu0
    outcomes = {o: sum(d.outcome == o for d in decisions) for o in ("pass", "fail", "error")}
    rate = n / elapsed
    return {
        "concurrency": concurrency,
        "judgements": n,
        "seconds": elapsed,
        "cpu_ms_per_judgement": cpu / n * 1000,
        "per_s": rate,
        "bound_per_s": bound,
        "ratio": rate / bound,
        "outcomes": outcomes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--latency", type=float, default=0.05, help="server latency, seconds")
    parser.add_argument("--concurrency", type=int, nargs="+", default=[16, 64])
    parser.add_argument("--seconds", type=float, default=3.0, help="target duration per run")
    args = parser.parse_args()
    server = subprocess.Popen(
        [sys.executable, str(ROOT / "tests" / "judges" / "chat_server.py"),
         "--latency", str(args.latency)],
        stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    try:
        assert server.stdout is not None
        base_url = server.stdout.readline().strip()
        print(f"judge-only suite, endpoint latency {args.latency * 1000:.0f} ms, "
              f"{os.cpu_count()} cores, load {os.getloadavg()[0]:.1f}")  # fmt: skip
        print(f"{'concurrency':>11} {'judgements':>10} {'seconds':>8} {'judg/s':>8} "
              f"{'bound/s':>8} {'ratio':>6} {'client CPU ms/judg':>18}")  # fmt: skip
        for c in args.concurrency:
            r = run(base_url, c, args.latency, args.seconds)
            assert r["outcomes"]["pass"] == r["judgements"], r["outcomes"]
            print(
                f"{r['concurrency']:>11} {r['judgements']:>10} {r['seconds']:>8.2f} "
                f"{r['per_s']:>8.1f} {r['bound_per_s']:>8.0f} {r['ratio']:>6.2f} "
                f"{r['cpu_ms_per_judgement']:>18.2f}"
            )
    finally:
        server.terminate()
        server.wait()


if __name__ == "__main__":
    main()
