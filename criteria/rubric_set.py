"""Several rubrics, one judge call: ``llm_judge`` with ``rubrics:``.

```yaml
- name: quality
  kind: llm_judge
  rubrics:
    clarity: "Is the final answer clear? {{ last_assistant }}"
    accuracy: {rubric_file: accuracy.j2}
```

The suite entry stands for one criterion per rubric, ``quality.clarity`` and
``quality.accuracy`` (:func:`expand_rubrics`, the plan's :meth:`Criterion.expand`): each has
its own verdict, and the summary, report, exports and calibration count it like any criterion.
Every other key (judge, scheme, gate, weight, ...) is the entry's, shared.

For each transcript (and repeat) the judge is asked **once** (:class:`RubricSet`): the prompt
holds every rubric under its name, the transcript once, quoted last (rubrics that print the same
value share one quoted part), and asks for one ``VERDICT name: label`` line per rubric
(:mod:`harness.judges.rubric_verdicts`). The criteria run side by side (none of them skips
another); the first to ask makes the call and the others wait for its answer.

**Cached per rubric.** Each rubric's answer is cached under the request that would ask for it
alone, so a re-run asks nothing, an answer whose line for one rubric was missing or unreadable
re-asks that rubric alone, and adding or editing one rubric asks only for it. A call that asks
for some rubrics only asks for exactly those. The call's tokens and cost are recorded on the
verdict of the first rubric it asked (``details.asked_with`` lists them all).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, TypeVar

import jinja2

from harness.judges.base import JudgeRequest, JudgeResponse
from harness.judges.cache import cache_key
from harness.judges.prompting import Material, build_messages, make_nonce
from harness.judges.records import CallRecord, JudgeOutcome
from harness.judges.rubric_verdicts import (
    RUBRIC_KEY,
    parse_rubric_verdicts,
    rubrics_answer_format,
    rubrics_task,
)
from harness.judges.runner import JudgeCallFailed
from harness.judges.single_flight import SingleFlight
from harness.judges.verdicts import SoftScore, soft_score_from_logprobs
from harness.models import Transcript, Verdict
from harness.suite import CriterionSpec, SuiteError

if TYPE_CHECKING:
    from harness_criteria.llm_judge import LLMJudge

T = TypeVar("T")
Answer = JudgeOutcome | JudgeCallFailed | jinja2.TemplateError
"""One rubric's share of a call: its outcome, the call's failure, or its rubric's error."""
EXCLUSIVE = ("rubric", "rubric_file", "evals_spec", "judges", "rubric_set")
"""Keys an entry with ``rubrics:`` cannot have."""


def expand_rubrics(spec: CriterionSpec) -> list[CriterionSpec]:
    """One criterion per rubric of an entry with ``rubrics:`` (see the module doc)."""
    where = f"{spec.origin}: criterion '{spec.name}' (llm_judge)"
    rubrics = spec.config["rubrics"]
    if not isinstance(rubrics, dict) or not rubrics:
        raise SuiteError(f"{where}: `rubrics` must map names to rubrics, e.g. "
                         "{clarity: 'Is it clear? {{ last_assistant }}'}")
    clash = [key for key in EXCLUSIVE if key in spec.config]
    if clash:
        raise SuiteError(f"{where}: give `rubrics` or {', '.join(map(repr, clash))}, not both"
                         + (" (a panel of judges takes one rubric)" if "judges" in clash else ""))
    seen: dict[str, str] = {}
    out = []
    for name, value in rubrics.items():
        if not isinstance(name, str) or not RUBRIC_KEY.fullmatch(name):
            raise SuiteError(f"{where}: rubric name {name!r}: use letters, digits, _ and - "
                             "(it is printed in the prompt and in the criterion's name)")
        if name.lower() in seen:
            raise SuiteError(f"{where}: rubric names {seen[name.lower()]!r} and {name!r} "
                             "differ only by case")
        seen[name.lower()] = name
        if isinstance(value, str):
            source = {"rubric": value}
        elif (isinstance(value, dict) and list(value) == ["rubric_file"]
              and isinstance(value["rubric_file"], str)):
            source = dict(value)
        else:
            raise SuiteError(f"{where}: rubric {name!r} must be a template (a string) or "
                             "{rubric_file: FILE}")
        config = {k: v for k, v in spec.config.items() if k != "rubrics"}
        config.update(source, rubric_set=spec.name)
        out.append(spec.model_copy(update={"name": f"{spec.name}.{name}", "config": config}))
    return out


