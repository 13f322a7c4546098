"""Message scope: each assistant turn is judged on its own text, not on earlier turns'."""

from __future__ import annotations

import dataclasses

from testutil import write_suite

from harness import Engine, Message, Transcript, load_suite
from harness.criterion import SuiteContext
from harness.plugins import get_registry
from harness.suite import CriterionSpec, validate_config

CORRECTED = Transcript(id="t", messages=[
    Message(role="user", content="q1"), Message(role="assistant", content="a bad answer"),
    Message(role="user", content="try again"), Message(role="assistant", content="a good one"),
])


def build(kind: str, scope: str = "transcript", **config):
    registry = get_registry()
    spec = CriterionSpec(name="c", kind=kind, scope=scope, config=config, origin="test")
    cls = registry.kinds[kind]
    return cls(spec, validate_config(spec, cls.Config), SuiteContext(registry=registry))


def test_regex_message_scope_judges_each_turn_on_its_own_text():
    criterion = build("regex", scope="message", pattern="bad", expect="absent")
    outcomes = [criterion.evaluate(CORRECTED.model_copy(update={"messages": CORRECTED.messages[
        : m + 1]})).outcome for m in (1, 3)]
    assert outcomes == ["fail", "pass"]


def test_regex_message_scope_through_the_engine(tmp_path):
    suite = write_suite(tmp_path / "s.yaml", "name: s\ncriteria:\n  - {name: c, kind: regex, "
                        "scope: message, pattern: bad, expect: absent}\n")
    [decision] = Engine(load_suite(suite)).decide_batch([CORRECTED])
    assert [(v.message_index, v.outcome) for v in decision.verdicts] == [(1, "fail"),
                                                                         (3, "pass")]
    assert decision.verdicts[0].evidence[0].message == 1


def test_regex_message_scope_may_still_read_user_context():
    criterion = build("regex", scope="message", pattern="again", expect="present",
                      target="user")
    assert criterion.evaluate(CORRECTED).outcome == "pass"


class KeywordModel:
    """A stand-in classifier backend: P(bad) = 1 when the text says "bad"."""

    labels = ["bad", "ok"]

    def __init__(self, model: str, options: dict) -> None:
        pass

    def predict_proba(self, texts: list[str]) -> list[dict[str, float]]:
        return [{"bad": 1.0, "ok": 0.0} if "bad" in t else {"bad": 0.0, "ok": 1.0}
                for t in texts]


def test_classifier_message_scope_judges_each_turn_on_its_own_text():
    base = get_registry()
    registry = dataclasses.replace(base, classifiers={**base.classifiers, "kw": KeywordModel})
    spec = CriterionSpec(name="c", kind="classifier", scope="message",
                         config={"label": "bad", "backend": "kw"}, origin="test")
    cls = registry.kinds["classifier"]
    criterion = cls(spec, validate_config(spec, cls.Config), SuiteContext(registry=registry))
    prefixes = [CORRECTED.model_copy(update={"messages": CORRECTED.messages[: m + 1]})
                for m in (1, 3)]
    verdicts = criterion.evaluate_batch(prefixes)
    assert [v.outcome for v in verdicts] == ["fail", "pass"]
    assert [v.evidence[0].message for v in verdicts] == [1, 3]
