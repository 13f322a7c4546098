"""Import an OpenAI-evals model-graded spec as an ``llm_judge`` criterion configuration.

A spec (``evals/registry/modelgraded/*.yaml``) has a ``prompt`` (a string or chat messages with
``str.format`` fields such as ``{input}``, ``{completion}``, ``{ideal}``), ``choice_strings``
(a list, a string of one-character choices like ``ABCDE``, or ``from_n``...), optional
``choice_scores`` (a mapping, or ``from_strings``), ``input_outputs`` (``{input: completion}``),
an optional ``eval_type`` and ``args``. The import keeps the prompt text unchanged and maps:

- each ``input_outputs`` *key* (e.g. ``input``) to the conversation before the last assistant
  message, each *value* (e.g. ``completion``) to the last assistant message;
- any other field (e.g. ``ideal``) to the transcript's metadata of that name;

all of them fenced as untrusted data like every transcript text. Scores outside [0, 1] (e.g.
``from_strings`` on ``1..10``) are rescaled linearly from [min, max] to [0, 1]. evals appends its
own answer instructions by ``eval_type``; here the judge is told to end with a
``VERDICT: <choice>`` line instead (reasoning first for ``cot_classify`` and ``classify_cot``, no
reasoning for ``classify``), because a verdict bound to one explicit line cannot be confused with
a choice letter in the reasoning. Unlike evals, an unparseable answer is an ``error`` verdict, not
the lowest score.

Specs without ``choice_scores`` (evals only counts the choices) need ``pass_labels``.
"""

from __future__ import annotations

import string
from pathlib import Path
from typing import Any

import yaml

EVAL_TYPES = {"cot_classify": True, "classify_cot": True, "classify": False}
"""Supported ``eval_type`` values and whether the judge reasons before its verdict."""


class EvalsImportError(ValueError):
    """The spec cannot be imported; the message says why."""


def _choice_strings(spec: dict[str, Any]) -> list[str]:
    raw = spec.get("choice_strings")
    n = spec.get("multicomp_n")
    if raw in ("from_n", "from_n_abc", "from_n_ABC"):
        if not isinstance(n, int) or n < 2:
            raise EvalsImportError(f"choice_strings {raw!r} needs an integer multicomp_n >= 2")
        alphabet = {
            "from_n": [str(i + 1) for i in range(n)],
            "from_n_abc": [string.ascii_lowercase[i % 26] for i in range(n)],
            "from_n_ABC": [string.ascii_uppercase[i % 26] for i in range(n)],
        }
        return alphabet[raw]
    if isinstance(raw, str):
        return list(raw)
    if isinstance(raw, list) and all(isinstance(c, str | int) for c in raw):
        return [str(c) for c in raw]
    raise EvalsImportError("choice_strings must be a list of strings, a string, or from_n*")


def _scores(
    spec: dict[str, Any], choices: list[str], pass_labels: list[str] | None
) -> tuple[dict[str, float], float]:
    raw = spec.get("choice_scores")
    if raw is None:
        if not pass_labels:
            raise EvalsImportError(
                "the spec has no choice_scores: give pass_labels (the choices that pass)"
            )
        unknown = [label for label in pass_labels if label not in choices]
        if unknown:
            raise EvalsImportError(f"pass_labels {unknown} are not among choices {choices}")
        return {c: float(c in pass_labels) for c in choices}, 0.5
    if raw == "from_strings":
        try:
            raw = {c: float(c) for c in choices}
        except ValueError as exc:
            raise EvalsImportError("choice_scores from_strings needs numeric choices") from exc
    if not isinstance(raw, dict):
        raise EvalsImportError("choice_scores must be a mapping or 'from_strings'")
    scores = {str(k): float(v) for k, v in raw.items()}
    missing = [c for c in choices if c not in scores]
    if missing:
        raise EvalsImportError(f"choice_scores has no score for {missing}")
    scores = {c: scores[c] for c in choices}
    low, high = min(scores.values()), max(scores.values())
    if low < 0.0 or high > 1.0:
        if high == low:
            raise EvalsImportError("choice_scores are all equal: nothing can pass")
        scores = {c: (s - low) / (high - low) for c, s in scores.items()}
    threshold = 0.5
    if pass_labels:
        passing = [scores[c] for c in pass_labels if c in scores]
        if len(passing) != len(pass_labels):
            raise EvalsImportError(f"pass_labels {pass_labels} are not all among {choices}")
        threshold = min(passing)
        failing_above = [c for c in choices if c not in pass_labels and scores[c] >= threshold]
        if failing_above:
            raise EvalsImportError(
                f"pass_labels must be the best-scored choices; {failing_above} score as high"
            )
    return scores, threshold


