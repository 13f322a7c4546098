"""The ``harness`` entry point of harness-local-models: everything it adds, registered here.

- judge backend ``local`` (``local/smollm2``, the embedded SmolLM2-135M-Instruct judge);
- classifier backends ``embedding``, ``static``, ``sklearn`` and ``transformers``;
- the ``harness classifier train`` command (``--backend static``, ``--from-run``).

Heavy imports (torch, transformers) happen when a model is first used, not here.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.hookspecs import hookimpl
from harness_local_models.classifier_plugin import (
    register_classifier_backends,
    register_commands,
)
from harness_local_models.judge_backend import make_local_backend

__all__ = ["register_classifier_backends", "register_commands", "register_judge_backends"]


@hookimpl
def register_judge_backends(register: Callable[..., None]) -> None:
    register("local", make_local_backend)
