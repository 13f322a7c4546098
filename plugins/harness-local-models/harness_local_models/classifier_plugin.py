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
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.hookspecs import hookimpl
from harness_local_models.classifier_backends import (
    EMBEDDED,
    FACTORIES,
    STATIC,
    cached,
    default_dir,
)

TRAIN_BACKENDS = (EMBEDDED, STATIC)
"""Backends ``harness classifier train`` makes heads for."""
RUN_LABELS = ("fail", "pass")
"""The labels of a head trained on a run's verdicts (``--from-run``)."""


def add_classifier_backends(register: Callable[..., None]) -> None:
    """Register ``embedding``, ``static``, ``sklearn`` and ``transformers`` (each loaded once per
    process)."""
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


def _message_text(transcript: dict[str, Any], index: int | None) -> str | None:
    """The text a run's verdict judged: the assistant message ``index`` (message scope), else
    the transcript's last assistant message."""
    if index is None:
        return _text_of(transcript)
    messages = transcript.get("messages")
    if isinstance(messages, list) and 0 <= index < len(messages):
        content = messages[index].get("content") if isinstance(messages[index], dict) else None
        return content if isinstance(content, str) else None
    return None


def read_run_verdicts(run_dir: Path, criterion: str) -> tuple[list[tuple[str, str]], Counter[str]]:
    """``(text, "pass" | "fail")`` pairs from a finished run's verdicts of ``criterion``, the
    transcripts read again from the run's inputs; and the counts of what was left out
    (``error``, ``skipped``, ``no text``).

    :raises UsageError: when ``run_dir`` is not a finished run or its suite has no such
        criterion.
    """
    from harness.rundir import RunDirError, check_complete, iter_journal

    try:
        meta = check_complete(run_dir)
    except RunDirError as exc:
        raise UsageError(f"--from-run: {exc}") from None
    names = [c.get("name") for c in meta.get("suite", {}).get("criteria", [])]
    if criterion not in names:
        raise UsageError(f"--criterion {criterion!r}: the run's suite has no criterion of that "
                         f"name (criteria: {', '.join(map(str, names)) or 'none'})")
    pairs: list[tuple[str, str]] = []
    left_out: Counter[str] = Counter()
    try:
        for entry in iter_journal(run_dir):
            transcript = entry["transcript"]
            for verdict in entry["decision"].get("verdicts") or ():
                if verdict.get("criterion") != criterion:
                    continue
                outcome = verdict.get("outcome")
                if outcome not in RUN_LABELS:
                    left_out[str(outcome)] += 1
                    continue
                text = _message_text(transcript, verdict.get("message_index")) \
                    if isinstance(transcript, dict) else None
                if not text:
                    left_out["no text"] += 1
                    continue
                pairs.append((text, outcome))
    except RunDirError as exc:
        raise UsageError(f"--from-run: {exc}") from None
    return pairs, left_out


def _add_train_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("labelled", metavar="LABELLED.jsonl", nargs="?",
                   help='records {"text": ..., "label": ...} (or transcripts with a label); '
                        "or give --from-run and --criterion instead")
    p.add_argument("--backend", choices=TRAIN_BACKENDS, default=EMBEDDED,
                   help="embedding: a head on all-MiniLM-L6-v2 (default); static: a head on "
                        "static embeddings distilled from it, about 100 times faster")
    p.add_argument("--from-run", metavar="RUN_DIR", type=Path,
                   help="train on a finished run's own verdicts of --criterion (labels pass "
                        "and fail), its transcripts read again from the run's inputs")
    p.add_argument("--criterion", metavar="NAME",
                   help="with --from-run: the criterion (a judge) whose verdicts are the labels")
    p.add_argument("-o", "--out", metavar="MODEL_DIR",
                   help=f"folder for head.json (default: the backend's default head, "
                        f"{default_dir(EMBEDDED)} or {default_dir(STATIC)})")
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
        description="Train a logistic-regression head on all-MiniLM-L6-v2 embeddings (or, with "
                    "--backend static, on static embeddings distilled from it) from labelled "
                    "texts or from a run's verdicts of a judge; print cross-validated "
                    "accuracy, precision and recall per label; save head.json.")
    _add_train_arguments(train)


def _training_pairs(args: argparse.Namespace) -> tuple[list[tuple[str, str]], str]:
    """The ``(text, label)`` pairs to train on, and where they came from (for messages)."""
    if args.from_run is not None:
        if args.labelled is not None:
            raise UsageError("give either LABELLED.jsonl or --from-run, not both")
        if not args.criterion:
            raise UsageError("--from-run needs --criterion NAME (the judge whose verdicts "
                             "become the labels)")
        pairs, left_out = read_run_verdicts(args.from_run, args.criterion)
        where = f"{args.from_run} ({args.criterion})"
        if left_out:
            print("left out: " + ", ".join(f"{n} {k}" for k, n in sorted(left_out.items())),
                  file=sys.stderr)
        if not pairs:
            raise UsageError(f"{where}: no pass or fail verdicts to train on")
        return pairs, where
    if args.criterion:
        raise UsageError("--criterion goes with --from-run")
    if args.labelled is None:
        raise UsageError("give LABELLED.jsonl, or --from-run RUN_DIR --criterion NAME")
    path = Path(args.labelled)
    if not path.is_file():
        raise UsageError(f"labelled examples not found: {path}")
    pairs = list(read_labelled(path))
    if not pairs:
        raise UsageError(f"{path}: no labelled records")
    return pairs, str(path)


def train_command(args: argparse.Namespace) -> int:
    """``harness classifier train``: read, train, report, save."""
    from harness_local_models.head import save_head, train_head

    if not 0.0 < args.holdout < 1.0:
        raise UsageError(f"--holdout must be between 0 and 1, got {args.holdout}")
    pairs, where = _training_pairs(args)
    texts, labels = zip(*pairs, strict=True)
    static: Path | None = None
    kwargs: dict[str, Any] = {}
    if args.backend == STATIC:
        from harness_local_models.static_embedding import (
            ensure_static_model,
            static_embedder,
            static_info,
        )

        try:
            static = ensure_static_model()
            kwargs = {"embedder": static_embedder(static), "embedding": static_info(static)}
        except RuntimeError as exc:
            raise UsageError(f"static model: {exc}") from None
    try:
        head, report = train_head(list(texts), list(labels), folds=args.folds,
                                  holdout_fraction=args.holdout, seed=args.seed, c=args.c,
                                  batch_size=args.batch_size, **kwargs)
    except ValueError as exc:
        raise UsageError(f"{where}: {exc}") from None
    out = Path(args.out) if args.out else default_dir(args.backend)
    if static is not None:
        from harness_local_models.static_embedding import copy_static_model

        copy_static_model(static, out)
    saved = save_head(head, out)
    if args.json:
        print(json.dumps({"head": str(saved), "backend": args.backend, **report.model_dump()},
                         indent=1))
    else:
        print(report.summary())
        print(f"embedding {report.embed_seconds:.1f}s, fitting {report.fit_seconds:.1f}s")
        print(f"saved: {saved}" + (f" (backend: {STATIC}, model in {out / 'static'})"
                                   if static is not None else ""))
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
