"""The embedded SmolLM2 model as the ``local/smollm2`` judge backend (offline, CPU, free)."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from harness.judges.base import JudgeBackend, JudgeError, JudgeRequest, JudgeResponse

if TYPE_CHECKING:
    from harness_local_models.chat_model import LocalChatModel

PREFIX = "local"
"""The judge-name prefix this plugin serves (``local/MODEL``)."""
MODELS = ("smollm2",)
"""Model names :func:`make_local_backend` accepts."""


class LocalJudgeBackend(JudgeBackend):
    """SmolLM2-135M-Instruct in this process. The model loads on the first call (about a second
    from the cache, ~20 s the very first time, when the GGUF is converted)."""

    name = f"{PREFIX}/smollm2"
    max_concurrency = 1  # one CPU model; calls are serialised anyway
    follows_verdict_format = False  # 135M parameters: it rambles on; `mode: choice` works

    def __init__(self, model: LocalChatModel | None = None):
        self._model = model

    def _get(self) -> LocalChatModel:
        if self._model is None:
            from harness_local_models.chat_model import ModelNotInstalledError, get_model

            try:
                self._model = get_model()
            except ModelNotInstalledError as exc:
                raise JudgeError(str(exc)) from exc
        return self._model

    async def complete(self, request: JudgeRequest) -> JudgeResponse:
        """Generate with the local model in a worker thread."""
        model = await asyncio.to_thread(self._get)
        try:
            gen = await asyncio.to_thread(
                model.generate,
                request.messages,
                max_new_tokens=request.max_tokens,
                temperature=request.temperature,
                seed=request.seed,
                top_logprobs=request.top_logprobs,
            )
        except ValueError as exc:  # bad messages, prompt too long
            raise JudgeError(f"{self.name}: {exc}") from exc
        return JudgeResponse(
            text=gen.text,
            model=self.name,
            tokens=gen.tokens,
            tokens_in=gen.tokens_in,
            tokens_out=gen.tokens_out,
            cost_usd=0.0,
        )

    async def continuation_logprobs(
        self, request: JudgeRequest, prefix: str, continuations: list[str]
    ) -> list[float] | None:
        """Exact log-probabilities of each continuation (see
        :meth:`LocalChatModel.continuation_logprobs`)."""
        model = await asyncio.to_thread(self._get)
        try:
            return await asyncio.to_thread(
                model.continuation_logprobs, request.messages, prefix, continuations
            )
        except ValueError as exc:
            raise JudgeError(f"{self.name}: {exc}") from exc

    def identity(self) -> dict[str, Any]:
        """Name plus the weights' hash, so cached answers change when the weights do."""
        from harness_local_models.chat_model import find_gguf, gguf_sha256

        try:
            sha = gguf_sha256(find_gguf())
        except Exception:  # not installed: complete() will report it
            sha = None
        return {"name": self.name, "weights_sha256": sha}


def make_local_backend(model: str, options: dict[str, Any]) -> JudgeBackend:
    """The embedded SmolLM2-135M-Instruct judge, offline on the CPU (local/smollm2, no options).

    A 135M model is a poor judge: it proves the wiring and runs the demo offline; use a real
    model for real reviews.
    """
    if model not in MODELS:
        raise ValueError(
            f"unknown local judge model {model!r}: the local/ prefix offers "
            + ", ".join(f"local/{m}" for m in MODELS)
        )
    if options:
        raise ValueError(
            f"local/{model} takes no options, got: {', '.join(sorted(map(str, options)))}"
        )
    return LocalJudgeBackend()
