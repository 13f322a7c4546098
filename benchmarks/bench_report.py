"""The HTML report of a large run: build time, file size and time to open in headless Chromium.

    python benchmarks/bench_report.py [--n 100000] [--sample 50] [--keep DIR]

Generates N transcripts (some failing each demo criterion), reviews them with the demo suite
(without a report), then builds the report and opens it in /usr/bin/chromium.
"""

from __future__ import annotations

import argparse
import json
import random
import sys
import tempfile
import time
from pathlib import Path

from harness import api
from harness.engine import Engine
from harness.plugins import get_registry
from harness.report import write_report

ROOT = Path(__file__).resolve().parents[1]
WORDS = [
    "the", "model", "answer", "keeps", "a", "short", "clear", "explanation", "with", "one",
    "example", "and", "a", "caveat", "about", "edge", "cases", "so", "the", "reader", "can",
    "check", "each", "step", "before", "relying", "on", "it",
]


def generate(path: Path, n: int, seed: int = 0) -> None:
    rng = random.Random(seed)
    with path.open("w") as fh:
        for i in range(n):
            messages = [{"role": "system", "content": "You are a helpful assistant."}]
            for _ in range(rng.randint(1, 3)):
                messages.append({"role": "user", "content": " ".join(
                    rng.choices(WORDS, k=rng.randint(8, 40))) + "?"})
                answer = " ".join(rng.choices(WORDS, k=rng.randint(20, 150))) + "."
                r = rng.random()
                if r < 0.05:
                    answer = "As an AI language model, " + answer
                elif r < 0.08:
                    answer += " Use the key sk-" + "".join(rng.choices("abcdefXYZ0123456789", k=32))
                messages.append({"role": "assistant", "content": answer})
            if rng.random() < 0.04:
                messages.append({"role": "user", "content": "thanks"})
            fh.write(json.dumps({"id": f"gen-{i:06d}", "messages": messages}) + "\n")


def open_time(report: Path) -> float:
    from playwright.sync_api import sync_playwright

    args = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
            "--disable-component-update", "--disable-sync"]
    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=args)
        page = browser.new_page()
        page.goto("about:blank")
        t0 = time.perf_counter()
        page.goto(report.as_uri())
        page.wait_for_selector("body[data-ready]")
        elapsed = time.perf_counter() - t0
        browser.close()
    return elapsed


def main() -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--n", type=int, default=100_000)
    ap.add_argument("--sample", type=int, default=50)
    ap.add_argument("--keep", metavar="DIR", help="keep the inputs and run directory here")
    args = ap.parse_args()
    work = Path(args.keep or tempfile.mkdtemp(prefix="bench-report-"))
    work.mkdir(parents=True, exist_ok=True)
    inputs, run_dir = work / "transcripts.jsonl", work / "run"
    if not inputs.exists():
        generate(inputs, args.n)
    if not (run_dir / "summary.json").exists():
        t0 = time.perf_counter()
        engine = Engine(ROOT / "examples" / "suite.yaml", get_registry())
        api.run(engine, [inputs], run_dir, overwrite=True, report=False)
        print(f"review of {args.n} transcripts: {time.perf_counter() - t0:.1f} s")
    journal_mb = (run_dir / "journal.jsonl").stat().st_size / 1e6
    t0 = time.perf_counter()
    out = write_report(run_dir, sample=args.sample)
    build = time.perf_counter() - t0
    size_mb = out.stat().st_size / 1e6
    opened = open_time(out)
    print(f"transcripts {args.n}, journal {journal_mb:.1f} MB, sample {args.sample}: "
          f"report {size_mb:.2f} MB built in {build:.1f} s, opens in {opened:.2f} s "
          f"(headless chromium, until the browser is ready)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
