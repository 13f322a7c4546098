"""The ``llm_judge`` criterion kind: a model grades each transcript against a rubric.

Suite keys (besides the common ones)::

    - name: helpful
      kind: llm_judge
      rubric_file: helpfulness        # a file next to the suite, or a built-in rubric by name
      # rubric: "Is {{ last_assistant }} polite? ..."    (inline template instead)
      # evals_spec: fact.yaml          (an OpenAI-evals model-graded spec instead)
      scheme: binary                  # or {kind: choices, choices: {...}}, {kind: scale, max: 5}
      judge: openai/gpt-4o-mini       # else the suite's `judge:`; `--judge` overrides both
      repeats: 1                      # K judgements; details.stability: share agreeing
      # judges: [openai/gpt-4o-mini, openai/gpt-4.1]  a panel sharing this rubric, with
      # aggregate: majority and on_disagreement: fail (see harness_criteria.panel)

A judge is ``PREFIX/MODEL`` or a mapping ``{name: PREFIX/MODEL, base_url: ..., api_key_env: ...,
max_concurrency: 16, timeout_s: 60, max_attempts: 5}``; the keys in :data:`RUNNER_KEYS` configure
the runner (concurrency, timeouts, retries, circuit breaker), the rest go to the backend. The
rubric is a jinja2 template rendered in a sandbox with ``StrictUndefined``; it is rendered once
against a sample transcript when the criterion is built, so a misspelt variable is a suite error,
not a run of error verdicts. It sees the suite's variables (top-level and as ``variables``) and
the transcript, whose every value is already fenced as untrusted data (see
:mod:`harness.judges.prompting`):

- ``conversation``: the whole conversation, role-labelled;
- ``context``: the conversation before the last assistant message;
- ``last_assistant`` / ``last_user``: the last assistant / user message;
- ``text``: the texts the ``target`` key selects (default ``last_assistant``);
- ``messages``: a list of ``{role, name, content}`` (``name`` reduced to a safe label);
  ``metadata``: the transcript's metadata (keys as safe labels, every string fenced, nested
  mappings and lists too; printed whole, one fenced JSON block); ``transcript``: all of these in
  one mapping;
- ``labels``: the scheme's labels.

The judge is told how to answer (a final ``VERDICT: <label>`` line); the verdict is the label of
its last verdict line, its score the soft probability (see :mod:`harness.judges.verdicts`).
Output without a parseable verdict, and calls that fail after retries, are ``error`` verdicts.
Usable answers are cached in the run directory (or ``--cache-dir``), so a re-run makes no calls;
failed calls and unparseable answers are not, so a re-run asks again. When the judge's endpoint
is down (its runner's circuit breaker is open) or the judge is misconfigured (a 401, 403 or 404),
:class:`~harness.judges.base.JudgeUnavailable` propagates out of
:meth:`LLMJudge.evaluate_async`: the engine stops the run (resumable) rather than record a run of
errors.

The engine awaits :meth:`LLMJudge.evaluate_async` on its own event loop for many transcripts at
once; the runner and the cache are run-wide objects from ``context.shared`` (closed by the
engine). :meth:`LLMJudge.evaluate` and :meth:`LLMJudge.evaluate_batch` serve sync callers, each
on a fresh event loop.
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

import jinja2
import jinja2.meta
from jinja2.sandbox import SandboxedEnvironment
from pydantic import Field, field_validator, model_validator

from harness.canonical import canonical_json
from harness.criterion import Criterion, CriterionConfig, Result, SuiteContext
from harness.hookspecs import hookimpl
from harness.judges.base import JudgeRequest, JudgeResponse
from harness.judges.batch import BATCH_KEYS, BatchOptions
from harness.judges.budget import cost_budget
from harness.judges.cache import NONCE_KEY_FILE, JudgeCache, load_or_create_secret
from harness.judges.evals_import import EvalsImportError, import_evals_spec
from harness.judges.format_warning import warn_if_format_unfollowed
from harness.judges.override import apply_override
from harness.judges.prompting import (
    MATERIAL_KEY,
    RUBRIC,
    Fenced,
    FencedDict,
    FencedList,
    Material,
    build_messages,
    fenced,
    label,
    make_nonce,
    quote_later,
    render_conversation,
)
from harness.judges.ratelimit import RATE_KEYS, RateLimits
from harness.judges.records import (
    RUBRIC_HASH_LEN,
    CallRecord,
    JudgeDetails,
    JudgeOutcome,
    RepeatDetails,
)
from harness.judges.runner import JudgeCallFailed, JudgeRunner, RetryPolicy
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
from harness.models import Message, Transcript, Verdict
from harness.suite import CriterionSpec, SuiteError
from harness.targets import Target, text_of
from harness_criteria.panel import Panel, combine, judge_members
from harness_criteria.rubric_set import RubricSet, expand_rubrics, rubric_key

RUBRICS_DIR = Path(__file__).parent / "rubrics"
"""Built-in rubric templates, usable by name in ``rubric_file``."""
RETRY_KEYS = set(RetryPolicy.model_fields)
"""Keys of a judge mapping that configure the runner's :class:`RetryPolicy`."""
RUNNER_KEYS = {"max_concurrency"} | RETRY_KEYS | BATCH_KEYS | RATE_KEYS
"""Keys of a judge mapping that configure the runner rather than the backend."""
RESERVED = {
    "conversation", "context", "last_assistant", "last_user", "text", "messages", "metadata",
    "transcript", "labels", "variables",
}  # fmt: skip
DATA_KEYS = (
    "conversation", "context", "last_assistant", "last_user", "text", "messages", "metadata",
)
"""The views of the transcript a rubric may use (and ``transcript``, all of them at once)."""
MAX_EXPLANATION = 4000
CHOICE_PREFIX = "VERDICT:"
"""What the judge is taken to have written before its label in ``mode: choice``."""


