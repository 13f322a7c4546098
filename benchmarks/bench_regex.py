"""Regex-only suite over HH-RLHF-shaped pairs: harness against a bare ``json`` + ``re`` loop.

    python benchmarks/bench_regex.py [--n 200000] [--workers 1,2] [--keep DIR]

``--n`` counts transcripts: an HH-RLHF record is a pair (``chosen``, ``rejected``), two
transcripts, so the file holds ``n / 2`` records of a few turns and a few hundred words each,
generated deterministically (``_common.generate_hh``) and cached in ``--data-dir``.

Each contender runs in its own process over the same file (see ``_common.measure``):

- ``bare loop``: one core; parses each line (``json``), splits both dialogues into turns
  (``re.split``), runs the same three ``re`` searches over each assistant turn, counts passes;
- ``engine``: ``harness.Engine(suite, workers=N)`` streaming the raw records
  (``Engine.batches``, what ``harness run`` drives), decisions counted, nothing written;
- ``harness run``: ``harness run SUITE INPUT -o DIR --workers N --no-report --no-progress``,
  end to end: journal, Parquet, train/rejected/errors files (written as it decides).

Goals: the engine >= 1.0x the bare loop with one worker, >= 1.8x with two; ``harness run``
>= 0.8x the engine's own rate at the same worker count.

Prints transcripts/s, the ratio to the bare loop (measured in the same run), peak RSS and the
run directory's size against the input's. ``bench_all.py`` prints it in the shared table.
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from _common import (  # noqa: E402
    HEADER,
    HH_TURN,
    LEGEND,
    cached_hh,
    cores,
    dir_size,
    measure,
    row,
)

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
DEFAULT_DATA = Path(tempfile.gettempdir()) / "harness-bench"


# --- the contenders (run in a child process) ------------------------------------------------------
def bare_loop(path: Path) -> dict:
    compiled = [re.compile(p, f) for _, p, f in PATTERNS]
    turn = re.compile(HH_TURN)
    passed = total = 0
    with path.open(encoding="utf-8") as fh:
        for line in fh:
            record = json.loads(line)
            for side in ("chosen", "rejected"):
                parts = turn.split(record[side])
                texts = [parts[i + 1] for i in range(1, len(parts), 2)
                         if parts[i] == "Assistant"]
                total += 1
                if not any(r.search(t) for r in compiled for t in texts):
                    passed += 1
    return {"passed": passed, "decided": total}


def engine_only(path: Path, suite: Path, workers: int) -> dict:
    import harness
    from harness.inputs import iter_raw

    passed = total = 0
    with harness.Engine(suite, workers=workers) as engine:
        entries = ((seq, source, raw, frozenset())
                   for seq, (source, raw) in enumerate(iter_raw(path)))
        for batch in engine.batches(entries):  # batches of decided transcripts
            total += len(batch)
            passed += sum(done.outcome == "pass" for done in batch)
    return {"passed": passed, "decided": total}


def child(args: argparse.Namespace) -> None:
    t0 = time.perf_counter()
    if args.child == "bare":
        result = bare_loop(args.data)
    else:
        result = engine_only(args.data, args.suite, args.workers)
    result["inner_s"] = time.perf_counter() - t0
    print(json.dumps(result))


# --- the parent -----------------------------------------------------------------------------------
def harness_run(data: Path, suite: Path, out: Path, workers: int) -> dict:
    r = measure([sys.executable, "-m", "harness", "run", str(suite), str(data), "-o", str(out),
                 "--overwrite", "--workers", str(workers), "--no-report", "--no-progress"])
    summary = json.loads((out / "summary.json").read_text())
    r.update(passed=summary["passed"], decided=summary["read"],
             dir_bytes=dir_size(out), files={p.name: p.stat().st_size for p in out.iterdir()})
    return r


def run(n: int, workers: list[int], data_dir: Path = DEFAULT_DATA,
        keep: Path | None = None) -> list[tuple[str, dict]]:
    """The contenders' results, bare loop first; each dict has ``per_s`` and ``ratio``."""
    data = cached_hh(data_dir, n // 2)
    size = data.stat().st_size
    tmp = Path(tempfile.mkdtemp(prefix="bench-regex-"))
    try:
        suite = tmp / "suite.yaml"
        suite.write_text(SUITE)
        me = [sys.executable, __file__, "--data", str(data), "--suite", str(suite)]
        results: list[tuple[str, dict]] = [("regex: bare json+re loop (1 core)",
                                            measure([*me, "--child", "bare"]))]
        for w in workers:
            results.append((f"regex: engine, workers={w}",
                             measure([*me, "--child", "engine", "--workers", str(w)])))
        for w in workers:
            out = (keep or tmp) / f"run-w{w}"
            r = harness_run(data, suite, out, w)
            r["dir_ratio"] = r["dir_bytes"] / size
            results.append((f"regex: harness run, --workers {w}", r))
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    base = results[0][1]
    for _, r in results:
        r["per_s"] = r["decided"] / r["wall_s"]
        r["ratio"] = r["per_s"] / (base["decided"] / base["wall_s"])
        r["input_bytes"] = size
    engines = {label.rsplit("=", 1)[-1]: r for label, r in results if "engine" in label}
    for label, r in results:
        if "harness run" in label:  # goal: >= 0.8 of the engine's own rate, same workers
            r["of_engine"] = r["per_s"] / engines[label.rsplit(" ", 1)[-1]]["per_s"]
    decided = {r["decided"] for _, r in results}
    passed = {r["passed"] for _, r in results}
    if len(decided) != 1 or len(passed) != 1:
        seen = [(k, r["decided"], r["passed"]) for k, r in results]
        raise AssertionError(f"contenders disagree: {seen}")
    return results


def goal(label: str, w: int) -> str:
    """The goal of a contender's ratio to the bare loop (``harness run``'s is to the engine:
    see :func:`of_engine`)."""
    if "engine" not in label:
        return ""
    return "(>=1.0)" if w == 1 else "(>=1.8)"


def of_engine(results: list[tuple[str, dict]]) -> str:
    """``harness run``'s rate as a fraction of the engine's, at the same worker count."""
    return "harness run / engine, same workers: " + ", ".join(
        f"--workers {label.rsplit(' ', 1)[-1]} {r['of_engine']:.2f}"
        for label, r in results if "of_engine" in r) + " (goal >= 0.8)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000, help="transcripts (2 per record)")
    parser.add_argument("--workers", default=None,
                        help=f"comma-separated worker counts (default 1,{cores()})")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--keep", type=Path, help="keep the run directories in this folder")
    parser.add_argument("--child", help=argparse.SUPPRESS)
    parser.add_argument("--data", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--suite", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    workers = [int(w) for w in (args.workers or f"1,{cores()}").split(",")]
    workers = list(dict.fromkeys(workers))
    results = run(args.n, workers, args.data_dir, args.keep)
    print(f"{args.n:,} transcripts ({args.n // 2:,} HH-RLHF records, "
          f"{results[0][1]['input_bytes'] / 2**20:,.0f} MB), {cores()} cores")
    print(HEADER)
    for label, r in results:
        w = int(label.rsplit(" ", 1)[-1].split("=")[-1]) if "bare" not in label else 0
        ratio = "1.00" if "bare" in label else f"{r['ratio']:.2f} {goal(label, w)}"
        dir_ratio = f"{r['dir_ratio']:.2f}" if "dir_ratio" in r else ""
        print(row(label, r["per_s"], ratio, r, dir_ratio))
    print(of_engine(results))
    print(LEGEND)


if __name__ == "__main__":
    main()
