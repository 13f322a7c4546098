"""Verdict schemes, parsing the judge's last verdict line, and soft scores from logprobs.

Schemes (the ``scheme`` suite key):

- ``binary``: labels ``PASS`` (score 1) and ``FAIL`` (score 0);
- ``choices``: labels with a score in [0, 1] each, like OpenAI-evals ``choice_strings`` /
  ``choice_scores``;
- ``scale``: integers ``min..max`` mapped linearly to [0, 1].

A label passes when its score reaches ``pass_threshold`` (default 0.5).

**Parsing.** The judge may think aloud first; only its *last* verdict counts. A verdict is

1. a line of the form ``VERDICT: <label>``, or
2. ``VERDICT: <label>`` at the very end of the last non-empty line, after the reasoning
   ("... so it is fine. VERDICT: PASS"), or
3. a whole reply that is exactly one label (``PASS``), with no ``VERDICT:`` anywhere.

Markdown emphasis, quotes and brackets around the label, and a final full stop, are tolerated;
the keyword is case-insensitive, labels are too unless two labels differ only by case. If the
last verdict's label is not one of the scheme's, or there is no verdict, the result is an
``error`` saying what was found instead, with the raw output kept: never a pass or a fail.

**Soft scores.** With log-probabilities the verdict carries the probability of each label at the
verdict position, normalised over the scheme's labels, and

- ``p_pass``: the probability mass of the passing labels;
- ``score``: the probability-weighted mean of the label scores (equal to ``p_pass`` for binary
  schemes and for choices scored 0/1; the expected value for ``scale``).

Each label's probability is over its *whole* token sequence, with the same separator the judge
wrote after ``VERDICT:`` and the same terminator it wrote after its label (e.g. a newline), so
``1`` is not credited with the mass of ``10`` (when the label ends the output there is no
terminator to condition on). Two sources, best first:

1. *exact*: ``backend.continuation_logprobs(request, prefix, [sep + label + end, ...])``, where
   ``prefix`` is the judge's output up to ``VERDICT:`` (local models can score any continuation);
2. *generated-path approximation* (hosted APIs, from :attr:`JudgeResponse.tokens`): each label is
   walked token by token from the token where the judge's label starts. While the label's text
   follows the generated tokens their logprobs are exact; where it departs, the top alternatives
   at that position are searched for a token that completes the label (exact) or that starts it
   (then the rest of the label is assumed certain, P = 1, the usual "first-token" shortcut); a
   label found in no alternative gets probability 0 (it was below the top-k). When the judge's
   own label ends where its next generated token continues with a letter or digit (``1`` then
   ``0``), that label's probability is multiplied by the mass *not* continuing it. This is an
   approximation bounded by the top-k the API returned; ``soft_source`` on the verdict records
   which path was used.

Without logprobs (or when neither path finds any label) the score is the parsed label's score and
``soft_source`` is ``"label"``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Awaitable, Callable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from harness.judges.base import TokenLogprob

SoftSource = Literal["exact", "approx", "label"]


class VerdictScheme(BaseModel):
    """The labels a judge may answer with and what each is worth."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["binary", "choices", "scale"] = "binary"
    """binary (PASS/FAIL), choices (labels with scores) or scale (integers min..max)."""
    choices: dict[str, float] | None = None
    """For ``choices``: label -> score in [0, 1], in the order shown to the judge."""
    min: int = 1
    """For ``scale``: the lowest value (score 0)."""
    max: int = 5
    """For ``scale``: the highest value (score 1)."""
    pass_threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    """A label passes when its score is at least this."""

    @model_validator(mode="after")
    def _check(self) -> VerdictScheme:
        if self.kind == "choices":
            if not self.choices or len(self.choices) < 2:
                raise ValueError("scheme 'choices' needs at least two labels in 'choices'")
            for label, score in self.choices.items():
                if not label.strip() or label != label.strip() or "\n" in label:
                    raise ValueError(f"choice label {label!r} must be non-empty, one line, trimmed")
                if not 0.0 <= score <= 1.0:
                    raise ValueError(f"choice {label!r} has score {score}, not in [0, 1]")
        elif self.choices is not None:
            raise ValueError(f"'choices' only applies to scheme 'choices', not {self.kind!r}")
        if self.kind == "scale" and self.max <= self.min:
            raise ValueError(f"scale needs min < max (got {self.min}..{self.max})")
        return self

    @classmethod
    def parse(cls, value: str | dict[str, Any] | VerdictScheme | None) -> VerdictScheme:
        """From a suite value: a kind name, a mapping, or a scheme."""
        if value is None:
            return cls()
        if isinstance(value, VerdictScheme):
            return value
        if isinstance(value, str):
            return cls.model_validate({"kind": value})
        return cls.model_validate(value)

    def scores(self) -> dict[str, float]:
        """Every label with its score, in display order."""
        if self.kind == "binary":
            return {"PASS": 1.0, "FAIL": 0.0}
        if self.kind == "choices":
            assert self.choices is not None
            return dict(self.choices)
        span = self.max - self.min
        return {str(v): (v - self.min) / span for v in range(self.min, self.max + 1)}

    def labels(self) -> list[str]:
        """The labels, in display order."""
        return list(self.scores())

    def passes(self, label: str) -> bool:
        """Whether ``label`` is a passing label."""
        return self.scores()[label] >= self.pass_threshold

    def case_sensitive(self) -> bool:
        """Labels are matched case-sensitively only if two differ just by case."""
        labels = self.labels()
        return len({label.lower() for label in labels}) < len(labels)

    def answer_format(self, chain_of_thought: bool = True) -> str:
        """The instruction telling the judge how to end its answer."""
        if self.kind == "scale":
            options = f"an integer from {self.min} to {self.max}"
        else:
            options = "one of " + ", ".join(self.labels())
        line = f"`VERDICT: <label>` where <label> is {options}"
        if chain_of_thought:
            return (
                "First explain your reasoning briefly, step by step. Then end your answer with "
                f"one final line of the exact form {line}, and nothing after it."
            )
        return f"Answer with exactly one line of the form {line}, and nothing else."


