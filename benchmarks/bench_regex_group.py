"""One scan for every pattern: a regex group of 20 criteria against a group of one, and the
group of the regex benchmark's 3 criteria against those 3 criteria each searching alone.

    python benchmarks/bench_regex_group.py [--n 20000] [--repeat 7] [--batch 512]

``--n`` HH-RLHF-shaped transcripts (``_common.hh_record``, parsed as ``harness run`` parses
them) are made once, in memory, then frozen out of the garbage collector's way (the engine
holds a few chunks, not a data set). Every contender judges all of them, ``--batch`` at a time
(the engine's chunk of 256 records is about 512 transcripts), in this one process: what is
timed is the criteria alone, not reading or deciding. The contenders take turns for
``--repeat`` rounds; each figure is the median of its rounds, in CPU time (the machine may be
shared). Column ``clean``: the same on the transcripts that no pattern matches (no evidence to
find, so the scan alone).

- ``group ..., evaluate_batch``: :meth:`RegexGroup.evaluate_batch`, a ``Verdict`` per criterion
  and transcript, as the plan's front receives them today;
- ``group ..., searched``: :meth:`RegexGroup.searched`, the scan and the searches for evidence
  where a pattern may match, every other verdict left implicit ("not found"): what a front that
  keeps verdicts as arrays would pay;
- ``... alone``: each criterion's ``evaluate`` on each transcript;
- ``plan of N``: what the engine runs per batch once records are parsed: the compiled plan's
  front (the group, verdicts stamped and shared) and every transcript's decision
  (:class:`~harness.plan.SharedDecisions`, the JSON a worker sends back included);
- ``worker, suite of N``: all a worker process does with a chunk of raw records
  (:class:`~harness.stages.SyncStage`: parse, front, decisions as JSON), per transcript: the
  suite's whole cost in the engine, reading and writing apart.

Goal: 20 criteria cost at most 1.5x one.
"""

from __future__ import annotations

import argparse
import gc
import json
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import orjson  # noqa: E402
from _common import hh_record  # noqa: E402

from harness.inputs.formats import parse_hh_rlhf  # noqa: E402
from harness.models import Compacted, Transcript, compact_json  # noqa: E402
from harness.options import RunOptions  # noqa: E402
from harness.plan import Plan  # noqa: E402
from harness.plugins import get_registry  # noqa: E402
from harness.stages import SyncStage  # noqa: E402
from harness.suite import CriterionSpec, load_suite  # noqa: E402
from harness_criteria.regex import Regex  # noqa: E402

PATTERNS = [  # (pattern, flags): what a suite gates on before a judge sees a transcript
    (r"as an ai (language )?model", ["IGNORECASE"]),
    (r"sk-[A-Za-z0-9]{20,}", []),
    (r"\b(sorry|apologi[sz]e)\b", ["IGNORECASE"]),
    (r"\b(stupid|idiot|dumb)\b", ["IGNORECASE"]),
    (r"I (cannot|can't|can not) (help|assist)", ["IGNORECASE"]),
    (r"\bAKIA[0-9A-Z]{16}\b", []),
    (r"-----BEGIN [A-Z ]*PRIVATE KEY-----", []),
    (r"\b\d{3}-\d{2}-\d{4}\b", []),
    (r"[\w.+-]+@[\w-]+\.[a-z]{2,}", []),
    (r"https?://\S+", []),
    (r"\bTODO\b", []),
    (r"^\s*$", ["MULTILINE"]),
    (r"as of my (knowledge|training) cutoff", ["IGNORECASE"]),
    (r"\b(kill|murder|bomb)\b", ["IGNORECASE"]),
    (r"ghp_[A-Za-z0-9]{36}", []),
    (r"\bpassword\s*[:=]", ["IGNORECASE"]),
    (r"<script\b", ["IGNORECASE"]),
    (r"lorem ipsum", ["IGNORECASE"]),
    (r"\b(?:\d[ -]?){13,16}\b", []),
    (r"xox[baprs]-[0-9A-Za-z-]{10,}", []),
]
BENCH_SUITE = [PATTERNS[0], PATTERNS[1], PATTERNS[2]]  # bench_regex.py's three criteria


def criteria(patterns: list[tuple[str, list[str]]]) -> list[Regex]:
    return [Regex(CriterionSpec(name=f"c{n}", kind="regex"),
                  Regex.Config(pattern=p, flags=f, expect="absent"), None)
            for n, (p, f) in enumerate(patterns)]


def transcripts(n: int, seed: int = 0) -> list[Transcript]:
    rng = random.Random(seed)
    out: list[Transcript] = []
    while len(out) < n:
        out += parse_hh_rlhf(hh_record(rng), "bench")
    return out[:n]


def timed(run: Callable[[list[Transcript]], object], data: list[Transcript],
          batch: int) -> float:
    """CPU seconds to run ``run`` over ``data``, ``batch`` transcripts at a time."""
    started = time.process_time()
    for i in range(0, len(data), batch):
        run(data[i: i + batch])
    return time.process_time() - started


def alone(group: list[Regex]) -> Callable[[list[Transcript]], object]:
    return lambda batch: [[c.evaluate(t) for t in batch] for c in group]


def compiled(patterns: list[tuple[str, list[str]]], directory: Path) -> Plan:
    lines = ["name: bench", "criteria:"] + [
        f"  - {{name: c{n}, kind: regex, pattern: {json.dumps(p)}, flags: {json.dumps(f)}, "
        "expect: absent}" for n, (p, f) in enumerate(patterns)]
    path = directory / f"suite-{len(patterns)}.yaml"
    path.write_text("\n".join(lines) + "\n")
    return Plan(load_suite(path), get_registry(), RunOptions())


