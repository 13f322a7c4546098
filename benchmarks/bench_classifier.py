"""Classifier-only suite over HH-RLHF-shaped pairs: harness against the bare model.

    python benchmarks/bench_classifier.py [--n 2000] [--workers 1,2] [--head DIR]

The suite has one criterion, ``kind: classifier, model: embedding`` (the default head on the
embedded all-MiniLM-L6-v2), scoring every assistant turn. The head is trained first with
``harness classifier train examples/classifier/labelled.jsonl -o TMP`` (unless ``--head`` names
one) and every contender gets it as ``HARNESS_CLASSIFIER_HEAD``, so ``~/.cache`` is left alone.
``--n`` counts transcripts (2 per HH-RLHF record), generated as in ``bench_regex.py``.

Contenders, each in its own process, timed whole (model loading included, as for a user):

- ``bare model``: parses each line, splits both dialogues into turns, takes the distinct
  assistant texts of 256 records at a time (the two sides of a pair share all but the last
  answer; the criterion scores a repeated text once too) and gives them to the head's
  ``predict_proba`` (``model.encode`` in batches of 32, then the logistic head);
- ``engine`` and ``harness run`` with ``--workers`` 1 and N, as in ``bench_regex.py``.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    HEADER,
    HH_TURN,
    LEGEND,
    ROOT,
    cached_hh,
    cores,
    dir_size,
    measure,
    row,
)

LABELLED = ROOT / "examples" / "classifier" / "labelled.jsonl"
SUITE = """name: bench-classifier
criteria:
  - name: not_harmful
    kind: classifier
    model: embedding
    label: harmful_compliance
    batch_size: 32
"""
CHUNK = 256
DEFAULT_DATA = Path(tempfile.gettempdir()) / "harness-bench"


def bare_model(path: Path) -> dict:
    import re

    from harness_local_models.classifier_backends import default_head_dir
    from harness_local_models.head import load_head

    head = load_head(default_head_dir())
    turn = re.compile(HH_TURN)
    passed = total = 0

    def score(pending: list[list[str]]) -> int:
        unique = list(dict.fromkeys(t for texts in pending for t in texts))
        probs = dict(zip(unique, head.predict_proba(unique, batch_size=32), strict=True))
        return sum(all(probs[t]["harmful_compliance"] < 0.5 for t in texts)
                   for texts in pending)

    pending: list[list[str]] = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            record = json.loads(line)
            for side in ("chosen", "rejected"):
                parts = turn.split(record[side])
                pending.append([parts[i + 1] for i in range(1, len(parts), 2)
                                if parts[i] == "Assistant"])
            if n % CHUNK == 0:
                passed += score(pending)
                total += len(pending)
                pending = []
    if pending:
        passed += score(pending)
        total += len(pending)
    return {"passed": passed, "decided": total}


def child(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    if args.child == "bare":
        result = bare_model(args.data)
    else:
        from bench_regex import engine_only

        result = engine_only(args.data, args.suite, args.workers)
    result["inner_s"] = time.perf_counter() - t0
    print(json.dumps(result))


def train_head(out: Path) -> float:
    start = time.perf_counter()
    subprocess.run([sys.executable, "-m", "harness", "classifier", "train", str(LABELLED),
                    "-o", str(out)], check=True, capture_output=True, text=True)
    return time.perf_counter() - start


def run(n: int, workers: list[int], data_dir: Path = DEFAULT_DATA,
        head: Path | None = None) -> list[tuple[str, dict]]:
    data = cached_hh(data_dir, n // 2, seed=1)
    size = data.stat().st_size
    tmp = Path(tempfile.mkdtemp(prefix="bench-classifier-"))
    try:
        if head is None:
            head = tmp / "head"
            train_head(head)
        env = {"HARNESS_CLASSIFIER_HEAD": str(head)}
        suite = tmp / "suite.yaml"
        suite.write_text(SUITE)
        me = [sys.executable, __file__, "--data", str(data), "--suite", str(suite)]
        results = [("classifier: bare model (batches of 32)",
                    measure([*me, "--child", "bare"], env))]
        for w in workers:
            results.append((f"classifier: engine, workers={w}",
                            measure([*me, "--child", "engine", "--workers", str(w)], env)))
        for w in workers:
            out = tmp / f"run-w{w}"
            r = measure([sys.executable, "-m", "harness", "run", str(suite), str(data), "-o",
                         str(out), "--workers", str(w), "--no-report", "--no-progress"], env)
            summary = json.loads((out / "summary.json").read_text())
            r.update(passed=summary["passed"], decided=summary["read"],
                     dir_ratio=dir_size(out) / size)
            results.append((f"classifier: harness run, --workers {w}", r))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = results[0][1]
    for _, r in results:
        r["per_s"] = r["decided"] / r["wall_s"]
        r["ratio"] = r["per_s"] / (base["decided"] / base["wall_s"])
        r["input_bytes"] = size
    if len({r["decided"] for _, r in results}) != 1:
        raise AssertionError(f"contenders disagree: {[(k, r['decided']) for k, r in results]}")
    if len({r["passed"] for _, r in results}) != 1:  # float noise at the threshold: say so
        print("note: pass counts differ: "
              + ", ".join(f"{k}: {r['passed']}" for k, r in results), file=sys.stderr)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="transcripts (2 per record)")
    parser.add_argument("--workers", default=None,
                        help=f"comma-separated worker counts (default 1,{cores()})")
    parser.add_argument("--head", type=Path, help="a trained head folder (default: train one)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--suite", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    workers = list(dict.fromkeys(int(w) for w in (args.workers or f"1,{cores()}").split(",")))
    results = run(args.n, workers, args.data_dir, args.head)
    print(f"{args.n:,} transcripts ({args.n // 2:,} HH-RLHF records), {cores()} cores, "
          f"torch threads: default; OMP_NUM_THREADS={os.environ.get('OMP_NUM_THREADS', '-')}")
    print(HEADER)
    for label, r in results:
        ratio = "1.00" if "bare" in label else f"{r['ratio']:.2f} (>=0.8)"
        dir_ratio = f"{r['dir_ratio']:.2f}" if "dir_ratio" in r else ""
        print(row(label, r["per_s"], ratio, r, dir_ratio))
    print(LEGEND)


if __name__ == "__main__":
    main()
