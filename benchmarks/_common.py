"""Shared by the benchmarks: HH-RLHF-shaped data, and running a contender in its own process.

Every contender is a subprocess (``python SCRIPT --child MODE ...``) that prints one JSON line
(what it decided) as its last line of output. :func:`measure` times it from the outside (wall
time, from process start to exit: imports, model loading and output files included), reads its
CPU time and peak RSS from ``wait4`` (the largest single process of its tree, workers included)
and samples the whole tree's RSS from ``/proc`` every 20 ms (main process plus workers, summed).
"""

from __future__ import annotations

import json
import os
import random
import re
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# --- HH-RLHF-shaped data -------------------------------------------------------------------------
_WORDS = str.split(
    "the a an and or but if then so because while when where which that this these those it "
    "is are was were be been have has had do does did can could should would will may might "
    "you your I me my we our they their he she his her what how why who data model file "
    "files answer question step steps example python code function error value list table "
    "time way people work help need want know think make use good best first next last many "
    "some any each every other more most less few small large simple clear safe sure quick "
    "recipe garden travel money health music history science write read learn explain check "
    "run test build keep change start stop try find look show give take call ask tell"
)
HUMAN_OPENERS = ("Can you", "How do I", "What is", "Why does", "Could you explain",
                 "Is it okay to", "Tell me", "Help me")
ASSISTANT_OPENERS = ("Sure,", "Yes,", "Here is", "Good question.", "Well,", "I think",
                     "One option is", "It depends:")
HH_TURN = r"\n\n(Human|Assistant):[ ]?"


def _sentence(rng: random.Random, words: int, opener: str) -> str:
    body = " ".join(rng.choices(_WORDS, k=words))
    return f"{opener} {body}."


def _answer(rng: random.Random) -> str:
    text = " ".join(_sentence(rng, rng.randint(8, 20), rng.choice(ASSISTANT_OPENERS))
                    for _ in range(rng.randint(2, 7)))
    roll = rng.random()
    if roll < 0.03:
        text = "As an AI language model, I cannot do that. " + text
    elif roll < 0.10:
        text = "I'm sorry, " + text[0].lower() + text[1:]
    elif roll < 0.11:
        text += " Use the key sk-" + "".join(rng.choices("abcdefXYZ0123456789", k=32)) + "."
    return text


def hh_record(rng: random.Random) -> dict[str, str]:
    """One HH-RLHF pair: 1-4 turns, a few hundred words; the two sides share all but the last
    assistant answer (as in the real data set)."""
    prefix = ""
    turns = rng.randint(1, 4)
    for t in range(turns):
        question = _sentence(rng, rng.randint(6, 30), rng.choice(HUMAN_OPENERS))[:-1] + "?"
        prefix += f"\n\nHuman: {question}\n\nAssistant: "
        if t < turns - 1:
            prefix += _answer(rng)
    return {"chosen": prefix + _answer(rng), "rejected": prefix + _answer(rng)}


def generate_hh(path: Path, records: int, seed: int = 0) -> None:
    """``records`` HH-RLHF pairs (2 transcripts each) as JSONL, the same for a given seed."""
    rng = random.Random(seed)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w") as fh:
        for _ in range(records):
            fh.write(json.dumps(hh_record(rng)) + "\n")
    os.replace(tmp, path)


def cached_hh(directory: Path, records: int, seed: int = 0) -> Path:
    """The data set for ``records`` pairs, generated once into ``directory``."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"hh-{records}-{seed}.jsonl"
    if not path.exists():
        generate_hh(path, records, seed)
    return path


def split_hh(text: str, turn: re.Pattern[str] = re.compile(HH_TURN)) -> list[tuple[str, str]]:
    """``[(role, text), ...]`` of an HH-RLHF dialogue (role ``Human`` or ``Assistant``)."""
    parts = turn.split(text)
    return [(parts[i], parts[i + 1]) for i in range(1, len(parts), 2)]


# --- running a contender -------------------------------------------------------------------------
def _tree(pid: int) -> list[int]:
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo.extend(int(c) for c in fh.read().split())
        except OSError:
            continue
    return out


def _rss_kb(pid: int) -> int:
    try:
        with open(f"/proc/{pid}/statm") as fh:
            return int(fh.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024
    except (OSError, IndexError, ValueError):
        return 0


def measure(cmd: list[str], env: dict[str, str] | None = None) -> dict:
    """Run ``cmd``; its last stdout line (JSON) plus wall_s, cpu_s, peak_rss_mb, tree_rss_mb."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            env={**os.environ, **(env or {})})
    peak = [0]
    stop = threading.Event()

    def sample() -> None:
        while not stop.wait(0.02):
            peak[0] = max(peak[0], sum(_rss_kb(p) for p in _tree(proc.pid)))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out: list[str] = []
    err: list[str] = []
    readers = [threading.Thread(target=lambda s=s, b=b: b.extend(s), daemon=True)
               for s, b in ((proc.stdout, out), (proc.stderr, err))]
    for r in readers:
        r.start()
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - start
    stop.set()
    sampler.join()
    for r in readers:
        r.join()
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        sys.stderr.write("".join(err[-40:]))
        raise RuntimeError(f"{' '.join(cmd[:6])}... exited with {proc.returncode}")
    try:
        result = json.loads(out[-1]) if out else {}
    except json.JSONDecodeError:  # a command that prints its own output (harness run)
        result = {}
    result.update(wall_s=wall, cpu_s=usage.ru_utime + usage.ru_stime,
                  peak_rss_mb=usage.ru_maxrss / 1024, tree_rss_mb=peak[0] / 1024)
    return result


def dir_size(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover
        return os.cpu_count() or 1


def row(label: str, per_s: float | None, ratio: str, r: dict, size_ratio: str = "") -> str:
    rate = "-" if per_s is None else f"{per_s:,.0f}"
    return (f"{label:34s} {rate:>12s} {ratio:>12s} {r.get('peak_rss_mb', 0):>9.0f} "
            f"{r.get('tree_rss_mb', 0):>9.0f} {r.get('cpu_s', 0) / max(r['wall_s'], 1e-9):>5.2f} "
            f"{r['wall_s']:>8.1f} {size_ratio:>8s}")


HEADER = (f"{'contender':34s} {'transcr./s':>12s} {'ratio':>12s} {'peak MB':>9s} "
          f"{'tree MB':>9s} {'cores':>5s} {'wall s':>8s} {'dir/in':>8s}")
LEGEND = ("ratio: throughput / the bare loop's (goal in brackets); peak MB: largest single "
          "process (wait4 ru_maxrss); tree MB: peak of the summed RSS of the process and its "
          "workers (sampled /proc every 20 ms); cores: CPU seconds / wall seconds; dir/in: run "
          "directory size / input size. Wall time is the whole process: imports, model "
          "loading, worker start-up and output files included.")
