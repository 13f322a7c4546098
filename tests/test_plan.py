"""The compiled plan's gate rule, the same from every front end.

A suite whose gate fails for one transcript, and two expensive criteria after it: one in the
synchronous front (a throwaway kind with ``expensive = True``), one in the async tail. Every
front end (the engine in this process, its worker processes, the pytest plugin; the Ray engine
in ``tests/plugins/ray``) must skip both for that transcript with the plan's verdict, and must
do it through :class:`harness.plan.Plan`: changing the rule there changes every front end.
"""

from __future__ import annotations

import dataclasses
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from testutil import chat, write_jsonl, write_suite

from harness import Criterion, CriterionConfig, Engine, Message, Transcript, load_suite
from harness.api import iter_items
from harness.plan import Plan
from harness.plugins import get_registry
from harness.pytest_plugin.evaluate import CriterionRunner

PLUGIN = '''\
from harness import Criterion, hookimpl


class Costly(Criterion):
    """An expensive synchronous check."""

    kind = "costly"
    cost = 2
    expensive = True

    def evaluate(self, transcript):
        return True


class CostlyAsync(Criterion):
    """An expensive asynchronous check."""

    kind = "costly_async"
    cost = 3
    expensive = True
    is_async = True

    def evaluate(self, transcript):
        return True

    async def evaluate_async(self, transcript):
        return True


@hookimpl
def register_criterion_kinds(register):
    register(Costly)
    register(CostlyAsync)
'''

SUITE = """\
name: gated
criteria:
  - name: no_sorry
    kind: regex
    pattern: sorry
    expect: absent
  - name: costly
    kind: costly
  - name: later
    kind: costly_async
"""
SKIPPED = "skipped: gate 'no_sorry' already failed"


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "costly.py").write_text(PLUGIN)
    (tmp_path / "suite.yaml").write_text(SUITE)
    records = [chat("Help", "sorry, no." if i % 2 else "Sure.", id=f"t{i}") for i in range(8)]
    write_jsonl(tmp_path / "corpus.jsonl", records)
    return tmp_path


def outcomes(decisions: list) -> dict[str, dict[str, tuple[str, str]]]:
    return {d.transcript_id: {v.criterion: (v.outcome, v.explanation) for v in d.verdicts}
            for d in decisions}


def expected() -> dict[str, dict[str, tuple[str, str]]]:
    out = {}
    for i in range(8):
        if i % 2:
            out[f"t{i}"] = {"no_sorry": ("fail", "/sorry/ matched 1 time(s) in assistant text"),
                            "costly": ("skipped", SKIPPED), "later": ("skipped", SKIPPED)}
        else:
            out[f"t{i}"] = {"no_sorry": ("pass", "/sorry/ not found in assistant text"),
                            "costly": ("pass", ""), "later": ("pass", "")}
    return out


def review(project: Path, workers: int = 1) -> dict:
    registry = get_registry(project / "plugins", fresh=True)
    with Engine(project / "suite.yaml", registry, workers=workers) as engine:
        # chunks of one record: after the first two, the front runs in worker processes
        decisions = list(engine.review(iter_items(project / "corpus.jsonl", registry),
                                       batch_size=1))
        if workers > 1:
            assert engine._pool is not None, "the front ran in worker processes"
    return outcomes(decisions)


def test_the_engine_skips_the_front_and_the_tail_by_the_plan(project: Path) -> None:
    assert review(project) == expected()


def test_worker_processes_skip_by_the_same_plan(project: Path) -> None:
    assert review(project, workers=2) == expected()


def test_the_pytest_plugin_skips_by_the_same_plan(project: Path) -> None:
    env = {**os.environ, "HARNESS_PLUGINS_DIR": str(project / "plugins")}
    out = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "-rs",
         "--transcripts", "corpus.jsonl", "--review-suite", "suite.yaml",
         "--review-out", "run"],
        cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert out.returncode == 1, out.stdout + out.stderr  # the gate fails for t1, t3, t5, t7
    assert "4 failed, 12 passed, 8 skipped" in out.stdout, out.stdout
    assert "SKIPPED [8] " in out.stdout and SKIPPED in out.stdout
    decisions = [json.loads(line)["decision"] for line in
                 (project / "run" / "journal.jsonl").read_text().splitlines()]
    got = {d["transcript_id"]: {v["criterion"]: (v["outcome"], v.get("explanation", ""))
                                for v in d["verdicts"]} for d in decisions}
    assert got == expected()


def test_the_rule_lives_in_the_plan(project: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Nothing skips once the plan says so: the engine's front and tail and the pytest
    plugin's runner all ask :meth:`Plan.skips`."""
    monkeypatch.setattr(Plan, "skips", lambda self, criterion, gate: False)
    assert {t: {c: o for c, (o, _) in v.items()} for t, v in review(project).items()} == {
        f"t{i}": {"no_sorry": "fail" if i % 2 else "pass", "costly": "pass", "later": "pass"}
        for i in range(8)}
    registry = get_registry(project / "plugins", fresh=True)
    with Engine(load_suite(project / "suite.yaml"), registry) as engine:
        runner = CriterionRunner(engine)
        sorry = [t for t in iter_items(project / "corpus.jsonl", registry) if t.id == "t1"]
        assert [v.outcome for v in runner.verdicts("costly", sorry)[0]] == ["pass"]
        assert [v.outcome for v in runner.verdicts("later", sorry)[0]] == ["pass"]


class Counted(Criterion):
    """Passes when the last message holds its ``word``; judged together with its kind."""

    kind = "counted"
    groups: list[int] = []

    class Config(CriterionConfig):
        word: str

    def evaluate(self, transcript):
        return self.config.word in transcript.messages[-1].content

    @classmethod
    def group(cls, criteria):
        class Group:
            def evaluate_batch(self, transcripts):
                cls.groups.append(len(criteria))
                return [[c.evaluate(t) for t in transcripts] for c in criteria]

        return Group()


def test_a_kind_judges_its_run_of_criteria_together(tmp_path: Path) -> None:
    """Adjacent transcript-scoped criteria of a kind with ``group`` are one step of the front:
    one call per chunk, and the same verdicts as one at a time."""
    pm_registry = get_registry(fresh=True)
    registry = dataclasses.replace(pm_registry, kinds={**pm_registry.kinds, "counted": Counted})
    suite = load_suite(write_suite(tmp_path / "suite.yaml", """\
name: grouped
criteria:
  - {name: a, kind: counted, word: apple}
  - {name: b, kind: counted, word: pear}
  - {name: c, kind: counted, word: plum, scope: message}
"""))
    transcripts = [Transcript(id=f"t{i}", messages=[
        Message(role="user", content="fruit?"),
        Message(role="assistant", content=["apple", "pear plum", "apple pear"][i % 3])])
        for i in range(7)]
    Counted.groups.clear()
    with Engine(suite, registry) as engine:
        grouped = [[(v.criterion, v.outcome) for v in d.verdicts]
                   for d in engine.review(transcripts)]
        assert Counted.groups == [2]  # a and b in one call; c (message scope) alone
        alone = [[(v.criterion, v.outcome) for v in d.verdicts]
                 for d in engine.review(transcripts, batch_size=1)]
    singles = [[("a", "apple" in t.messages[-1].content), ("b", "pear" in t.messages[-1].content),
                ("c", "plum" in t.messages[-1].content)] for t in transcripts]
    expected = [[(n, "pass" if ok else "fail") for n, ok in row] for row in singles]
    assert grouped == alone == expected
