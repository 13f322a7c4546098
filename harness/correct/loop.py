"""``harness correct``: supervise, continue, review again, up to K rounds; a new run directory.

The original run's journal is streamed in input order, in chunks. Per chunk, every correctable
failing transcript is cut at its first failed assistant message, the supervisor's interruption
is added and the generator continues (all concurrently, each agent within its own
``max_concurrency``); the results are reviewed by the run's own suite through the one engine
(:func:`harness.review`), and those still failing on a message-scoped verdict go round again.

Progress is journaled in ``NEW_RUN_DIR/corrections.jsonl`` (one line per original transcript,
written a chunk at a time), so ``--resume`` goes on after the last finished chunk; generator and
supervisor answers are cached in the run directory's judge cache, so a re-run asks nothing twice.
At the end the kept transcripts (those that passed, and the corrected ones) are written to
``NEW_RUN_DIR/transcripts.jsonl`` and reviewed into ``NEW_RUN_DIR`` as an ordinary run
(``harness.run``), whose ``summary.json`` gains a ``corrections`` block.
"""

from __future__ import annotations

import asyncio
import json
import os
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from harness import api
from harness.correct.agents import build_agent, openai_logprobs, resolve
from harness.correct.cut import (
    Style,
    cut,
    first_failure,
    masked,
    not_correctable,
)
from harness.correct.supervise import rule_of, supervise
from harness.errors import UsageError
from harness.judges.base import JudgeUnavailable
from harness.judges.cache import JudgeCache
from harness.judges.runner import JudgeCallFailed
from harness.models import Transcript, Verdict
from harness.options import RunOptions
from harness.plan import expand_suite
from harness.plugins import Registry, get_registry
from harness.rundir import (
    JOURNAL,
    atomic_write_text,
    check_complete,
    iter_journal,
    suite_fingerprint,
)
from harness.suite import load_suite

PROGRESS = "corrections.jsonl"
"""Per original transcript: its fate (``passed``, ``corrected``, ``still failing``, ...)."""
INPUTS = "transcripts.jsonl"
"""The kept transcripts, the new run's input."""
KEPT = ("passed", "corrected")
STATUSES = ("passed", "corrected", "still failing", "not correctable", "error", "input error")


class CorrectOptions(BaseModel):
    """How ``harness correct`` corrects."""

    model_config = ConfigDict(extra="forbid")

    generator: str | dict[str, Any] | None = None
    """The generator, named (or a mapping) like a judge; else the suite's ``generator:``."""
    supervisor: str | dict[str, Any] | None = None
    """The supervisor, likewise; else the suite's ``supervisor:``; none: the verdict's reason."""
    style: Style = "turn"
    """``turn``: a ``user`` interruption and a new assistant turn; ``inline``: inside the
    assistant's message, right after the failing span."""
    max_rounds: int = Field(default=3, ge=1)
    """Rounds of supervise-continue-review per transcript."""
    max_tokens: int = Field(default=512, ge=1)
    """Longest continuation."""
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    """Generator's sampling temperature (the supervisor is greedy)."""
    top_logprobs: int = Field(default=5, ge=0, le=20)
    """Alternatives per token asked of the generator (0: none)."""
    chunk: int = Field(default=64, ge=1)
    """Transcripts corrected together (memory stays bounded by it)."""
    resume: bool = False
    overwrite: bool = False
    cache_dir: str | None = None
    """Where generator, supervisor and judge answers are cached (default: NEW_RUN_DIR)."""
    workers: int | None = None
    report: bool = True


@dataclass
class Item:
    """One original transcript on its way through the rounds."""

    n: int
    original: Transcript
    status: str = ""
    reason: str = ""
    current: Transcript | None = None
    verdicts: list[Verdict] = field(default_factory=list)
    rounds: int = 0
    interruptions: list[str] = field(default_factory=list)

    def record(self) -> dict[str, Any]:
        out: dict[str, Any] = {"n": self.n, "id": self.original.id, "status": self.status,
                               "source": self.original.source}
        if self.reason:
            out["reason"] = self.reason
        if self.rounds:
            out["rounds"] = self.rounds
        if self.current is not None and self.status != "not correctable":
            out["transcript"] = self.current.model_dump(
                mode="json", exclude_none=True, include={"id", "messages", "metadata"})
        return out


