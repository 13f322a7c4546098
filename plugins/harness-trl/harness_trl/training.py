"""``harness train``: fine-tune a model on a run's training set, and save it as a model folder.

``objective="sft"``: TRL's ``SFTTrainer`` on the chat examples; each assistant turn's
``weight`` is its loss mask (0: context only, its tokens never a target; any other weight:
trained). ``objective="distill"``: the distill rows, towards the teacher's renormalised top-k
(:mod:`harness_trl.distill`). ``steps=0`` saves the base unchanged (a control). The folder gets
``harness-train.json``: what was trained, on what, and how long each step took.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

from harness.errors import UsageError
from harness_trl.model_dirs import load_model, stop_token_ids, torch_threads

Objective = Literal["sft", "distill"]
RECORD = "harness-train.json"
"""What :func:`train` writes into the model folder about itself."""


@dataclass
class TrainResult:
    """What a training run did."""

    out: str
    base: str
    objective: str
    steps: int
    examples: int
    """Examples (chat transcripts, or distill rows) in the training set."""
    learning_rate: float
    batch_size: int
    losses: list[float] = field(default_factory=list)
    """The loss of each step."""
    seconds_per_step: list[float] = field(default_factory=list)
    tokens_per_step: list[int] = field(default_factory=list)
    peak_rss_mb: float = 0.0
    """Peak resident memory from loading the model to saving it (on Linux; elsewhere the
    process's peak)."""
    threads: int = 0
    distill: dict[str, int] = field(default_factory=dict)
    """For ``distill``: rows, soft and hard target positions, unaligned rows."""

    @property
    def tokens_per_s(self) -> float:
        seconds = sum(self.seconds_per_step)
        return sum(self.tokens_per_step) / seconds if seconds else 0.0


@contextmanager
def _threads(n: int):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def train(
    source: str | Path | list[Any],
    out: str | Path,
    *,
    base: str | Path | None = None,
    steps: int = 20,
    objective: Objective = "sft",
    learning_rate: float = 5e-5,
    batch_size: int = 4,
    max_length: int = 1024,
    seed: int = 0,
    overwrite: bool = False,
    log: Callable[[str], None] | bool = True,
) -> TrainResult:
    """Fine-tune ``base`` (default: the embedded SmolLM2) for ``steps`` optimiser steps and
    save it to ``out``.

    ``source`` is a run directory, an exported file (chat JSONL for ``sft``; distill JSONL or
    Parquet for ``distill``), or the examples themselves (lists of messages; distill rows).
    ``log`` gets the progress lines (``True``: printed as they come; ``False``: silent).

    :raises UsageError: a missing model or source, a source without a training set, an
        existing ``out`` (without ``overwrite``), a bad option.
    """
    from harness_trl.progress import peak_rss_mb, reset_peak_rss

    say = _say if log is True else log or None
    if objective not in ("sft", "distill"):
        raise UsageError(f"--objective must be sft or distill, got {objective!r}")
    if steps < 0 or batch_size < 1 or learning_rate <= 0:
        raise UsageError("--steps must be >= 0, --batch-size >= 1, --learning-rate > 0")
    out = Path(out)
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} exists; choose another -o or pass --overwrite")
    data = _load_source(source, objective)
    reset_peak_rss()
    model, tokenizer, base_dir = load_model(base)
    result = TrainResult(out=str(out), base=str(base_dir), objective=objective, steps=steps,
                         examples=len(data), learning_rate=learning_rate, batch_size=batch_size,
                         threads=torch_threads())
    if say:
        say(f"{objective}: {len(data)} examples, {steps} steps of {batch_size} "
            f"from {base_dir.name} ({result.threads} threads)")
    if steps:
        with _threads(result.threads), tempfile.TemporaryDirectory(prefix="harness-train-") as tmp:
            meter = _run_trainer(model, tokenizer, data, objective, result, Path(tmp),
                                 max_length=max_length, seed=seed, log=say)
        result.losses, result.seconds_per_step = meter.losses, meter.seconds
        result.tokens_per_step = meter.step_tokens
    result.peak_rss_mb = round(peak_rss_mb(), 1)
    _save(model, tokenizer, out, result)
    if say:
        how = (f"{result.tokens_per_s:,.0f} tokens/s, {sum(result.seconds_per_step):.0f} s, "
               f"peak RSS {result.peak_rss_mb:,.0f} MB" if steps else "the base, unchanged")
        say(f"saved {out} ({how})")
    return result


def _say(line: str) -> None:
    print(line, flush=True)


