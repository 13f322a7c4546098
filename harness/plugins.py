"""Loading plugins and building the registries they fill."""

from __future__ import annotations

import importlib
import importlib.util
import logging
import multiprocessing
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pluggy

from harness import hookspecs

DEFAULT_PLUGINS: tuple[str, ...] = (
    "harness_criteria.regex",
    "harness_criteria.python",
    "harness_criteria.classifier",
    "harness_criteria.llm_judge",
    "harness_criteria.panel",
    "harness_criteria.pairwise",
    "harness.judges.backends",
    "harness.inputs.formats",
    "harness.commands",
    "harness.export.plugin",
    "harness.report.plugin",
    "harness.correct.command",
    "harness.calibrate.plugin",
)
"""Built-in plugins, registered through the same hooks as everyone else's, last."""

BLOCK_ENV = "HARNESS_BLOCK_PLUGINS"
PLUGINS_DIR_ENV = "HARNESS_PLUGINS_DIR"
ENTRY_POINT_GROUP = "harness"


class PluginError(Exception):
    """A plugin could not be loaded or registered something invalid."""


@dataclass
class Command:
    name: str
    add_arguments: Callable[..., None]
    run: Callable[..., int]
    help: str = ""


@dataclass
class ExecutionEngine:
    """An engine for ``harness run --engine NAME`` (see the ``register_engines`` hook)."""

    name: str
    add_arguments: Callable[..., None]
    start: Callable[..., Any]
    help: str = ""


@dataclass
class Registry:
    """Everything the plugins registered. The first registration of a name wins."""

    plugin_manager: pluggy.PluginManager
    kinds: dict[str, type] = field(default_factory=dict)
    formats: dict[str, Any] = field(default_factory=dict)
    exporters: dict[str, Callable[..., Any]] = field(default_factory=dict)
    judges: dict[str, Callable[..., Any]] = field(default_factory=dict)
    classifiers: dict[str, Callable[..., Any]] = field(default_factory=dict)
    commands: dict[str, Command] = field(default_factory=dict)
    report_templates: list[Path] = field(default_factory=list)
    engines: dict[str, ExecutionEngine] = field(default_factory=dict)
    providers: dict[tuple[str, str], str] = field(default_factory=dict)
    """``(registry, name) -> plugin name`` for everything registered."""
    plugins_dir: str | None = None
    """The ``--plugins-dir`` it was built with (worker processes rebuild the same registry)."""

    def provider(self, registry: str, name: str) -> str:
        return self.providers.get((registry, name), "?")

    def plugins(self) -> list[dict[str, Any]]:
        """Registered plugins with where they come from and which hooks they implement."""
        pm = self.plugin_manager
        rows = []
        for name, plugin in pm.list_name_plugin():
            if plugin is None:
                continue
            hooks = sorted(h.name for h in pm.get_hookcallers(plugin) or [])
            dist = next((d for p, d in pm.list_plugin_distinfo() if p is plugin), None)
            if dist is not None:
                origin = f"{dist.project_name} {dist.version} (entry point)"
            elif name in DEFAULT_PLUGINS:
                origin = "built-in"
            else:
                origin = getattr(plugin, "__file__", "") or ""
            rows.append({"name": name, "hooks": hooks, "origin": origin})
        return rows


def _load_plugins_dir(pm: pluggy.PluginManager, folder: Path) -> None:
    if not folder.is_dir():
        raise PluginError(f"plugins folder {folder} does not exist")
    for path in sorted(folder.glob("*.py")):
        name = path.stem
        if pm.is_blocked(name) or pm.has_plugin(name):
            continue
        spec = importlib.util.spec_from_file_location(f"harness_local_plugins.{name}", path)
        assert spec is not None and spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        try:
            spec.loader.exec_module(module)
        except Exception as exc:
            raise PluginError(f"plugin {path}: {type(exc).__name__}: {exc}") from exc
        pm.register(module, name=name)


