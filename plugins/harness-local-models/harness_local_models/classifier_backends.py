"""Classifier backends for the ``classifier`` criterion: embedding head, sklearn, transformers.

Each backend is built by a factory ``factory(model, options)`` and offers ``labels`` and
``predict_proba(texts) -> list[dict[label, probability]]`` (see
``harness.hookspecs.register_classifier_backends``). Built backends are cached, so a model is
loaded once per process however many criteria or suites use it.

Model files are untrusted input. None of these backends unpickles a file the user did not pin:

* ``embedding``: a ``head.json`` (numbers only), on the pinned all-MiniLM-L6-v2;
* ``static``: a ``head.json`` on static embeddings distilled from that model, whose files
  (safetensors rows, tokenizer, config) sit in the head's ``static/`` folder, pinned by digest;
* ``sklearn``: a ``.skops`` file, loaded with skops' default trusted types plus the types the
  suite lists in ``trusted_types``; a pickle/joblib file only when the suite pins its ``sha256``;
* ``transformers``: a local folder with ``safetensors`` weights, no remote code, no hub access.
  Every weight of the model must come from the folder: an empty or truncated weights file,
  missing weights (which transformers would fill with random numbers) or weights the model
  has no place for are refused at load.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

import numpy as np

from harness_local_models.head import HEAD_FILE, EmbeddingHead, load_head

DEFAULT_HEAD_ENV = "HARNESS_CLASSIFIER_HEAD"
"""Environment variable naming the folder of the default head (``model: embedding``)."""
DEFAULT_STATIC_HEAD_ENV = "HARNESS_CLASSIFIER_STATIC_HEAD"
"""Environment variable naming the folder of the default static head (``model: static``)."""
EMBEDDED = "embedding"
"""The ``model`` value that means the default head on the embedded model."""
STATIC = "static"
"""The ``model`` value that means the default head on the static embeddings."""
SKOPS_FILE = "pipeline.skops"
"""The file name the ``sklearn`` backend looks for in a model folder."""
PICKLE_SUFFIXES = (".pkl", ".pickle", ".joblib")
"""Pickle-based files, loaded only when their sha256 is pinned."""
KEYS_SHOWN = 8
"""Weight names listed in an error about missing or unexpected weights."""


class ClassifierModelError(ValueError):
    """A classifier model is missing, unreadable, unsafe to load or not what the suite says."""


def default_head_dir() -> Path:
    """Where ``model: embedding`` looks for its head: ``$HARNESS_CLASSIFIER_HEAD``, else
    ``$XDG_CACHE_HOME/harness/classifier-head`` (``~/.cache/harness/classifier-head``)."""
    explicit = os.environ.get(DEFAULT_HEAD_ENV)
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "harness" / "classifier-head"


def default_static_head_dir() -> Path:
    """Where ``model: static`` looks for its head: ``$HARNESS_CLASSIFIER_STATIC_HEAD``, else
    ``$XDG_CACHE_HOME/harness/classifier-head-static``."""
    explicit = os.environ.get(DEFAULT_STATIC_HEAD_ENV)
    if explicit:
        return Path(explicit).expanduser()
    cache = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(cache) / "harness" / "classifier-head-static"


def default_dir(backend: str) -> Path:
    """The default head folder of ``backend`` (``embedding`` or ``static``)."""
    return default_static_head_dir() if backend == STATIC else default_head_dir()


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _batched(
    texts: list[str], batch_size: int, run: Callable[[list[str]], list[dict[str, float]]]
) -> list[dict[str, float]]:
    out: list[dict[str, float]] = []
    for start in range(0, len(texts), batch_size):
        out.extend(run(texts[start : start + batch_size]))
    return out


class EmbeddingBackend:
    """A logistic-regression head on all-MiniLM-L6-v2 embeddings."""

    def __init__(self, head: EmbeddingHead, source: Path, batch_size: int = 64) -> None:
        self.head = head
        self.source = source
        self.batch_size = batch_size
        self.labels = head.labels

    def predict_proba(self, texts: list[str]) -> list[dict[str, float]]:
        return self.head.predict_proba(list(texts), batch_size=self.batch_size)

    def identity(self) -> dict[str, Any]:
        return {"backend": EMBEDDED, "head": str(self.source)}


def make_embedding_backend(model: str, options: dict[str, Any]) -> EmbeddingBackend:
    """``model``: ``embedding`` (the default head) or a folder holding ``head.json``."""
    if model == EMBEDDED:
        folder = default_head_dir()
        if not (folder / HEAD_FILE).is_file():
            raise ClassifierModelError(
                f"the default classifier head is not trained yet (looked in {folder}): run "
                "`harness classifier train examples/classifier/labelled.jsonl` (make demo does), "
                f"or set {DEFAULT_HEAD_ENV} to a folder made by `harness classifier train`"
            )
    else:
        folder = Path(model)
    try:
        head = load_head(folder)
    except ValueError as exc:
        raise ClassifierModelError(str(exc)) from None
    return EmbeddingBackend(head, folder, int(options.get("batch_size") or 64))


class StaticBackend:
    """A logistic-regression head on static embeddings distilled from all-MiniLM-L6-v2."""

    def __init__(self, head: EmbeddingHead, source: Path, batch_size: int = 1024) -> None:
        self.head = head
        self.source = source
        self.batch_size = batch_size
        self.labels = head.labels

    def predict_proba(self, texts: list[str]) -> list[dict[str, float]]:
        return self.head.predict_proba(list(texts))

    def identity(self) -> dict[str, Any]:
        return {"backend": STATIC, "head": str(self.source)}


def make_static_backend(model: str, options: dict[str, Any]) -> StaticBackend:
    """``model``: ``static`` (the default static head) or a folder holding ``head.json`` and
    ``static/`` (made by ``harness classifier train --backend static``)."""
    from harness_local_models.static_embedding import (
        STATIC_DIR,
        StaticModelError,
        load_static_model,
        static_embedder,
        static_info,
    )

    folder = default_static_head_dir() if model == STATIC else Path(model)
    if model == STATIC and not (folder / HEAD_FILE).is_file():
        raise ClassifierModelError(
            f"the default static classifier head is not trained yet (looked in {folder}): run "
            "`harness classifier train examples/classifier/labelled.jsonl --backend static`, "
            f"or set {DEFAULT_STATIC_HEAD_ENV} to a folder made by it"
        )
    if not folder.exists():
        raise ClassifierModelError(f"classifier model folder not found: {folder}")
    static_dir = folder / STATIC_DIR
    if not static_dir.is_dir():
        raise ClassifierModelError(
            f"{folder} has no {STATIC_DIR}/ folder: not a static head (train one with "
            "`harness classifier train LABELLED.jsonl --backend static -o DIR`)"
        )
    try:
        info = static_info(static_dir)
        batch_size = max(int(options.get("batch_size") or 1024), 1)
        model = load_static_model(static_dir, info.weights_sha256)  # hashed once, here
        head = load_head(folder, expected=info,
                         embedder=static_embedder(static_dir, batch_size, model))
    except (ValueError, StaticModelError) as exc:
        raise ClassifierModelError(str(exc)) from None
    return StaticBackend(head, folder, batch_size)


class SklearnBackend:
    """A fitted scikit-learn pipeline that takes raw texts and has ``predict_proba``."""

    def __init__(self, pipeline: Any, source: Path, batch_size: int = 256) -> None:
        if not hasattr(pipeline, "predict_proba") or not hasattr(pipeline, "classes_"):
            raise ClassifierModelError(
                f"{source}: {type(pipeline).__name__} has no predict_proba/classes_; save a "
                "fitted classifier pipeline that takes raw texts"
            )
        self.pipeline = pipeline
        self.source = source
        self.batch_size = batch_size
        self.labels = [str(c) for c in pipeline.classes_]

    def _run(self, texts: list[str]) -> list[dict[str, float]]:
        proba = np.asarray(self.pipeline.predict_proba(texts), dtype=np.float64)
        return [dict(zip(self.labels, map(float, row), strict=True)) for row in proba]

    def predict_proba(self, texts: list[str]) -> list[dict[str, float]]:
        return _batched(list(texts), self.batch_size, self._run)

    def identity(self) -> dict[str, Any]:
        return {"backend": "sklearn", "file": str(self.source)}


def _sklearn_file(model: Path) -> Path:
    if model.is_file():
        return model
    if not model.is_dir():
        raise ClassifierModelError(f"classifier model not found: {model}")
    candidates = [model / SKOPS_FILE] + sorted(
        p for p in model.iterdir() if p.suffix in (".skops", *PICKLE_SUFFIXES)
    )
    for path in candidates:
        if path.is_file():
            return path
    raise ClassifierModelError(
        f"no scikit-learn model in {model}: expected {SKOPS_FILE} (skops.io.dump) or a "
        ".joblib/.pkl file with its sha256 pinned in the suite"
    )


def make_sklearn_backend(model: str, options: dict[str, Any]) -> SklearnBackend:
    """``model``: a ``.skops`` file (or a folder with ``pipeline.skops``), or a pickle/joblib
    file whose sha256 the suite pins (``sha256:``)."""
    path = _sklearn_file(Path(model))
    pinned = options.get("sha256")
    if pinned:
        actual = _sha256(path)
        if actual != str(pinned).lower():
            raise ClassifierModelError(
                f"{path} has sha256 {actual}, but the suite pins {pinned}: refusing to load it"
            )
    if path.suffix in PICKLE_SUFFIXES:
        if not pinned:
            raise ClassifierModelError(
                f"refusing to unpickle {path}: pickle files run code when loaded. Save the "
                "pipeline with skops (skops.io.dump) or pin the file's sha256 in the suite "
                f"(sha256: {_sha256(path)}) if you made it yourself"
            )
        import joblib

        pipeline = joblib.load(path)  # sha256 pinned by the user above
    else:
        import skops.io as sio

        trusted = [str(t) for t in options.get("trusted_types") or []]
        try:
            untrusted = [t for t in sio.get_untrusted_types(file=path) if t not in trusted]
        except Exception as exc:
            raise ClassifierModelError(f"{path} is not a readable skops file: {exc}") from None
        if untrusted and not pinned:
            raise ClassifierModelError(
                f"{path} contains types skops does not trust by default: {untrusted}. List "
                "them under `trusted_types` in the suite if you trust them (or pin the file's "
                "sha256)"
            )
        try:
            # with a pinned sha256 the user vouches for the file, whatever types it holds
            allowed = trusted + untrusted if pinned else trusted
            pipeline = sio.load(path, trusted=allowed or None)
        except Exception as exc:
            raise ClassifierModelError(f"{path} could not be loaded: {exc}") from None
    return SklearnBackend(pipeline, path, int(options.get("batch_size") or 256))


class TransformersBackend:
    """A local Hugging Face sequence-classification model (safetensors weights), on the CPU."""

    def __init__(self, folder: Path, batch_size: int = 32, max_length: int = 512) -> None:
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
        import torch
        from transformers import AutoModelForSequenceClassification, AutoTokenizer

        kwargs: dict[str, Any] = {"local_files_only": True, "trust_remote_code": False}
        try:
            self.tokenizer = AutoTokenizer.from_pretrained(str(folder), **kwargs)
            with _quiet_transformers():
                self.model, info = AutoModelForSequenceClassification.from_pretrained(
                    str(folder), use_safetensors=True, output_loading_info=True, **kwargs
                )
        except Exception as exc:
            detail = " ".join(str(exc).split())
            raise ClassifierModelError(
                f"{folder} is not a loadable text-classification model: {detail}"
            ) from None
        _check_loading_info(folder, info)
        self.model.eval()
        self.torch = torch
        self.source = folder
        self.batch_size = batch_size
        self.max_length = min(max_length, getattr(self.tokenizer, "model_max_length", 512))
        id2label = self.model.config.id2label
        self.labels = [str(id2label[i]) for i in range(len(id2label))]
        self.multi_label = self.model.config.problem_type == "multi_label_classification"

    def _run(self, texts: list[str]) -> list[dict[str, float]]:
        batch = self.tokenizer(
            texts, padding=True, truncation=True, max_length=self.max_length, return_tensors="pt"
        )
        with self.torch.inference_mode():
            logits = self.model(**batch).logits.double()
        proba = logits.sigmoid() if self.multi_label else logits.softmax(dim=-1)
        return [dict(zip(self.labels, map(float, row), strict=True)) for row in proba.tolist()]

    def predict_proba(self, texts: list[str]) -> list[dict[str, float]]:
        return _batched(list(texts), self.batch_size, self._run)

    def identity(self) -> dict[str, Any]:
        return {"backend": "transformers", "folder": str(self.source)}


@contextlib.contextmanager
def _quiet_transformers() -> Iterator[None]:
    """No load report or progress bar from transformers: problems are raised, not logged."""
    from transformers.utils import logging as hf_logging

    verbosity, bars = hf_logging.get_verbosity(), hf_logging.is_progress_bar_enabled()
    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)
        if bars:
            hf_logging.enable_progress_bar()


def _some(keys: Iterable[str]) -> str:
    """A few names, sorted, and how many more there are."""
    names = sorted(keys)
    shown = ", ".join(names[:KEYS_SHOWN])
    return shown + (f" and {len(names) - KEYS_SHOWN} more" if len(names) > KEYS_SHOWN else "")


def _check_loading_info(folder: Path, info: dict[str, Any]) -> None:
    """Refuse a model whose weights did not all come from the folder's files."""
    problems = []
    missing = set(info.get("missing_keys") or ())
    mismatched = {k[0] if isinstance(k, tuple) else k for k in info.get("mismatched_keys") or ()}
    unexpected = set(info.get("unexpected_keys") or ())
    if missing:
        problems.append(f"{len(missing)} missing weights ({_some(missing)})")
    if mismatched:
        problems.append(f"{len(mismatched)} weights of the wrong shape ({_some(mismatched)})")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected weights ({_some(unexpected)})")
    if info.get("error_msgs"):
        problems.append("errors: " + " ".join(" ".join(map(str, info["error_msgs"])).split()))
    if problems:
        random = " (transformers would fill them with random numbers)" if (
            missing or mismatched) else ""
        raise ClassifierModelError(
            f"{folder}: the weights do not match the model in config.json: "
            + "; ".join(problems) + random
        )