class ParsedVerdict(BaseModel):
    """The label read from a judge's output, or why none could be."""

    label: str | None = None
    """The scheme's label, or ``None`` when unparseable."""
    error: str | None = None
    """Why no label could be read."""
    explanation: str = ""
    """The judge's text before the verdict line (its reasoning), trimmed."""
    prefix_end: int = 0
    """Offset just after ``VERDICT:`` in the output."""
    label_start: int = 0
    """Offset where the label starts (after separator and any markup)."""
    label_end: int = 0
    """Offset just after the label."""


_VERDICT_LINE = re.compile(
    r"^[ \t>*_#-]*verdict[*_]*[ \t]*[:：](?P<rest>[^\n]*)$", re.IGNORECASE | re.MULTILINE
)
_VERDICT_WORD = re.compile(r"[*_]*\bverdict[*_]*[ \t]*[:：]", re.IGNORECASE)
_LABEL_WRAP = re.compile(r"^(?P<pre>[\s*_`\"'\[(]*)(?P<label>.*?)(?P<post>[\s*_`\"'\]).]*)$")
_SHOWN = 60
"""Characters of the judge's text quoted in a parsing error."""


def _match_label(written: str, scheme: VerdictScheme) -> str | None:
    labels = scheme.labels()
    if scheme.case_sensitive():
        return written if written in labels else None
    return {label.lower(): label for label in labels}.get(written.lower())


def _quoted(text: str) -> str:
    text = text.strip()
    return repr(text if len(text) <= _SHOWN else "…" + text[-_SHOWN:])


def _from_rest(text: str, rest_start: int, verdict_start: int, scheme: VerdictScheme,
               where: str) -> ParsedVerdict:
    """The verdict whose label text starts at ``rest_start`` and runs to the end of its line."""
    rest = text[rest_start:].split("\n", 1)[0]
    wrap = _LABEL_WRAP.match(rest)
    assert wrap is not None  # the pattern matches any single line
    written = wrap.group("label")
    found = _match_label(written, scheme)
    explanation = text[:verdict_start].strip()
    if found is None:
        return ParsedVerdict(
            error=f"{where} says {written!r}, not one of {', '.join(scheme.labels())}",
            explanation=explanation,
        )
    label_start = rest_start + len(wrap.group("pre"))
    return ParsedVerdict(label=found, explanation=explanation, prefix_end=rest_start,
                         label_start=label_start, label_end=label_start + len(written))


