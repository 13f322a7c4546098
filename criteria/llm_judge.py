"""The ``llm_judge`` criterion kind: a model grades each transcript against a rubric.

Suite keys (besides the common ones)::

    - name: helpful
      kind: llm_judge
      rubric_file: helpfulness        # a file next to the suite, or a built-in rubric by name
      # rubric: "Is {{ last_assistant }} polite? ..."    (inline template instead)
      # evals_spec: fact.yaml          (an OpenAI-evals model-graded spec instead)
      scheme: binary                  # or {kind: choices, choices: {...}}, {kind: scale, max: 5}
      judge: openai/gpt-4o-mini       # else the suite's `judge:`; `--judge` overrides both
      repeats: 1

A judge is ``PREFIX/MODEL`` or a mapping ``{name: PREFIX/MODEL, base_url: ..., api_key_env: ...,
max_concurrency: 16, timeout_s: 60, max_attempts: 5}``; the last three configure the runner, the
rest go to the backend. The rubric is a jinja2 template rendered in a sandbox with
``StrictUndefined``. It sees the suite's variables (top-level and as ``variables``) and the
transcript, whose every text is already fenced as untrusted data (see
:mod:`harness.judges.prompting`):

- ``conversation``: the whole conversation, role-labelled;
- ``context``: the conversation before the last assistant message;
- ``last_assistant`` / ``last_user``: the last assistant / user message;
- ``text``: the texts the ``target`` key selects (default ``last_assistant``);
- ``messages``: a list of ``{role, name, content}``; ``metadata``: the transcript's metadata
  (string values fenced, others as fenced JSON); ``transcript``: all of these in one mapping;
- ``labels``: the scheme's labels.

The judge is told how to answer (a final ``VERDICT: <label>`` line); the verdict is the label of
its last verdict line, its score the soft probability (see :mod:`harness.judges.verdicts`).
Output without a parseable verdict, and calls that fail after retries, are ``error`` verdicts.
Answers are cached in the run directory (or ``--cache-dir``), so a re-run makes no calls.
"""

from __future__ import annotations

import asyncio
import hashlib
import threading
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import jinja2
from jinja2.sandbox import SandboxedEnvironment
from pydantic import Field, field_validator, model_validator

from harness.criterion import Criterion, CriterionConfig, Result, SuiteContext
from harness.hookspecs import hookimpl
from harness.judges.base import JudgeRequest, JudgeResponse
from harness.judges.cache import JudgeCache, canonical_json
from harness.judges.evals_import import EvalsImportError, import_evals_spec
from harness.judges.prompting import build_messages, fenced, make_nonce, render_conversation
from harness.judges.runner import (
    CallRecord,
    JudgeCallFailed,
    JudgeRunner,
    RetryPolicy,
    run_all,
    run_sync,
    shared_runner,
)
from harness.judges.verdicts import (
    ParsedVerdict,
    SoftScore,
    VerdictScheme,
    parse_verdict,
    soft_from_label,
    soft_score_exact,
    soft_score_from_logprobs,
    soft_score_from_tokens,
)
from harness.models import Transcript, Verdict
from harness.suite import CriterionSpec, SuiteError
from harness.targets import Target, text_of

RUBRICS_DIR = Path(__file__).parent / "rubrics"
"""Built-in rubric templates, usable by name in ``rubric_file``."""
RUNNER_KEYS = {"max_concurrency", "timeout_s", "max_attempts"}
"""Keys of a judge mapping that configure the runner rather than the backend."""
RESERVED = {
    "conversation", "context", "last_assistant", "last_user", "text", "messages", "metadata",
    "transcript", "labels", "variables",
}  # fmt: skip
MAX_EXPLANATION = 4000
CHOICE_PREFIX = "VERDICT:"
"""What the judge is taken to have written before its label in ``mode: choice``."""