class Corrector:
    """The resources of one ``harness correct``: engine, agents, cache, event loop."""

    def __init__(self, run_dir: Path, out_dir: Path, options: CorrectOptions,
                 registry: Registry) -> None:
        self.run_dir, self.out_dir, self.options = run_dir, out_dir, options
        meta = check_complete(run_dir)
        suite_path = (meta.get("suite") or {}).get("path")
        if not suite_path:
            raise UsageError(f"{run_dir}: run.json names no suite file")
        # as the review ran it: an entry that stands for several criteria, expanded
        self.suite = expand_suite(load_suite(suite_path), registry)[0]
        reviewed = RunOptions.recorded(meta)
        if meta.get("suite_fingerprint") not in (None, suite_fingerprint(
                self.suite, reviewed.verdict_options())):
            raise UsageError(f"{suite_path} changed since {run_dir} was reviewed: corrections "
                             "are reviewed with the run's own suite; review again first")
        cache_dir = Path(options.cache_dir) if options.cache_dir else out_dir
        # the corrections are read from the JSONL this command writes: any format, all of it
        self.engine = api.run_engine(self.suite, out_dir, RunOptions(
            judge=reviewed.judge, all_criteria=reviewed.all_criteria, cache_dir=cache_dir,
            workers=options.workers or 1, plugins_dir=registry.plugins_dir), registry)
        self.cache = JudgeCache(cache_dir.resolve())
        self.secret = self.cache.nonce_key()
        try:
            gen = resolve("generator", options.generator, self.suite.generator)
            if gen is None:
                raise UsageError("no generator: pass --generator NAME or set `generator:` in "
                                 f"{suite_path}")
            sup = resolve("supervisor", options.supervisor, self.suite.supervisor)
            self.generator = build_agent("generator", *gen, registry, self.cache)
            self.supervisor = (build_agent("supervisor", *sup, registry, self.cache)
                               if sup else None)
        except BaseException:
            self.close()
            raise
        self.rubrics = {c.name: source for c in self.engine.criteria
                        if isinstance(source := getattr(c, "rubric_source", None), str)}
        self.descriptions = {s.name: s.description for s in self.suite.criteria}
        self.loop = self.engine.context.loop  # the agents' calls share the engine's loop

    # --- one transcript, one round ------------------------------------------------------------
    async def _continue(self, item: Item) -> Transcript:
        """Supervise the current transcript's first failure and let the generator continue."""
        state = item.current
        assert state is not None
        failure = first_failure(state, item.verdicts)
        assert failure is not None
        rule = rule_of(failure, self.rubrics, self.descriptions)
        text = await supervise(self.supervisor, state, failure, rule, self.secret,
                               max_tokens=200)
        plan = cut(state, failure, text, self.options.style)
        response = await self.generator.complete(
            plan.prompt, max_tokens=self.options.max_tokens,
            temperature=self.options.temperature, top_logprobs=self.options.top_logprobs)
        logprobs = openai_logprobs(response.tokens) if plan.field == "content" else None
        messages = plan.splice(response.text, logprobs)
        item.interruptions.append(text)
        corrected = state.model_copy(update={"messages": messages})
        provenance = {
            "original_id": item.original.id, "original_source": item.original.source,
            "rounds": item.rounds + 1, "style": plan.style,
            "generator": self.generator.name,
            "supervisor": self.supervisor.name if self.supervisor else "verdict explanation",
            "interruptions": list(item.interruptions),
            "masked": sorted(masked(corrected)),
        }
        if plan.split_at is not None:
            provenance["split_at"] = plan.split_at
        corrected.metadata = {**state.metadata, "correction": provenance}
        return corrected

    async def _round(self, items: list[Item]) -> list[Transcript | BaseException]:
        results = await asyncio.gather(*(self._continue(i) for i in items),
                                       return_exceptions=True)
        for r in results:
            if isinstance(r, JudgeUnavailable):
                raise r
            if isinstance(r, BaseException) and not isinstance(r, JudgeCallFailed):
                raise r
        return results

    def correct(self, items: list[Item]) -> None:
        """Run the rounds for the correctable items of a chunk (statuses set in place)."""
        active = items
        for _ in range(self.options.max_rounds):
            if not active:
                return
            results = self.loop.run(self._round(active))
            reviewable: list[tuple[Item, Transcript]] = []
            for item, result in zip(active, results, strict=True):
                if isinstance(result, BaseException):
                    item.status, item.reason = "error", str(result)
                else:
                    reviewable.append((item, result))
            decisions = api.review(self.engine, [t for _, t in reviewable],
                                   batch_size=max(1, len(reviewable)))
            active = []
            for (item, transcript), decision in zip(reviewable, decisions, strict=True):
                item.current, item.verdicts, item.rounds = (transcript, decision.verdicts,
                                                            item.rounds + 1)
                if decision.outcome == "pass":  # the policy leaves masked turns out
                    item.status, item.reason = "corrected", ""
                    continue
                why = not_correctable(transcript, decision.verdicts)
                if why is not None or first_failure(transcript, decision.verdicts) is None:
                    item.status = "still failing"
                    item.reason = why or "fails with its failed turns masked"
                    continue
                item.status = "still failing"
                item.reason = f"after {item.rounds} round(s): " + ", ".join(
                    sorted(set(decision.failed)))
                active.append(item)

    # --- the whole run ------------------------------------------------------------------------
    def items(self, skip: set[int]) -> Iterator[Item]:
        """Every original transcript not yet journaled, triaged (correctable ones unset)."""
        for n, entry in enumerate(iter_journal(self.run_dir)):
            if n in skip:
                continue
            raw = entry.get("transcript")
            if raw is None:
                yield Item(n, Transcript(id=str(entry["decision"].get("transcript_id", n)),
                                         messages=[]), status="input error")
                continue
            transcript = Transcript.model_validate(raw)
            decision = entry["decision"]
            verdicts = [Verdict.model_validate(v) for v in decision.get("verdicts", [])]
            item = Item(n, transcript, current=transcript, verdicts=verdicts)
            if decision["outcome"] == "pass":
                item.status = "passed"
            elif (why := not_correctable(transcript, verdicts)) is not None:
                item.status, item.reason = "not correctable", why
            elif first_failure(transcript, verdicts) is None:
                item.status, item.reason = "not correctable", "no trained assistant turn failed"
            yield item

    def close(self) -> None:
        if getattr(self, "loop", None) is not None:
            for agent in (self.generator, self.supervisor):
                if agent is not None:
                    self.loop.run(agent.runner.aclose())
        self.engine.close()
        self.cache.close()