def worker_of(patterns: list[tuple[str, list[str]]], directory: Path
              ) -> Callable[[list[bytes]], object]:
    """A worker's stage on raw records (each an HH-RLHF pair: two transcripts)."""
    plan = compiled(patterns, directory)
    stage = SyncStage(plan, plan.registry.formats, serialize=True)
    return lambda raws: plan.context.loop.run(stage.run(
        [(n, f"bench:{n}", raw, frozenset()) for n, raw in enumerate(raws)]))


def plan_of(patterns: list[tuple[str, list[str]]], directory: Path
            ) -> Callable[[list[Transcript]], object]:
    """The plan's front and the decisions, as a worker process runs them on a parsed chunk."""
    plan = compiled(patterns, directory)

    def run(batch: list[Transcript]) -> object:
        verdicts, _ = plan.context.loop.run(plan.run_front(batch))
        shared = plan.decisions()
        memo: Compacted = {}
        out = []
        for t, found in zip(batch, verdicts, strict=True):
            decision, line, _ = shared.decide(t, found, (t.id, t.source), own=False)
            out.append(line or compact_json(decision, memo))
        return out

    return run


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000, help="transcripts")
    parser.add_argument("--repeat", type=int, default=7, help="rounds (medians are shown)")
    parser.add_argument("--batch", type=int, default=512, help="transcripts per call")
    args = parser.parse_args()
    one, three, twenty = criteria(PATTERNS[:1]), criteria(BENCH_SUITE), criteria(PATTERNS)
    data = transcripts(args.n)
    rng = random.Random(0)  # the same records as transcripts(): raw, as a worker gets them
    raws = [orjson.dumps(hh_record(rng)) for _ in range(args.n // 2)]
    clean = [t for t in data if all(c.evaluate(t).outcome == "pass" for c in twenty)]
    gc.freeze()  # the engine holds a few chunks, not the whole data set: GC never walks it
    groups = {k: Regex.group(v) for k, v in (("1", one), ("3", three), ("20", twenty))}
    assert not any(g.alone for g in groups.values()), "every bench pattern is scanned"
    suites = Path(tempfile.mkdtemp(prefix="bench-regex-group-"))
    contenders = {
        "plan of 1: front + decisions": plan_of(PATTERNS[:1], suites),
        "plan of 20: front + decisions": plan_of(PATTERNS, suites),
        "group of 1, evaluate_batch": groups["1"].evaluate_batch,
        "group of 20, evaluate_batch": groups["20"].evaluate_batch,
        "group of 1, searched": groups["1"].searched,
        "group of 20, searched": groups["20"].searched,
        "group of 3, evaluate_batch": groups["3"].evaluate_batch,
        "3 criteria alone": alone(three),
        "1 criterion alone": alone(one),
        "20 criteria alone": alone(twenty),
    }
    workers = {"worker, suite of 1": worker_of(PATTERNS[:1], suites),
               "worker, suite of 20": worker_of(PATTERNS, suites)}
    inputs = {"all": data, "clean": clean}
    times: dict[tuple[str, str], list[float]] = {}
    for _ in range(args.repeat):
        for label, run in contenders.items():
            for name, batch in inputs.items():
                times.setdefault((label, name), []).append(timed(run, batch, args.batch))
        for label, stage in workers.items():  # records of two transcripts: half the batch
            times.setdefault((label, "all"), []).append(timed(stage, raws, args.batch // 2))
    us = {k: statistics.median(v) / len(inputs[k[1]]) * 1e6 for k, v in times.items()
          if k[0] not in workers}
    us.update({k: statistics.median(v) / (2 * len(raws)) * 1e6 for k, v in times.items()
               if k[0] in workers})
    print(f"{len(data):,} HH-RLHF-shaped transcripts, batches of {args.batch}, CPU time, "
          f"median of {args.repeat} rounds; 'clean': the {len(clean):,} that no pattern matches")
    print(f"{'contender':30s} {'us/transcript':>14s} {'clean':>8s}")
    for label in contenders:
        print(f"{label:30s} {us[label, 'all']:14.2f} {us[label, 'clean']:8.2f}")
    for label in workers:
        print(f"{label:30s} {us[label, 'all']:14.2f} {'':>8s}")
    print("ratios (all, clean):")
    for label, a, b, goal in (
            ("20 criteria / 1, evaluate_batch", "group of 20, evaluate_batch",
             "group of 1, evaluate_batch", "(goal <= 1.5x)"),
            ("20 criteria / 1, searched", "group of 20, searched", "group of 1, searched",
             "(goal <= 1.5x)"),
            ("20 criteria / 1, plan + decisions", "plan of 20: front + decisions",
             "plan of 1: front + decisions", "(goal <= 1.5x)"),
            ("3 criteria, group / alone", "group of 3, evaluate_batch", "3 criteria alone", ""),
            ("20 criteria / 1, a worker's all", "worker, suite of 20", "worker, suite of 1",
             "(goal <= 1.5x)"),
            ("20 criteria, group / alone", "group of 20, evaluate_batch", "20 criteria alone",
             "")):
        print(f"  {label:32s} " + " ".join(f"{us[a, k] / us[b, k]:5.2f}x" for k in inputs
                                            if (a, k) in us) + f"  {goal}")


if __name__ == "__main__":
    main()
