"""Transcripts of a batch with the very same verdicts share one run of the decision policy and
one JSON template: what they get is what deciding each alone gives."""

from __future__ import annotations

import pickle

import pytest
from testutil import write_suite

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
from harness.plugins import get_registry
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
