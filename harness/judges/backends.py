"""Built-in plugin: the hosted judge backends ``openai/MODEL`` and ``anthropic/MODEL``.

``openai/MODEL`` speaks HTTP itself (aiohttp, a core dependency). ``anthropic/MODEL`` imports
the ``anthropic`` SDK when a judge is built, so the core install works without it
(``pip install 'review-harness[judges]'`` adds it). Both modules are imported when a judge is
built, not when the plugins load: a suite without a judge (and every worker process) never pays
for the HTTP client's import.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from harness.hookspecs import hookimpl

if TYPE_CHECKING:
    from harness.judges.anthropic_backend import AnthropicBackend
    from harness.judges.openai_backend import OpenAIBackend


def make_openai_backend(model: str, options: dict[str, Any]) -> OpenAIBackend:
    """Any OpenAI-compatible chat-completions endpoint (OpenAI, vLLM, llama.cpp, Ollama)."""
    from harness.judges.openai_backend import make_openai_backend as make

    return make(model, options)


def make_anthropic_backend(model: str, options: dict[str, Any]) -> AnthropicBackend:
    """Claude models through the Anthropic API (no logprobs: scores come from the label)."""
    from harness.judges.anthropic_backend import make_anthropic_backend as make

    return make(model, options)


@hookimpl
def register_judge_backends(register: Callable[..., None]) -> None:
    register("openai", make_openai_backend)
    register("anthropic", make_anthropic_backend)
