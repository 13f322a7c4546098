"""The Ray engine beside the local engine: same corpus, same suites, `harness run` end to end.

A local Ray instance with 2 CPUs (started here, in its own process, once) serves every Ray run
(``harness run ... --engine ray --ray-address ADDR``); the local engine runs with
``--workers 2``. Two suites:

- ``regex``: the regex suite of ``bench_regex.py`` on ``--records`` HH-RLHF pairs (default
  50,000 records, 100,000 transcripts);
- ``judge``: one ``llm_judge`` criterion (``max_concurrency`` 64 for the whole cluster, the
  cache starts empty) on ``--judged`` transcripts (default 10,000) against the endpoint of
  ``bench_judge.py`` (50 ms a call).

Start-up is measured apart: the same command on a 10-record input (imports, suite, plugins; for
Ray: connecting and starting the actor pool), the shorter of two such runs, plus the one-off
start of the Ray instance and a run that starts its own instance (no ``--ray-address``). Rates
are ``transcripts / (wall - start-up)``, and the ratio is Ray's rate over the local engine's.
The corpora are large enough for start-up's own variation (a second or two) to matter little.

    python benchmarks/bench_ray.py [--records 50000] [--judged 10000]
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

from _common import cached_hh, measure  # noqa: E402
from bench_judge import SCENARIOS, Endpoint, suite_file  # noqa: E402
from bench_regex import DEFAULT_DATA, SUITE  # noqa: E402

HARNESS = [sys.executable, "-m", "harness", "run"]
RAY_HEAD = """\
import sys, ray
ray.init(num_cpus=2, include_dashboard=False, logging_level="ERROR")
print(ray.get_runtime_context().gcs_address, flush=True)
sys.stdin.read()
ray.shutdown()
"""


class RayInstance:
    """A local Ray instance with 2 CPUs, alive while this object is (ended by its own pid)."""

    def __init__(self) -> None:
        # token authentication (Ray's default for a new instance): the drivers started
        # here inherit the mode, and read the token the instance saves in ~/.ray
        os.environ.setdefault("RAY_AUTH_MODE", "token")
        start = time.perf_counter()
        self.proc = subprocess.Popen([sys.executable, "-c", RAY_HEAD], stdin=subprocess.PIPE,
                                     stdout=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        self.address = self.proc.stdout.readline().strip()
        self.start_s = time.perf_counter() - start
        if not self.address:
            raise RuntimeError("the Ray instance did not start")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait(timeout=60)


def harness_run(suite: Path, data: Path, out: Path, engine: list[str]) -> dict:
    r = measure([*HARNESS, str(suite), str(data), "-o", str(out), "--overwrite", "--no-report",
                 "--no-progress", *engine])
    summary = json.loads((out / "summary.json").read_text())
    r["decided"] = summary["read"]
    r["passed"] = summary["passed"]
    return r


def compare(name: str, suite: Path, data: Path, tiny: Path, tmp: Path,
            engines: dict[str, list[str]]) -> list[tuple[str, dict]]:
    rows = []
    for label, engine in engines.items():
        startup = min(harness_run(suite, tiny, tmp / f"{name}-{label}-tiny", engine)["wall_s"]
                      for _ in range(2))
        r = harness_run(suite, data, tmp / f"{name}-{label}", engine)
        r["startup_s"] = startup
        r["per_s"] = r["decided"] / max(r["wall_s"] - startup, 1e-9)
        rows.append((f"{name}: {label}", r))
    base = rows[0][1]
    assert all(r["passed"] == base["passed"] for _, r in rows), "the engines decided otherwise"
    for _, r in rows:
        r["ratio"] = r["per_s"] / base["per_s"]
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--records", type=int, default=50_000, help="HH-RLHF pairs (regex)")
    parser.add_argument("--judged", type=int, default=10_000, help="transcripts (judge)")
    args = parser.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    head = RayInstance()
    try:
        engines = {"local engine, --workers 2": ["--workers", "2"],
                   "Ray engine, 2 actors": ["--engine", "ray", "--ray-address", head.address]}
        regex_suite = tmp / "regex.yaml"
        regex_suite.write_text(SUITE)
        data = cached_hh(DEFAULT_DATA, args.records)
        tiny = cached_hh(DEFAULT_DATA, 5)
        rows = compare("regex", regex_suite, data, tiny, tmp, engines)
        own = harness_run(regex_suite, tiny, tmp / "own-instance", ["--engine", "ray"])
        fixed = SCENARIOS["fixed"]
        endpoint = Endpoint(fixed["latency"], fixed["median"], fixed["sigma"])
        try:
            judge_suite = suite_file(tmp, endpoint.base_url, fixed["concurrency"])
            judged = tmp / "judged.jsonl"
            with judged.open("w") as fh:
                for i in range(args.judged):
                    fh.write(json.dumps({"id": f"t{i}", "messages": [
                        {"role": "user", "content": f"Question {i}: what is {i} + {i}?"},
                        {"role": "assistant", "content": f"It is {2 * i}: add {i} to {i}."}]})
                        + "\n")
            tiny_judged = tmp / "tiny-judged.jsonl"
            tiny_judged.write_text("".join(judged.read_text().splitlines(True)[:10]))
            rows += compare("judge (50 ms, concurrency 64)", judge_suite, judged, tiny_judged,
                            tmp, engines)
        finally:
            endpoint.close()
    finally:
        head.close()
        shutil.rmtree(tmp, ignore_errors=True)
    print(f"{'contender':50s} {'transcripts':>11s} {'per s':>8s} {'ratio':>6s} "
          f"{'start-up s':>10s} {'wall s':>7s} {'tree RSS MB':>11s}")
    for label, r in rows:
        print(f"{label:50s} {r['decided']:>11,d} {r['per_s']:>8,.0f} {r['ratio']:>6.2f} "
              f"{r['startup_s']:>10.1f} {r['wall_s']:>7.1f} {r['tree_rss_mb']:>11.0f}")
    print(f"start-up of the local 2-CPU Ray instance (once): {head.start_s:.1f} s; "
          f"a 10-record Ray run that starts its own instance: {own['wall_s']:.1f} s")


if __name__ == "__main__":
    main()
