"""A small scikit-learn head on sentence embeddings: train, report, save and load without pickle.

A head is a logistic regression over the embedded model's 384-wide embeddings (or the 256-wide
static embeddings distilled from it, :mod:`harness_local_models.static_embedding`). Training
reports a stratified k-fold cross-validation (accuracy, precision and recall per label) and the
accuracy on a held-out split, then fits the saved head on all records. The saved form is one
``head.json`` (classes, coefficients, intercepts, the embedding model's name and weights sha256,
metrics): plain numbers, nothing executable. Loading validates it and predicts with numpy from the
coefficients, the same sums sklearn's ``predict_proba`` does.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from harness_local_models.embedding import EMBEDDED_MODEL, EmbeddingModelInfo, embed

HEAD_FILE = "head.json"
"""The file a head directory holds."""
HEAD_FORMAT = "harness-embedding-head/1"
"""Format tag written in, and required of, every ``head.json``."""

Embedder = Callable[[list[str]], np.ndarray]


class HeadFileError(ValueError):
    """A head directory is missing, unreadable, malformed or made for another embedding model."""


class LabelMetrics(BaseModel):
    """Cross-validated figures for one label."""

    model_config = ConfigDict(extra="forbid")

    precision: float
    """Of the records predicted as this label, the share that carry it."""
    recall: float
    """Of the records carrying this label, the share predicted as it."""
    support: int
    """Records carrying this label."""


class TrainingReport(BaseModel):
    """How well a head did on the records it was trained from."""

    model_config = ConfigDict(extra="forbid")

    records: int
    """Records trained on."""
    label_counts: dict[str, int]
    """Records per label."""
    folds: int
    """Stratified cross-validation folds."""
    cv_accuracy: float
    """Accuracy of the out-of-fold predictions over all records."""
    per_label: dict[str, LabelMetrics]
    """Cross-validated precision and recall per label."""
    holdout_fraction: float
    """Share of records held out (stratified) for :attr:`holdout_accuracy`."""
    holdout_accuracy: float
    """Accuracy on the held-out split of a head fitted on the rest."""
    holdout_size: int
    """Records in the held-out split."""
    seed: int
    """Seed of the fold and split shuffles."""
    embed_seconds: float
    """Time spent embedding the records."""
    fit_seconds: float
    """Time spent fitting (cross-validation, held-out and final fits)."""

    def summary(self) -> str:
        """A few human-readable lines for a terminal."""
        counts = ", ".join(f"{k}={v}" for k, v in self.label_counts.items())
        lines = [
            f"records: {self.records} ({counts})",
            f"{self.folds}-fold cross-validated accuracy: {self.cv_accuracy:.3f}",
            f"held-out accuracy ({self.holdout_size} records): {self.holdout_accuracy:.3f}",
            f"{'label':<24} {'precision':>9} {'recall':>7} {'support':>8}",
        ]
        for label, m in self.per_label.items():
            lines.append(f"{label:<24} {m.precision:>9.3f} {m.recall:>7.3f} {m.support:>8}")
        return "\n".join(lines)


class HeadFile(BaseModel):
    """The schema of ``head.json``."""

    model_config = ConfigDict(extra="forbid")

    format: str
    """Always :data:`HEAD_FORMAT`."""
    classes: list[str] = Field(min_length=2)
    """Labels, in the column order of the probabilities."""
    coef: list[list[float]]
    """Logistic-regression weights: one row (binary) or one row per class, each as wide as the
    embeddings (384 for MiniLM, 256 static)."""
    intercept: list[float]
    """One intercept per row of :attr:`coef`."""
    embedding_model: str
    """Name of the embedding model the head was trained on."""
    embedding_sha256: str
    """sha256 of that model's weights file."""
    embedding_dim: int
    """Width of its embeddings."""
    training: TrainingReport | None = None
    """The report of the training run, when trained with :func:`train_head`."""


