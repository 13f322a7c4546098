"""The plugin author's reference: every hook harness calls.

A plugin is a module (or object) with functions decorated by ``harness.hookimpl`` whose names
match the hooks below. Each ``register_*`` hook receives a ``register`` callback: call it once per
thing the plugin provides. The core owns the registries; a plugin never touches global state.

Plugins are loaded in this order, and the first registration of a name wins:

1. every ``*.py`` file of the local plugins folder (``--plugins-dir`` or ``HARNESS_PLUGINS_DIR``);
2. the distributions installed with an entry point in the group ``harness``;
3. the built-ins (``criteria.*`` and the core's own modules).

``HARNESS_BLOCK_PLUGINS=name,name`` blocks plugins by name. A hook implementation whose name is
not one of these hooks is an error at start-up.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from harness.criterion import Criterion
    from harness.inputs.formats import InputFormat

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")


@hookspec
def register_criterion_kinds(register: Callable[[type[Criterion]], None]) -> None:
    """Register criterion kinds.

    :param register: call ``register(CriterionClass)`` for each kind. The class names its kind in
        ``kind = "name"``, validates its suite keys with a nested pydantic ``Config`` and implements
        ``evaluate(transcript)`` (see :class:`harness.criterion.Criterion`).
    """


@hookspec
def register_input_formats(register: Callable[[InputFormat], None]) -> None:
    """Register transcript input formats (record shapes inside JSONL or Parquet files).

    :param register: call ``register(fmt)`` with an :class:`harness.inputs.formats.InputFormat`:
        a ``name``, ``detect(record) -> bool`` for auto-detection and
        ``parse(record, source) -> list[Transcript]``.
    """


@hookspec
def register_exporters(register: Callable[..., None]) -> None:
    """Register exporters that turn a run directory into a training or analysis dataset.

    :param register: call ``register(name, export)`` where
        ``export(run_dir: Path, out: Path, options: dict) -> dict`` writes ``out`` and returns
        counts for the dataset card.
    """


@hookspec
def register_judge_backends(register: Callable[..., None]) -> None:
    """Register LLM judge backends, addressed in suites as ``PREFIX/MODEL``.

    :param register: call ``register(prefix, factory)`` where
        ``factory(model: str, options: dict) -> harness.judges.base.JudgeBackend`` builds a
        backend for one model; ``options`` are the suite's per-judge keys (``base_url``,
        ``api_key_env``, ...).
    """


@hookspec
def register_classifier_backends(register: Callable[..., None]) -> None:
    """Register classifier model backends for the ``classifier`` criterion kind.

    :param register: call ``register(name, factory)`` where ``factory(model: str, options: dict)``
        returns an object with ``labels: list[str]`` and
        ``predict_proba(texts: list[str]) -> list[dict[str, float]]``.
    """


@hookspec
def register_commands(register: Callable[..., None]) -> None:
    """Register ``harness`` subcommands.

    :param register: call ``register(name, add_arguments, run, help=...)`` where
        ``add_arguments(parser: argparse.ArgumentParser)`` declares options and
        ``run(args: argparse.Namespace) -> int`` returns the exit code.
    """


@hookspec
def register_report_templates(register: Callable[[Any], None]) -> None:
    """Register folders of jinja2 templates that override the HTML report's defaults.

    :param register: call ``register(path)`` with a folder; a template there named like a default
        one (``report.html``, ``_transcript.html``) replaces it, and can extend the original as
        ``{% extends "default:report.html" %}``.
    """



@hookspec
def register_engines(register: Callable[..., None]) -> None:
    """Register execution engines for ``harness run --engine NAME`` (``local`` is built in).

    :param register: call ``register(name, add_arguments, start, help=...)`` where
        ``add_arguments(group)`` declares the engine's own ``harness run`` options (an argparse
        argument group; prefix them with the engine's name, e.g. ``--ray-address``) and
        ``start(engine, inputs, args)`` prepares a run (connects to a cluster; raise
        :class:`harness.errors.UsageError` for a one-line error, before the run directory is
        touched) and returns ``batches(done) -> Iterator[list[harness.stages.Finished]]``.
        ``batches`` decides every record of ``inputs`` with the compiled suite ``engine``
        (:class:`harness.engine.Engine`; build the same one where the work runs) and yields
        what is decided, in batches, numbered as the local engine numbers records (``seq``
        across the inputs, ``sub`` within a record), leaving out ``done`` (``seq -> subs``
        decided before a ``--resume``). ``args`` is the parsed command line. The run directory,
        resume, error budget, outputs and report stay the core's (:func:`harness.api.run`).
    """
