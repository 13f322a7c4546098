"""Where a transcript is cut and how the interruption is spliced in (no model needed)."""

from __future__ import annotations

from harness.correct.cut import Failure, cut, first_failure, not_correctable
from harness.correct.supervise import interruption
from harness.models import Message, Span, Transcript, Verdict


def transcript(**assistant: object) -> Transcript:
    return Transcript(id="t", messages=[Message(role="user", content="What is 17 × 24?"),
                                        Message(role="assistant", **assistant)])


def failed(index: int = 1, *spans: Span) -> Verdict:
    return Verdict(criterion="math", outcome="fail", message_index=index, evidence=list(spans),
                   explanation="17 × 24 is 408")


def test_an_interruption_is_one_line_starting_no() -> None:
    assert interruption("No. The product is wrong") == "No, the product is wrong."
    assert interruption("  it is\n\n 408!  ") == "No, it is 408!"
    assert interruption("") == "No, that is wrong."


def test_inline_in_the_reasoning_masks_its_prefix_and_trains_the_rest() -> None:
    t = transcript(content="398", reasoning="17 × 24 = 398, since 17 × 20 = 340.")
    span = Span(message=1, start=0, end=13, field="reasoning")
    plan = cut(t, Failure(1, [failed(1, span)]), "No, check it.", "inline")
    assert plan.field == "reasoning" and plan.split_at == 13
    assert plan.prompt[-1] == {"role": "assistant",
                               "content": "<think>\n17 × 24 = 398 No, check it. "}
    masked, trained = plan.splice("17 × 4 = 68, so 408.\n</think>\n\n17 × 24 = 408.", None)[1:]
    assert (masked.reasoning, masked.content, masked.weight) == ("17 × 24 = 398", "", 0.0)
    assert trained.reasoning == "No, check it. 17 × 4 = 68, so 408."
    assert (trained.content, trained.weight) == ("17 × 24 = 408.", 1)


def test_inline_without_an_evidence_span_falls_back_to_a_turn() -> None:
    t = transcript(content="398")
    plan = cut(t, Failure(1, [failed(1)]), "No, check it.", "inline")
    assert plan.style == "turn"
    assert [m.role for m in plan.splice("408", None)] == ["user", "assistant", "user",
                                                          "assistant"]


def test_what_cannot_be_corrected() -> None:
    t = transcript(content="398")
    assert not_correctable(t, [failed()]) is None
    whole = Verdict(criterion="ends", outcome="fail")
    assert "whole transcript" in not_correctable(t, [failed(), whole])
    assert "errored" in not_correctable(t, [Verdict(criterion="j", outcome="error")])
    assert "not the assistant's" in not_correctable(t, [failed(0)])
    # a turn already masked (an earlier round) is context, not a failure to correct
    masked = transcript(content="398", weight=0)
    assert first_failure(masked, [failed()]) is None
