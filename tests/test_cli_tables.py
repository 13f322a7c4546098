"""Tables outside a terminal (CI logs) are as wide as they need: names are never cut."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from rich.table import Table
from testutil import chat, write_jsonl, write_suite

from harness.tables import name_column, print_tables

LONG = "no_ai_boilerplate_phrases_such_as_as_an_ai_language_model_in_any_assistant_reply"
KIND = "a_criterion_kind_from_a_plugin_folder_with_a_rather_long_descriptive_name"
PLUGIN = f'''
from harness import Criterion, CriterionConfig, hookimpl

class Long(Criterion):
    """Always passes; its kind name is long. {"A description that goes on. " * 8}"""
    kind = "{KIND}"
    Config = CriterionConfig

    def evaluate(self, transcript):
        return True

@hookimpl
def register_criterion_kinds(register):
    register(Long)
'''


def _lines_with(text: str, name: str) -> list[str]:
    return [line for line in text.splitlines() if name in line]


def test_a_long_criterion_name_is_whole_in_a_ci_log(tmp_path: Path) -> None:
    suite = write_suite(tmp_path / "suite.yaml", f"name: {LONG}_suite\ncriteria:\n"
                        f"  - {{name: {LONG}, kind: regex, pattern: 'as an AI', "
                        "expect: absent}\n")
    corpus = write_jsonl(tmp_path / "in.jsonl", [chat("q", "fine"),
                                                 chat("q", "as an AI language model, no")])
    done = subprocess.run([sys.executable, "-m", "harness.cli", "run", str(suite), str(corpus),
                           "-o", str(tmp_path / "run"), "--no-report", "--workers", "1"],
                          capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    [row] = _lines_with(done.stdout, LONG + " ")  # the table row, the name on one line
    assert "regex" in row and "50.0%" in row
    assert "…" not in done.stdout


def test_criteria_and_plugins_listings_keep_long_names(tmp_path: Path, cli) -> None:
    folder = tmp_path / "plugins"
    folder.mkdir()
    module = "my_team_plugin_with_a_long_module_name_for_the_review_of_support_chats"
    (folder / f"{module}.py").write_text(PLUGIN)
    code, out, err = cli("criteria", "--plugins-dir", folder)
    assert code == 0, err
    assert _lines_with(out, KIND) and _lines_with(out, module)
    assert all(len(line) <= 400 for line in out.splitlines())  # descriptions wrap, names don't
    code, out, err = cli("plugins", "--plugins-dir", folder)
    assert code == 0, err
    assert _lines_with(out, module)
    assert "…" not in out


def test_print_tables_widens_only_as_far_as_needed(capsys) -> None:
    short = Table()
    name_column(short, "criterion")
    short.add_row("tone")
    print_tables(short)
    assert max(len(line) for line in capsys.readouterr().out.splitlines()) <= 80
    wide = Table()
    name_column(wide, "criterion")
    wide.add_row(LONG * 2)
    print_tables(wide)
    assert _lines_with(capsys.readouterr().out, LONG * 2)


def test_diff_keeps_long_criterion_names(tmp_path: Path, cli) -> None:
    corpus = write_jsonl(tmp_path / "in.jsonl", [chat("q", "fine", id="t1"),
                                                 chat("q", "as an AI language model", id="t2")])
    for run, pattern in (("a", "as an AI"), ("b", "fine")):
        suite = write_suite(tmp_path / f"{run}.yaml", f"name: s\ncriteria:\n"
                            f"  - {{name: {LONG}, kind: regex, pattern: '{pattern}', "
                            "expect: absent}\n")
        code, _, err = cli("run", suite, corpus, "-o", tmp_path / run, "--no-report",
                           "--workers", "1")
        assert code == 0, err
    code, out, err = cli("diff", tmp_path / "a", tmp_path / "b")
    assert code == 0, err
    assert _lines_with(out, LONG + " ")
    assert "…" not in out
