"""Hooks are called through pluggy: tryfirst, trylast and wrappers do what pluggy documents.

The first registration of a name wins, and plugins are called plugins folder, entry points,
built-ins; ``tryfirst`` implementations before all of them, ``trylast`` ones after.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pytest

from harness import hookimpl
from harness.plugins import PluginError, Registry, build_registry, get_registry, load_plugins

REGEX = "harness_criteria.regex"


def kind_plugin(kind: str, marker: str = "@hookimpl", cls: str = "Mine") -> str:
    """The source of a plugins-folder file registering class ``cls`` as ``kind``."""
    return (f"from harness import Criterion, hookimpl\n\n"
            f"class {cls}(Criterion):\n    kind = {kind!r}\n\n"
            f"    def evaluate(self, transcript):\n        return True\n\n"
            f"{marker}\ndef register_criterion_kinds(register):\n    register({cls})\n")


def folder(tmp_path: Path, **files: str) -> Path:
    for name, source in files.items():
        (tmp_path / f"{name}.py").write_text(source)
    return tmp_path


def with_plugins(*plugins: tuple[str, object]) -> Registry:
    """The registry of the installed plugins plus ``plugins`` registered by hand, in order."""
    pm = load_plugins()
    try:
        for name, plugin in plugins:
            pm.register(plugin, name=name)
        return build_registry(pm)
    finally:
        for _, plugin in plugins:
            pm.unregister(plugin)


@pytest.fixture(autouse=True)
def warnings_logged(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="harness")


def shadowed(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "already registered" in r.getMessage()]


def test_a_tryfirst_plugin_overrides_a_built_in_kind_and_the_plugins_folder(tmp_path, caplog):
    # a_plain is called before z_first unless tryfirst counts, and both before the built-in
    plugins = folder(tmp_path, a_plain=kind_plugin("regex", cls="Plain"),
                     z_first=kind_plugin("regex", "@hookimpl(tryfirst=True)", cls="First"))
    registry = get_registry(plugins, fresh=True)
    assert registry.kinds["regex"].__name__ == "First"
    assert registry.provider("kinds", "regex") == "z_first"
    assert sorted(shadowed(caplog)) == [
        f"harness: warning: plugin {loser} registers kinds 'regex', already registered by "
        "plugin z_first, which wins" for loser in ("a_plain", REGEX)]


def test_a_trylast_plugin_loses_to_the_built_in(tmp_path, caplog):
    plugins = folder(tmp_path, late=kind_plugin("regex", "@hookimpl(trylast=True)"))
    registry = get_registry(plugins, fresh=True)
    assert registry.provider("kinds", "regex") == REGEX
    assert registry.kinds["regex"].__module__ == REGEX
    assert shadowed(caplog) == ["harness: warning: plugin late registers kinds 'regex', already "
                                f"registered by plugin {REGEX}, which wins"]


class Early:
    kind = "regex"


class Late:
    kind = "late_kind"


class Inner:
    """A plain implementation: the wrappers must run around it."""

    def __init__(self, events: list[Any]) -> None:
        self.events = events

    @hookimpl
    def register_criterion_kinds(self, register: Any) -> str:
        self.events.append("inner")
        return "inner result"


class NewStyleWrapper:
    def __init__(self, events: list[Any]) -> None:
        self.events = events

    @hookimpl(wrapper=True)
    def register_criterion_kinds(self, register: Any) -> Any:
        register(Early)  # before every implementation: it wins
        result = yield
        self.events.append(("after", result))
        register(Late)
        return result


def test_a_new_style_wrapper_runs_around_the_call(caplog):
    events: list[Any] = []
    registry = with_plugins(("wrapping", NewStyleWrapper(events)), ("inner", Inner(events)))
    assert events == ["inner", ("after", ["inner result"])]
    assert registry.kinds["regex"] is Early and registry.kinds["late_kind"] is Late
    assert registry.provider("kinds", "regex") == "wrapping"
    assert registry.provider("kinds", "late_kind") == "wrapping"
    assert f"plugin {REGEX} registers kinds 'regex'" in " ".join(shadowed(caplog))


class OldStyleWrapper:
    def __init__(self, events: list[Any]) -> None:
        self.events = events

    @hookimpl(hookwrapper=True)
    def register_criterion_kinds(self, register: Any) -> Any:
        self.events.append("before")
        outcome = yield
        self.events.append(("after", outcome.get_result()))
        register(Late)


def test_an_old_style_hookwrapper_runs_around_the_call():
    events: list[Any] = []
    registry = with_plugins(("old", OldStyleWrapper(events)), ("inner", Inner(events)))
    assert events == ["before", "inner", ("after", ["inner result"])]
    assert registry.provider("kinds", "late_kind") == "old"


def test_the_plugins_folder_overrides_an_entry_point_and_the_losers_are_named(tmp_path, caplog):
    plugins = folder(tmp_path, mine=kind_plugin("max_turns"))
    registry = get_registry(plugins, fresh=True)
    assert registry.provider("kinds", "max_turns") == "mine"
    assert registry.provider("kinds", "repetition") == "example"  # the rest of it still loads
    assert shadowed(caplog) == ["harness: warning: plugin example registers kinds 'max_turns', "
                                "already registered by plugin mine, which wins"]
    assert [row["name"] for row in registry.plugins()][:2] == ["mine", "example"]


def test_a_plugins_folder_file_named_like_an_entry_point_replaces_it(tmp_path, caplog):
    registry = get_registry(folder(tmp_path, example=kind_plugin("regex")), fresh=True)
    assert registry.provider("kinds", "regex") == "example"
    assert registry.kinds["regex"].__name__ == "Mine"
    assert "max_turns" not in registry.kinds and "repetition" not in registry.kinds
    assert shadowed(caplog) == [f"harness: warning: plugin {REGEX} registers kinds 'regex', "
                                "already registered by plugin example, which wins"]


def helper_registers(register: Any, *classes: type) -> None:
    for cls in classes:
        register(cls)


class ViaHelper:
    @hookimpl(tryfirst=True)
    def register_criterion_kinds(self, register: Any) -> None:
        helper_registers(register, Early, Late)


def test_a_registration_through_a_helper_names_the_plugin_that_called_it():
    registry = with_plugins(("helped", ViaHelper()))
    assert registry.provider("kinds", "regex") == "helped"
    assert registry.provider("kinds", "late_kind") == "helped"
    assert registry.provider("kinds", "python") == "harness_criteria.python"
    assert registry.provider("commands", "run") == "harness.commands"
    assert registry.provider("judges", "openai") == "harness.judges.backends"


class Nameless:
    @hookimpl
    def register_criterion_kinds(self, register: Any) -> None:
        register(object)


def test_a_bad_registration_names_its_plugin():
    with pytest.raises(PluginError, match="plugin nameless failed in register_criterion_kinds: "
                                          "criterion class .* has no `kind` name"):
        with_plugins(("nameless", Nameless()))


def test_shadowing_warns_for_every_registry(caplog):
    class Shadows:
        @hookimpl(trylast=True)
        def register_commands(self, register: Any) -> None:
            register("run", lambda parser: None, lambda args: 0, help="not the real one")

        @hookimpl(trylast=True)
        def register_exporters(self, register: Any) -> None:
            register("openai", lambda run_dir, out, options: {})

    registry = with_plugins(("shadows", Shadows()))
    assert registry.commands["run"].help != "not the real one"
    assert sorted(shadowed(caplog)) == [
        "harness: warning: plugin shadows registers commands 'run', already registered by "
        "plugin harness.commands, which wins",
        "harness: warning: plugin shadows registers exporters 'openai', already registered by "
        "plugin harness.export.plugin, which wins"]
