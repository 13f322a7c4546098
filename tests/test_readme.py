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


def test_the_panel_example_keeps_a_contested_transcript_out(tmp_path):
    """The README's `safe` panel is a gate: when its members disagree (the slur check fails,
    the others pass), the transcript must not reach train.jsonl."""
    import yaml

    [block] = [b for b in code_blocks("yaml") if "kind: panel" in b and "name: safe" in b]
    [safe] = [c for c in yaml.safe_load(block)["criteria"] if c["name"] == "safe"]
    assert safe.get("gate", True)
    # the members that need models pass here; the regex member is the README's own
    safe["members"] = [m if m["kind"] == "regex" else
                       {"name": m["name"], "kind": "regex", "pattern": "zzz-never",
                        "expect": "absent"} for m in safe["members"]]
    suite = tmp_path / "s.yaml"
    suite.write_text(yaml.safe_dump({"name": "s", "criteria": [safe]}))
    corpus = write_jsonl(tmp_path / "c.jsonl", [
        {"id": "contested", "messages": [{"role": "user", "content": "q"},
                                         {"role": "assistant", "content": "You idiot."}]},
        {"id": "fine", "messages": [{"role": "user", "content": "q"},
                                    {"role": "assistant", "content": "Gladly."}]}])
    outcomes = {d.transcript_id: d.outcome for d in harness.review(suite, corpus)}
    assert outcomes == {"contested": "fail", "fine": "pass"}


def test_the_run_directory_table_names_every_file_a_judged_run_writes(tmp_path, cli):
    """A user copying a run's judge cache elsewhere (`--cache-dir`) needs every file of it."""
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent / "judges"))
    from chat_server import ChatServer

    section = README.split("### The run directory", 1)[1].split("\n\n", 2)[1]
    documented = set(re.findall(r"`([\w.-]+\.\w+)`", section))
    with ChatServer() as server:
        suite = write_suite(tmp_path / "s.yaml", f"""\
name: judged
judge: {{name: openai/j, base_url: "{server.base_url}"}}
criteria:
  - name: fine
    kind: llm_judge
    rubric: "Is this fine? {{{{ last_assistant }}}}"
""")
        corpus = write_jsonl(tmp_path / "c.jsonl", [{"messages": [
            {"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}])
        code, _, err = cli("run", suite, corpus, "-o", tmp_path / "run", "--no-progress")
    assert code == 0, err
    written = {p.name for p in (tmp_path / "run").iterdir() if not p.name.startswith(".")}
    assert "judge-nonce.key" in written
    assert written - documented == set()