class LLMJudgeConfig(CriterionConfig):
    """Suite keys of ``llm_judge``."""

    rubric: str | None = None
    """Inline jinja2 rubric template."""
    rubrics: dict[str, str | dict[str, str]] | None = None
    """Several rubrics, asked in one call per transcript: name -> inline template, or
    ``{rubric_file: FILE}``. The entry stands for one criterion per rubric, ``NAME.RUBRIC``
    (see :mod:`harness_criteria.rubric_set`)."""
    rubric_set: str | None = None
    """Set by ``rubrics:`` on each criterion it makes: the entry's name. The criteria of one
    set with the same settings are asked in one call."""
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
    judges: list[str | dict[str, Any]] | None = None
    """A panel: two or more judges (instead of ``judge``) grading with this rubric."""
    aggregate: Literal["majority", "unanimous", "mean"] = "majority"
    """With ``judges``: how their verdicts combine (see :mod:`harness_criteria.panel`)."""
    on_disagreement: Literal["abstain", "fail", "error"] = "fail"
    """With ``judges``: what a disagreement gives."""

    @model_validator(mode="after")
    def _one_rubric(self) -> LLMJudgeConfig:
        if self.rubrics is not None:
            raise ValueError("`rubrics` makes one criterion per rubric of a suite entry; a "
                             "panel member or cascade tier takes one `rubric`")
        given = [k for k in ("rubric", "rubric_file", "evals_spec") if getattr(self, k)]
        if len(given) != 1:
            raise ValueError("give exactly one of rubric, rubric_file, evals_spec")
        if not self.evals_spec and (self.pass_labels or self.eval_type or self.evals_name):
            raise ValueError("pass_labels, eval_type and evals_name only apply to evals_spec")
        if self.judges is not None:
            if self.rubric_set is not None:
                raise ValueError("a criterion of a rubric_set takes one judge, not a panel")
            if self.judge is not None or len(self.judges) < 2:
                raise ValueError("give `judges` (two or more) or `judge`, not both")
            for value in self.judges:
                judge_name(value)
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
    """The judge to use and its options: ``--judge`` > the criterion's > the suite's. A judge
    named like one it replaces takes that one's settings (endpoint, prices, limits), the rule
    ``--judge`` follows: a panel member or ``judges:`` entry naming the suite's judge is that
    judge."""
    candidates = [v for v in (criterion_judge, context.judge) if v is not None]
    if context.judge_override:  # keeps the replaced judge's endpoint (harness.judges.override)
        candidates = [apply_override(context.judge_override, candidates)]
    elif len(candidates) == 2 and judge_name(candidates[0]) == judge_name(candidates[1]):
        candidates = [apply_override(candidates[0], candidates[1:])]
    if not candidates:
        raise ValueError("no judge: set `judge:` on the criterion or the suite, or use --judge")
    value = candidates[0]
    name = judge_name(value)
    options = {k: v for k, v in value.items() if k != "name"} if isinstance(value, dict) else {}
    return name, options


