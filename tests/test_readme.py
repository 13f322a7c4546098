"""The README's examples run as written."""

from __future__ import annotations

import re
from pathlib import Path

from testutil import write_jsonl, write_suite

import harness

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def code_blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_plugin_example_runs_from_a_plugins_dir(tmp_path, cli):
    [plugin] = [b for b in code_blocks("python") if "register_criterion_kinds" in b]
    folder = tmp_path / "my_plugins"
    folder.mkdir()
    (folder / "max_turns_readme.py").write_text(plugin.replace('"max_turns"', '"max_turns2"'))
    suite = write_suite(tmp_path / "s.yaml",
                        "name: s\ncriteria:\n  - {name: short, kind: max_turns2, limit: 2}\n")
    corpus = write_jsonl(tmp_path / "c.jsonl", [
        {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]},
        {"messages": [{"role": "user", "content": "q"}] * 3},
    ])
    code, _, err = cli("--plugins-dir", folder, "run", suite, corpus, "-o", tmp_path / "run")
    assert code == 0, err
    assert [d.outcome for d in harness.review(
        suite, corpus, registry=harness.get_registry(folder))] == ["pass", "fail"]


def test_suite_example_is_a_valid_suite(tmp_path):
    [suite] = [b for b in code_blocks("yaml") if "criteria:" in b and "include" in b]
    (tmp_path / "base.yaml").write_text("name: base\n")
    (tmp_path / "checks.py").write_text(
        (Path(__file__).resolve().parent.parent / "examples" / "checks.py").read_text())
    engine = harness.Engine(write_suite(tmp_path / "s.yaml", suite))
    assert [c.name for c in engine.criteria] == ["no_ai_boilerplate", "ends_with_answer",
                                                 "concise"]
