"""Transcripts of a batch with the very same verdicts share one run of the decision policy and
one JSON template: what they get is what deciding each alone gives."""

from __future__ import annotations

import pickle
import sys

import pytest
from testutil import write_suite

from harness import Criterion, CriterionConfig, Engine, hookimpl
from harness.criterion import Column
from harness.models import (
    Decision,
    DecisionJSON,
    Message,
    Transcript,
    Verdict,
    compact_json,
    plain_message,
    trusted,
)
from harness.options import RunOptions
from harness.outputs import PlainView, train_view
from harness.plan import Plan
from harness.plugins import build_registry, get_registry, load_plugins
from harness.suite import load_suite


def decision(explanation: str = "not found", source: str = "a.jsonl:1") -> Decision:
    verdicts = [trusted(Verdict, criterion="c", kind="regex", outcome="pass", score=1.0,
                        explanation=explanation, latency_s=1e-6),
                Verdict(criterion="d", kind="python", outcome="fail", score=0.0,
                        details={"why": ["x", 1]})]
    return trusted(Decision, transcript_id="t-1", source=source, outcome="fail", score=0.5,
                   threshold_score=None, verdicts=verdicts, failed=["d"], errored=[])


@pytest.mark.parametrize("tid, source", [
    ("t-2", "b.jsonl:7:chosen"),
    ('an "id" with \\ quotes', "dir/ü.jsonl:1"),
    ("\x00transcript_id\x00", "\x00source\x00"),  # the template's own marks, as values
    ("ü" * 300, "x:1"),
])
def test_the_template_writes_what_compact_json_writes(tid, source):
    first = decision()
    other = first.model_copy(update={"transcript_id": tid, "source": source})
    assert DecisionJSON(first).of(tid, source) == compact_json(other)


def test_no_template_where_compact_json_must_decide():
    assert DecisionJSON(decision(source="")).of("t", "s") is None  # default source: left out
    assert DecisionJSON(decision()).of("t", "") is None
    assert DecisionJSON(decision(explanation="\x00source\x00")).of("t", "s") is None
    assert DecisionJSON(decision()).of("\ud800", "s") is None  # a lone surrogate


def test_shared_verdicts_decide_as_each_alone(tmp_path):
    suite = load_suite(write_suite(tmp_path / "suite.yaml", """
name: s
threshold: 0.5
criteria:
  - {name: polite, kind: regex, pattern: "stupid", expect: absent}
  - {name: long, kind: regex, pattern: "x{3}", expect: present, gate: false}
"""))
    plan = Plan(suite, get_registry(), RunOptions())
    transcripts = [Transcript(id=f"t{n}", source=f"f:{n}", messages=[
        Message(role="user", content="hi"),
        Message(role="assistant", content=["fine", "stupid", "xxx fine"][n % 3])])
        for n in range(9)]
    verdicts, _ = plan.context.loop.run(plan.run_front(transcripts))
    shared = plan.decisions()
    for own in (True, False):
        for t, found in zip(transcripts, verdicts, strict=True):
            alone = plan.decide(t, list(found), (t.id, t.source))
            got, line, shape = shared.decide(t, list(found), (t.id, t.source), own=own)
            assert (line is None) == (shape is None)
            assert (line or compact_json(got)) == compact_json(alone)
            if own:
                assert got.model_dump() == alone.model_dump()
    # the clean transcripts share one decision; a match is evidence, its own verdict
    assert len(shared.known) == 1 + 3 + 3


def test_a_plain_transcripts_train_view_is_the_general_one():
    plain = Transcript(id="t", source="s", metadata={"tools": [{"type": "function"}]},
                       messages=[plain_message("system", "be nice"),
                                 plain_message("user", "hi"),
                                 plain_message("assistant", "hello")])
    general = plain.model_copy(update={"messages": [
        Message(role=m.role, content=m.content, name=None) for m in plain.messages]})
    assert all(m.__pydantic_fields_set__ != {"role", "content"} for m in general.messages)
    assert train_view(plain) == train_view(general)
    bare = plain.model_copy(update={"metadata": {}})  # no tools: the view made when asked for
    view = train_view(bare)
    assert isinstance(view, PlainView) and view[0] == 3 and view._made is None
    assert tuple(view) == train_view(bare.model_copy(update={"messages": general.messages}))
    assert pickle.loads(pickle.dumps(view)) == view