def _check_safetensors(folder: Path) -> None:
    """Every ``*.safetensors`` file in ``folder`` has a valid header covering the whole file."""
    from safetensors import SafetensorError, safe_open

    for path in sorted(folder.glob("*.safetensors")):
        try:
            size = path.stat().st_size
            if size == 0:
                raise ClassifierModelError(
                    f"{folder}: {path.name} is empty (0 bytes): not a readable safetensors file"
                )
            with safe_open(str(path), framework="pt") as fh:
                fh.keys()
        except (OSError, SafetensorError) as exc:
            detail = " ".join(str(exc).split())
            raise ClassifierModelError(
                f"{folder}: {path.name} is not a readable safetensors file (truncated or "
                f"corrupt: {detail})"
            ) from None


def make_transformers_backend(model: str, options: dict[str, Any]) -> TransformersBackend:
    """``model``: a local folder with ``config.json``, tokenizer files and ``*.safetensors``."""
    folder = Path(model)
    if not (folder / "config.json").is_file():
        raise ClassifierModelError(f"not a Hugging Face model folder (no config.json): {folder}")
    if not any(folder.glob("*.safetensors")):
        raise ClassifierModelError(
            f"{folder} has no .safetensors weights; pickle-based weights (pytorch_model.bin) "
            "are refused: re-save the model with save_pretrained(safe_serialization=True)"
        )
    try:
        architectures = json.loads((folder / "config.json").read_text()).get("auto_map")
    except (OSError, ValueError) as exc:
        raise ClassifierModelError(f"{folder}/config.json is unreadable: {exc}") from None
    if architectures:
        raise ClassifierModelError(f"{folder} needs custom code (auto_map): refused")
    _check_safetensors(folder)
    return TransformersBackend(
        folder, int(options.get("batch_size") or 32), int(options.get("max_length") or 512)
    )


