"""Unreadable or hostile suite files: one-line SuiteErrors naming the file, never a traceback."""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path

import pytest
from testutil import write_jsonl, write_suite

from harness import SuiteError, load_suite

HARNESS = Path(sys.executable).parent / "harness"
REGEX = "    kind: regex\n    pattern: x\n    expect: absent\n"

BOMB = """\
name: bomb
variables:
  a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
  b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
  c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
  d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
  e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
  f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
  g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
  h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
  i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
criteria: []
"""
"""A "billion laughs" suite: 9**9 strings once its aliases are expanded."""


def _bad_suites(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    """Each case: the suite path given, and what the error must say besides the file name."""
    folder = tmp_path / "a_folder.yaml"
    folder.mkdir()
    (tmp_path / "inc_dir").mkdir()
    latin1 = tmp_path / "latin1.yaml"
    latin1.write_bytes("name: caf\u00e9\ncriteria: []\n".encode("latin-1"))
    return {
        "suite is a folder": (folder, "is a folder"),
        "include is a folder": (
            write_suite(tmp_path / "inc_folder.yaml", "name: s\ninclude: inc_dir\n"),
            "inc_dir"),
        "not UTF-8": (latin1, "UTF-8"),
        "include is a mapping": (
            write_suite(tmp_path / "inc_map.yaml", "name: s\ninclude: {a: 1}\n"),
            "`include` must be a list of paths"),
        "include entry not a path": (
            write_suite(tmp_path / "inc_int.yaml", "name: s\ninclude: [1]\n"),
            "`include` must be a list of paths"),
        "include is a number": (
            write_suite(tmp_path / "inc_num.yaml", "name: s\ninclude: 5\n"),
            "`include` must be a list of paths"),
        "variables not a mapping": (
            write_suite(tmp_path / "vars.yaml", "name: s\nvariables: [1, 2]\n"),
            "`variables` must be a mapping"),
        "unknown keys of mixed types": (
            write_suite(tmp_path / "keys.yaml", "name: s\n1: x\nzz: y\n"), "unknown key(s)"),
        "nested too deeply": (
            write_suite(tmp_path / "deep.yaml", "name: s\nvariables: {x: " + "[" * 5000
                        + "]" * 5000 + "}\n"), "nested too deeply"),
    }


CASES = ["suite is a folder", "include is a folder", "not UTF-8", "include is a mapping",
         "include entry not a path", "include is a number", "variables not a mapping",
         "unknown keys of mixed types", "nested too deeply"]


@pytest.mark.parametrize("case", CASES)
def test_bad_suite_is_a_suite_error_naming_the_file(tmp_path: Path, case: str) -> None:
    path, says = _bad_suites(tmp_path)[case]
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    message = str(info.value)
    assert str(path.resolve()) in message and says in message, message
    assert "\n" not in message


@pytest.mark.parametrize("case", CASES)
def test_bad_suite_through_the_cli_is_one_line_exit_2(tmp_path: Path, case: str, cli) -> None:
    path, says = _bad_suites(tmp_path)[case]
    inputs = write_jsonl(tmp_path / "in.jsonl", [])
    code, _, err = cli("run", path, inputs, "-o", tmp_path / "run")
    assert code == 2, err
    assert err.startswith("harness: ") and err.count("\n") == 1 and says in err, err
    assert "Traceback" not in err


def test_include_folder_in_a_real_process(tmp_path: Path) -> None:
    (tmp_path / "inc_dir").mkdir()
    suite = write_suite(tmp_path / "s.yaml", "name: s\ninclude: [inc_dir]\n")
    inputs = write_jsonl(tmp_path / "in.jsonl", [])
    proc = subprocess.run([str(HARNESS), "run", str(suite), str(inputs), "-o",
                           str(tmp_path / "run")], capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "Traceback" not in proc.stderr
    assert str(suite) in proc.stderr and "inc_dir" in proc.stderr


def test_include_mapping_is_not_reported_as_a_missing_file(tmp_path: Path) -> None:
    path = write_suite(tmp_path / "s.yaml", "name: s\ninclude: {a: 1}\n")
    with pytest.raises(SuiteError) as info:
        load_suite(path)
    assert "not found" not in str(info.value)


def test_alias_bomb_is_refused_fast(tmp_path: Path) -> None:
    path = write_suite(tmp_path / "bomb.yaml", BOMB)
    start = time.perf_counter()
    with pytest.raises(SuiteError, match="too many alias expansions") as info:
        load_suite(path)
    assert time.perf_counter() - start < 2
    assert str(path) in str(info.value)


def test_alias_bomb_in_criterion_config_is_refused(tmp_path: Path) -> None:
    levels = "".join(f"      {x}: &{x} [{', '.join([f'*{p}'] * 9)}]\n"
                     for p, x in zip("abcdefgh", "bcdefghi", strict=True))
    text = ("name: bomb\ncriteria:\n  - name: a\n" + REGEX + "    lol:\n"
            "      a: &a [lol, lol, lol, lol, lol, lol, lol, lol, lol]\n" + levels)
    path = write_suite(tmp_path / "bomb2.yaml", text)
    with pytest.raises(SuiteError, match="too many alias expansions"):
        load_suite(path)


def _limit_memory() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (3 << 30, 3 << 30))


def test_alias_bomb_through_the_cli_stops_at_load(tmp_path: Path) -> None:
    """In a process capped at 3 GB and 30 s: an unbounded loader would hit either cap."""
    path = write_suite(tmp_path / "bomb.yaml", BOMB)
    inputs = write_jsonl(tmp_path / "in.jsonl", [{"messages": [
        {"role": "user", "content": "hi"}, {"role": "assistant", "content": "yo"}]}])
    proc = subprocess.run([str(HARNESS), "run", str(path), str(inputs), "-o",
                           str(tmp_path / "run")], capture_output=True, text=True, timeout=30,
                          preexec_fn=_limit_memory)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "too many alias expansions" in proc.stderr and proc.stderr.count("\n") == 1


def test_ordinary_anchors_and_aliases_still_work(tmp_path: Path) -> None:
    path = write_suite(tmp_path / "s.yaml", """\
name: s
variables:
  tone: &tone formal
  also: *tone
  defaults: &defaults {kind: regex, expect: absent, flags: &flags [IGNORECASE]}
criteria:
  - name: a
    <<: *defaults
    pattern: x
  - name: b
    <<: *defaults
    pattern: y
    flags: *flags
""")
    suite = load_suite(path)
    assert suite.variables["also"] == "formal"
    a, b = suite.criteria
    assert (a.kind, a.config) == ("regex", {"pattern": "x", "expect": "absent",
                                            "flags": ["IGNORECASE"]})
    assert b.config["flags"] == ["IGNORECASE"] and b.config["pattern"] == "y"


def test_a_large_suite_with_many_aliases_loads(tmp_path: Path) -> None:
    """Aliases used a few thousand times are fine: only blow-ups are refused."""
    crits = "".join(f"  - name: c{i}\n    <<: *d\n    pattern: p{i}\n" for i in range(2000))
    path = write_suite(tmp_path / "s.yaml", "name: s\nvariables:\n  d: &d {kind: regex, "
                       "expect: absent, flags: [IGNORECASE, MULTILINE]}\ncriteria:\n" + crits)
    suite = load_suite(path)
    assert len(suite.criteria) == 2000 and suite.criteria[-1].config["pattern"] == "p1999"


def test_recursive_alias_is_refused(tmp_path: Path) -> None:
    path = write_suite(tmp_path / "s.yaml", "name: s\nvariables:\n  a: &a [1, *a]\n")
    with pytest.raises(SuiteError, match="recursive alias") as info:
        load_suite(path)
    assert str(path) in str(info.value)