def _journaled(path: Path, *, errors: bool = False) -> dict[int, int]:
    """``n -> byte offset`` of each original's last line in the progress journal (a torn last
    line, from a kill, is cut off); errored ones only with ``errors`` (else they are tried
    again)."""
    offsets: dict[int, int] = {}
    if not path.exists():
        return offsets
    good = 0
    with path.open("rb+") as fh:
        while True:
            at = fh.tell()
            line = fh.readline()
            if not line:
                break
            try:
                record = json.loads(line)
            except ValueError:
                break
            if not line.endswith(b"\n"):
                break
            good = fh.tell()
            if record.get("status") == "error" and not errors:
                offsets.pop(record["n"], None)
            else:
                offsets[record["n"]] = at
        fh.truncate(good)
    return offsets


def correct_run(run_dir: str | Path, out_dir: str | Path, options: CorrectOptions | None = None,
                *, registry: Registry | None = None,
                on_chunk: Any = None) -> dict[str, Any]:
    """Correct ``run_dir``'s failing transcripts into the run directory ``out_dir``; the new
    run's summary, with its ``corrections`` block."""
    options = options or CorrectOptions()
    run_dir, out_dir = Path(run_dir), Path(out_dir)
    progress = _prepare(run_dir, out_dir, options)
    corrector = Corrector(run_dir, out_dir, options, registry or get_registry())
    stopped, finished = None, False
    try:
        done = _journaled(progress)
        with progress.open("a", encoding="utf-8") as log:
            chunk: list[Item] = []
            for item in corrector.items(set(done)):
                chunk.append(item)
                if len(chunk) >= options.chunk:
                    _finish_chunk(corrector, chunk, log)
                    chunk = []
                    if on_chunk is not None:
                        on_chunk()
            if chunk:
                _finish_chunk(corrector, chunk, log)
        counts, rounds = _write_inputs(progress, out_dir / INPUTS)
        finished = True
    except JudgeUnavailable as exc:
        stopped = f"a model is unavailable: {exc}"
    finally:
        usage = {"generator": corrector.generator.usage.as_dict()}
        if corrector.supervisor is not None:
            usage["supervisor"] = corrector.supervisor.usage.as_dict()
        if not finished:
            corrector.close()
    if stopped:
        return {"state": "stopped", "stop_reason": stopped, "corrections": {"usage": usage}}
    try:
        summary = api.run(corrector.engine, [out_dir / INPUTS], out_dir, overwrite=True,
                          report=options.report)
    finally:
        corrector.close()
    summary["corrections"] = {
        "from": str(run_dir), "style": options.style, "max_rounds": options.max_rounds,
        "generator": corrector.generator.name,
        "supervisor": corrector.supervisor.name if corrector.supervisor else None,
        **{k.replace(" ", "_"): counts.get(k, 0) for k in STATUSES},
        "rounds": {str(k): v for k, v in sorted(rounds.items())}, "usage": usage,
    }
    path = out_dir / "summary.json"
    atomic_write_text(path, json.dumps({**json.loads(path.read_text()),
                                        "corrections": summary["corrections"]}, indent=2))
    return summary


