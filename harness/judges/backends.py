"""Built-in plugin: the hosted judge backends ``openai/MODEL`` and ``anthropic/MODEL``.

``openai/MODEL`` speaks HTTP itself (aiohttp, a core dependency). ``anthropic/MODEL`` imports
the ``anthropic`` SDK when a judge is built, so the core install works without it
(``pip install 'review-harness[judges]'`` adds it).
"""

from __future__ import annotations

from collections.abc import Callable

from harness.hookspecs import hookimpl
from harness.judges.anthropic_backend import make_anthropic_backend
from harness.judges.openai_backend import make_openai_backend


@hookimpl
def register_judge_backends(register: Callable[..., None]) -> None:
    register("openai", make_openai_backend)
    register("anthropic", make_anthropic_backend)
