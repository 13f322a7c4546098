"""Plugins from the plugins folder, from an installed entry point, built-ins; blocking; typos."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from testutil import write_suite

from harness import Engine, Message, Transcript, hookspecs, load_suite
from harness.plugins import PluginError, get_registry

ROOT = Path(__file__).resolve().parent.parent

PLUGIN = '''
from harness import Criterion, CriterionConfig, hookimpl

class ShoutConfig(CriterionConfig):
    max_caps: float = 0.5

class Shout(Criterion):
    """Not too many capital letters."""
    kind = "shout"
    Config = ShoutConfig

    def evaluate(self, transcript):
        text = transcript.messages[-1].content
        caps = sum(c.isupper() for c in text) / max(len(text), 1)
        return caps <= self.config.max_caps

@hookimpl
def register_criterion_kinds(register):
    register(Shout)
'''


def test_plugins_dir(tmp_path):
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "shout.py").write_text(PLUGIN)
    registry = get_registry(tmp_path / "plugins", fresh=True)
    assert registry.provider("kinds", "shout") == "shout"
    suite = write_suite(tmp_path / "s.yaml",
                        "name: s\ncriteria:\n  - {name: calm, kind: shout, max_caps: 0.3}\n")
    engine = Engine(load_suite(suite), registry)
    loud = Transcript(id="l", messages=[Message(role="assistant", content="HELLO THERE")])
    calm = Transcript(id="c", messages=[Message(role="assistant", content="Hello there")])
    assert [d.outcome for d in engine.decide_batch([loud, calm])] == ["fail", "pass"]


def test_plugins_dir_comes_before_built_ins(tmp_path):
    (tmp_path / "p").mkdir()
    (tmp_path / "p" / "myregex.py").write_text(PLUGIN.replace('kind = "shout"', 'kind = "regex"'))
    registry = get_registry(tmp_path / "p", fresh=True)
    assert registry.provider("kinds", "regex") == "myregex"


def test_installed_entry_point_plugin():
    """plugins/harness-example-plugin is installed into the test environment by `make`."""
    registry = get_registry(fresh=True)
    assert registry.provider("kinds", "max_turns") == "example"
    assert registry.provider("kinds", "repetition") == "example"
    origins = {row["name"]: row["origin"] for row in registry.plugins()}
    assert origins["example"].startswith("harness-example-plugin")
    assert origins["harness_criteria.regex"] == "built-in"


def test_example_plugin_runs_in_a_suite(tmp_path):
    suite = write_suite(tmp_path / "s.yaml", "name: s\ncriteria:\n"
                        "  - {name: short, kind: max_turns, limit: 2}\n"
                        "  - {name: loop, kind: repetition, n: 2, max_repeat: 2}\n")
    engine = Engine(load_suite(suite), get_registry(fresh=True))
    looping = Transcript(id="x", messages=[
        Message(role="user", content="hi"),
        Message(role="assistant", content="go on go on go on go on")])
    [d] = engine.decide_batch([looping])
    assert d.failed == ["loop"] and "repeated" in d.verdicts[1].explanation


def test_blocking_by_environment(monkeypatch):
    monkeypatch.setenv("HARNESS_BLOCK_PLUGINS", "example, harness_criteria.python")
    registry = get_registry(fresh=True)
    assert "max_turns" not in registry.kinds and "python" not in registry.kinds
    assert "regex" in registry.kinds


def test_misspelled_hook_is_an_error_at_start_up(tmp_path):
    (tmp_path / "typo.py").write_text(
        "from harness import hookimpl\n\n@hookimpl\ndef register_criterion_kind(register):\n"
        "    pass\n")
    with pytest.raises(PluginError, match="typo.*register_criterion_kind"):
        get_registry(tmp_path, fresh=True)


def test_broken_plugin_file_is_named(tmp_path):
    (tmp_path / "broken.py").write_text("import not_a_module_anywhere\n")
    with pytest.raises(PluginError, match="broken.py"):
        get_registry(tmp_path, fresh=True)


def test_plugins_dir_must_exist(tmp_path):
    with pytest.raises(PluginError, match="does not exist"):
        get_registry(tmp_path / "nowhere", fresh=True)


def hook_names() -> list[str]:
    return [n for n in dir(hookspecs) if n.startswith("register_")]


def test_every_hook_is_documented_and_tested():
    """Every hook has a docstring with :param:, a README mention, and an implementation or test."""
    readme = (ROOT / "README.md").read_text()
    sources = "\n".join(p.read_text() for p in (ROOT / "tests").rglob("*.py"))
    for folder in ("plugins", "harness", "criteria"):
        sources += "\n".join(p.read_text() for p in (ROOT / folder).rglob("*.py")
                             if p.name != "hookspecs.py")
    tree = ast.parse((ROOT / "harness" / "hookspecs.py").read_text())
    documented = {f.name for f in tree.body if isinstance(f, ast.FunctionDef)
                  and ":param register:" in (ast.get_docstring(f) or "")}
    for name in hook_names():
        assert name in documented, f"{name} has no :param: docstring"
        assert name in readme, f"{name} is not in the README"
        assert sources.count(name) >= 1, f"{name} is not exercised by any test or plugin"


def test_a_plugin_kind_named_like_a_built_in_one_says_that_it_shadows_it(tmp_path):
    """A plugin's `regex` kind replaces the built-in one (plugins come first): said once, on
    stderr, naming both plugins."""
    import subprocess
    import sys

    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "myregex.py").write_text(PLUGIN.replace('"shout"', '"regex"'))
    done = subprocess.run([sys.executable, "-m", "harness.cli", "--plugins-dir",
                           str(tmp_path / "plugins"), "criteria"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    warnings = [line for line in done.stderr.splitlines() if "already registered" in line]
    assert len(warnings) == 1, done.stderr
    assert "myregex" in warnings[0] and "'regex'" in warnings[0]
    assert "harness_criteria.regex" in warnings[0]
    # a plugin's own new kind says nothing
    (tmp_path / "plugins" / "myregex.py").write_text(PLUGIN)
    done = subprocess.run([sys.executable, "-m", "harness.cli", "--plugins-dir",
                           str(tmp_path / "plugins"), "criteria"],
                          capture_output=True, text=True, timeout=120)
    assert "already registered" not in done.stderr