def _prepare(run_dir: Path, out_dir: Path, options: CorrectOptions) -> Path:
    """The corrections' progress file in ``out_dir``, checked for a start, a resume or an
    overwrite."""
    if out_dir.resolve() == run_dir.resolve():
        raise UsageError("-o must be a new run directory, not RUN_DIR itself")
    if out_dir.exists() and not out_dir.is_dir():
        raise UsageError(f"-o {out_dir}: a file is there; a run directory is a folder")
    progress = out_dir / PROGRESS
    started = progress.exists() or (out_dir / JOURNAL).exists()
    if started and not (options.resume or options.overwrite):
        raise UsageError(f"{out_dir} already holds corrections: pass --resume to go on with "
                         "them, --overwrite to start again, or choose another directory")
    if options.overwrite and not options.resume:
        progress.unlink(missing_ok=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    return progress


def _finish_chunk(corrector: Corrector, chunk: list[Item], log: Any) -> None:
    corrector.correct([i for i in chunk if not i.status])
    for item in chunk:
        log.write(json.dumps(item.record(), ensure_ascii=False) + "\n")
    log.flush()
    os.fsync(log.fileno())


def _write_inputs(progress: Path, inputs: Path) -> tuple[Counter[str], Counter[int]]:
    """The kept transcripts, in the original order, as the new run's input; the counts."""
    offsets = _journaled(progress, errors=True)
    counts: Counter[str] = Counter()
    rounds: Counter[int] = Counter()
    tmp = inputs.with_name(inputs.name + ".tmp")
    with progress.open("rb") as src, tmp.open("w", encoding="utf-8") as out:
        for n in sorted(offsets):
            src.seek(offsets[n])
            record = json.loads(src.readline())
            counts[record["status"]] += 1
            if record["status"] == "corrected":
                rounds[record.get("rounds", 0)] += 1
            if record["status"] in KEPT:
                out.write(json.dumps(record["transcript"], ensure_ascii=False) + "\n")
    os.replace(tmp, inputs)
    return counts, rounds
