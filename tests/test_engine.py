"""The engine: decision policy, fail-closed errors, ordering and skipping, batching, scope."""

from __future__ import annotations

import pytest
from testutil import write_suite

from harness import Criterion, CriterionConfig, Engine, Message, SuiteError, Transcript, Verdict
from harness.hookspecs import hookimpl
from harness.plugins import build_registry, load_plugins
from harness.suite import load_suite

CALLS: list[tuple[str, str]] = []


class ScriptConfig(CriterionConfig):
    results: dict[str, float | str] = {}
    """transcript id -> a score, "error", or "pass"/"fail"."""
    default: float | str = "pass"


class Script(Criterion):
    """Returns what its config scripts for each transcript id."""

    kind = "script"
    Config = ScriptConfig

    def evaluate(self, transcript: Transcript):
        CALLS.append((self.name, transcript.id))
        value = self.config.results.get(transcript.id, self.config.default)
        if value == "error":
            raise ValueError(f"scripted error on {transcript.id}")
        if isinstance(value, str):
            return value == "pass"
        return float(value)


class Expensive(Script):
    """A scripted criterion that counts as expensive (like an LLM judge)."""

    kind = "expensive"
    cost = 3
    expensive = True


class Batched(Script):
    """Records the batch sizes it was given; a transcript id containing 'poison' breaks a batch."""

    kind = "batched"
    batches: list[int] = []

    def evaluate_batch(self, transcripts):
        Batched.batches.append(len(transcripts))
        if any("poison" in t.id for t in transcripts):
            raise RuntimeError("whole batch failed")
        return [self.evaluate(t) for t in transcripts]


class LastMessage(Script):
    """Fails a message whose text contains 'bad' (used with scope: message)."""

    kind = "last_message"

    def evaluate(self, transcript: Transcript):
        last = transcript.messages[-1]
        return Verdict(outcome="fail" if "bad" in last.content else "pass",
                       explanation=f"judged {last.content!r} of {len(transcript.messages)}")


class ScriptedKinds:
    @hookimpl
    def register_criterion_kinds(self, register):
        for cls in (Script, Expensive, Batched, LastMessage):
            register(cls)


@pytest.fixture
def registry():
    pm = load_plugins()
    pm.register(ScriptedKinds(), name="scripted-kinds")
    CALLS.clear()
    Batched.batches.clear()
    return build_registry(pm)


@pytest.fixture
def engine(tmp_path, registry):
    def build(criteria: str, head: str = "", **kwargs) -> Engine:
        path = write_suite(tmp_path / "suite.yaml", f"name: s\n{head}criteria:\n{criteria}")
        return Engine(load_suite(path), registry, **kwargs)

    return build


def t(tid: str, *texts: str) -> Transcript:
    texts = texts or ("answer",)
    messages = [Message(role="user", content="q")]
    for text in texts:
        messages += [Message(role="assistant", content=text), Message(role="user", content="ok")]
    return Transcript(id=tid, messages=messages[:-1])


def decide(engine: Engine, *ids: str):
    return {d.transcript_id: d for d in engine.decide_batch([t(i) for i in ids])}


def test_every_gate_must_pass(engine):
    e = engine("  - {name: a, kind: script, results: {x: fail}}\n"
               "  - {name: b, kind: script, results: {y: fail}}\n")
    d = decide(e, "x", "y", "z")
    assert (d["x"].outcome, d["x"].failed) == ("fail", ["a"])
    assert (d["y"].outcome, d["y"].failed) == ("fail", ["b"])
    assert d["z"].outcome == "pass" and d["z"].failed == []


def test_non_gates_do_not_decide_without_threshold(engine):
    e = engine("  - {name: a, kind: script}\n"
               "  - {name: soft, kind: script, gate: false, default: fail}\n")
    assert decide(e, "x")["x"].outcome == "pass"


def test_threshold_on_weighted_mean_of_non_gates(engine):
    e = engine("  - {name: gate, kind: script}\n"
               "  - {name: s1, kind: script, gate: false, weight: 3, results: {x: 0.9, y: 0.2}}\n"
               "  - {name: s2, kind: script, gate: false, weight: 1, results: {x: 0.1, y: 0.9}}\n",
               head="threshold: 0.6\n")
    d = decide(e, "x", "y")
    assert d["x"].outcome == "pass"          # (0.9*3 + 0.1) / 4 = 0.7
    assert d["y"].outcome == "fail"          # (0.2*3 + 0.9) / 4 = 0.375
    assert d["y"].failed == ["threshold"]
    assert d["x"].score == pytest.approx((1.0 + 0.9 * 3 + 0.1) / 5)