class _AnyValue(Fenced):
    """Sample metadata value: any attribute or item is another sample value."""

    __slots__ = ()

    def __getattr__(self, name: str) -> _AnyValue:
        if name.startswith("_"):
            raise AttributeError(name)
        return _AnyValue(self)

    def __getitem__(self, key: Any) -> _AnyValue:
        return _AnyValue(self)

    def __iter__(self) -> Any:
        return iter(())


class _AnyMetadata(dict[Any, Any]):
    """Sample metadata: every key exists (transcripts differ; a missing key is a runtime error)."""

    def __init__(self, nonce: str):
        super().__init__()
        self._value = _AnyValue(fenced("sample metadata value", nonce))

    def __missing__(self, key: Any) -> _AnyValue:
        return self._value

    def __contains__(self, key: object) -> bool:
        return True

    def get(self, key: Any, default: Any = None) -> Any:
        return self._value


SAMPLE = Transcript(
    id="rubric-check",
    messages=[
        Message(role="system", content="You are a helpful assistant."),
        Message(role="user", content="Hello.", name="sample_user"),
        Message(role="assistant", content="Hello! How can I help?"),
        Message(role="user", content="What is 2 + 2?"),
        Message(role="assistant", content="2 + 2 = 4."),
    ],
)
"""The transcript every rubric is rendered against when its criterion is built."""


