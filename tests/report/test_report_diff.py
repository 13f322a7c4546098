"""`harness diff`: decisions that flipped between two runs and per-criterion deltas."""

from __future__ import annotations

from pathlib import Path

from conftest import REGEX_SUITE, chat

from harness.report.diff import compare

RECORDS = [
    chat("a", "hi", "Hello, thanks."),
    chat("b", "hi", "Sorry, I cannot, thanks."),
    chat("c", "hi", "I apologise, thanks."),
    chat("d", "hi", "Sure <script>x</script> thanks"),
]


def _runs(make_run, tmp_path: Path) -> tuple[Path, Path]:
    strict = tmp_path / "strict.yaml"
    strict.write_text(REGEX_SUITE.replace('pattern: "sorry"', 'pattern: "sorry|apologi[sz]e"')
                      .replace('version: "2"', 'version: "3"'))
    run_a = make_run(RECORDS, name="a")
    run_b = make_run(RECORDS[:3] + [chat("e", "new", "thanks")], name="b", suite=strict)
    return run_a, run_b


def test_compare_finds_flips_and_deltas(make_run, tmp_path: Path) -> None:
    run_a, run_b = _runs(make_run, tmp_path)
    d = compare(run_a, run_b)
    assert (d["matched"], d["only_a"], d["only_b"]) == (3, 1, 1)
    assert d["flipped"] == 1 and d["flip_counts"] == {"pass->fail": 1}
    (flip,) = d["flips"]
    assert flip["id"] == "c" and flip["a"] == "pass" and flip["b"] == "fail"
    assert flip["changed"] == [{"criterion": "no_sorry", "a": "pass", "b": "fail"}]
    assert "apologi" in flip["explanations"]["no_sorry"]
    rows = {c["name"]: c for c in d["criteria"]}
    assert rows["no_sorry"]["pass_to_fail"] == 1 and rows["no_sorry"]["fail_to_pass"] == 0
    assert rows["no_sorry"]["rate_a"] == 3 / 4 and rows["no_sorry"]["rate_b"] == 2 / 4
    assert rows["no_sorry"]["delta"] == -0.25
    assert d["a"]["totals"]["read"] == 4 and d["b"]["totals"]["read"] == 4


def test_diff_command_prints_a_table_and_writes_a_page(make_run, tmp_path: Path, cli) -> None:
    run_a, run_b = _runs(make_run, tmp_path)
    out = tmp_path / "diff.html"
    code, stdout, err = cli("diff", run_a, run_b, "-o", out)
    assert code == 0, err
    assert "1 of 3 decisions flipped" in " ".join(stdout.split())
    assert "no_sorry" in stdout and "-25.0 pts" in stdout
    html = out.read_text()
    assert '<b id="flipped-count">1</b>' in html and "<code>c</code>" in html
    assert "default-src 'none'; script-src 'none'" in html and "<script" not in html
    assert f"diff page: {out}" in stdout


def test_diff_of_a_run_with_itself_flips_nothing(demo_run: Path, cli) -> None:
    code, stdout, _ = cli("diff", demo_run, demo_run)
    assert code == 0 and "0 of 40 decisions flipped" in " ".join(stdout.split())


def test_diff_of_a_missing_run_is_a_usage_error(demo_run: Path, tmp_path: Path, cli) -> None:
    code, _, err = cli("diff", demo_run, tmp_path)
    assert code == 2 and "not a run directory" in err
