"""Regex-only suite over generated transcripts: harness vs a bare Python loop.

    python benchmarks/bench_regex.py [--n 200000]

Each contender runs in its own subprocess (so peak RSS is its own) over the same JSONL file:

- ``bare loop``: json.loads each line, the same three ``re`` searches over assistant messages;
- ``engine``: ``harness.Engine.review`` over the streamed file (parsing, verdicts, decisions);
- ``harness run``: the whole command path, journal and output files (Parquet, train set).

Prints transcripts/s, the ratio to the bare loop, and peak memory.
"""

from __future__ import annotations

import argparse
import json
import random
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

PATTERNS = [
    ("no_ai_boilerplate", r"as an ai (language )?model", re.IGNORECASE),
    ("no_secret", r"sk-[A-Za-z0-9]{20,}", 0),
    ("no_apology", r"\b(sorry|apologi[sz]e)\b", re.IGNORECASE),
]
SUITE = """name: bench-regex
criteria:
  - {name: no_ai_boilerplate, kind: regex, pattern: "as an ai (language )?model",
     flags: [IGNORECASE], expect: absent}
  - {name: no_secret, kind: regex, pattern: "sk-[A-Za-z0-9]{20,}", expect: absent}
  - {name: no_apology, kind: regex, pattern: "\\\\b(sorry|apologi[sz]e)\\\\b",
     flags: [IGNORECASE], expect: absent}
"""
WORDS = ("the", "model", "answers", "questions", "about", "data", "pipelines", "caching",
         "retries", "parquet", "files", "and", "training", "sets", "while", "keeping",
         "every", "transcript", "streamed")


def generate(path: Path, n: int) -> None:
    rng = random.Random(0)
    with path.open("w") as fh:
        for i in range(n):
            msgs = [{"role": "system", "content": "You are helpful."}]
            for _ in range(2):
                msgs.append({"role": "user", "content": " ".join(rng.choices(WORDS, k=12))})
                text = " ".join(rng.choices(WORDS, k=40))
                roll = rng.random()
                if roll < 0.03:
                    text += " As an AI language model I cannot."
                elif roll < 0.05:
                    text += " Sorry about that."
                msgs.append({"role": "assistant", "content": text})
            fh.write(json.dumps({"id": f"b{i}", "messages": msgs}) + "\n")


def bare_loop(path: Path) -> int:
    compiled = [re.compile(p, f) for _, p, f in PATTERNS]
    passed = 0
    with path.open() as fh:
        for line in fh:
            record = json.loads(line)
            texts = [m["content"] for m in record["messages"] if m["role"] == "assistant"]
            if not any(r.search(t) for r in compiled for t in texts):
                passed += 1
    return passed


def engine_only(path: Path, suite: Path) -> int:
    import harness
    from harness.inputs import read_transcripts

    engine = harness.Engine(suite)
    items = read_transcripts([path], engine.registry.formats)
    return sum(d.passed for d in engine.review(items, batch_size=256))


def full_run(path: Path, suite: Path, out: Path) -> int:
    from harness.cli import main

    code = main(["run", str(suite), str(path), "-o", str(out), "--overwrite", "--no-progress",
                 "--batch-size", "256"])
    assert code == 0
    return json.loads((out / "summary.json").read_text())["passed"]


def child(mode: str, path: Path, suite: Path, out: Path) -> None:
    t0 = time.perf_counter()
    if mode == "bare":
        passed = bare_loop(path)
    elif mode == "engine":
        passed = engine_only(path, suite)
    else:
        import contextlib
        import io

        with contextlib.redirect_stdout(io.StringIO()):
            passed = full_run(path, suite, out)
    seconds = time.perf_counter() - t0
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(json.dumps({"seconds": seconds, "passed": passed, "peak_rss_mb": rss_mb}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        data = Path(args.data)
        child(args.child, data / "corpus.jsonl", data / "suite.yaml", data / "run")
        return
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp)
        t0 = time.perf_counter()
        generate(data / "corpus.jsonl", args.n)
        (data / "suite.yaml").write_text(SUITE)
        size_mb = (data / "corpus.jsonl").stat().st_size / 2**20
        print(f"corpus: {args.n} transcripts, {size_mb:.0f} MB, generated in "
              f"{time.perf_counter() - t0:.1f}s")
        results = {}
        for mode, label in (("bare", "bare loop"), ("engine", "engine"),
                            ("run", "harness run")):
            proc = subprocess.run([sys.executable, __file__, "--child", mode, "--data", tmp],
                                  capture_output=True, text=True, check=True)
            results[mode] = json.loads(proc.stdout.strip().splitlines()[-1])
            r = results[mode]
            print(f"{label:12s} {args.n / r['seconds']:>10,.0f} transcripts/s  "
                  f"{r['seconds']:7.1f}s  peak RSS {r['peak_rss_mb']:6.0f} MB  "
                  f"passed {r['passed']}")
        assert len({r["passed"] for r in results.values()}) == 1, "contenders disagree"
        base = results["bare"]["seconds"]
        for mode in ("engine", "run"):
            print(f"ratio {mode} / bare loop: {base / results[mode]['seconds']:.2f}x the speed "
                  f"({results[mode]['seconds'] / base:.1f}x the time)")


if __name__ == "__main__":
    main()
