"""``make bench``: the throughput, memory and disk goals, measured side by side in one table.

    python benchmarks/bench_all.py [--n 200000] [--big] [--classifier-n 2000] [--workers 1,2]
                                   [--skip-classifier] [--json FILE]

- regex suite on HH-RLHF-shaped pairs (``bench_regex.py``): the engine alone and
  ``harness run`` end to end, with ``--workers 1`` and with every core, each as a ratio to a
  bare one-core ``json`` + ``re`` loop doing the same work in the same run (goals: the engine
  >= 1.0 with one worker, >= 1.8 with two; ``harness run`` >= 0.8 of the engine's rate);
- classifier suite (``bench_classifier.py``): as a ratio to the bare model encoding the same
  texts in batches (goal >= 0.8);
- memory and disk: peak RSS of every contender (goal < 1 GB at 10^6 transcripts: ``--big``
  sets ``--n 1000000``; the default 200,000 keeps ``make bench`` short) and the run
  directory's size as a ratio to the input's (goal <= 1.5).

``--n`` counts transcripts: an HH-RLHF record is two (``chosen`` and ``rejected``).
Every contender runs in its own process, so its peak RSS is its own.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_classifier  # noqa: E402
import bench_regex  # noqa: E402
from _common import HEADER, LEGEND, cores, row  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=200_000,
                        help="transcripts for the regex suite (default 200,000)")
    parser.add_argument("--big", action="store_true", help="--n 1000000 (the memory goal)")
    parser.add_argument("--classifier-n", type=int, default=2000,
                        help="transcripts for the classifier suite (default 2,000)")
    parser.add_argument("--workers", default=None,
                        help=f"comma-separated worker counts (default 1,{cores()})")
    parser.add_argument("--skip-classifier", action="store_true")
    parser.add_argument("--head", type=Path, help="a trained classifier head (default: train)")
    parser.add_argument("--data-dir", type=Path, default=bench_regex.DEFAULT_DATA,
                        help="where the generated inputs are cached")
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    n = 1_000_000 if args.big else args.n
    workers = list(dict.fromkeys(int(w) for w in (args.workers or f"1,{cores()}").split(",")))
    load = os.getloadavg()[0]
    t0 = time.perf_counter()
    print(f"{cores()} cores, load average {load:.1f} before the run"
          + ("  (a loaded machine: compare the ratios, not the rates)" if load > 1 else ""),
          flush=True)
    sections = [("regex", n, bench_regex.run(n, workers, args.data_dir))]
    for label, r in sections[0][2]:  # as it comes: the classifier section takes a while
        print(f"  {label}: {r['per_s']:,.0f}/s, ratio {r['ratio']:.2f}", flush=True)
    size = sections[0][2][0][1]["input_bytes"]
    if not args.skip_classifier:
        sections.append(("classifier", args.classifier_n,
                         bench_classifier.run(args.classifier_n, workers, args.data_dir,
                                              args.head)))
    print(f"regex: {n:,} transcripts ({n // 2:,} HH-RLHF records, {size / 2**20:,.0f} MB); "
          f"classifier: {args.classifier_n:,} transcripts; load average now "
          f"{os.getloadavg()[0]:.1f}; {time.perf_counter() - t0:.0f}s in all")
    print(HEADER)
    for name, _, results in sections:
        for label, r in results:
            if "bare" in label:
                ratio = "1.00"
            elif name == "classifier":
                ratio = f"{r['ratio']:.2f} (>=0.8)"
            else:
                w = int(label.rsplit(" ", 1)[-1].split("=")[-1])
                ratio = f"{r['ratio']:.2f} {bench_regex.goal(label, w)}".strip()
            dir_ratio = f"{r['dir_ratio']:.2f}" if "dir_ratio" in r else ""
            print(row(label, r["per_s"], ratio, r, dir_ratio))
    print(bench_regex.of_engine(sections[0][2]))
    print(f"goals: peak RSS < 1 GB at 10^6 transcripts (--big); run dir / input <= 1.5. {LEGEND}")
    if args.json:
        args.json.write_text(json.dumps({name: dict(results) for name, _, results in sections},
                                        indent=1, default=str))


if __name__ == "__main__":
    main()