class EmbeddingHead:
    """A fitted logistic-regression head: embeddings in, label probabilities out."""

    def __init__(
        self,
        classes: Sequence[str],
        coef: np.ndarray,
        intercept: np.ndarray,
        embedding: EmbeddingModelInfo = EMBEDDED_MODEL,
        report: TrainingReport | None = None,
        embedder: Embedder | None = None,
    ) -> None:
        self.classes = [str(c) for c in classes]
        self.coef = np.asarray(coef, dtype=np.float64)
        self.intercept = np.asarray(intercept, dtype=np.float64)
        self.embedding = embedding
        self.report = report
        self._embedder = embedder
        self.sklearn_model: Any = None
        """The fitted sklearn estimator, in memory only (after :func:`train_head`)."""
        _check_shapes(self.classes, self.coef, self.intercept, embedding.dim)

    @property
    def labels(self) -> list[str]:
        """The labels this head scores, in column order."""
        return list(self.classes)

    def proba_from_embeddings(self, x: np.ndarray) -> np.ndarray:
        """Probabilities, shape ``(n, len(classes))``, as sklearn's ``predict_proba`` gives them.

        Binary heads (one row of weights) use the logistic function; others use the softmax.
        """
        x = np.asarray(x, dtype=np.float64)
        scores = x @ self.coef.T + self.intercept
        if self.coef.shape[0] == 1:
            positive = 1.0 / (1.0 + np.exp(-scores[:, 0]))
            return np.column_stack([1.0 - positive, positive])
        scores -= scores.max(axis=1, keepdims=True)
        np.exp(scores, out=scores)
        scores /= scores.sum(axis=1, keepdims=True)
        return scores

    def predict_proba(self, texts: list[str], batch_size: int = 64) -> list[dict[str, float]]:
        """One ``{label: probability}`` per text, texts embedded in batches of ``batch_size``."""
        if not texts:
            return []
        if self._embedder is not None:
            x = self._embedder(list(texts))
        else:
            x = embed(list(texts), batch_size=batch_size)
        proba = self.proba_from_embeddings(x)
        return [dict(zip(self.classes, map(float, row), strict=True)) for row in proba]

    def to_file(self) -> HeadFile:
        """The ``head.json`` content of this head."""
        return HeadFile(
            format=HEAD_FORMAT,
            classes=self.classes,
            coef=self.coef.tolist(),
            intercept=self.intercept.tolist(),
            embedding_model=self.embedding.name,
            embedding_sha256=self.embedding.weights_sha256,
            embedding_dim=self.embedding.dim,
            training=self.report,
        )


def _check_shapes(classes: list[str], coef: np.ndarray, intercept: np.ndarray, dim: int) -> None:
    if len(classes) < 2 or len(set(classes)) != len(classes):
        raise HeadFileError(f"a head needs at least two distinct classes, got {classes}")
    rows = 1 if len(classes) == 2 else len(classes)
    if coef.shape != (rows, dim):
        raise HeadFileError(
            f"coef has shape {coef.shape}, expected ({rows}, {dim}) for {len(classes)} classes"
        )
    if intercept.shape != (rows,):
        raise HeadFileError(f"intercept has shape {intercept.shape}, expected ({rows},)")
    if not (np.isfinite(coef).all() and np.isfinite(intercept).all()):
        raise HeadFileError("coef and intercept must be finite numbers")


def _logistic_regression(seed: int, c: float) -> Any:
    from sklearn.linear_model import LogisticRegression

    return LogisticRegression(C=c, max_iter=2000, random_state=seed)


def _label_counts(n_texts: int, y: Any, folds: int) -> Counter[str]:
    """How many records each label has; ``ValueError`` when they cannot be trained on."""
    if n_texts != len(y):
        raise ValueError(f"{n_texts} texts but {len(y)} labels")
    counts = Counter(y.tolist())
    if len(counts) < 2:
        raise ValueError(f"training needs at least two labels, got {sorted(counts)}")
    smallest = min(counts.values())
    if folds < 2 or smallest < folds:
        raise ValueError(
            f"{folds}-fold cross-validation needs at least {max(folds, 2)} records of every "
            f"label; the smallest label has {smallest} ({dict(counts)})"
        )
    return counts


def _cross_validate(x: Any, y: Any, classes: list[str], folds: int, holdout_fraction: float,
                    seed: int, c: float) -> dict[str, Any]:
    """The report's measured fields: cross-validated accuracy and per-label precision and
    recall, and the accuracy on a stratified held-out share."""
    from sklearn.metrics import accuracy_score, precision_recall_fscore_support
    from sklearn.model_selection import StratifiedKFold, cross_val_predict, train_test_split

    cv = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed)
    predicted = cross_val_predict(_logistic_regression(seed, c), x, y, cv=cv)
    precision, recall, _, support = precision_recall_fscore_support(
        y, predicted, labels=classes, zero_division=0
    )
    x_train, x_test, y_train, y_test = train_test_split(
        x, y, test_size=holdout_fraction, stratify=y, random_state=seed
    )
    holdout_model = _logistic_regression(seed, c).fit(x_train, y_train)
    return {
        "cv_accuracy": float(accuracy_score(y, predicted)),
        "per_label": {
            label: LabelMetrics(precision=float(precision[i]), recall=float(recall[i]),
                                support=int(support[i]))
            for i, label in enumerate(classes)
        },
        "holdout_accuracy": float(accuracy_score(y_test, holdout_model.predict(x_test))),
        "holdout_size": len(y_test),
    }