def test_compact_json_with_a_memo_writes_the_same_bytes():
    first, memo = decision(), {}
    assert compact_json(first, memo) == compact_json(first)
    second = first.model_copy(update={"transcript_id": "t-2", "verdicts": [
        first.verdicts[0], first.verdicts[1].model_copy(update={"explanation": "changed"})]})
    assert compact_json(second, memo) == compact_json(second)  # a new verdict, compacted anew
    assert b"changed" in compact_json(second, memo)


# --- a plugin kind's group: columns, lists, failures ---------------------------------------------
class ContainsConfig(CriterionConfig):
    word: str


class Contains(Criterion):
    """Fails a transcript whose last message holds ``word``; its group judges all at once."""

    kind = "contains"
    Config = ContainsConfig
    clean: Verdict | None = None
    mode = "columns"

    def evaluate(self, transcript):
        return self.config.word not in transcript.messages[-1].content

    @classmethod
    def group(cls, criteria):
        return ContainsGroup(criteria)


class ContainsGroup:
    def __init__(self, criteria):
        self.criteria = criteria
        self.clean = Verdict(outcome="pass", score=1.0, explanation="clean")  # one object

    def _found(self, transcripts):
        return [{i: False for i, t in enumerate(transcripts)
                 if c.config.word in t.messages[-1].content} for c in self.criteria]

    def evaluate_columns(self, transcripts):
        if Contains.mode == "broken":
            raise RuntimeError("the group broke")
        return [Column(self.clean, found) for found in self._found(transcripts)]

    def evaluate_batch(self, transcripts):
        return [[found.get(i, self.clean) for i in range(len(transcripts))]
                for found in self._found(transcripts)]


@hookimpl
def register_criterion_kinds(register):
    register(Contains)


@pytest.mark.parametrize("mode", ["columns", "lists", "broken"])
def test_a_plugin_group_decides_as_each_criterion_alone(tmp_path, monkeypatch, mode):
    pm = load_plugins()
    pm.register(sys.modules[__name__], name="contains-test")
    registry = build_registry(pm)
    if mode == "lists":
        monkeypatch.delattr(ContainsGroup, "evaluate_columns")
    monkeypatch.setattr(Contains, "mode", mode)
    suite = load_suite(write_suite(tmp_path / "suite.yaml", """
name: s
criteria:
  - {name: no_foo, kind: contains, word: foo}
  - {name: no_bar, kind: contains, word: bar}
"""))
    texts = ["fine", "foo", "bar and foo", "fine too"] * 3
    transcripts = [Transcript(id=f"t{n}", source=f"f:{n}", messages=[
        Message(role="assistant", content=text)]) for n, text in enumerate(texts)]
    with Engine(suite, registry) as engine:
        got = engine.decide_batch(transcripts)
    assert [d.outcome for d in got] == ["pass", "fail", "fail", "pass"] * 3
    assert [d.failed for d in got[:4]] == [[], ["no_foo"], ["no_foo", "no_bar"], []]
    clean = [v for d in got for v in d.verdicts if v.outcome == "pass"]
    assert all(v.criterion in ("no_foo", "no_bar") and v.kind == "contains" for v in clean)
    if mode != "broken":  # the group's own verdict, stamped for each criterion
        assert {v.explanation for v in clean} == {"clean"}
    got[0].verdicts[0].explanation = "changed by the caller"  # each decision its own objects
    got[0].verdicts[0].details["mine"] = True
    got[0].failed.append("mine")
    assert got[3].verdicts[0].explanation != "changed by the caller"
    assert "mine" not in got[3].verdicts[0].details and got[3].failed == []