def _last_line_verdict(text: str, scheme: VerdictScheme) -> ParsedVerdict | None:
    """The verdict after the last ``VERDICT:`` of the last non-empty line, if there is one."""
    stripped = text.rstrip()
    line_start = stripped.rfind("\n") + 1
    keywords = list(_VERDICT_WORD.finditer(stripped, line_start))
    if not keywords:
        return None
    last = keywords[-1]  # "VERDICT: PASS ... VERDICT: FAIL" ends with FAIL
    return _from_rest(stripped, last.end(), last.start(), scheme,
                      "the verdict ending the last line")


def parse_verdict(text: str, scheme: VerdictScheme) -> ParsedVerdict:
    """The judge's **last** verdict in ``text`` (see module doc), or why there is none."""
    if not text.strip():
        return ParsedVerdict(error="the judge's output is empty: no 'VERDICT: <label>' in it")
    lines = list(_VERDICT_LINE.finditer(text))
    last_line_start = text.rstrip().rfind("\n") + 1
    if not lines or lines[-1].start() < last_line_start:
        # the last non-empty line is not itself a verdict line: a verdict may end it
        inline = _last_line_verdict(text, scheme)
        # an earlier verdict line binds when the last line's "VERDICT:" is not followed by a label
        if inline is not None and (inline.label is not None or not lines):
            return inline
    if lines:
        last = lines[-1]
        return _from_rest(text, last.start("rest"), last.start(), scheme, "the last verdict line")
    whole = _LABEL_WRAP.match(text.strip())  # None when the reply has several lines
    if whole is not None and _match_label(whole.group("label"), scheme) is not None:
        offset = len(text) - len(text.lstrip())
        return _from_rest(text, offset, 0, scheme, "the reply")
    labels = ", ".join(scheme.labels())
    if _VERDICT_WORD.search(text):
        return ParsedVerdict(error=(
            "'VERDICT:' appears only inside earlier lines, neither starting a line nor ending "
            f"the last one (labels: {labels}); the last line is "
            f"{_quoted(text.rstrip().rsplit(chr(10), 1)[-1])}"))
    return ParsedVerdict(error=(
        f"no 'VERDICT: <label>' in the judge's output (labels: {labels}), and the reply is "
        f"not just a label; it ends with {_quoted(text)}"))


class SoftScore(BaseModel):
    """Label probabilities at the verdict position and what they imply."""

    model_config = ConfigDict(extra="forbid")

    probs: dict[str, float]
    """Normalised probability of each label."""
    p_pass: float
    """Probability mass of the passing labels."""
    score: float
    """Probability-weighted mean of the label scores."""
    source: SoftSource
    """exact (continuation scoring), approx (generated path + top-k), or label (no logprobs)."""


def soft_from_label(label: str, scheme: VerdictScheme) -> SoftScore:
    """The degenerate soft score of a parsed label (no logprobs)."""
    probs = {lab: float(lab == label) for lab in scheme.labels()}
    return _summarise(probs, scheme, "label")


def _summarise(probs: dict[str, float], scheme: VerdictScheme, source: SoftSource) -> SoftScore:
    scores = scheme.scores()
    p_pass = sum(p for lab, p in probs.items() if scores[lab] >= scheme.pass_threshold)
    score = sum(p * scores[lab] for lab, p in probs.items())
    return SoftScore(
        probs=probs,
        p_pass=min(1.0, max(0.0, p_pass)),
        score=min(1.0, max(0.0, score)),
        source=source,
    )


def _normalise(logps: dict[str, float | None]) -> dict[str, float] | None:
    finite = {k: v for k, v in logps.items() if v is not None and math.isfinite(v)}
    if not finite:
        return None
    top = max(finite.values())
    weights = {k: (math.exp(finite[k] - top) if k in finite else 0.0) for k in logps}
    total = sum(weights.values())
    return {k: w / total for k, w in weights.items()}


def _terminator(text: str, parsed: ParsedVerdict) -> str:
    """The character the judge wrote right after its label, if it can't continue a label."""
    after = text[parsed.label_end : parsed.label_end + 1]
    return after if after and not after.isalnum() else ""


