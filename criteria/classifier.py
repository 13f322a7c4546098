"""The ``classifier`` criterion kind: a local model scores texts, a threshold on one label decides.

The model comes from a classifier backend plugin (``register_classifier_backends``): ``embedding``
(a small head on the embedded all-MiniLM-L6-v2), ``static`` (a head on static token embeddings
distilled from it: the fast tier), ``sklearn`` or ``transformers``, all in
``harness-local-models``. Transcripts are scored in batches: the engine hands the criterion a
whole batch, every selected message of it goes to the model in one call (the backend splits it
into ``batch_size`` chunks), and the backend is built once per process.

Each selected message is scored on its own; the message where ``label`` is most probable decides.
With ``expect: absent`` (the default) the criterion fails when that probability reaches
``threshold``; with ``expect: present`` it passes when it does. The verdict's score is the
probability of passing: ``1 - P(label)`` for ``absent``, ``P(label)`` for ``present``; the raw
probability and the top labels are in ``details`` and the explanation, the scored message is the
evidence.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Literal

from pydantic import Field

from harness.criterion import Criterion, CriterionConfig, Result, SuiteContext
from harness.hookspecs import hookimpl
from harness.models import Span, Transcript, Verdict
from harness.suite import CriterionSpec, SuiteError
from harness.targets import Field as TextField
from harness.targets import Target, select

EMBEDDED = "embedding"
"""``model`` value for the default head on the embedded sentence-embedding model."""
STATIC = "static"
"""``model`` value for the default head on the static embeddings distilled from that model."""
DEFAULTS = (EMBEDDED, STATIC)
"""``model`` values that name a default head rather than a path; each is its own backend."""
TOP_LABELS = 3
"""Labels listed in the explanation and details."""
EVIDENCE_CHARS = 200
"""Characters of the scored message kept in the evidence span's text."""


class ClassifierConfig(CriterionConfig):
    label: str
    """The label whose probability is compared with ``threshold``."""
    model: str = EMBEDDED
    """``embedding`` (the default head, made by ``harness classifier train``), ``static`` (the
    default static head, made by ``harness classifier train --backend static``) or a model file
    or folder, relative to the suite file."""
    backend: str | None = None
    """Classifier backend (``embedding``, ``static``, ``sklearn``, ``transformers``...); default:
    detected from the model's files."""
    expect: Literal["absent", "present"] = "absent"
    """``absent``: fails when P(label) reaches the threshold; ``present``: passes when it does."""
    threshold: float = Field(default=0.5, ge=0.0, le=1.0)
    """Probability at which ``label`` counts as present."""
    target: Target = "assistant"
    """Which messages to score: assistant, last_assistant, user, system, all, reasoning."""
    batch_size: int = Field(default=32, ge=1)
    """Texts the model sees at once (32 is the fastest for MiniLM on two CPU cores)."""
    sha256: str | None = Field(default=None, pattern=r"^[0-9a-fA-F]{64}$")
    """Pins the model file's sha256 (needed to load a pickle/joblib scikit-learn file)."""
    trusted_types: list[str] = []
    """Extra types a ``.skops`` file may contain (beyond those skops trusts by default)."""


def detect_backend(path: Path) -> str | None:
    """The backend that reads a model path, from its files; None when none does."""
    if path.is_file():
        return "sklearn" if path.suffix in (".skops", ".joblib", ".pkl", ".pickle") else None
    if (path / "head.json").is_file():
        return STATIC if (path / STATIC).is_dir() else EMBEDDED
    if (path / "pipeline.skops").is_file() or any(path.glob("*.skops")):
        return "sklearn"
    if (path / "config.json").is_file():
        return "transformers"
    return None


