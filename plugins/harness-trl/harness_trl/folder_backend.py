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
from pathlib import Path
from typing import Any

from harness_local_models.judge_backend import LocalJudgeBackend

PREFIX = "hf"
KEEP_LOADED = 2
_loaded: dict[tuple[Path, str], Any] = {}
"""The last :data:`KEEP_LOADED` models loaded in this process, by folder and weights."""


def weights_sha256(folder: Path) -> str:
    """SHA-256 over the folder's safetensors files, in name order."""
    digest = hashlib.sha256()
    for f in sorted(folder.glob("*.safetensors")):
        with f.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):  # noqa: B023
                digest.update(block)
    return digest.hexdigest()


def load_chat_model(folder: str | Path, sha: str | None = None) -> Any:
    """The model in ``folder`` as a :class:`~harness_local_models.chat_model.LocalChatModel`
    (``generate`` with token log-probabilities), loaded once per process per weights."""
    from harness_local_models.chat_model import LocalChatModel
    from harness_trl.model_dirs import load_model, resolve_model

    path = resolve_model(folder)
    sha = sha or weights_sha256(path)
    key = (path.resolve(), sha)
    if key not in _loaded:
        while len(_loaded) >= KEEP_LOADED:
            _loaded.pop(next(iter(_loaded)))
        model, tokenizer, _ = load_model(path)
        _loaded[key] = LocalChatModel(model, tokenizer, cache_dir=path, from_cache=True, sha=sha)
    return _loaded[key]


class FolderModelBackend(LocalJudgeBackend):
    """A causal LM from a model folder, in this process, on the CPU."""

    def __init__(self, folder: Path) -> None:
        super().__init__()
        self.folder = folder
        self.name = f"{PREFIX}/{folder}"
        self._sha: str | None = None

    def _get(self) -> Any:
        if self._model is None:
            self._model = load_chat_model(self.folder, self._weights_sha())
        return self._model

    def _weights_sha(self) -> str:
        if self._sha is None:
            self._sha = weights_sha256(self.folder)
        return self._sha

    def identity(self) -> dict[str, Any]:
        return {"name": self.name, "weights_sha256": self._weights_sha()}


def make_folder_backend(model: str, options: dict[str, Any]) -> FolderModelBackend:
    """``hf/FOLDER``: a Hugging Face model folder (``config.json``, safetensors) on disk."""
    from harness_trl.model_dirs import resolve_model

    if options:
        raise ValueError(f"hf/{model} takes no options, got: {', '.join(sorted(options))}")
    return FolderModelBackend(resolve_model(model))