class LLMJudge(Criterion):
    """A model grades each transcript against a rubric; fail-closed on unparseable answers."""

    kind = "llm_judge"
    Config = LLMJudgeConfig
    config: LLMJudgeConfig
    cost = 3
    expensive = True
    is_async = True
    rubric_set: RubricSet | None = None
    """With ``rubrics:``: the criteria this one shares its calls with."""

    @classmethod
    def expand(cls, spec: CriterionSpec) -> Sequence[CriterionSpec]:
        """An entry with ``rubrics:`` is one criterion per rubric (``NAME.RUBRIC``)."""
        if spec.config.get("rubrics") is None:
            return (spec,)
        return expand_rubrics(spec)

    def __init__(self, spec: CriterionSpec, config: LLMJudgeConfig, context: SuiteContext):
        super().__init__(spec, config, context)
        rubric, scheme_value, cot = self._load_rubric(config, context.suite_dir)
        self.scheme = VerdictScheme.parse(scheme_value)
        self.pass_threshold = self.scheme.pass_threshold
        self.chain_of_thought = cot
        self.answer_format = self.scheme.answer_format(cot)
        """How the judge is told to end its answer (the same for every transcript)."""
        self.rubric_source = rubric
        self.rubric_sha256 = hashlib.sha256(rubric.encode()).hexdigest()[:RUBRIC_HASH_LEN]
        env = SandboxedEnvironment(undefined=jinja2.StrictUndefined, autoescape=False,
                                   keep_trailing_newline=True, finalize=quote_later)
        try:
            self.template = env.from_string(rubric)
            names = jinja2.meta.find_undeclared_variables(env.parse(rubric))
        except jinja2.TemplateSyntaxError as exc:
            raise SuiteError(
                f"{spec.origin}: criterion '{spec.name}' (llm_judge): rubric template error "
                f"line {exc.lineno}: {exc.message}"
            ) from None
        # Only the transcript views the rubric names are built for each transcript.
        self.views = set(DATA_KEYS) if "transcript" in names else names & set(DATA_KEYS)
        self.members: list[tuple[str, LLMJudge]] = []
        if config.judges:  # a panel of judges sharing this rubric: one member per judge
            self.panel = Panel(aggregate=config.aggregate, on_disagreement=config.on_disagreement)
            self.members = [self._member(i, value) for i, value in enumerate(config.judges)]
            return
        self.judge_name, options = resolve_judge(config.judge, context)
        cache_dir = context.cache_dir
        self.cache: JudgeCache | None = None
        if config.cache and cache_dir is not None:
            directory = cache_dir.resolve()
            self.cache = context.shared(f"judge-cache:{directory}", lambda: JudgeCache(directory))
        # nonces (and so batch custom ids) stable wherever there is a cache directory
        self.secret = (load_or_create_secret(cache_dir.resolve() / NONCE_KEY_FILE)
                       if cache_dir is not None else None)
        self._check_rubric()
        self.runner = self._runner(self.judge_name, options)
        warn_if_format_unfollowed(self.runner.backend, config.mode, spec.name, context)
        if config.rubric_set is not None:
            self._join_set(config.rubric_set)

    # --- set-up -------------------------------------------------------------------------------
    def _member(self, index: int, judge: str | dict[str, Any]) -> tuple[str, LLMJudge]:
        """One judge of a panel: this criterion with that judge alone."""
        spec = self.spec.model_copy(update={"name": f"{self.spec.name}.judge{index}"})
        config = self.config.model_copy(update={"judges": None, "judge": judge})
        return judge_name(judge), LLMJudge(spec, config, self.context)

    def _join_set(self, name: str) -> None:
        """Share one call per transcript with the other criteria of ``rubric_set`` ``name``
        that have the same settings."""
        self.rubric_key = rubric_key(self.spec.name, name)
        settings = self.config.model_dump(mode="json", exclude={"rubric", "rubric_file"})
        self.together = f"rubric-set:{name}|{self.spec.scope}|{canonical_json(settings)}"
        self.rubric_set = self.context.shared(self.together, lambda: RubricSet(name))
        self.rubric_set.add(self, self.rubric_key)

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
        """The run's runner for this judge and options (shared by the criteria naming it)."""
        prefix, model = name.split("/", 1)
        factory = self.context.registry.judges.get(prefix)
        if factory is None:
            known = ", ".join(sorted(self.context.registry.judges)) or "none"
            raise ValueError(f"unknown judge backend {prefix!r} in {name!r} (known: {known})")
        backend_opts = {k: v for k, v in options.items() if k not in RUNNER_KEYS}
        policy = RetryPolicy(**{k: options[k] for k in RETRY_KEYS if k in options})
        max_concurrency = options.get("max_concurrency")
        batch = BatchOptions(**{k: options[k] for k in BATCH_KEYS if k in options})
        rates = RateLimits(**{k: options[k] for k in RATE_KEYS if k in options})

        def make() -> JudgeRunner:
            return JudgeRunner(factory(model, backend_opts), max_concurrency=max_concurrency,
                               policy=policy, budget=cost_budget(self.context), batch=batch,
                               journal_dir=self.context.cache_dir, rate_limits=rates)

        return self.context.shared(f"judge-runner:{name}|{canonical_json(options)}", make)

    def _check_rubric(self) -> None:
        """Render the rubric against :data:`SAMPLE`; an undefined variable is a suite error."""
        try:
            self.render(SAMPLE, 0, sample=True)
        except jinja2.UndefinedError as exc:
            raise ValueError(f"rubric uses an undefined variable: {exc.message}") from None
        except jinja2.exceptions.SecurityError as exc:
            raise ValueError(f"rubric does something the sandbox forbids: {exc}") from None
        except Exception:  # noqa: BLE001 - shaped by the sample's data; real ones show per item
            pass

    # --- rendering ----------------------------------------------------------------------------
    def render(
        self, transcript: Transcript, repeat: int, *, sample: bool = False
    ) -> tuple[JudgeRequest, str]:
        """The judge request for one transcript and repeat, and its nonce.

        Every value taken from the transcript is fenced (or reduced to a safe label), however
        the rubric reaches it, and quoted after the stable part of the prompt (see
        :func:`~harness.judges.prompting.build_messages`). ``sample`` renders :data:`SAMPLE`
        with metadata that has every key (the build-time check).
        """
        content = self.content(transcript)
        nonce = make_nonce(self.secret, content, self.name, repeat)
        material = Material()
        rubric_text = self.rubric_text(transcript, content, nonce, material, sample=sample)
        messages = build_messages(RUBRIC.format(rubric=rubric_text.rstrip()), material.parts,
                                  nonce, self.answer_format)
        return self.request(messages, repeat), nonce

    @staticmethod
    def content(transcript: Transcript) -> dict[str, Any]:
        """What of a transcript a rubric may see (its messages and metadata), as JSON values."""
        return transcript.model_dump(mode="json", include={"messages", "metadata"},
                                     exclude={"messages": {"__all__": {"logprobs"}}})

    def rubric_text(self, transcript: Transcript, content: dict[str, Any], nonce: str,
                    material: Material, *, sample: bool = False) -> str:
        """The rubric rendered for one transcript: its fenced values printed as ``material``'s
        labels (the values themselves are added to ``material``)."""
        msgs = content["messages"]
        last_index = max((i for i, m in enumerate(msgs) if m["role"] == "assistant"), default=None)
        before = msgs if last_index is None else msgs[:last_index]
        last_assistant = "" if last_index is None else msgs[last_index]["content"]
        last_user = next((m["content"] for m in reversed(msgs) if m["role"] == "user"), "")

        def messages() -> FencedList:
            return FencedList(msgs, nonce, [
                FencedDict(m, nonce, {
                    "role": m["role"],  # one of four literals
                    "name": label(m["name"]) if m.get("name") else None,
                    "content": fenced(m["content"], nonce),
                })
                for m in msgs
            ])

        views: dict[str, Callable[[], Any]] = {
            "conversation": lambda: fenced(render_conversation(msgs), nonce),
            "context": lambda: fenced(render_conversation(before), nonce),
            "last_assistant": lambda: fenced(last_assistant, nonce),
            "last_user": lambda: fenced(last_user, nonce),
            "text": lambda: fenced(text_of(transcript, self.config.target,
                                                  scope=self.spec.scope), nonce),
            "messages": messages,
            "metadata": lambda: (_AnyMetadata(nonce) if sample
                                 else FencedDict(content["metadata"], nonce)),
        }
        data = {key: make() for key, make in views.items() if key in self.views}
        variables = self.context.variables
        ctx: dict[str, Any] = {k: v for k, v in variables.items() if k not in RESERVED}
        ctx.update(data, transcript=dict(data), labels=self.scheme.labels(), variables=variables)
        ctx[MATERIAL_KEY] = material
        return self.template.render(ctx)

    def request(self, messages: list[dict[str, str]], repeat: int) -> JudgeRequest:
        """A request of these messages with the criterion's sampling settings."""
        return JudgeRequest(
            messages=messages,
            max_tokens=self.config.max_tokens,
            temperature=self.config.temperature,
            seed=repeat,
            top_logprobs=self.config.top_logprobs,
        )

    # --- judging ----------------------------------------------------------------------------
    def _usable(self, response: JudgeResponse) -> bool:
        """Whether an answer is worth caching: it has a verdict the scheme can read."""
        return parse_verdict(response.text, self.scheme).label is not None

    async def _choose(self, request: JudgeRequest, repeat: int) -> JudgeOutcome:
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
        return JudgeOutcome(response=response, record=record,
                            parsed=parse_verdict(text, self.scheme), soft=soft)

    async def _one(self, request: JudgeRequest, repeat: int) -> JudgeOutcome:
        if self.config.mode == "choice":
            return await self._choose(request, repeat)
        response, record = await self.runner.complete(
            request, repeat=repeat, cache=self.cache, accept=self._usable
        )
        parsed = parse_verdict(response.text, self.scheme)
        soft: SoftScore | None = None
        if parsed.label is not None:
            soft = await self.soft_score(request, repeat, response.text, parsed,
                                         response.tokens)
        return JudgeOutcome(response=response, record=record, parsed=parsed, soft=soft)

    async def soft_score(
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

    def judge_details(self, **fields: Any) -> JudgeDetails:
        """This criterion's verdict details, with ``fields``."""
        return JudgeDetails(judge=self.judge_name, scheme=self.scheme.kind,
                            rubric_sha256=self.rubric_sha256, **fields)

    async def judge(self, transcript: Transcript) -> Verdict:
        """Judge one transcript (all repeats concurrently).

        Raises :class:`~harness.judges.base.JudgeUnavailable` when the judge's endpoint is down.
        """
        if self.members:
            return combine(self.panel, await judge_members(self.members, transcript))
        if self.rubric_set is not None:
            return await self.rubric_set.judge(self, self.rubric_key, transcript)
        started = time.monotonic()
        try:
            requests = [self.render(transcript, r)[0] for r in range(self.config.repeats)]
        except jinja2.TemplateError as exc:  # e.g. metadata this transcript lacks
            return Verdict(outcome="error", explanation=f"rubric: {exc}",
                           details=self.judge_details().dump())
        if len(requests) == 1:
            try:
                outcomes: list[JudgeOutcome | JudgeCallFailed] = [
                    await self._one(requests[0], 0)]
            except JudgeCallFailed as exc:
                outcomes = [exc]
        else:
            gathered = await asyncio.gather(
                *(self._one(req, r) for r, req in enumerate(requests)), return_exceptions=True
            )
            outcomes = []
            for outcome in gathered:
                if isinstance(outcome, BaseException) and not isinstance(outcome, JudgeCallFailed):
                    raise outcome
                outcomes.append(outcome)
        return self.combine_outcomes(outcomes, time.monotonic() - started)

    def combine_outcomes(self, outcomes: list[JudgeOutcome | JudgeCallFailed], elapsed: float,
                         **fields: Any) -> Verdict:
        """The verdict from each repeat's outcome (majority label, mean score, accounting);
        ``fields`` are added to its details."""
        runs = [o for o in outcomes if isinstance(o, JudgeOutcome)]
        failures = [o for o in outcomes if isinstance(o, JudgeCallFailed)]
        details, common = self._accounting(runs, failures, elapsed, fields)
        raw = self._raw(outcomes, details)
        parsed_runs = [r for r in runs if r.parsed.label is not None]
        if len(parsed_runs) * 2 <= len(outcomes):  # no majority of usable answers: error
            if failures:
                reason = str(failures[0])
                details.errors = failures[0].record.errors
            else:
                error = next(r.parsed.error for r in runs if r.parsed.label is None)
                reason = f"unparseable judge output: {error}"
            return Verdict(outcome="error", explanation=reason, raw=raw, details=details.dump(),
                           **common)
        softs = [r.soft for r in parsed_runs if r.soft is not None]
        labels = [r.parsed.label for r in parsed_runs if r.parsed.label is not None]
        passes = sum(self.scheme.passes(label) for label in labels)
        passed = passes * 2 > len(labels)
        if len(outcomes) > 1:  # the share of all repeats whose label agrees with the verdict
            details.stability = sum(self.scheme.passes(x) == passed for x in labels) / len(outcomes)
        score = sum(s.score for s in softs) / len(softs)
        details.label = labels[0] if len(labels) == 1 else labels
        details.probs = {
            label: sum(s.probs[label] for s in softs) / len(softs) for label in self.scheme.labels()
        }
        details.p_pass = sum(s.p_pass for s in softs) / len(softs)
        details.soft_source = softs[0].source
        explanation = parsed_runs[0].parsed.explanation or f"VERDICT: {labels[0]}"
        if len(explanation) > MAX_EXPLANATION:
            explanation = explanation[: MAX_EXPLANATION - 1] + "…"
        return Verdict(
            outcome="pass" if passed else "fail",
            score=min(1.0, max(0.0, score)),
            explanation=explanation,
            raw=raw,
            details=details.dump(),
            **common,
        )

    def _accounting(self, runs: list[JudgeOutcome], failures: list[JudgeCallFailed],
                    elapsed: float, fields: dict[str, Any]) -> tuple[JudgeDetails, dict[str, Any]]:
        """The verdict's details (model, cache, attempts...) and its latency, cost and tokens,
        from the calls of its repeats."""
        responses = [r.response for r in runs]
        records = [r.record for r in runs] + [f.record for f in failures]
        answered = [r.record for r in runs]  # a failed call bills nothing
        costs = [rec.cost_usd for rec in answered]
        details = self.judge_details(
            model=responses[0].model if responses else None,
            cached=bool(records) and all(rec.cached for rec in records),
            attempts=sum(rec.attempts for rec in records),
            batch=next((rec.batch for rec in records if rec.batch), None),
            cached_tokens=sum(rec.tokens_cached for rec in answered) or None,
            **fields,
        )
        common: dict[str, Any] = {
            # the calls' own time, not the time spent queueing behind the concurrency limit
            "latency_s": sum(rec.latency_s for rec in records) if records else elapsed,
            # what this verdict's calls spent: a cache hit, or an answer shared with an
            # identical call in flight, spends nothing; unknown once an answer has no price
            "cost_usd": (sum(c for c in costs if c is not None)
                         if costs and None not in costs else None),
            "tokens_in": sum(rec.tokens_in for rec in answered) if responses else None,
            "tokens_out": sum(rec.tokens_out for rec in answered) if responses else None,
        }
        return details, common

    @staticmethod
    def _raw(outcomes: list[JudgeOutcome | JudgeCallFailed], details: JudgeDetails) -> str | None:
        """The judge's raw answer (each repeat's, headed, when there are several: their
        labels and scores then go in ``details.repeats``)."""
        if len(outcomes) == 1:
            return outcomes[0].response.text if isinstance(outcomes[0], JudgeOutcome) else None
        details.repeats = [
            RepeatDetails(error=str(o)) if isinstance(o, JudgeCallFailed)
            else RepeatDetails(label=o.parsed.label, score=o.soft.score if o.soft else None,
                               error=o.parsed.error)
            for o in outcomes
        ]
        return "\n\n".join(
            f"--- repeat {i} ---\n"
            + (o.response.text if isinstance(o, JudgeOutcome) else f"(failed: {o})")
            for i, o in enumerate(outcomes)
        )

    async def evaluate_async(self, transcript: Transcript) -> Result:
        """Judge one transcript on the caller's event loop (the engine's).

        :class:`~harness.judges.base.JudgeUnavailable` propagates: it is not a verdict.
        """
        return await self.judge(transcript)

    # --- sync callers -------------------------------------------------------------------------
    def evaluate(self, transcript: Transcript) -> Result:
        """Judge one transcript from synchronous code (on the engine's event loop)."""
        return self.context.loop.run(self.judge(transcript))

    def evaluate_batch(self, transcripts: Sequence[Transcript]) -> list[Result | BaseException]:
        """All transcripts' judge calls at once, limited by the judge's concurrency.

        A :class:`~harness.judges.base.JudgeUnavailable` takes the place of each transcript the
        open breaker refused.
        """
        return self.context.loop.run(self.evaluate_batch_async(transcripts))


@hookimpl
def register_criterion_kinds(register: Callable[[type[Criterion]], None]) -> None:
    register(LLMJudge)
