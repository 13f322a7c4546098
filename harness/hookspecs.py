"""The plugin author's reference: every hook harness calls.

A plugin is a module (or object) with functions decorated by ``harness.hookimpl`` whose names
match the hooks below. Each ``register_*`` hook receives a ``register`` callback (typed by the
``Register*`` protocols below): call it once per thing the plugin provides. The core owns the
registries; a plugin never touches global state.

The hooks are called through pluggy, and the first registration of a name wins; a later one is
ignored with a warning naming both plugins. Plugins are called in this order:

1. ``@hookimpl(tryfirst=True)`` implementations, in the order below;
2. the ``*.py`` files of the local plugins folder (``--plugins-dir`` or ``HARNESS_PLUGINS_DIR``),
   by file name;
3. the distributions installed with an entry point in the group ``harness``;
4. the built-ins (``harness_criteria.*`` and the core's own modules);
5. ``@hookimpl(trylast=True)`` implementations, in the order above.

Wrappers (``@hookimpl(wrapper=True)``, or the older ``hookwrapper=True``) run around all of
them: what a wrapper registers before its ``yield`` comes before them, after it, after. A plugin
registered by hand on the plugin manager after :func:`harness.plugins.load_plugins` is called
before the others of its group. ``HARNESS_BLOCK_PLUGINS=name,name`` blocks plugins by name; of
two plugins with the same name, only the first of 2-4 loads. A hook implementation whose name is
not one of these hooks is an error at start-up.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import pluggy

if TYPE_CHECKING:
    from harness.criterion import Criterion
    from harness.engine import Engine
    from harness.inputs.formats import InputFormat
    from harness.judges.base import JudgeBackend
    from harness.stages import Finished

hookspec = pluggy.HookspecMarker("harness")
hookimpl = pluggy.HookimplMarker("harness")


class RegisterCriterionKind(Protocol):
    def __call__(self, cls: type[Criterion]) -> None:
        """Register one criterion kind.

        :param cls: a :class:`harness.criterion.Criterion` subclass. It names its kind in
            ``kind = "name"``, validates its suite keys with a nested pydantic ``Config`` and
            implements ``evaluate(transcript)``.
        """


class RegisterInputFormat(Protocol):
    def __call__(self, fmt: InputFormat) -> None:
        """Register one input format.

        :param fmt: an :class:`harness.inputs.formats.InputFormat`: a ``name``,
            ``detect(record) -> bool`` for auto-detection and
            ``parse(record, source) -> list[Transcript]``.
        """


class RegisterExporter(Protocol):
    def __call__(self, name: str,
                 export: Callable[[Path, Path, dict[str, Any]], dict[str, Any]]) -> None:
        """Register one exporter.

        :param name: the format, as in ``harness export --format NAME``.
        :param export: ``export(run_dir, out, options)`` writes ``out`` and returns counts for the
            dataset card.
        """


class RegisterJudgeBackend(Protocol):
    def __call__(self, prefix: str, factory: Callable[[str, dict[str, Any]], JudgeBackend]
                 ) -> None:
        """Register one judge backend.

        :param prefix: the ``PREFIX`` of the suites' ``PREFIX/MODEL`` judge names.
        :param factory: ``factory(model, options)`` builds a
            :class:`harness.judges.base.JudgeBackend` for one model; ``options`` are the suite's
            per-judge keys (``base_url``, ``api_key_env``, ...).
        """


class RegisterClassifierBackend(Protocol):
    def __call__(self, name: str, factory: Callable[[str, dict[str, Any]], Any]) -> None:
        """Register one classifier backend.

        :param name: the backend's name, as in a ``classifier`` criterion's ``backend:``.
        :param factory: ``factory(model, options)`` returns an object with ``labels: list[str]``
            and ``predict_proba(texts: list[str]) -> list[dict[str, float]]``.
        """


class RegisterCommand(Protocol):
    def __call__(self, name: str, add_arguments: Callable[[argparse.ArgumentParser], None],
                 run: Callable[[argparse.Namespace], int], help: str = "") -> None:
        """Register one subcommand.

        :param name: the subcommand, as in ``harness NAME``.
        :param add_arguments: declares the subcommand's options on its parser.
        :param run: runs it with the parsed arguments and returns the exit code.
        :param help: one line for ``harness --help``.
        """


class RegisterReportTemplates(Protocol):
    def __call__(self, path: str | Path) -> None:
        """Register one folder of report templates.

        :param path: a folder of jinja2 templates; one named like a default template
            (``report.html``, ``_transcript.html``) replaces it, and can extend the original as
            ``{% extends "default:report.html" %}``.
        """


class RegisterEngine(Protocol):
    def __call__(self, name: str, add_arguments: Callable[[Any], None],
                 start: Callable[[Engine, list[str], argparse.Namespace],
                                 Callable[[dict[int, set[int]]], Iterator[list[Finished]]]
                                 | None],
                 help: str = "") -> None:
        """Register one execution engine.

        :param name: the engine, as in ``harness run --engine NAME``.
        :param add_arguments: ``add_arguments(group)`` declares the engine's own ``harness run``
            options on an argparse argument group; prefix them with the engine's name, e.g.
            ``--ray-address``.
        :param start: ``start(engine, inputs, args)`` prepares a run (connects to a cluster;
            raise :class:`harness.errors.UsageError` for a one-line error, before the run
            directory is touched) and returns ``batches(done)``. ``batches`` decides every record
            of ``inputs`` with the compiled suite ``engine`` (:class:`harness.engine.Engine`;
            build the same one where the work runs) and yields what is decided, in batches of
            :class:`harness.stages.Finished`, numbered as the local engine numbers records
            (``seq`` across the inputs, ``sub`` within a record), leaving out ``done`` (``seq ->
            subs`` decided before a ``--resume``); ``None``: this process decides them (the
            built-in ``local`` engine). ``args`` is the parsed command line. The run
            directory, resume, error budget, outputs and report stay the core's
            (:func:`harness.api.run`).
        :param help: one line for ``harness run --help``.
        """


@hookspec
def register_criterion_kinds(register: RegisterCriterionKind) -> None:
    """Register criterion kinds.

    :param register: call ``register(CriterionClass)`` for each kind.
    """


@hookspec
def register_input_formats(register: RegisterInputFormat) -> None:
    """Register transcript input formats (record shapes inside JSONL or Parquet files).

    :param register: call ``register(fmt)`` for each format.
    """


@hookspec
def register_exporters(register: RegisterExporter) -> None:
    """Register exporters that turn a run directory into a training or analysis dataset.

    :param register: call ``register(name, export)`` for each format.
    """


@hookspec
def register_judge_backends(register: RegisterJudgeBackend) -> None:
    """Register LLM judge backends, addressed in suites as ``PREFIX/MODEL``.

    :param register: call ``register(prefix, factory)`` for each backend.
    """


@hookspec
def register_classifier_backends(register: RegisterClassifierBackend) -> None:
    """Register classifier model backends for the ``classifier`` criterion kind.

    :param register: call ``register(name, factory)`` for each backend.
    """


@hookspec
def register_commands(register: RegisterCommand) -> None:
    """Register ``harness`` subcommands.

    :param register: call ``register(name, add_arguments, run, help=...)`` for each subcommand.
    """


@hookspec
def register_report_templates(register: RegisterReportTemplates) -> None:
    """Register folders of jinja2 templates that override the HTML report's defaults.

    :param register: call ``register(path)`` for each folder; the folder of the plugin called
        first is looked in first.
    """


@hookspec
def register_engines(register: RegisterEngine) -> None:
    """Register execution engines for ``harness run --engine NAME`` (``local`` is built in).

    :param register: call ``register(name, add_arguments, start, help=...)`` for each engine.
    """
