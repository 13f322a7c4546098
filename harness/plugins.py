"""Loading plugins and building the registries they fill."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import logging
import multiprocessing
import os
import traceback
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import TYPE_CHECKING, Any

import pluggy

from harness import hookspecs

if TYPE_CHECKING:
    from harness.criterion import Criterion

DEFAULT_PLUGINS: tuple[str, ...] = (
    "harness_criteria.regex",
    "harness_criteria.python",
    "harness_criteria.classifier",
    "harness_criteria.llm_judge",
    "harness_criteria.panel",
    "harness_criteria.pairwise",
    "harness_criteria.cascade",
    "harness.judges.backends",
    "harness.inputs.formats",
    "harness.commands",
    "harness.validate",
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
    """Everything the plugins registered. The first registration of a name wins; later ones warn."""

    plugin_manager: pluggy.PluginManager
    kinds: dict[str, type[Criterion]] = field(default_factory=dict)
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
    rebuildable: bool = False
    """Built by :func:`get_registry`, so another process rebuilds the same one (a registry
    built by hand from a plugin manager is not)."""

    def provider(self, registry: str, name: str) -> str:
        return self.providers.get((registry, name), "?")

    def plugins(self) -> list[dict[str, Any]]:
        """Registered plugins, first called first, with where they come from and their hooks."""
        pm = self.plugin_manager
        rows = []
        for name, plugin in reversed(pm.list_name_plugin()):
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
    """A plugin manager calling the plugins folder, the entry points, then the built-ins."""
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
    # loaded in that order (a name taken is skipped), registered again in reverse: pluggy calls
    # the last registered first (after the tryfirst implementations, before the trylast ones)
    for name, plugin in reversed(pm.list_name_plugin()):
        if plugin is not None:  # None: a blocked name
            pm.unregister(plugin)
            pm.register(plugin, name=name)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        who = pm.get_name(exc.plugin) if exc.plugin is not None else "?"
        raise PluginError(f"plugin {who}: {exc}") from exc
    return pm


def _collect(registry: Registry, hook_name: str, target: str,
             entry: Callable[..., tuple[str, Any]]) -> None:
    """Call one hook through pluggy (tryfirst, trylast, wrappers hold); the first call wins. The
    one ``register`` finds its caller up the stack: the innermost hook implementation's plugin."""
    hook = getattr(registry.plugin_manager.hook, hook_name)
    owners = {inspect.unwrap(i.function).__code__: i.plugin_name for i in hook.get_hookimpls()}
    store = getattr(registry, target)

    def plugin_in(frames: Iterable[tuple[FrameType, int]]) -> str:
        return next((owners[f.f_code] for f, _ in frames if f.f_code in owners), "?")

    def register(*args: Any, **kwargs: Any) -> None:
        key, value = entry(*args, **kwargs)
        plugin = plugin_in(traceback.walk_stack(inspect.currentframe()))
        first = registry.providers.setdefault((target, key), plugin)
        if isinstance(store, list):  # report template folders: all kept, first called first
            store.append(value)
        elif key in store:
            if multiprocessing.parent_process() is None:  # said once, not by each worker
                logging.getLogger("harness").warning(
                    "harness: warning: plugin %s registers %s %r, already registered by "
                    "plugin %s, which wins", plugin, target, key, first)
        else:
            store[key] = value

    try:
        hook(register=register)
    except Exception as exc:  # a PluginError of register's too: it gets the plugin's name
        plugin = plugin_in(reversed(list(traceback.walk_tb(exc.__traceback__))))
        raise PluginError(f"plugin {plugin} failed in {hook_name}: {exc}") from exc


def build_registry(pm: pluggy.PluginManager) -> Registry:
    """Call every hook; what each ``register`` accepts is typed in :mod:`harness.hookspecs`."""
    registry = Registry(plugin_manager=pm)

    def kind(cls: type[Criterion]) -> tuple[str, type[Criterion]]:
        name = getattr(cls, "kind", None)
        if not isinstance(name, str) or not name:
            raise PluginError(f"criterion class {cls!r} has no `kind` name")
        return name, cls

    _collect(registry, "register_criterion_kinds", "kinds", kind)
    _collect(registry, "register_input_formats", "formats", lambda fmt: (fmt.name, fmt))
    _collect(registry, "register_exporters", "exporters", lambda name, export: (name, export))
    _collect(registry, "register_judge_backends", "judges",
             lambda prefix, factory: (prefix, factory))
    _collect(registry, "register_classifier_backends", "classifiers",
             lambda name, factory: (name, factory))
    _collect(registry, "register_commands", "commands",
             lambda name, *args, **kwargs: (name, Command(name, *args, **kwargs)))
    _collect(registry, "register_report_templates", "report_templates",
             lambda path: (str(path), Path(path)))
    _collect(registry, "register_engines", "engines",
             lambda name, *args, **kwargs: (name, ExecutionEngine(name, *args, **kwargs)))
    return registry


_cache: dict[tuple[str | None, str], Registry] = {}


def get_registry(plugins_dir: str | Path | None = None, *, fresh: bool = False) -> Registry:
    """The registry for this process (cached per plugins folder and block list)."""
    key = (str(plugins_dir) if plugins_dir else None, os.environ.get(BLOCK_ENV, ""))
    if fresh or key not in _cache:
        registry = build_registry(load_plugins(plugins_dir))
        registry.plugins_dir, registry.rebuildable = key[0], True
        _cache[key] = registry
    return _cache[key]
