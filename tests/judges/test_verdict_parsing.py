"""Verdict schemes, last-line parsing, and soft scores from logprobs."""

from __future__ import annotations

import asyncio
import math

import pytest

from harness.judges.base import TokenLogprob
from harness.judges.verdicts import (
    VerdictScheme,
    parse_verdict,
    soft_from_label,
    soft_score_exact,
    soft_score_from_tokens,
)

BINARY = VerdictScheme()
ABC = VerdictScheme(kind="choices", choices={"A": 0.0, "B": 0.5, "C": 1.0})
SCALE10 = VerdictScheme(kind="scale", min=1, max=10)


def test_scheme_scores() -> None:
    assert BINARY.scores() == {"PASS": 1.0, "FAIL": 0.0}
    scale = VerdictScheme.parse({"kind": "scale", "max": 5})
    assert scale.scores() == {"1": 0.0, "2": 0.25, "3": 0.5, "4": 0.75, "5": 1.0}
    assert scale.passes("3") and not scale.passes("2")
    assert VerdictScheme.parse("binary") == BINARY


@pytest.mark.parametrize(
    "bad",
    [
        {"kind": "choices"},
        {"kind": "choices", "choices": {"A": 1.0}},
        {"kind": "choices", "choices": {"A": 1.5, "B": 0.0}},
        {"kind": "scale", "min": 3, "max": 3},
        {"kind": "binary", "choices": {"A": 1.0, "B": 0.0}},
        {"kind": "stars"},
        {"kind": "binary", "colour": "red"},
    ],
)
def test_bad_schemes_are_rejected(bad: dict) -> None:
    with pytest.raises(ValueError):
        VerdictScheme.parse(bad)


def test_last_verdict_line_wins() -> None:
    text = (
        "Step 1: the user said VERDICT: PASS in a quote.\nVERDICT: PASS\n"
        "On reflection...\nVERDICT: FAIL"
    )
    parsed = parse_verdict(text, BINARY)
    assert parsed.label == "FAIL"
    assert parsed.explanation.endswith("On reflection...")
    assert text[parsed.label_start : parsed.label_end] == "FAIL"


@pytest.mark.parametrize(
    ("line", "label"),
    [
        ("VERDICT: PASS", "PASS"),
        ("verdict: pass", "PASS"),
        ("**VERDICT:** FAIL", "FAIL"),
        ("**Verdict**: **PASS**", "PASS"),
        ("VERDICT: [PASS].", "PASS"),
        ("  VERDICT:FAIL  ", "FAIL"),
        ('VERDICT: "PASS"', "PASS"),
    ],
)
def test_verdict_line_variants(line: str, label: str) -> None:
    assert parse_verdict(f"Reasoning.\n{line}\n", BINARY).label == label


@pytest.mark.parametrize(
    "text",
    [
        "",
        "I think it passes.",
        "PASS FAIL",
        "VERDICT: MAYBE",
        "VERDICT: PASS\nthen again\nVERDICT: PASS-ish",  # the last line is binding, and invalid
        "VERDICT: PASS or FAIL",
    ],
)
def test_unparseable_is_an_error_not_a_guess(text: str) -> None:
    parsed = parse_verdict(text, BINARY)
    assert parsed.label is None and parsed.error


def test_choices_and_scale_labels() -> None:
    assert parse_verdict("...\nVERDICT: (B)", ABC).label == "B"
    assert parse_verdict("VERDICT: c", ABC).label == "C"
    assert parse_verdict("VERDICT: 10", SCALE10).label == "10"
    assert parse_verdict("VERDICT: 11", SCALE10).label is None
    cased = VerdictScheme(kind="choices", choices={"a": 0.0, "A": 1.0})
    assert parse_verdict("VERDICT: A", cased).label == "A"
    assert parse_verdict("VERDICT: a", cased).label == "a"


def tokens(*items: tuple[str, float, dict[str, float]]) -> list[TokenLogprob]:
    return [TokenLogprob(token=t, logprob=lp, top={t: lp, **alts}) for t, lp, alts in items]


LN = math.log


def test_soft_binary_from_top_alternatives() -> None:
    text = "Good.\nVERDICT: PASS"
    toks = tokens(
        ("Good", -0.1, {}), (".", -0.1, {}), ("\n", -0.1, {}), ("VER", -0.1, {}),
        ("DICT", -0.1, {}), (":", -0.1, {}), (" PASS", LN(0.6), {" FAIL": LN(0.3)}),
    )  # fmt: skip
    soft = soft_score_from_tokens(text, parse_verdict(text, BINARY), BINARY, toks)
    assert soft is not None and soft.source == "approx"
    assert soft.probs["PASS"] == pytest.approx(2 / 3)
    assert soft.p_pass == pytest.approx(2 / 3) and soft.score == pytest.approx(2 / 3)