FACTORIES: dict[str, Callable[[str, dict[str, Any]], Any]] = {
    EMBEDDED: make_embedding_backend,
    STATIC: make_static_backend,
    "sklearn": make_sklearn_backend,
    "transformers": make_transformers_backend,
}
"""The backends this plugin registers, by name."""

_cache: dict[tuple[str, str, str, tuple[Any, ...]], Any] = {}
_lock = threading.Lock()


def _fingerprint(model: str) -> tuple[Any, ...]:
    """Path and modification stamps of a model's files, so a retrained model is reloaded."""
    path = default_dir(model) if model in (EMBEDDED, STATIC) else Path(model)
    try:
        files = sorted(p for p in path.iterdir() if p.is_file()) if path.is_dir() else [path]
        return (str(path.resolve()),) + tuple(
            (p.name, p.stat().st_mtime_ns, p.stat().st_size) for p in files
        )
    except OSError:
        return (str(path),)


def cached(name: str) -> Callable[[str, dict[str, Any]], Any]:
    """The factory ``name``, memoised per (model, options): each model loads once per process."""
    factory = FACTORIES[name]

    def build(model: str, options: dict[str, Any]) -> Any:
        key = (name, model, json.dumps(options, sort_keys=True, default=str), _fingerprint(model))
        with _lock:
            if key not in _cache:
                _cache[key] = factory(model, options)
            return _cache[key]

    build.__doc__ = factory.__doc__
    return build
