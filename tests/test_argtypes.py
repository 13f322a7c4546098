"""Command-line values are checked where they are read, with one line saying what was expected."""

from __future__ import annotations

import pytest


@pytest.mark.parametrize(("args", "expected"), [
    (["--workers", "0"], "expected a whole number >= 1, got '0'"),
    (["--limit", "ten"], "expected a whole number >= 1, got 'ten'"),
    (["--fail-under", "90"], "expected a rate between 0 and 1 (0.9 for 90%), got '90'"),
    (["--max-cost", "-1"], "expected an amount of USD >= 0, got '-1'"),
    (["--progress-every", "0"], "expected a number of seconds > 0, got '0'"),
])
def test_harness_run_refuses_a_bad_value_in_one_line(cli, tmp_path, args, expected):
    code, _, err = cli("run", "suite.yaml", "in.jsonl", "-o", tmp_path / "run", *args)
    assert code == 2 and expected in err


def test_report_and_calibrate_use_the_same_checks(cli, tmp_path):
    code, _, err = cli("report", tmp_path, "--sample", "0")
    assert code == 2 and "expected a whole number >= 1, got '0'" in err
    code, _, err = cli("calibrate", tmp_path, "--labels", "x.csv", "--bootstrap", "-1")
    assert code == 2 and "expected a whole number >= 0, got '-1'" in err