def load_plugins(plugins_dir: str | Path | None = None) -> pluggy.PluginManager:
    """A plugin manager with the plugins folder, the entry points, then the built-ins."""
    pm = pluggy.PluginManager("harness")
    pm.add_hookspecs(hookspecs)
    for name in filter(None, (n.strip() for n in os.environ.get(BLOCK_ENV, "").split(","))):
        pm.set_blocked(name)
    folder = plugins_dir or os.environ.get(PLUGINS_DIR_ENV)
    if folder:
        _load_plugins_dir(pm, Path(folder))
    try:
        pm.load_setuptools_entrypoints(ENTRY_POINT_GROUP)
    except Exception as exc:
        raise PluginError(f"entry point plugin failed to load: {type(exc).__name__}: {exc}") \
            from exc
    for module_name in DEFAULT_PLUGINS:
        if not pm.is_blocked(module_name) and not pm.has_plugin(module_name):
            pm.register(importlib.import_module(module_name), name=module_name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        name = pm.get_name(exc.plugin) if exc.plugin is not None else "?"
        raise PluginError(f"plugin {name}: {exc}") from exc
    return pm


def _collect(registry: Registry, hook_name: str, target: str, add: Callable[..., None]) -> None:
    """Call one hook plugin by plugin, so each registration is attributed to its plugin."""
    pm = registry.plugin_manager
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        plugin_name = impl.plugin_name

        def register(*args: Any, _plugin: str = plugin_name, **kwargs: Any) -> None:
            key = add(*args, **kwargs)
            if key is not None and (target, key) not in registry.providers:
                registry.providers[(target, key)] = _plugin
            elif key is not None and registry.providers[(target, key)] != _plugin:
                _shadowed(target, key, registry.providers[(target, key)], _plugin)

        try:
            impl.function(register=register)
        except PluginError:
            raise
        except Exception as exc:
            raise PluginError(f"plugin {plugin_name} failed in {hook_name}: {exc}") from exc


def _shadowed(target: str, key: str, used: str, hidden: str) -> None:
    """Warn (once, in the main process) that plugin ``used`` registered a name that plugin
    ``hidden`` registers too: the first registration wins."""
    if target != "report_templates" and multiprocessing.parent_process() is None:
        logging.getLogger("harness").warning(
            "harness: warning: plugin %r registers %s %r, which shadows the one of plugin %r "
            "(the plugins folder and entry points come before built-ins); name it otherwise "
            "to keep both", used, target.rstrip("s"), key, hidden)


def build_registry(pm: pluggy.PluginManager) -> Registry:
    registry = Registry(plugin_manager=pm)

    def first(mapping: dict[str, Any], key: str, value: Any) -> str:
        mapping.setdefault(key, value)
        return key

    def kind(cls: type) -> str:
        name = getattr(cls, "kind", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"criterion class {cls!r} has no `kind` name")
        return first(registry.kinds, name, cls)

    def command(name: str, add_arguments: Callable, run: Callable, help: str = "") -> str:
        return first(registry.commands, name, Command(name, add_arguments, run, help))

    def engine(name: str, add_arguments: Callable, start: Callable, help: str = "") -> str:
        return first(registry.engines, name, ExecutionEngine(name, add_arguments, start, help))

    def template_dir(path: str | Path) -> str:
        registry.report_templates.append(Path(path))
        return str(path)

    # get_hookimpls() lists implementations in registration order: plugins folder, entry
    # points, built-ins. `first` keeps the first, so a user's plugin overrides a built-in.
    _collect(registry, "register_criterion_kinds", "kinds", kind)
    _collect(registry, "register_input_formats", "formats",
             lambda fmt: first(registry.formats, fmt.name, fmt))
    _collect(registry, "register_exporters", "exporters",
             lambda name, fn: first(registry.exporters, name, fn))
    _collect(registry, "register_judge_backends", "judges",
             lambda prefix, factory: first(registry.judges, prefix, factory))
    _collect(registry, "register_classifier_backends", "classifiers",
             lambda name, factory: first(registry.classifiers, name, factory))
    _collect(registry, "register_commands", "commands", command)
    _collect(registry, "register_report_templates", "report_templates", template_dir)
    _collect(registry, "register_engines", "engines", engine)
    return registry


_cache: dict[tuple[str | None, str], Registry] = {}


def get_registry(plugins_dir: str | Path | None = None, *, fresh: bool = False) -> Registry:
    """The registry for this process (cached per plugins folder and block list)."""
    key = (str(plugins_dir) if plugins_dir else None, os.environ.get(BLOCK_ENV, ""))
    if fresh or key not in _cache:
        registry = build_registry(load_plugins(plugins_dir))
        registry.plugins_dir = key[0]
        _cache[key] = registry
    return _cache[key]
