"""The report's data: one streamed pass over the journal, aggregates over everything,
transcripts sampled per criterion and outcome."""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Iterable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from harness.calibrate.compare import read_calibration
from harness.inputs.sources import input_names
from harness.judges.records import judge_label
from harness.outputs import add_usage, with_hit_rate
from harness.policy import INPUT_CRITERION
from harness.report.stats import CoFailures, Quantiles, Reservoirs, score_bin, wilson
from harness.rundir import JOURNAL, iter_decisions, read_meta, transcripts_at
from harness.tally import CriterionTally, reliability

DEFAULT_SAMPLE = 50
"""Transcripts kept per (criterion, outcome) and per decision outcome."""
MAX_CHARS = 20_000
"""Longest text (message, explanation, raw output) embedded in the report; longer is cut."""
SCORE_BINS = 10
DECISION_KEY = "*"
"""Sample key of the decision outcome (criterion keys are criterion names)."""


def utf16_len(text: str) -> int:
    """Length in UTF-16 code units, the unit of JavaScript string offsets."""
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def _clip(text: str | None, limit: int) -> tuple[str, int]:
    """The text cut to ``limit`` characters, and how many were cut."""
    text = text or ""
    return (text, 0) if len(text) <= limit else (text[:limit], len(text) - limit)


def _js_offset(text: str, offset: int) -> int:
    return utf16_len(text[:max(0, min(offset, len(text)))])


def calls_text(message: dict[str, Any]) -> str:
    """A message's tool calls (and legacy function call) as people read them, one a line:
    ``name({"arg": ...})  [call id]``; searched by the report's filter too."""
    lines = []
    calls = list(message.get("tool_calls") or ())
    if message.get("function_call"):
        calls.append({"function": message["function_call"]})
    for call in calls:
        fn = call.get("function") if isinstance(call, dict) else None
        if not isinstance(fn, dict):
            lines.append(json.dumps(call, ensure_ascii=False))
            continue
        args = fn.get("arguments")
        args = args if isinstance(args, str) else json.dumps(args, ensure_ascii=False)
        line = f"{fn.get('name', '?')}({args if args is not None else ''})"
        if isinstance(call.get("id"), str):
            line += f"  [{call['id']}]"
        lines.append(line)
    return "\n".join(lines)


def compact_entry(seq: int, entry: dict[str, Any], limit: int = MAX_CHARS) -> dict[str, Any]:
    """A journal entry as the report embeds it: texts capped, span offsets in UTF-16 units."""
    d, t = entry["decision"], entry["transcript"]
    messages, texts = [], []
    for m in (t or {}).get("messages", []):
        content, cut = _clip(m.get("content"), limit)
        reasoning, rcut = _clip(m.get("reasoning"), limit)
        texts.append({"content": content, "reasoning": reasoning})
        msg: dict[str, Any] = {"role": m.get("role", "?"), "content": content}
        if cut:
            msg["cut"] = cut
        if reasoning:
            msg["reasoning"] = reasoning
            if rcut:
                msg["rcut"] = rcut
        if m.get("name"):
            msg["name"] = m["name"]
        calls = calls_text(m)
        if calls:
            msg["tool_calls"] = _clip(calls, limit)[0]
        messages.append(msg)
    verdicts = []
    for v in d["verdicts"]:
        evidence = []
        for s in v.get("evidence") or []:
            field = s.get("field", "content")
            if not 0 <= s["message"] < len(texts):
                continue
            text = texts[s["message"]][field] or ""
            start, end = _js_offset(text, s["start"]), _js_offset(text, s["end"])
            if end > start:
                evidence.append([s["message"], start, end, field])
        verdicts.append({
            "criterion": v["criterion"], "kind": v["kind"], "outcome": v["outcome"],
            "score": v["score"], "message_index": v["message_index"],
            "explanation": _clip(v["explanation"], limit)[0],
            "raw": _clip(v["raw"], limit)[0] if v["raw"] is not None else None,
            "latency_s": v["latency_s"], "cost_usd": v["cost_usd"],
            "tokens_in": v["tokens_in"], "tokens_out": v["tokens_out"], "evidence": evidence,
        })
    return {
        "n": seq, "id": d["transcript_id"], "source": d["source"], "outcome": d["outcome"],
        "score": d["score"], "threshold_score": d.get("threshold_score"),
        "failed": d["failed"], "errored": d["errored"],
        "messages": messages, "verdicts": verdicts,
        "metadata": _clip(json.dumps((t or {}).get("metadata") or {}, ensure_ascii=False,
                                     indent=1), limit)[0],
    }


