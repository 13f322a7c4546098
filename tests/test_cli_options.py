"""`harness --version`, and `--plugins-dir` before or after any subcommand."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from importlib import metadata
from pathlib import Path

import pytest
from testutil import chat, write_jsonl, write_suite

from harness.cli import build_parser

PLUGIN = '''
from harness import Criterion, CriterionConfig, hookimpl

class Shout(Criterion):
    """No capital letters at all."""
    kind = "no_caps_from_folder"
    Config = CriterionConfig

    def evaluate(self, transcript):
        return not any(c.isupper() for c in transcript.messages[-1].content)

@hookimpl
def register_criterion_kinds(register):
    register(Shout)
'''


@pytest.fixture
def plugins(tmp_path: Path) -> Path:
    folder = tmp_path / "my_plugins"
    folder.mkdir()
    (folder / "caps_plugin.py").write_text(PLUGIN)
    return folder


@pytest.mark.parametrize("flag", ["--version", "-V"])
def test_version_prints_the_installed_distribution(flag: str) -> None:
    done = subprocess.run([sys.executable, "-m", "harness.cli", flag],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == f"review-harness {metadata.version('review-harness')}"


def test_version_is_in_the_help(cli) -> None:
    code, out, _ = cli("--help")
    assert code == 0 and "--version" in out


def _where(position: str, folder: Path, command: list[str]) -> list[str]:
    flag = ["--plugins-dir", str(folder)]
    return flag + command if position == "before" else command[:1] + flag + command[1:]


@pytest.mark.parametrize("position", ["before", "after"])
def test_plugins_dir_for_run(position: str, plugins: Path, tmp_path: Path, cli) -> None:
    suite = write_suite(tmp_path / "s.yaml", "name: s\ncriteria:\n"
                        "  - {name: calm, kind: no_caps_from_folder}\n")
    corpus = write_jsonl(tmp_path / "c.jsonl", [chat("q", "fine"), chat("q", "LOUD")])
    code, _, err = cli(*_where(position, plugins, ["run", str(suite), str(corpus),
                                                   "-o", str(tmp_path / "run"),
                                                   "--no-report"]))
    assert code == 0, err
    summary = json.loads((tmp_path / "run" / "summary.json").read_text())
    assert (summary["passed"], summary["failed"]) == (1, 1)  # the folder's kind decided


@pytest.mark.parametrize("position", ["before", "after"])
@pytest.mark.parametrize(("command", "shows"), [(["criteria"], "no_caps_from_folder"),
                                                (["plugins"], "caps_plugin")])
def test_plugins_dir_for_listings(position: str, command: list[str], shows: str,
                                  plugins: Path, cli) -> None:
    code, out, err = cli(*_where(position, plugins, command))
    assert code == 0, err
    assert shows in out


def test_every_subcommand_accepts_plugins_dir_after_it(plugins: Path) -> None:
    parser = build_parser(str(plugins))
    [sub] = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    assert {"run", "criteria", "plugins", "diff", "export", "report"} <= set(sub.choices)
    for name, command in sub.choices.items():
        assert "--plugins-dir" in command._option_string_actions, name


def test_plugins_dir_twice_with_different_folders_is_a_usage_error(
        plugins: Path, tmp_path: Path, cli) -> None:
    code, _, err = cli("--plugins-dir", plugins, "plugins", "--plugins-dir", tmp_path)
    assert code == 2 and "--plugins-dir given twice" in err