def _load_source(source: str | Path | list[Any], objective: Objective) -> list[Any]:
    from harness_trl.training_set import chat_examples, distill_rows

    if isinstance(source, list):
        if not source:
            raise UsageError("no training examples given; nothing to train on")
        return source
    return chat_examples(source) if objective == "sft" else distill_rows(source)


def _run_trainer(model: Any, tokenizer: Any, data: list[Any], objective: Objective,
                 result: TrainResult, tmp: Path, *, max_length: int, seed: int,
                 log: Callable[[str], None] | None) -> Any:
    from transformers import PrinterCallback

    from harness_trl.progress import ProgressCallback, StepMeter

    meter = StepMeter(total=result.steps, log=log)
    trainer, stats = build_trainer(objective, model, tokenizer, data, steps=result.steps,
                                   batch_size=result.batch_size,
                                   learning_rate=result.learning_rate, max_length=max_length,
                                   seed=seed, output_dir=tmp)
    result.distill = stats
    if stats and log:
        log(f"targets: {stats['soft_positions']} tokens towards the teacher's top-k, "
            f"{stats['hard_positions']} one-hot (no distribution); "
            f"{stats['rows_unaligned']} of {stats['rows']} rows unaligned")
    trainer.meter = meter
    trainer.remove_callback(PrinterCallback)  # our progress lines instead of its dicts
    trainer.add_callback(ProgressCallback(meter))
    model.train()
    trainer.train()
    model.eval()
    return meter


def build_trainer(objective: Objective, model: Any, tokenizer: Any, data: list[Any], *,
                  steps: int, batch_size: int, learning_rate: float, max_length: int,
                  seed: int, output_dir: Path) -> tuple[Any, dict[str, int]]:
    """The trainer :func:`train` runs (nothing is written to ``output_dir``), and for
    ``distill`` the counts of :class:`~harness_trl.distill.DistillStats`."""
    import datasets

    datasets.disable_progress_bars()
    arguments = dict(output_dir=str(output_dir), max_steps=steps,
                     per_device_train_batch_size=min(batch_size, len(data)),
                     learning_rate=learning_rate, lr_scheduler_type="constant",
                     logging_steps=max(1, steps), save_strategy="no", report_to="none",
                     disable_tqdm=True, use_cpu=True, bf16=False, seed=seed, data_seed=seed,
                     dataloader_num_workers=0, activation_checkpointing=False)
    if objective == "sft":
        return _sft_trainer(model, tokenizer, data, arguments, max_length), {}
    return _distill_trainer(model, tokenizer, data, arguments, max_length)


def _sft_trainer(model: Any, tokenizer: Any, examples: list[list[dict[str, Any]]],
                 arguments: dict[str, Any], max_length: int) -> Any:
    from datasets import Dataset
    from trl import SFTConfig

    from harness_trl.chat_tokens import IGNORE, encode_chat
    from harness_trl.trainers import MaskedSFTTrainer

    stops = stop_token_ids(model, tokenizer)
    rows = []
    for messages in examples:
        encoded = encode_chat(tokenizer, messages, stops)
        if any(label != IGNORE for label in encoded.labels[:max_length]):
            rows.append({"input_ids": encoded.input_ids, "labels": encoded.labels})
    if not rows:
        raise UsageError("no example has a trained assistant turn within --max-length tokens; "
                         "nothing to train on")
    config = SFTConfig(**arguments, max_length=max_length, dataset_num_proc=None)
    return MaskedSFTTrainer(model=model, args=config, train_dataset=Dataset.from_list(rows),
                            processing_class=tokenizer)


def _distill_trainer(model: Any, tokenizer: Any, rows: list[dict[str, Any]],
                     arguments: dict[str, Any], max_length: int) -> tuple[Any, dict[str, int]]:
    from transformers import TrainingArguments

    from harness_trl.distill import build_examples, collate
    from harness_trl.trainers import DistillTrainer

    stats = build_examples(tokenizer, rows, tokenizer.eos_token_id)
    examples = [e for e in stats.examples if len(e.input_ids) <= max_length]
    if not examples:
        raise UsageError("every distill row is longer than --max-length tokens; nothing to "
                         "train on")
    counts = {k: v for k, v in asdict(stats).items() if k != "examples"}
    args = TrainingArguments(**arguments, remove_unused_columns=False)
    trainer = DistillTrainer(model=model, args=args, train_dataset=examples,
                             data_collator=lambda batch: collate(batch, tokenizer.pad_token_id))
    return trainer, counts


def _save(model: Any, tokenizer: Any, out: Path, result: TrainResult) -> None:
    """Write the model folder next to ``out`` and rename it into place."""
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        model.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        record = {**asdict(result), "tokens_per_s": round(result.tokens_per_s, 1)}
        (tmp / RECORD).write_text(json.dumps(record, indent=1))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