class RubricSet:
    """The criteria of one ``rubrics:`` entry with the same settings: one call per transcript
    and repeat answers them all (see the module doc)."""

    def __init__(self, name: str) -> None:
        self.name = name
        """The suite entry's name (the criteria are ``NAME.RUBRIC``)."""
        self.members: dict[str, LLMJudge] = {}
        """The criteria built, by rubric name, in suite order."""
        self._flights = SingleFlight()

    def add(self, member: LLMJudge, key: str) -> None:
        """A criterion of the set, answering the lines of rubric ``key``."""
        self.members[key] = member

    @property
    def lead(self) -> LLMJudge:
        """The first criterion: its judge, cache and settings are every member's."""
        return next(iter(self.members.values()))

    # --- one criterion's verdict -------------------------------------------------------------
    async def judge(self, member: LLMJudge, key: str, transcript: Transcript) -> Verdict:
        """``member``'s verdict on ``transcript``: its share of the set's answers."""
        started = time.monotonic()
        repeats = member.config.repeats
        answers = await asyncio.gather(*(self.answers(transcript, r) for r in range(repeats)))
        mine = [answer[key] for answer in answers]
        error = next((a for a in mine if isinstance(a, jinja2.TemplateError)), None)
        if error is not None:  # e.g. metadata this transcript lacks
            return Verdict(outcome="error", explanation=f"rubric: {error}",
                           details=member.judge_details(rubric_set=self.name).dump())
        outcomes: list[JudgeOutcome | JudgeCallFailed] = mine  # type: ignore[assignment]
        asked = next((o.asked_with for o in outcomes
                      if isinstance(o, JudgeOutcome) and o.asked_with), None)
        return member.combine_outcomes(outcomes, time.monotonic() - started,
                                       rubric_set=self.name, asked_with=asked)

    # --- the set's answers -------------------------------------------------------------------
    async def answers(self, transcript: Transcript, repeat: int) -> dict[str, Answer]:
        """Every member's answer for one transcript and repeat: from the cache, from the call
        another member already made, or from one call asking for the rest."""
        lead = self.lead
        content = lead.content(transcript)
        nonce = make_nonce(lead.secret, content, self.name, repeat)
        return (await self._flights.run(
            nonce, lambda: self._answer(transcript, content, nonce, repeat)))[0]

    def render(self, transcript: Transcript, repeat: int) -> tuple[JudgeRequest, str]:
        """The request one call sends for every rubric of the set, and its nonce (as
        :meth:`LLMJudge.render` for one rubric; what ``harness validate`` shows)."""
        lead = self.lead
        content = lead.content(transcript)
        nonce = make_nonce(lead.secret, content, self.name, repeat)
        return self.request(list(self.members), transcript, content, nonce, repeat), nonce

    def request(self, keys: Sequence[str], transcript: Transcript, content: dict[str, Any],
                nonce: str, repeat: int) -> JudgeRequest:
        """The request asking for rubrics ``keys`` (in that order), the transcript once."""
        material = Material()
        texts = {k: self.members[k].rubric_text(transcript, content, nonce, material)
                 for k in keys}
        lead = self.lead
        answer_format = rubrics_answer_format(keys, lead.scheme, lead.chain_of_thought)
        return lead.request(build_messages(rubrics_task(texts), material.parts, nonce,
                                           answer_format), repeat)

    async def _answer(self, transcript: Transcript, content: dict[str, Any], nonce: str,
                      repeat: int) -> dict[str, Answer]:
        lead = self.lead
        out: dict[str, Answer] = {}
        alone: dict[str, JudgeRequest] = {}  # each rubric asked alone: its cache key
        for key in self.members:
            try:
                alone[key] = self.request([key], transcript, content, nonce, repeat)
            except jinja2.TemplateError as exc:
                out[key] = exc
        cache, identity = lead.cache, lead.runner.backend.identity()
        keys = {k: cache_key(identity, r, repeat=repeat, extra={"rubric": k})
                for k, r in alone.items()} if cache is not None else {}
        if cache is not None:
            out.update(self._cached(keys))
        missing = [k for k in self.members if k not in out]
        if not missing:
            return out
        request = (alone[missing[0]] if len(missing) == 1
                   else self.request(missing, transcript, content, nonce, repeat))
        try:
            asked = await self._ask(request, missing, repeat)
        except JudgeCallFailed as exc:
            return {**out, **dict.fromkeys(missing, exc)}
        if cache is not None:
            self._store(request, repeat, asked, {k: keys[k] for k in missing})
        return {**out, **asked}

    def _cached(self, keys: dict[str, str]) -> dict[str, Answer]:
        """The rubrics whose answers the cache holds."""
        cache = self.lead.cache
        assert cache is not None
        found: dict[str, Answer] = {}
        answers: dict[str, JudgeResponse | None] = {}
        for key, entry_key in keys.items():
            entry = cache.get_json(entry_key)
            if not isinstance(entry, dict) or not isinstance(entry.get("answer"), str):
                continue
            if entry["answer"] not in answers:
                answers[entry["answer"]] = cache.get(entry["answer"])
            response = answers[entry["answer"]]
            asked = entry.get("asked") or [key]
            if response is None or not isinstance(asked, list) or key not in asked:
                continue
            parsed = parse_rubric_verdicts(response.text, asked, self.lead.scheme)[key]
            try:
                soft = SoftScore.model_validate(entry.get("soft"))
            except ValueError:
                continue
            if parsed.label is None:
                continue
            found[key] = JudgeOutcome(
                response=response, record=CallRecord(cached=True, cost_usd=0.0), parsed=parsed,
                soft=soft, asked_with=[self.members[k].name for k in asked if k in self.members])
        return found

    def _store(self, request: JudgeRequest, repeat: int, asked: dict[str, Answer],
               keys: dict[str, str]) -> None:
        """Cache the answer once, and a pointer to it for each rubric it answered usably."""
        usable = {k: a for k, a in asked.items()
                  if isinstance(a, JudgeOutcome) and a.parsed.label is not None}
        if not usable:
            return
        lead = self.lead
        cache = lead.cache
        assert cache is not None
        first = next(iter(usable.values()))
        extra = {"mode": "choice"} if lead.config.mode == "choice" else None
        answer_key = cache_key(lead.runner.backend.identity(), request, repeat=repeat,
                               extra=extra)
        cache.put(answer_key, first.response)
        for key, outcome in usable.items():
            assert outcome.soft is not None
            cache.put_json(keys[key], {"answer": answer_key, "asked": list(asked),
                                       "soft": outcome.soft.model_dump(mode="json")})

    async def _ask(self, request: JudgeRequest, keys: list[str],
                   repeat: int) -> dict[str, Answer]:
        """One call for rubrics ``keys``; the call is billed to the first of them."""
        lead = self.lead
        if lead.config.mode == "choice":
            response, record, softs = await self._choose(request, keys, repeat)
        else:
            response, record = await lead.runner.complete(request, repeat=repeat)
            softs = {}
        parsed = parse_rubric_verdicts(response.text, keys, lead.scheme)
        names = [self.members[k].name for k in keys]
        out: dict[str, Answer] = {}
        for n, key in enumerate(keys):
            mine = parsed[key]
            soft = softs.get(key)
            if soft is None and mine.label is not None:
                soft = await lead.soft_score(request, repeat, response.text, mine,
                                             response.tokens)
            out[key] = JudgeOutcome(response=response, record=record if n == 0 else
                                    _shared(record), parsed=mine, soft=soft, asked_with=names)
        return out

    async def _choose(self, request: JudgeRequest, keys: list[str], repeat: int
                      ) -> tuple[JudgeResponse, CallRecord, dict[str, SoftScore]]:
        """Forced choice, rubric after rubric: each label scored right after its
        ``VERDICT name:``, following the lines chosen before it."""
        lead = self.lead
        labels = lead.scheme.labels()
        record = CallRecord()
        text, softs = "", {}
        for key in keys:
            text += f"VERDICT {key}:"
            logprobs = await lead.runner.continuation_logprobs(
                request, text, [f" {label}" for label in labels], repeat=repeat,
                cache=lead.cache, record=record)
            if logprobs is None:
                raise ValueError(f"judge {lead.judge_name} cannot score continuations; "
                                 "use `mode: generate` with it")
            soft = soft_score_from_logprobs(dict(zip(labels, logprobs, strict=True)),
                                            lead.scheme)
            if soft is None:
                raise ValueError("the judge gave no finite log-probability for any label")
            softs[key] = soft
            text += f" {max(soft.probs, key=soft.probs.__getitem__)}\n"
        return JudgeResponse(text=text.rstrip(), model=lead.judge_name), record, softs


def _shared(record: CallRecord) -> CallRecord:
    """What a rubric answered by another rubric's call records: the wait, no attempts, no
    tokens, no cost (the first rubric holds them)."""
    return CallRecord(latency_s=record.latency_s, total_s=record.total_s,
                      cost_usd=None if record.cost_usd is None else 0.0, batch=record.batch)


def rubric_key(name: str, rubric_set: str) -> str:
    """The rubric a criterion named ``SET.RUBRIC`` answers; ``ValueError`` otherwise."""
    key = name.removeprefix(f"{rubric_set}.")
    if key == name or not RUBRIC_KEY.fullmatch(key):
        raise ValueError(f"a criterion of rubric_set {rubric_set!r} is named "
                         f"'{rubric_set}.RUBRIC' (RUBRIC: letters, digits, _ and -), not {name!r}")
    return key