def test_threshold_needs_a_non_gate(engine):
    with pytest.raises(SuiteError, match="non-gate"):
        engine("  - {name: a, kind: script}\n", head="threshold: 0.5\n")


def test_error_on_a_gate_decides_error(engine):
    e = engine("  - {name: a, kind: script, results: {x: error}}\n"
               "  - {name: b, kind: script}\n")
    d = decide(e, "x", "y")
    assert d["x"].outcome == "error" and d["x"].errored == ["a"]
    assert "scripted error on x" in d["x"].verdicts[0].explanation
    assert d["y"].outcome == "pass"  # the error stayed with its transcript


def test_error_on_a_non_gate_matters_only_with_threshold(engine):
    criteria = ("  - {name: a, kind: script}\n"
                "  - {name: soft, kind: script, gate: false, results: {x: error}}\n")
    assert decide(engine(criteria), "x")["x"].outcome == "pass"
    assert decide(engine(criteria, head="threshold: 0.5\n"), "x")["x"].outcome == "error"


def test_cheap_first_and_expensive_skipped_after_a_failed_gate(engine):
    e = engine("  - {name: judge, kind: expensive}\n"
               "  - {name: cheap, kind: script, results: {x: fail}}\n")
    d = decide(e, "x", "y")
    assert [c for c in CALLS if c[1] == "y"] == [("cheap", "y"), ("judge", "y")]
    assert ("judge", "x") not in CALLS
    judge = d["x"].verdicts[0]
    assert (judge.criterion, judge.outcome) == ("judge", "skipped")
    assert "cheap" in judge.explanation
    assert [v.criterion for v in d["x"].verdicts] == ["judge", "cheap"]  # suite order kept
    assert d["x"].outcome == "fail"


def test_all_criteria_runs_expensive_ones_anyway(engine):
    e = engine("  - {name: cheap, kind: script, results: {x: fail}}\n"
               "  - {name: judge, kind: expensive}\n", all_criteria=True)
    assert decide(e, "x")["x"].verdicts[1].outcome == "pass"


def test_criteria_see_whole_batches(engine):
    e = engine("  - {name: b, kind: batched}\n")
    e.decide_batch([t(f"id{i}") for i in range(5)])
    assert Batched.batches == [5]


def test_a_failing_batch_is_retried_one_by_one(engine):
    e = engine("  - {name: b, kind: batched, results: {poison: error}}\n")
    d = decide(e, "ok1", "poison", "ok2")
    assert d["ok1"].outcome == "pass" and d["ok2"].outcome == "pass"
    assert d["poison"].outcome == "error"


def test_message_scope_gives_one_verdict_per_assistant_message(engine):
    e = engine("  - {name: m, kind: last_message, scope: message}\n")
    [d] = e.decide_batch([t("x", "good", "bad one", "good again")])
    assert [(v.message_index, v.outcome) for v in d.verdicts] == [
        (1, "pass"), (3, "fail"), (5, "pass")]
    assert "of 4" in d.verdicts[1].explanation  # judged the conversation up to that message
    assert d.outcome == "fail" and d.failed == ["m"]


def test_unknown_kind_names_the_known_ones(engine):
    with pytest.raises(SuiteError, match=r"unknown kind 'regexp' \(known kinds: .*regex"):
        engine("  - {name: a, kind: regexp}\n")


def test_review_is_lazy(engine):
    e = engine("  - {name: a, kind: script}\n")
    produced = []

    def source():
        for i in range(10):
            produced.append(i)
            yield t(f"id{i}")

    stream = e.review(source(), batch_size=2)
    first = next(stream)
    assert first.transcript_id == "id0" and len(produced) == 2


def test_a_failed_message_scoped_gate_does_not_skip_judges(engine):
    """`--on-fail mask` may keep the transcript, so its other verdicts are still needed."""
    e = engine("  - {name: m, kind: last_message, scope: message}\n"
               "  - {name: judge, kind: expensive}\n")
    [d] = e.decide_batch([t("x", "bad one", "good")])
    assert d.failed == ["m"] and d.verdicts[-1].outcome == "pass"