class _CriterionStats:
    """Running aggregates of one criterion."""

    def __init__(self) -> None:
        self.tally = CriterionTally()
        self.scores = [0] * SCORE_BINS
        self.latency = Quantiles()
        self.usage: dict[str, Any] = {"tokens_in": 0, "tokens_out": 0, "cost_usd": None}
        self.judges: dict[str, None] = {}
        """The judges that ran (from the verdicts' details), in order of first appearance."""

    def add(self, v: dict[str, Any]) -> None:
        self.tally.add(v["outcome"], v["score"], v.get("details"))
        if v["outcome"] == "skipped":
            return
        ran = judge_label(v.get("details") or {})
        if ran is not None and ran not in self.judges:
            self.judges[ran] = None
        if v["score"] is not None:
            self.scores[score_bin(v["score"], SCORE_BINS)] += 1
        if not (v.get("details") or {}).get("cached"):  # a cache hit's latency is no call's
            self.latency.add(v["latency_s"] or 0.0)
        add_usage(self.usage, v)

    def row(self, spec: dict[str, Any], suite_judge: Any) -> dict[str, Any]:
        c, decided = self.tally.counts, self.tally.decided
        # The judge that ran, as its verdicts recorded it; the suite's config only when no
        # verdict names one (e.g. every transcript skipped).
        judge: Any = ", ".join(self.judges) or None
        if judge is None:
            judge = spec.get("config", {}).get("judge") or (
                suite_judge if spec["kind"] == "llm_judge" else None)
            if isinstance(judge, dict):
                judge = judge.get("name") or judge.get("model") or json.dumps(judge, sort_keys=True)
        return {
            "name": spec["name"], "kind": spec["kind"], "gate": spec.get("gate", True),
            "weight": spec.get("weight", 1.0), "version": spec.get("version", ""),
            "scope": spec.get("scope", "transcript"), "description": spec.get("description"),
            "judge": judge, "config": spec.get("config", {}), **c, "decided": decided,
            "pass_rate": self.tally.pass_rate,
            "ci": wilson(c["pass"], decided),
            "mean_score": self.tally.mean_score,
            "reliability": reliability(self.tally),
            "score_hist": self.scores,
            "latency_p50": self.latency.quantile(50), "latency_p95": self.latency.quantile(95),
            "latency_exact": self.latency.exact,
            **self.usage,
        }


def _usage(stats: Iterable[_CriterionStats]) -> dict[str, Any]:
    """Tokens and cost over every criterion (cost ``None`` when no verdict has one)."""
    total: dict[str, Any] = {"tokens_in": 0, "tokens_out": 0, "cost_usd": None}
    for s in stats:
        add_usage(total, s.usage)
    return total


def collect(run_dir: str | Path, sample: int = DEFAULT_SAMPLE,
            max_chars: int = MAX_CHARS) -> dict[str, Any]:
    """Everything the report shows, from one pass over the run directory's journal."""
    run_dir = Path(run_dir)
    if not (run_dir / JOURNAL).is_file():
        raise FileNotFoundError(f"{run_dir} is not a run directory (no {JOURNAL})")
    meta = read_meta(run_dir)
    suite = meta.get("suite", {})
    specs = suite.get("criteria", [])
    names = [c["name"] for c in specs]
    stats: dict[str, _CriterionStats] = defaultdict(_CriterionStats)
    totals = {"read": 0, "passed": 0, "failed": 0, "errored": 0, "input_errors": 0}
    cofail = CoFailures()
    reservoirs: Reservoirs[tuple[str, str]] = Reservoirs(sample)
    """Per (criterion or decision, outcome), a sample of ``(n, (seq, sub), decision)``."""
    for n, (key, d) in enumerate(iter_decisions(run_dir)):
        totals["read"] += 1
        totals[{"pass": "passed", "fail": "failed", "error": "errored"}[d["outcome"]]] += 1
        if d["errored"] == [INPUT_CRITERION]:
            totals["input_errors"] += 1
        outcomes: dict[str, set[str]] = defaultdict(set)
        for v in d["verdicts"]:
            stats[v["criterion"]].add(v)
            outcomes[v["criterion"]].add(v["outcome"])
        cofail.add(name for name, outs in outcomes.items() if "fail" in outs and name in names)
        item = (n, key, d)
        reservoirs.offer((DECISION_KEY, d["outcome"]), item)
        for name, outs in outcomes.items():
            for outcome in outs:
                reservoirs.offer((name, outcome), item)
    # only the transcripts shown are read again from the inputs
    shown = {n: (key, d) for items in reservoirs.samples.values() for n, key, d in items}
    texts = transcripts_at(run_dir, {key for key, _ in shown.values()})
    compacted = {n: compact_entry(n, {"decision": d, "transcript": texts.get(key)}, max_chars)
                 for n, (key, d) in shown.items()}
    summary_path = run_dir / "summary.json"
    summary = json.loads(summary_path.read_text()) if summary_path.is_file() else {}
    rows = [stats[c["name"]].row(c, suite.get("judge")) for c in specs]
    return {
        "title": f"{suite.get('name', 'run')} v{suite.get('version', '?')}",
        "suite": {k: suite.get(k) for k in ("name", "version", "path", "threshold", "judge")},
        "run": {"dir": str(run_dir), "inputs": input_names(meta.get("inputs", [])),
                "started": meta.get("started"), "resumed": meta.get("resumed", []),
                "timings": summary.get("timings", {})},
        "generated": datetime.now(UTC).isoformat(timespec="seconds"),
        "totals": {**totals,
                   "pass_rate": totals["passed"] / totals["read"] if totals["read"] else None,
                   "ci": wilson(totals["passed"], totals["read"]),
                   **with_hit_rate(_usage(stats.values()))},
        "criteria": rows,
        "cofail": {"names": names, "matrix": cofail.matrix(names)},
        "sample": {
            "size": sample, "max_chars": max_chars, "shown": len(compacted),
            "groups": {f"{k[0]}|{k[1]}": {"seen": reservoirs.seen[k], "kept": len(v)}
                       for k, v in sorted(reservoirs.samples.items())},
        },
        "transcripts": [compacted[k] for k in sorted(compacted)],
        "calibration": read_calibration(run_dir),
    }
