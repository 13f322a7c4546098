"""The ``hf/FOLDER`` model backend: a model folder on disk as a generator, supervisor or judge.

``harness correct RUN -o OUT --generator hf/models/wrongthinker`` lets a model that
``harness train`` or ``harness wrongthink`` wrote continue the corrections. It generates as the
embedded ``local/smollm2`` does (the same code, with token log-probabilities), from the
folder's weights; the folder is read from disk, never downloaded. Its identity, and so the
judge cache's key, includes a hash of the weights: retrained weights are never answered from
an older model's cache.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path
from typing import Any

from harness_local_models.judge_backend import LocalJudgeBackend

PREFIX = "hf"
KEEP_LOADED = 2
_loaded: dict[tuple[tuple[str, int, int], ...], Any] = {}
"""The last :data:`KEEP_LOADED` models loaded in this process, by folder and weights."""


def _weight_files(folder: Path) -> tuple[tuple[str, int, int], ...]:
    """The safetensors files with their sizes and modification times: what identifies the
    weights cheaply."""
    return tuple((str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns)
                 for f in sorted(folder.glob("*.safetensors")))


@lru_cache(maxsize=32)
def _sha256(files: tuple[tuple[str, int, int], ...]) -> str:
    digest = hashlib.sha256()
    for name, _, _ in files:
        with open(name, "rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):  # noqa: B023
                digest.update(block)
    return digest.hexdigest()


def weights_sha256(folder: Path) -> str:
    """SHA-256 over the folder's safetensors files, in name order (memoised per process on
    their paths, sizes and modification times)."""
    return _sha256(_weight_files(folder))


def load_chat_model(folder: str | Path) -> Any:
    """The model in ``folder`` as a :class:`~harness_local_models.chat_model.LocalChatModel`
    (``generate`` with token log-probabilities), loaded once per process per weights."""
    import torch

    from harness_local_models.chat_model import LocalChatModel
    from harness_trl.model_dirs import load_model, resolve_model, torch_threads

    torch.set_num_threads(torch_threads())  # as the embedded model's loading does
    path = resolve_model(folder)
    key = _weight_files(path)
    if key not in _loaded:
        while len(_loaded) >= KEEP_LOADED:
            _loaded.pop(next(iter(_loaded)))
        model, tokenizer, _ = load_model(path)
        _loaded[key] = LocalChatModel(model, tokenizer, cache_dir=path, from_cache=True,
                                      sha="")  # the hash is computed when a cache needs it
    return _loaded[key]


def forget_chat_models() -> None:
    """Let go of the models :func:`load_chat_model` keeps (before training, say)."""
    import gc

    _loaded.clear()
    gc.collect()


class FolderModelBackend(LocalJudgeBackend):
    """A causal LM from a model folder, in this process, on the CPU."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder
        self.name = f"{PREFIX}/{folder}"

    def _get(self) -> Any:
        if self._model is None:
            self._model = load_chat_model(self.folder)
        return self._model

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "weights_sha256": weights_sha256(self.folder)}


def make_folder_backend(model: str, options: dict[str, Any]) -> FolderModelBackend:
    """``hf/FOLDER``: a Hugging Face model folder (``config.json``, safetensors) on disk."""
    from harness_trl.model_dirs import resolve_model

    if options:
        raise ValueError(f"hf/{model} takes no options, got: {', '.join(sorted(options))}")
    return FolderModelBackend(resolve_model(model))
