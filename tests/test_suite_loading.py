"""Suite files: validation errors that name file, criterion and key; includes."""

from __future__ import annotations

import pytest
from testutil import write_suite

from harness import Engine, SuiteError, load_suite

REGEX = "    kind: regex\n    pattern: x\n    expect: absent\n"


def test_typo_in_a_kind_key_names_file_criterion_and_key(tmp_path):
    path = write_suite(tmp_path / "typo.yaml",
                       "name: s\ncriteria:\n  - name: no_x\n    kind: regex\n    patern: x\n"
                       "    expect: absent\n")
    with pytest.raises(SuiteError) as info:
        Engine(load_suite(path))
    message = str(info.value)
    assert str(path) in message and "'no_x'" in message
    assert "unknown key 'patern'" in message and "missing key 'pattern'" in message


def test_typo_in_a_common_key(tmp_path):
    path = write_suite(tmp_path / "s.yaml", "name: s\ncriteria:\n  - name: a\n" + REGEX
                       + "    gate: maybe\n")
    with pytest.raises(SuiteError, match=r"s.yaml: criterion 'a': 'gate'"):
        load_suite(path)


def test_unknown_top_level_key(tmp_path):
    path = write_suite(tmp_path / "s.yaml", "name: s\ncriterias: []\n")
    with pytest.raises(SuiteError, match=r"unknown key\(s\) \['criterias'\]"):
        load_suite(path)


def test_bad_value_type(tmp_path):
    path = write_suite(tmp_path / "s.yaml", "name: s\ncriteria:\n  - name: a\n" + REGEX
                       + "    target: everyone\n")
    with pytest.raises(SuiteError, match=r"criterion 'a' \(kind regex\): 'target'"):
        Engine(load_suite(path))


@pytest.mark.parametrize("text", ["", "- just\n- a list\n", "name: [unclosed\n"])
def test_not_a_suite(tmp_path, text):
    with pytest.raises(SuiteError, match="s.yaml"):
        load_suite(write_suite(tmp_path / "s.yaml", text))


def test_duplicate_names(tmp_path):
    path = write_suite(tmp_path / "s.yaml", "name: s\ncriteria:\n  - name: a\n" + REGEX
                       + "  - name: a\n" + REGEX)
    with pytest.raises(SuiteError, match="defined twice"):
        load_suite(path)


def test_include_composes_and_overrides(tmp_path):
    write_suite(tmp_path / "base.yaml", "name: base\njudge: local/smollm2\n"
                "variables: {tone: formal, lang: en}\ncriteria:\n"
                "  - name: a\n" + REGEX + "  - name: b\n" + REGEX)
    path = write_suite(tmp_path / "main.yaml", "name: main\ninclude: base.yaml\n"
                       "variables: {lang: fr}\ncriteria:\n"
                       "  - name: b\n    kind: regex\n    pattern: y\n    expect: present\n"
                       "  - name: c\n" + REGEX)
    suite = load_suite(path)
    assert [c.name for c in suite.criteria] == ["a", "b", "c"]
    assert suite.criteria[1].config["pattern"] == "y"
    assert suite.criteria[0].origin.endswith("base.yaml")
    assert suite.judge == "local/smollm2"
    assert suite.variables == {"tone": "formal", "lang": "fr"}


def test_include_cycle(tmp_path):
    write_suite(tmp_path / "a.yaml", "name: a\ninclude: b.yaml\n")
    write_suite(tmp_path / "b.yaml", "name: b\ninclude: a.yaml\n")
    with pytest.raises(SuiteError, match="include cycle"):
        load_suite(tmp_path / "a.yaml")


def test_missing_file(tmp_path):
    with pytest.raises(SuiteError, match="not found"):
        load_suite(tmp_path / "nope.yaml")
