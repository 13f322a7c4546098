"""The static classifier head beside the MiniLM head: speed and agreement with labels, one run.

    python benchmarks/bench_static.py [--n 1000] [--passes 3] [--json FILE]

Both heads are trained in this run with ``harness classifier train`` on
``examples/classifier/labelled.jsonl`` (395 short replies, 3 labels), the same folds and seed:

- **agreement with the labels**: each head's 5-fold cross-validated accuracy (out-of-fold
  predictions, every record predicted by a head that did not see it) and its held-out accuracy,
  from the training report;
- **labelled set, engine**: the 395 records as one-turn transcripts, decided by a one-criterion
  suite (``kind: classifier, label: harmful_compliance``) through ``Engine.decide_batch`` in
  this process, the model loaded first; the best of ``--passes`` passes;
- **HH-RLHF-shaped transcripts, ``harness run``**: ``--n`` transcripts (generated as in
  ``bench_regex.py``, several assistant turns each) end to end, each head in its own process; the
  rate leaves out start-up (imports, model loading: the wall time of the same command on 10
  transcripts, given apart). These are word salad, unlike anything either head was trained on:
  how often the two heads decide a transcript alike there is shown, not as a measure of
  either's quality.

The goal (issue #22): the static head >= 20x the MiniLM head's transcripts/s at >= 0.95x its
agreement. The distilled model is made once, in its cache (``$HARNESS_STATIC_MODEL``, else
``~/.cache/harness/static-minilm-...``); the heads go to a temporary folder.
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

from _common import ROOT, cached_hh, cores, measure  # noqa: E402

LABELLED = ROOT / "examples" / "classifier" / "labelled.jsonl"
DEFAULT_DATA = Path(tempfile.gettempdir()) / "harness-bench"
BACKENDS = ("embedding", "static")
SUITE = """name: bench-static
criteria:
  - name: not_harmful
    kind: classifier
    model: {model}
    label: harmful_compliance