def train_head(
    texts: Sequence[str],
    labels: Sequence[str],
    *,
    folds: int = 5,
    holdout_fraction: float = 0.2,
    seed: int = 0,
    c: float = 4.0,
    batch_size: int = 64,
    embedder: Embedder | None = None,
    embedding: EmbeddingModelInfo = EMBEDDED_MODEL,
) -> tuple[EmbeddingHead, TrainingReport]:
    """Embed ``texts``, cross-validate and hold out, then fit the head on all records.

    :param folds: stratified k-fold splits for the cross-validated report (at most the size of
        the smallest label).
    :param holdout_fraction: stratified share held out for the held-out accuracy.
    :param c: inverse regularisation strength of the logistic regression.
    :param embedder: replaces the embedded model (the static model, tests); default :func:`embed`.
    :param embedding: the identity of the model ``embedder`` embeds with, recorded in the head.
    :raises ValueError: on mismatched lengths, fewer than two labels or too few records per label.
    """
    texts = list(texts)
    y = np.asarray([str(label) for label in labels])
    counts = _label_counts(len(texts), y, folds)

    start = time.perf_counter()
    x = embedder(texts) if embedder is not None else embed(texts, batch_size=batch_size)
    embed_seconds = time.perf_counter() - start

    start = time.perf_counter()
    measured = _cross_validate(x, y, sorted(counts), folds, holdout_fraction, seed, c)
    final = _logistic_regression(seed, c).fit(x, y)
    fit_seconds = time.perf_counter() - start
    report = TrainingReport(
        records=len(texts), label_counts={k: counts[k] for k in sorted(counts)}, folds=folds,
        holdout_fraction=holdout_fraction, seed=seed, embed_seconds=round(embed_seconds, 3),
        fit_seconds=round(fit_seconds, 3), **measured,
    )
    head = EmbeddingHead(
        [str(c_) for c_ in final.classes_],
        final.coef_,
        final.intercept_,
        embedding,
        report,
        embedder,
    )
    head.sklearn_model = final  # kept in memory only, for comparison in tests
    return head, report


def save_head(head: EmbeddingHead, directory: Path | str) -> Path:
    """Write ``head.json`` into ``directory`` (created if needed), atomically; returns its path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    target = directory / HEAD_FILE
    payload = head.to_file().model_dump(mode="json")
    fd, tmp = tempfile.mkstemp(prefix=".head-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as fh:
            json.dump(payload, fh, indent=1, allow_nan=False)
            fh.write("\n")
        os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return target


def _reject_constant(name: str) -> float:
    raise ValueError(f"{name} is not a number")


def load_head(
    directory: Path | str,
    *,
    expected: EmbeddingModelInfo = EMBEDDED_MODEL,
    embedder: Embedder | None = None,
) -> EmbeddingHead:
    """Read and validate ``directory/head.json`` and rebuild the head.

    :param expected: the embedding model this process will embed with; a head trained on
        another one is refused.
    :raises HeadFileError: when the folder or file is missing, not JSON, not a head, has
        inconsistent shapes or was made for another embedding model.
    """
    directory = Path(directory)
    if not directory.exists():
        raise HeadFileError(f"classifier model folder not found: {directory}")
    path = directory if directory.is_file() else directory / HEAD_FILE
    if not path.is_file():
        raise HeadFileError(
            f"classifier head file not found: {path} (train one with "
            "`harness classifier train LABELLED.jsonl -o DIR`)"
        )
    try:
        raw = json.loads(path.read_text(encoding="utf-8"), parse_constant=_reject_constant)
    except (UnicodeDecodeError, ValueError) as exc:
        raise HeadFileError(f"classifier head file {path} is not valid JSON: {exc}") from None
    try:
        data = HeadFile.model_validate(raw)
    except ValidationError as exc:
        raise HeadFileError(f"classifier head file {path} is malformed: {exc}") from None
    if data.format != HEAD_FORMAT:
        raise HeadFileError(f"{path} has format {data.format!r}, expected {HEAD_FORMAT!r}")
    if (data.embedding_model, data.embedding_sha256, data.embedding_dim) != (
        expected.name,
        expected.weights_sha256,
        expected.dim,
    ):
        raise HeadFileError(
            f"{path} was trained on embedding model {data.embedding_model} (weights sha256 "
            f"{data.embedding_sha256}, dim {data.embedding_dim}) but this process embeds with "
            f"{expected.name} (sha256 {expected.weights_sha256}, dim {expected.dim}): retrain it"
        )
    if any(len(row) != data.embedding_dim for row in data.coef):
        widths = sorted({len(row) for row in data.coef})
        raise HeadFileError(
            f"{path}: coef rows have widths {widths}, expected {data.embedding_dim}"
        )
    try:
        return EmbeddingHead(
            data.classes,
            np.asarray(data.coef, dtype=np.float64),
            np.asarray(data.intercept, dtype=np.float64),
            expected,
            data.training,
            embedder,
        )
    except HeadFileError as exc:
        raise HeadFileError(f"{path}: {exc}") from None


__all__ = [
    "HEAD_FILE",
    "EmbeddingHead",
    "HeadFileError",
    "TrainingReport",
    "load_head",
    "save_head",
    "train_head",
]