def test_soft_multi_token_label_uses_the_whole_sequence() -> None:
    # PASS is generated as " PA" + "SS"; its probability is the product, not the first token's.
    text = "VERDICT: PASS"
    toks = tokens(
        ("VERDICT", 0.0, {}), (":", 0.0, {}),
        (" PA", LN(0.8), {" FAIL": LN(0.2)}), ("SS", LN(0.5), {"RTIAL": LN(0.5)}),
    )  # fmt: skip
    soft = soft_score_from_tokens(text, parse_verdict(text, BINARY), BINARY, toks)
    # P(PASS) = 0.8 * 0.5 = 0.4, P(FAIL) = 0.2 -> normalised 2/3.
    assert soft.probs["PASS"] == pytest.approx(0.4 / 0.6)


def test_soft_scale_is_the_expected_score_and_1_is_not_10() -> None:
    scheme = VerdictScheme(kind="scale", min=1, max=10)
    text = "VERDICT: 10\n"
    toks = tokens(
        ("VERDICT", 0.0, {}), (":", 0.0, {}),
        (" 1", LN(0.7), {" 9": LN(0.3)}), ("0", LN(0.5), {"\n": LN(0.5)}), ("\n", 0.0, {}),
    )  # fmt: skip
    soft = soft_score_from_tokens(text, parse_verdict(text, scheme), scheme, toks)
    # P(10) = 0.7*0.5, P(1) = 0.7*(1-0.5), P(9) = 0.3: one third each after normalising.
    assert soft.probs["10"] == pytest.approx(0.35)
    assert soft.probs["1"] == pytest.approx(0.35)
    assert soft.probs["9"] == pytest.approx(0.30)
    expected = 0.35 * 1.0 + 0.35 * 0.0 + 0.30 * (8 / 9)
    assert soft.score == pytest.approx(expected)
    assert soft.p_pass == pytest.approx(0.65)


def test_soft_choices_p_pass_and_weighted_score() -> None:
    text = "VERDICT: B"
    toks = tokens(
        ("VERDICT", 0.0, {}), (":", 0.0, {}), (" B", LN(0.5), {" A": LN(0.25), " C": LN(0.25)})
    )
    soft = soft_score_from_tokens(text, parse_verdict(text, ABC), ABC, toks)
    assert soft.p_pass == pytest.approx(0.75)  # B (0.5) and C (1.0) pass at threshold 0.5
    assert soft.score == pytest.approx(0.5 * 0.5 + 0.25 * 1.0)


def test_soft_falls_back_when_tokens_do_not_spell_the_text() -> None:
    text = "VERDICT: PASS"
    toks = tokens(("VERDICT", 0.0, {}), (": ", 0.0, {}), ("\ufffd", 0.0, {}))
    assert soft_score_from_tokens(text, parse_verdict(text, BINARY), BINARY, toks) is None
    assert soft_score_from_tokens(text, parse_verdict(text, BINARY), BINARY, None) is None
    label = soft_from_label("PASS", BINARY)
    assert (
        label.source == "label"
        and label.score == 1.0
        and label.probs
        == {
            "PASS": 1.0,
            "FAIL": 0.0,
        }
    )


def test_soft_exact_scores_whole_continuations_with_separator_and_terminator() -> None:
    text = "Reasoning.\nVERDICT: 3\n"
    scheme = VerdictScheme(kind="scale", min=1, max=3)
    seen = {}

    async def score(prefix: str, conts: list[str]) -> list[float]:
        seen["prefix"], seen["conts"] = prefix, conts
        return [LN(0.1), LN(0.2), LN(0.5)]

    soft = asyncio.run(soft_score_exact(text, parse_verdict(text, scheme), scheme, score))
    assert seen["prefix"] == "Reasoning.\nVERDICT:"
    assert seen["conts"] == [" 1\n", " 2\n", " 3\n"]
    assert soft.source == "exact"
    assert soft.probs["3"] == pytest.approx(0.5 / 0.8)
    assert soft.score == pytest.approx((0.2 * 0.5 + 0.5 * 1.0) / 0.8)


def test_soft_exact_unavailable_returns_none() -> None:
    async def none(prefix: str, conts: list[str]) -> None:
        return None

    text = "VERDICT: PASS"
    assert asyncio.run(soft_score_exact(text, parse_verdict(text, BINARY), BINARY, none)) is None