def _continuations(text: str, parsed: ParsedVerdict, scheme: VerdictScheme) -> dict[str, str]:
    sep = text[parsed.prefix_end : parsed.label_start]
    end = _terminator(text, parsed)
    return {label: sep + label + end for label in scheme.labels()}


def soft_score_from_logprobs(
    logprobs: dict[str, float | None], scheme: VerdictScheme
) -> SoftScore | None:
    """Soft score from each label's exact log-probability (``None`` if none is finite)."""
    probs = _normalise(logprobs)
    return None if probs is None else _summarise(probs, scheme, "exact")


async def soft_score_exact(
    text: str,
    parsed: ParsedVerdict,
    scheme: VerdictScheme,
    score_fn: Callable[[str, list[str]], Awaitable[list[float] | None]],
) -> SoftScore | None:
    """Soft score from exact continuation log-probabilities, or ``None`` if unavailable.

    ``score_fn(prefix, continuations)`` is typically a bound
    :meth:`~harness.judges.runner.JudgeRunner.continuation_logprobs` for the original request.
    """
    if parsed.label is None:
        return None
    conts = _continuations(text, parsed, scheme)
    result = await score_fn(text[: parsed.prefix_end], list(conts.values()))
    if result is None or len(result) != len(conts):
        return None
    return soft_score_from_logprobs(dict(zip(conts, result, strict=True)), scheme)


def _token_offsets(tokens: list[TokenLogprob]) -> list[int]:
    offsets, pos = [], 0
    for tok in tokens:
        offsets.append(pos)
        pos += len(tok.token)
    offsets.append(pos)
    return offsets


def _walk_label(
    tokens: list[TokenLogprob], start: int, target: str, fold: bool
) -> tuple[float | None, bool]:
    """log P(target) walked from token ``start``; also whether it ended on the generated path."""

    def norm(s: str) -> str:
        return s.lower() if fold else s

    logp = 0.0
    rest = target
    pos = start
    while rest:
        if pos >= len(tokens):
            return None, False
        tok = tokens[pos]
        if tok.token and norm(rest).startswith(norm(tok.token)):
            logp += tok.logprob
            rest = rest[len(tok.token) :]
            pos += 1
            continue
        # Leave the generated path: look for the label among the alternatives here.
        covering = []
        partial = []
        for alt, alt_lp in {**tok.top, tok.token: tok.logprob}.items():
            if not alt:
                continue
            if norm(alt).startswith(norm(rest)):
                extra = alt[len(rest) :]
                if not extra or not extra[0].isalnum():
                    covering.append(alt_lp)
            elif norm(rest).startswith(norm(alt)):
                partial.append((len(alt), alt_lp))
        if covering:
            return logp + math.log(sum(math.exp(x) for x in covering)), False
        if partial:
            # First-token shortcut: the rest of the label is assumed certain.
            return logp + max(partial)[1], False
        return None, False
    # The whole label followed the generated tokens; check the judge did not go on to a
    # longer label ("1" then "0"): keep only the mass of not continuing with a letter/digit.
    if pos < len(tokens):
        nxt = tokens[pos]
        cont = {nxt.token: nxt.logprob, **nxt.top}
        p_more = sum(math.exp(lp) for t, lp in cont.items() if t and t[0].isalnum())
        if p_more >= 1.0:
            return None, True
        logp += math.log1p(-min(p_more, 1.0))
    return logp, True


def soft_score_from_tokens(
    text: str, parsed: ParsedVerdict, scheme: VerdictScheme, tokens: list[TokenLogprob] | None
) -> SoftScore | None:
    """Soft score from per-token logprobs along the generated path (see module doc)."""
    if parsed.label is None or not tokens:
        return None
    offsets = _token_offsets(tokens)
    joined = "".join(t.token for t in tokens)
    if joined[: parsed.label_end] != text[: parsed.label_end]:
        return None  # tokens don't spell the text (byte-level fragments): can't align
    index = next(i for i in range(len(tokens)) if offsets[i + 1] > parsed.label_start)
    lead = text[offsets[index] : parsed.label_start]  # separator text inside that token
    fold = not scheme.case_sensitive()
    logps: dict[str, float | None] = {}
    for label in scheme.labels():
        logps[label], _ = _walk_label(tokens, index, lead + label, fold)
    probs = _normalise(logps)
    return None if probs is None else _summarise(probs, scheme, "approx")