class LLMJudgeConfig(CriterionConfig):
    """Suite keys of ``llm_judge``."""

    rubric: str | None = None
    """Inline jinja2 rubric template."""
    rubric_file: str | None = None
    """Rubric template file (relative to the suite), or a built-in rubric's name."""
    evals_spec: str | None = None
    """An OpenAI-evals model-graded spec YAML to import as the rubric and scheme."""
    evals_name: str | None = None
    """Which spec of a file holding several."""
    pass_labels: list[str] | None = None
    """For ``evals_spec`` without ``choice_scores``: the choices that pass."""
    eval_type: str | None = None
    """For ``evals_spec``: cot_classify, classify_cot or classify (overrides the spec's)."""
    scheme: str | dict[str, Any] = "binary"
    """binary, choices or scale (a name, or a mapping with ``kind`` and its keys)."""
    judge: str | dict[str, Any] | None = None
    """``PREFIX/MODEL`` or a mapping with ``name`` and options; else the suite's ``judge``."""
    target: Target = "last_assistant"
    """The texts given to the rubric as ``text``."""
    chain_of_thought: bool = True
    """Ask the judge to reason before its verdict line."""
    mode: Literal["generate", "choice"] = "generate"
    """``generate``: the judge writes its answer and verdict line. ``choice``: no generation;
    each label is scored right after ``VERDICT:`` and the likeliest is the verdict (needs a
    backend that scores continuations, like ``local/...``; never unparseable)."""
    repeats: int = Field(default=1, ge=1, le=20)
    """Independent judgements per transcript (majority outcome, mean score)."""
    temperature: float = Field(default=0.0, ge=0.0, le=2.0)
    """Sampling temperature (raise it with ``repeats`` for independent samples)."""
    max_tokens: int = Field(default=512, ge=1)
    """Upper bound on the judge's answer length."""
    top_logprobs: int = Field(default=5, ge=0, le=20)
    """Alternatives per token asked of backends that return logprobs."""
    soft: bool = True
    """Compute soft scores from logprobs (may cost one extra scoring pass on local models)."""
    cache: bool = True
    """Use the judge cache of the run (or ``--cache-dir``)."""

    @model_validator(mode="after")
    def _one_rubric(self) -> LLMJudgeConfig:
        given = [k for k in ("rubric", "rubric_file", "evals_spec") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of rubric, rubric_file, evals_spec")
        if not self.evals_spec and (self.pass_labels or self.eval_type or self.evals_name):
            raise ValueError("pass_labels, eval_type and evals_name only apply to evals_spec")
        if self.mode == "choice" and self.chain_of_thought:
            self.chain_of_thought = False  # nothing is generated, so there is no reasoning
        return self

    @field_validator("judge")
    @classmethod
    def _judge_shape(cls, value: Any) -> Any:
        if value is not None:
            judge_name(value)
        return value


def judge_name(value: str | dict[str, Any]) -> str:
    """The ``PREFIX/MODEL`` of a judge value, checked."""
    name = value.get("name") if isinstance(value, dict) else value
    if not isinstance(name, str) or "/" not in name.strip("/"):
        raise ValueError(f"a judge is named PREFIX/MODEL (e.g. openai/gpt-4o-mini), got {name!r}")
    return name


def resolve_judge(
    criterion_judge: str | dict[str, Any] | None, context: SuiteContext
) -> tuple[str, dict[str, Any]]:
    """The judge to use and its options: ``--judge`` > the criterion's > the suite's."""
    candidates = [v for v in (criterion_judge, context.judge) if v is not None]
    if context.judge_override:
        name = judge_name(context.judge_override)
        for value in candidates:  # keep options given for that same judge in the suite
            if isinstance(value, dict) and value.get("name") == name:
                return name, {k: v for k, v in value.items() if k != "name"}
        return name, {}
    if not candidates:
        raise ValueError("no judge: set `judge:` on the criterion or the suite, or use --judge")
    value = candidates[0]
    name = judge_name(value)
    options = {k: v for k, v in value.items() if k != "name"} if isinstance(value, dict) else {}
    return name, options


_CACHES: dict[Path, JudgeCache] = {}
_CACHES_LOCK = threading.Lock()


def judge_cache(directory: Path) -> JudgeCache:
    """The process-wide cache object of a directory."""
    key = directory.resolve()
    with _CACHES_LOCK:
        if key not in _CACHES:
            _CACHES[key] = JudgeCache(key)
        return _CACHES[key]


def _fence_value(value: Any, nonce: str) -> str:
    text = value if isinstance(value, str) else canonical_json(value)
    return fenced(text, nonce)


class LLMJudge(Criterion):
    """A model grades each transcript against a rubric; fail-closed on unparseable answers."""

    kind = "llm_judge"
    Config = LLMJudgeConfig
    cost = 3
    expensive = True

    def __init__(self, spec: CriterionSpec, config: LLMJudgeConfig, context: SuiteContext):
        super().__init__(spec, config, context)
        rubric, scheme_value, cot = self._load_rubric(config, context.suite_dir)
        self.scheme = VerdictScheme.parse(scheme_value)
        self.pass_threshold = self.scheme.pass_threshold
        self.chain_of_thought = cot
        self.rubric_source = rubric
        self.rubric_sha256 = hashlib.sha256(rubric.encode()).hexdigest()
        env = SandboxedEnvironment(
            undefined=jinja2.StrictUndefined, autoescape=False, keep_trailing_newline=True
        )
        try:
            self.template = env.from_string(rubric)
        except jinja2.TemplateSyntaxError as exc:
            raise SuiteError(
                f"{spec.origin}: criterion '{spec.name}' (llm_judge): rubric template error "
                f"line {exc.lineno}: {exc.message}"
            ) from None
        self.judge_name, options = resolve_judge(config.judge, context)
        self.runner = self._runner(self.judge_name, options)
        self.cache = judge_cache(context.cache_dir) if config.cache and context.cache_dir else None
        self.secret = self.cache.nonce_key() if self.cache is not None else None

    # --- set-up -------------------------------------------------------------------------------
    @staticmethod
    def _load_rubric(
        config: LLMJudgeConfig, suite_dir: Path
    ) -> tuple[str, str | dict[str, Any], bool]:
        if config.rubric:
            return config.rubric, config.scheme, config.chain_of_thought
        if config.evals_spec:
            path = Path(config.evals_spec)
            path = path if path.is_absolute() else suite_dir / path
            try:
                imported = import_evals_spec(
                    path,
                    name=config.evals_name,
                    eval_type=config.eval_type,
                    pass_labels=config.pass_labels,
                )
            except EvalsImportError as exc:
                raise ValueError(str(exc)) from None
            return imported["rubric"], imported["scheme"], imported["chain_of_thought"]
        assert config.rubric_file is not None
        path = Path(config.rubric_file)
        candidates = [path if path.is_absolute() else suite_dir / path]
        if not path.is_absolute() and len(path.parts) == 1:
            candidates += [RUBRICS_DIR / path.name, RUBRICS_DIR / f"{path.name}.j2"]
        for candidate in candidates:
            if candidate.is_file():
                return candidate.read_text(encoding="utf-8"), config.scheme, config.chain_of_thought
        builtin = sorted(p.stem for p in RUBRICS_DIR.glob("*.j2"))
        raise ValueError(
            f"rubric_file {config.rubric_file!r} not found next to the suite "
            f"(built-in rubrics: {', '.join(builtin)})"
        )

    def _runner(self, name: str, options: dict[str, Any]) -> JudgeRunner:
        prefix, model = name.split("/", 1)
        factory = self.context.registry.judges.get(prefix)
        if factory is None:
            known = ", ".join(sorted(self.context.registry.judges)) or "none"
            raise ValueError(f"unknown judge backend {prefix!r} in {name!r} (known: {known})")
        runner_opts = {k: options[k] for k in RUNNER_KEYS if k in options}
        backend_opts = {k: v for k, v in options.items() if k not in RUNNER_KEYS}
        policy = RetryPolicy(
            **{k: runner_opts[k] for k in ("timeout_s", "max_attempts") if k in runner_opts}
        )

        def make() -> JudgeRunner:
            backend = factory(model, backend_opts)
            return JudgeRunner(
                backend, max_concurrency=runner_opts.get("max_concurrency"), policy=policy
            )

        key = f"{id(factory)}|{name}|{canonical_json(options)}"
        return shared_runner(key, make)

    def describe(self) -> dict[str, Any]:
        return {
            "judge": self.judge_name,
            "scheme": self.scheme.kind,
            "labels": self.scheme.labels(),
            "rubric_sha256": self.rubric_sha256[:12],
        }

    # --- rendering ----------------------------------------------------------------------------
    def render(self, transcript: Transcript, repeat: int) -> tuple[JudgeRequest, str]:
        """The judge request for one transcript and repeat, and its nonce."""
        content = transcript.model_dump(mode="json", include={"messages", "metadata"})
        nonce = make_nonce(self.secret, content, self.name, repeat)
        msgs = [m.model_dump(mode="json", exclude_none=True) for m in transcript.messages]
        last_index = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=None)
        before = msgs if last_index is None else msgs[:last_index]
        last_assistant = "" if last_index is None else msgs[last_index]["content"]
        last_user = next((m["content"] for m in reversed(msgs) if m["role"] == "user"), "")
        data = {
            "conversation": fenced(render_conversation(msgs), nonce),
            "context": fenced(render_conversation(before), nonce),
            "last_assistant": fenced(last_assistant, nonce),
            "last_user": fenced(last_user, nonce),
            "text": fenced(text_of(transcript, self.config.target), nonce),
            "messages": [
                {"role": m["role"], "name": m.get("name"), "content": fenced(m["content"], nonce)}
                for m in msgs
            ],
            "metadata": {k: _fence_value(v, nonce) for k, v in transcript.metadata.items()},
        }
        variables = self.context.variables
        ctx: dict[str, Any] = {k: v for k, v in variables.items() if k not in RESERVED}
        ctx.update(data, transcript=dict(data), labels=self.scheme.labels(), variables=variables)
        rubric_text = self.template.render(ctx)
        messages = build_messages(
            rubric_text, nonce, self.scheme.answer_format(self.chain_of_thought)
        )
        request = JudgeRequest(
            messages=messages,
            max_tokens=self.config.max_tokens,
            temperature=self.config.temperature,
            seed=repeat,
            top_logprobs=self.config.top_logprobs,
        )
        return request, nonce

    # --- judging ------------------------------------------------------------------------------
    async def _choose(self, request: JudgeRequest, repeat: int) -> dict[str, Any]:
        """Forced choice: every label scored right after ``VERDICT:``; the likeliest wins."""
        labels = self.scheme.labels()
        record = CallRecord()
        logprobs = await self.runner.continuation_logprobs(
            request, CHOICE_PREFIX, [f" {label}" for label in labels], repeat=repeat,
            cache=self.cache, record=record,
        )
        if logprobs is None:
            raise ValueError(f"judge {self.judge_name} cannot score continuations; "
                             "use `mode: generate` with it")
        soft = soft_score_from_logprobs(dict(zip(labels, logprobs, strict=True)), self.scheme)
        if soft is None:
            raise ValueError("the judge gave no finite log-probability for any label")
        label = max(soft.probs, key=soft.probs.__getitem__)
        text = f"{CHOICE_PREFIX} {label}"
        response = JudgeResponse(text=text, model=self.judge_name)
        return {"response": response, "record": record,
                "parsed": parse_verdict(text, self.scheme), "soft": soft}

    async def _one(self, request: JudgeRequest, repeat: int) -> dict[str, Any]:
        if self.config.mode == "choice":
            return await self._choose(request, repeat)
        response, record = await self.runner.complete(request, repeat=repeat, cache=self.cache)
        parsed = parse_verdict(response.text, self.scheme)
        soft: SoftScore | None = None
        if parsed.label is not None:
            soft = await self._soft(request, repeat, response.text, parsed, response.tokens)
        return {"response": response, "record": record, "parsed": parsed, "soft": soft}

    async def _soft(
        self,
        request: JudgeRequest,
        repeat: int,
        text: str,
        parsed: ParsedVerdict,
        tokens: Any,
    ) -> SoftScore:
        assert parsed.label is not None
        if self.config.soft:

            async def score(prefix: str, conts: list[str]) -> list[float] | None:
                try:
                    return await self.runner.continuation_logprobs(
                        request, prefix, conts, repeat=repeat, cache=self.cache
                    )
                except JudgeCallFailed:
                    return None

            soft = await soft_score_exact(text, parsed, self.scheme, score)
            if soft is None:
                soft = soft_score_from_tokens(text, parsed, self.scheme, tokens)
            if soft is not None:
                return soft
        return soft_from_label(parsed.label, self.scheme)

    async def judge(self, transcript: Transcript) -> Verdict:
        """Judge one transcript (all repeats concurrently)."""
        started = time.monotonic()
        requests = [self.render(transcript, r)[0] for r in range(self.config.repeats)]
        outcomes = await asyncio.gather(
            *(self._one(req, r) for r, req in enumerate(requests)), return_exceptions=True
        )
        for outcome in outcomes:
            if isinstance(outcome, BaseException) and not isinstance(outcome, JudgeCallFailed):
                raise outcome
        return self._combine(outcomes, time.monotonic() - started)

    def _combine(self, outcomes: list[Any], elapsed: float) -> Verdict:
        runs = [o for o in outcomes if not isinstance(o, BaseException)]
        failures = [o for o in outcomes if isinstance(o, BaseException)]
        responses = [r["response"] for r in runs]
        records = [r["record"] for r in runs] + [f.record for f in failures]
        costs = [rec.cost_usd for rec in records if rec.cost_usd is not None]
        details: dict[str, Any] = {
            "judge": self.judge_name,
            "model": responses[0].model if responses else None,
            "scheme": self.scheme.kind,
            "rubric_sha256": self.rubric_sha256[:12],
            "cached": bool(records) and all(rec.cached for rec in records),
            "attempts": sum(rec.attempts for rec in records),
        }
        common: dict[str, Any] = {
            # the calls' own time, not the time spent queueing behind the concurrency limit
            "latency_s": sum(rec.latency_s for rec in records) if records else elapsed,
            "cost_usd": sum(costs) if costs else None,
            "tokens_in": sum(r.tokens_in for r in responses) if responses else None,
            "tokens_out": sum(r.tokens_out for r in responses) if responses else None,
        }
        if len(outcomes) == 1:
            raw = responses[0].text if responses else None
        else:
            raw = "\n\n".join(
                f"--- repeat {i} ---\n"
                + (o["response"].text if not isinstance(o, BaseException) else f"(failed: {o})")
                for i, o in enumerate(outcomes)
            )
        parsed_runs = [r for r in runs if r["parsed"].label is not None]
        if len(outcomes) > 1:
            details["repeats"] = [
                {"error": str(o)}
                if isinstance(o, BaseException)
                else {
                    "label": o["parsed"].label,
                    "score": o["soft"].score if o["soft"] else None,
                    "error": o["parsed"].error,
                }
                for o in outcomes
            ]
        if len(parsed_runs) * 2 <= len(outcomes):  # no majority of usable answers: error
            if failures:
                reason = str(failures[0])
                details["errors"] = failures[0].record.errors
            else:
                reason = next(r["parsed"].error for r in runs if r["parsed"].label is None)
                reason = f"unparseable judge output: {reason}"
            return Verdict(outcome="error", explanation=reason, raw=raw, details=details, **common)
        softs: list[SoftScore] = [r["soft"] for r in parsed_runs]
        labels = [r["parsed"].label for r in parsed_runs]
        passes = sum(self.scheme.passes(label) for label in labels)
        passed = passes * 2 > len(labels)
        score = sum(s.score for s in softs) / len(softs)
        probs = {
            label: sum(s.probs[label] for s in softs) / len(softs) for label in self.scheme.labels()
        }
        details.update(
            label=labels[0] if len(labels) == 1 else labels,
            probs=probs,
            p_pass=sum(s.p_pass for s in softs) / len(softs),
            soft_source=softs[0].source,
        )
        explanation = parsed_runs[0]["parsed"].explanation or f"VERDICT: {labels[0]}"
        if len(explanation) > MAX_EXPLANATION:
            explanation = explanation[: MAX_EXPLANATION - 1] + "…"
        return Verdict(
            outcome="pass" if passed else "fail",
            score=min(1.0, max(0.0, score)),
            explanation=explanation,
            raw=raw,
            details=details,
            **common,
        )

    def evaluate(self, transcript: Transcript) -> Result:
        return run_sync(self.judge(transcript))

    def evaluate_batch(self, transcripts: Sequence[Transcript]) -> list[Result | BaseException]:
        """All transcripts' judge calls at once, limited by the judge's concurrency."""
        return run_all(self.judge(t) for t in transcripts)


@hookimpl
def register_criterion_kinds(register: Callable[[type[Criterion]], None]) -> None:
    register(LLMJudge)