def _prompt_text(prompt: Any) -> str:
    if isinstance(prompt, str):
        return prompt
    if isinstance(prompt, list) and all(isinstance(m, dict) and "content" in m for m in prompt):
        return "\n\n".join(str(m["content"]) for m in prompt)
    raise EvalsImportError("prompt must be a string or a list of chat messages")


def _to_jinja(prompt: str, inputs: set[str], outputs: set[str], args: dict[str, Any]) -> str:
    """Turn a ``str.format`` template into a jinja2 one, literal text kept verbatim."""
    parts: list[str] = []
    try:
        parsed = list(string.Formatter().parse(prompt))
    except ValueError as exc:
        raise EvalsImportError(f"prompt is not a valid format string: {exc}") from exc
    pending = ""  # literal text; str.format splits it at escaped braces

    def flush() -> None:
        nonlocal pending
        if any(tok in pending for tok in ("{{", "{%", "{#", "}}", "%}", "#}")):
            pending = "{% raw %}" + pending + "{% endraw %}"
        parts.append(pending)
        pending = ""

    for literal, field, _spec, _conv in parsed:
        pending += literal
        if field is None:
            continue
        if not field.isidentifier():
            raise EvalsImportError(f"unsupported prompt field {{{field}}}")
        if field in args:
            pending += str(args[field])
            continue
        flush()
        if field in inputs:
            parts.append("{{ context }}")
        elif field in outputs:
            parts.append("{{ last_assistant }}")
        else:
            parts.append(f"{{{{ metadata.{field} }}}}")
    flush()
    return "".join(parts)


def spec_to_criterion(
    spec: dict[str, Any],
    *,
    eval_type: str | None = None,
    pass_labels: list[str] | None = None,
) -> dict[str, Any]:
    """An ``llm_judge`` criterion config (suite keys) equivalent to an evals spec mapping."""
    if not isinstance(spec, dict) or "prompt" not in spec:
        raise EvalsImportError("not a model-graded spec: no 'prompt'")
    if spec.get("multicomp_n", 1) not in (None, 1) and spec.get("completion_sample_templates"):
        raise EvalsImportError("multi-completion specs (multicomp_n > 1) are not supported")
    if spec.get("format_type", "in_message") != "in_message":
        raise EvalsImportError(f"format_type {spec['format_type']!r} is not supported")
    kind = eval_type or spec.get("eval_type") or "cot_classify"
    if kind not in EVAL_TYPES:
        raise EvalsImportError(f"eval_type {kind!r} not supported (one of {sorted(EVAL_TYPES)})")
    io = spec.get("input_outputs") or {"input": "completion"}
    if not isinstance(io, dict):
        raise EvalsImportError("input_outputs must be a mapping")
    choices = _choice_strings(spec)
    scores, threshold = _scores(spec, choices, pass_labels)
    rubric = _to_jinja(
        _prompt_text(spec["prompt"]),
        inputs={str(k) for k in io},
        outputs={str(v) for v in io.values()},
        args=dict(spec.get("args") or {}),
    )
    return {
        "kind": "llm_judge",
        "rubric": rubric,
        "scheme": {"kind": "choices", "choices": scores, "pass_threshold": threshold},
        "chain_of_thought": EVAL_TYPES[kind],
    }


def load_spec(path: str | Path, name: str | None = None) -> dict[str, Any]:
    """Read a spec file; a file holding several named specs needs ``name``."""
    try:
        data = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise EvalsImportError(f"cannot read evals spec {path}: {exc}") from exc
    if isinstance(data, dict) and "prompt" in data:
        return data
    if isinstance(data, dict):
        specs = {k: v for k, v in data.items() if isinstance(v, dict) and "prompt" in v}
        if name is not None:
            if name not in specs:
                raise EvalsImportError(f"{path}: no spec named {name!r} (has {sorted(specs)})")
            return specs[name]
        if len(specs) == 1:
            return next(iter(specs.values()))
        if specs:
            raise EvalsImportError(f"{path} holds several specs {sorted(specs)}: pick one by name")
    raise EvalsImportError(f"{path} is not an OpenAI-evals model-graded spec")


def import_evals_spec(
    path: str | Path,
    *,
    name: str | None = None,
    eval_type: str | None = None,
    pass_labels: list[str] | None = None,
) -> dict[str, Any]:
    """Read a spec file and return the equivalent ``llm_judge`` criterion config."""
    return spec_to_criterion(load_spec(path, name), eval_type=eval_type, pass_labels=pass_labels)