class Classifier(Criterion):
    """A local classifier's probability for one label, against a threshold (batched)."""

    kind = "classifier"
    in_workers = False  # torch spreads each batch over every core already
    Config = ClassifierConfig
    config: ClassifierConfig
    cost = 2

    def __init__(self, spec: CriterionSpec, config: ClassifierConfig, context: SuiteContext):
        super().__init__(spec, config, context)
        where = f"{spec.origin}: criterion '{spec.name}' (classifier)"
        backend: str | None
        if config.model in DEFAULTS:
            model, backend = config.model, config.backend or config.model
        else:
            path = Path(config.model).expanduser()
            if not path.is_absolute():
                path = (context.suite_dir / path).resolve()
            if not path.exists():
                raise SuiteError(f"{where}: classifier model not found: {path}")
            model, backend = str(path), config.backend or detect_backend(path)
            if backend is None:
                raise SuiteError(
                    f"{where}: cannot tell which backend reads {path} (no head.json, .skops "
                    "or config.json): set `backend:`"
                )
        factory = context.registry.classifiers.get(backend)
        if factory is None:
            known = ", ".join(sorted(context.registry.classifiers)) or "none"
            raise SuiteError(
                f"{where}: no classifier backend '{backend}' (registered: {known}); the "
                "embedding, static, sklearn and transformers backends come with "
                "harness-local-models"
            )
        options: dict[str, Any] = {"batch_size": config.batch_size}
        if config.sha256:
            options["sha256"] = config.sha256.lower()
        if config.trusted_types:
            options["trusted_types"] = list(config.trusted_types)
        try:
            self.backend = factory(model, options)
        except Exception as exc:
            raise SuiteError(f"{where}: {exc}") from None
        self.backend_name = backend
        self.model = model
        labels = list(self.backend.labels)
        if config.label not in labels:
            raise SuiteError(f"{where}: label '{config.label}' is not one of the model's labels "
                             f"{labels}")

    def _verdict(self, units: list[tuple[int, TextField, str]],
                 probs: list[dict[str, float]]) -> Verdict:
        c = self.config
        if not units:
            passed = c.expect == "absent"
            return Verdict(outcome="pass" if passed else "fail", score=1.0 if passed else 0.0,
                           explanation=f"no {c.target} text to classify",
                           details={"label": c.label, "probability": None,
                                    "backend": self.backend_name})
        best = max(range(len(units)), key=lambda i: probs[i][c.label])
        index, field, text = units[best]
        row = probs[best]
        p = row[c.label]
        present = p >= c.threshold
        passed = present if c.expect == "present" else not present
        top = sorted(row.items(), key=lambda kv: -kv[1])[:TOP_LABELS]
        relation = ">=" if present else "<"
        scope = f"message {index}" if len(units) == 1 else \
            f"message {index} (highest of {len(units)})"
        explanation = (f"P({c.label}) = {p:.3f} {relation} {c.threshold} in {scope}; top labels: "
                       + ", ".join(f"{k} {v:.3f}" for k, v in top))
        return Verdict(
            outcome="pass" if passed else "fail",
            score=p if c.expect == "present" else 1.0 - p,
            evidence=[Span(message=index, start=0, end=len(text), text=text[:EVIDENCE_CHARS],
                           field=field)],
            explanation=explanation,
            details={"label": c.label, "probability": p, "threshold": c.threshold,
                     "expect": c.expect, "top_labels": [{"label": k, "p": v} for k, v in top],
                     "message_probabilities": [r[c.label] for r in probs],
                     "backend": self.backend_name},
        )

    def _score(self, texts: list[str]) -> list[dict[str, float]]:
        """The backend's probabilities for distinct texts, checked before anyone relies on them."""
        unique = list(dict.fromkeys(texts))
        if not unique:
            return []
        rows = self.backend.predict_proba(unique)
        if len(rows) != len(unique):
            raise RuntimeError(f"classifier backend returned {len(rows)} rows for "
                               f"{len(unique)} texts")
        label = self.config.label
        for row in rows:
            p = row.get(label)
            if not isinstance(p, int | float) or math.isnan(p) or not 0.0 <= p <= 1.0:
                raise RuntimeError(f"classifier backend gave P({label}) = {p!r}, not in [0, 1]")
        by_text = dict(zip(unique, rows, strict=True))
        return [by_text[t] for t in texts]

    def evaluate_batch(self, transcripts: Sequence[Transcript]) -> list[Result | BaseException]:
        """Score every selected message of the batch in one backend call."""
        units = [select(t, self.config.target, self.spec.scope) for t in transcripts]
        flat = [text for group in units for _, _, text in group]
        probs = self._score(flat)
        results: list[Result | BaseException] = []
        start = 0
        for group in units:
            mine = probs[start : start + len(group)]
            start += len(group)
            results.append(self._verdict(group, mine))
        return results

    def evaluate(self, transcript: Transcript) -> Result:
        [result] = self.evaluate_batch([transcript])
        if isinstance(result, BaseException):
            raise result
        return result


@hookimpl
def register_criterion_kinds(register: Callable[[type[Criterion]], None]) -> None:
    register(Classifier)
