"""The ``harness`` entry point of harness-trl: its commands and the ``hf/FOLDER`` backend.

Nothing heavy is imported here: torch, transformers and TRL load when a command runs.
"""

from __future__ import annotations

from collections.abc import Callable

from harness.hookspecs import hookimpl
from harness_trl.commands import add_commands


@hookimpl
def register_commands(register: Callable[..., None]) -> None:
    add_commands(register)


@hookimpl
def register_judge_backends(register: Callable[..., None]) -> None:
    from harness_trl.folder_backend import PREFIX, make_folder_backend

    register(PREFIX, make_folder_backend)
