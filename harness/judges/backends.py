"""Built-in plugin: the hosted judge backends ``openai/MODEL`` and ``anthropic/MODEL``.

The SDKs are imported when a judge is built, so the core install works without them
(``pip install 'review-harness[judges]'`` adds them).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from harness.hookspecs import hookimpl
from harness.judges.base import JudgeBackend


def _openai(model: str, options: dict[str, Any]) -> JudgeBackend:
    from harness.judges.openai_backend import OpenAIBackend

    return OpenAIBackend(model, options)


def _anthropic(model: str, options: dict[str, Any]) -> JudgeBackend:
    from harness.judges.anthropic_backend import AnthropicBackend

    return AnthropicBackend(model, options)


@hookimpl
def register_judge_backends(register: Callable[..., None]) -> None:
    register("openai", _openai)
    register("anthropic", _anthropic)