"""


def train(backend: str, out: Path) -> dict:
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-m", "harness", "classifier", "train", str(LABELLED),
                           "--backend", backend, "-o", str(out), "--json"],
                          check=True, capture_output=True, text=True)
    report = json.loads(done.stdout)
    report["train_wall_s"] = time.perf_counter() - start
    return report


def labelled_transcripts() -> list:
    from harness import Message, Transcript

    out = []
    with LABELLED.open(encoding="utf-8") as fh:
        for i, line in enumerate(fh):
            record = json.loads(line)
            out.append(Transcript(id=f"r{i}", messages=[
                Message(role="user", content="question"),
                Message(role="assistant", content=record["text"])]))
    return out


def engine_rate(suite: Path, passes: int) -> dict:
    """Transcripts/s of the labelled set through the engine, the model loaded before timing."""
    import harness

    transcripts = labelled_transcripts()
    engine = harness.Engine(harness.load_suite(suite))
    engine.decide_batch(transcripts[:2])  # loads the model
    best, failed = float("inf"), 0
    for _ in range(passes):
        start = time.perf_counter()
        decisions = engine.decide_batch(transcripts)
        best = min(best, time.perf_counter() - start)
        failed = sum(d.outcome == "fail" for d in decisions)
    return {"transcripts": len(transcripts), "best_s": best,
            "per_s": len(transcripts) / best, "failed": failed}


def harness_run(suite: Path, data: Path, out: Path, limit: int | None = None) -> dict:
    cmd = [sys.executable, "-m", "harness", "run", str(suite), str(data), "-o", str(out),
           "--no-report", "--no-progress", "--overwrite"]
    if limit is not None:
        cmd += ["--limit", str(limit)]
    r = measure(cmd)
    summary = json.loads((out / "summary.json").read_text())
    r.update(read=summary["read"], passed=summary["passed"])
    if limit is None:
        import pandas as pd

        decisions = pd.read_parquet(out / "decisions.parquet", columns=["transcript_id",
                                                                         "outcome"])
        r["outcomes"] = dict(zip(decisions["transcript_id"], decisions["outcome"], strict=True))
    return r


def run(n: int, passes: int, data_dir: Path = DEFAULT_DATA) -> dict:
    data = cached_hh(data_dir, n // 2, seed=1)
    tmp = Path(tempfile.mkdtemp(prefix="bench-static-"))
    results: dict = {"n": n, "cores": cores(), "load_before": os.getloadavg()[0]}
    outcomes: dict[str, dict[str, str]] = {}
    try:
        for backend in BACKENDS:
            head = tmp / backend
            report = train(backend, head)
            suite = tmp / f"{backend}.yaml"
            suite.write_text(SUITE.format(model=json.dumps(str(head))))
            r: dict = {"cv_accuracy": report["cv_accuracy"],
                       "holdout_accuracy": report["holdout_accuracy"],
                       "train_wall_s": report["train_wall_s"]}
            r["engine"] = engine_rate(suite, passes)
            small = harness_run(suite, data, tmp / f"run-{backend}-10", limit=5)  # 10 transcr.
            full = harness_run(suite, data, tmp / f"run-{backend}", None)
            net = max(full["wall_s"] - small["wall_s"], 1e-9)
            r["run"] = {"transcripts": full["read"], "wall_s": full["wall_s"],
                        "startup_s": small["wall_s"], "per_s": (full["read"] - small["read"]) / net,
                        "passed": full["passed"], "peak_rss_mb": full["peak_rss_mb"]}
            outcomes[backend] = full["outcomes"]
            results[backend] = r
            print(f"  {backend}: cv accuracy {r['cv_accuracy']:.3f}, engine "
                  f"{r['engine']['per_s']:,.0f}/s, harness run {r['run']['per_s']:,.0f}/s",
                  file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    mini, static = results["embedding"], results["static"]
    results["speed_ratio_engine"] = static["engine"]["per_s"] / mini["engine"]["per_s"]
    results["speed_ratio_run"] = static["run"]["per_s"] / mini["run"]["per_s"]
    results["agreement_ratio"] = static["cv_accuracy"] / mini["cv_accuracy"]
    a, b = outcomes["embedding"], outcomes["static"]
    results["heads_agree_run"] = sum(a[k] == b.get(k) for k in a) / max(len(a), 1)
    return results


def table(results: dict) -> str:
    mini, static = results["embedding"], results["static"]
    lines = [
        f"{results['n']:,} HH-RLHF-shaped transcripts, 395 labelled records, {results['cores']} "
        f"cores, load average {results['load_before']:.1f} before the run",
        f"{'':44s} {'MiniLM head':>14s} {'static head':>14s} {'ratio':>8s}",
    ]

    def line(label: str, a: float, b: float, fmt: str, ratio: bool = True) -> None:
        r = f"{b / a:.2f}" if ratio and a else ""
        lines.append(f"{label:44s} {format(a, fmt):>14s} {format(b, fmt):>14s} {r:>8s}")

    line("cross-validated accuracy (5 folds)", mini["cv_accuracy"], static["cv_accuracy"], ".3f")
    line("held-out accuracy", mini["holdout_accuracy"], static["holdout_accuracy"], ".3f")
    line("labelled set, engine: transcripts/s", mini["engine"]["per_s"],
         static["engine"]["per_s"], ",.0f")
    line("harness run: transcripts/s (net of start-up)", mini["run"]["per_s"],
         static["run"]["per_s"], ",.0f")
    line("harness run: wall s", mini["run"]["wall_s"], static["run"]["wall_s"], ".1f")
    line("harness run: start-up s (10 transcripts)", mini["run"]["startup_s"],
         static["run"]["startup_s"], ".1f")
    line("harness run: failed (harmful_compliance)", mini["run"]["transcripts"]
         - mini["run"]["passed"], static["run"]["transcripts"] - static["run"]["passed"], ",d",
         ratio=False)
    lines.append(f"{'harness run: the two heads decide alike':44s} "
                 f"{results['heads_agree_run']:>29.1%}")
    line("training (distilling included the first time), s", mini["train_wall_s"],
         static["train_wall_s"], ".1f", ratio=False)
    goal_speed = min(results["speed_ratio_engine"], results["speed_ratio_run"]) >= 20
    goal_agree = results["agreement_ratio"] >= 0.95
    lines.append(f"goal >= 20x the speed: {'met' if goal_speed else 'NOT met'}; "
                 f">= 0.95x the agreement: {'met' if goal_agree else 'NOT met'} "
                 f"({results['agreement_ratio']:.2f})")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000,
                        help="HH-RLHF-shaped transcripts for harness run (default 1,000)")
    parser.add_argument("--passes", type=int, default=3,
                        help="engine passes over the labelled set (the best counts)")
    parser.add_argument("--data-dir", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--json", type=Path, help="also write the results here")
    args = parser.parse_args()
    results = run(args.n, args.passes, args.data_dir)
    print(table(results))
    if args.json:
        args.json.write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
