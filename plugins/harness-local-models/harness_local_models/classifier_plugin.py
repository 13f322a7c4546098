"""Hook implementations for the classifier: the three backends and ``harness classifier train``.

``harness_local_models.plugin`` re-exports :func:`register_classifier_backends` and
:func:`register_commands`; the plain functions :func:`add_classifier_backends` and
:func:`add_classifier_commands` do the registering, for a plugin module that implements these
hooks itself and wants to add ours.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.hookspecs import hookimpl
from harness_local_models.classifier_backends import FACTORIES, cached, default_head_dir


def add_classifier_backends(register: Callable[..., None]) -> None:
    """Register ``embedding``, ``sklearn`` and ``transformers`` (each loaded once per process)."""
    for name in FACTORIES:
        register(name, cached(name))


def _text_of(record: dict[str, Any]) -> str | None:
    """``text``, else the last assistant message of a transcript record."""
    if isinstance(record.get("text"), str):
        return record["text"]
    messages = record.get("messages")
    if isinstance(messages, list):
        for message in reversed(messages):
            if isinstance(message, dict) and message.get("role") == "assistant":
                content = message.get("content")
                return content if isinstance(content, str) else None
    return None


def read_labelled(path: Path) -> Iterator[tuple[str, str]]:
    """``(text, label)`` pairs from JSONL records ``{"text", "label"}``, or transcripts
    (``{"messages": [...]}``, scored on the last assistant message) with ``label`` or
    ``metadata.label``.

    :raises UsageError: naming ``file:line`` for the first unreadable record.
    """
    try:
        fh = path.open(encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot read labelled examples {path}: {exc.strerror}") from None
    with fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            where = f"{path}:{number}"
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise UsageError(f"{where}: not valid JSON: {exc}") from None
            if not isinstance(record, dict):
                raise UsageError(f"{where}: expected an object with text and label")
            label = record.get("label")
            if label is None and isinstance(record.get("metadata"), dict):
                label = record["metadata"].get("label")
            text = _text_of(record)
            if text is None:
                raise UsageError(f"{where}: no text (give `text`, or `messages` with an "
                                 "assistant turn)")
            if not isinstance(label, str | int) or isinstance(label, bool) or label == "":
                raise UsageError(f"{where}: missing or invalid `label` (a string)")
            yield text, str(label)


def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("labelled", metavar="LABELLED.jsonl",
                   help='records {"text": ..., "label": ...} (or transcripts with a label)')
    p.add_argument("-o", "--out", metavar="MODEL_DIR",
                   help=f"folder for head.json (default: the default head, {default_head_dir()})")
    p.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    p.add_argument("--holdout", type=float, default=0.2,
                   help="share held out for the held-out accuracy (default 0.2)")
    p.add_argument("--seed", type=int, default=0, help="seed of the splits (default 0)")
    p.add_argument("--c", type=float, default=4.0,
                   help="inverse regularisation of the logistic regression (default 4)")
    p.add_argument("--batch-size", type=int, default=64, help="embedding batch size")
    p.add_argument("--json", action="store_true", help="print the report as JSON")


def _add_arguments(p: argparse.ArgumentParser) -> None:
    sub = p.add_subparsers(dest="classifier_command", metavar="ACTION", required=True)
    train = sub.add_parser(
        "train", help="train an embedding head from labelled texts",
        description="Train a logistic-regression head on all-MiniLM-L6-v2 embeddings; print "
                    "cross-validated accuracy, precision and recall per label; save head.json.")
    _add_train_arguments(train)


def train_command(args: argparse.Namespace) -> int:
    """``harness classifier train``: read, train, report, save."""
    from harness_local_models.head import save_head, train_head

    path = Path(args.labelled)
    if not path.is_file():
        raise UsageError(f"labelled examples not found: {path}")
    if not 0.0 < args.holdout < 1.0:
        raise UsageError(f"--holdout must be between 0 and 1, got {args.holdout}")
    pairs = list(read_labelled(path))
    if not pairs:
        raise UsageError(f"{path}: no labelled records")
    texts, labels = zip(*pairs, strict=True)
    try:
        head, report = train_head(list(texts), list(labels), folds=args.folds,
                                  holdout_fraction=args.holdout, seed=args.seed, c=args.c,
                                  batch_size=args.batch_size)
    except ValueError as exc:
        raise UsageError(f"{path}: {exc}") from None
    out = Path(args.out) if args.out else default_head_dir()
    saved = save_head(head, out)
    if args.json:
        print(json.dumps({"head": str(saved), **report.model_dump()}, indent=1))
    else:
        print(report.summary())
        print(f"embedding {report.embed_seconds:.1f}s, fitting {report.fit_seconds:.1f}s")
        print(f"saved: {saved}")
    sys.stdout.flush()
    return 0


def add_classifier_commands(register: Callable[..., None]) -> None:
    """Register ``harness classifier`` (action ``train``)."""
    register("classifier", _add_arguments, _run, help="train classifier heads for criteria")


def _run(args: argparse.Namespace) -> int:
    if args.classifier_command == "train":
        return train_command(args)
    raise UsageError(f"unknown classifier action {args.classifier_command!r}")


@hookimpl
def register_classifier_backends(register: Callable[..., None]) -> None:
    add_classifier_backends(register)


@hookimpl
def register_commands(register: Callable[..., None]) -> None:
    add_classifier_commands(register)
