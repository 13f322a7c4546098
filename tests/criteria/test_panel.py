"""Panels (a ``panel`` of criteria, an ``llm_judge`` with ``judges``) and judge repeats,
end to end against the real local chat-completions server."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "judges"))

from chat_server import ChatServer  # noqa: E402

import harness  # noqa: E402
from harness import Engine, Message, SuiteError, Transcript, Verdict, load_suite  # noqa: E402
from harness.agreement import Agreement  # noqa: E402
from harness.export import export_run  # noqa: E402
from harness.judges.cache import JudgeCache  # noqa: E402
from harness.plugins import get_registry  # noqa: E402
from harness_criteria.panel import Panel, combine  # noqa: E402


def answer_of(request: dict[str, Any]) -> str:
    """The fenced final answer in the judge's prompt."""
    user = request["messages"][-1]["content"]
    nonce = re.search(r"<<<TRANSCRIPT-([0-9a-f]{16})>>>", user).group(1)
    blocks = re.findall(rf"<<<TRANSCRIPT-{nonce}>>>\n(.*?)\n<<<END-TRANSCRIPT-{nonce}>>>",
                        user, re.DOTALL)
    return blocks[-1]


def votes_judge(request: dict[str, Any]) -> str:
    """Each model votes by a letter in the answer: judge `x` passes answers containing `+x`."""
    model = request["model"]
    verdict = "PASS" if f"+{model}" in answer_of(request) else "FAIL"
    return f"My vote.\nVERDICT: {verdict}"


@pytest.fixture
def server() -> Iterator[ChatServer]:
    with ChatServer(reply=votes_judge) as s:
        yield s


def judge(server: ChatServer, model: str) -> str:
    return f"{{name: openai/{model}, base_url: '{server.base_url}', max_attempts: 1}}"


def write_suite(tmp_path: Path, body: str) -> Path:
    path = tmp_path / "suite.yaml"
    path.write_text(f"name: panels\ncriteria:\n{body}")
    return path


def transcript(tid: str, answer: str) -> Transcript:
    return Transcript(id=tid, messages=[Message(role="user", content="Help me."),
                                        Message(role="assistant", content=answer)])


def panel_verdict(decision: Any, name: str = "panel") -> Any:
    return next(v for v in decision.verdicts if v.criterion == name)


def judges_suite(tmp_path: Path, server: ChatServer, aggregate: str, on_disagreement: str,
                 models: str = "abc", extra: str = "") -> Path:
    judges = ", ".join(judge(server, m) for m in models)
    return write_suite(tmp_path, f"""\
  - name: panel
    kind: llm_judge
    rubric: "Is this good? {{{{ last_assistant }}}}"
    judges: [{judges}]
    aggregate: {aggregate}
    on_disagreement: {on_disagreement}
{extra}""")


def test_majority_of_judges_keeps_every_member_verdict(tmp_path: Path, server: ChatServer):
    engine = Engine(judges_suite(tmp_path, server, "majority", "fail"), get_registry())
    two_of_three, one_of_three = engine.review([transcript("t1", "+a +b"), transcript("t2", "+c")])
    v = panel_verdict(two_of_three)
    assert v.outcome == "pass" and two_of_three.outcome == "pass"
    assert [(m["name"], m["outcome"]) for m in v.details["members"]] == [
        ("openai/a", "pass"), ("openai/b", "pass"), ("openai/c", "fail")]
    assert v.details["members"][0]["details"]["judge"] == "openai/a"
    assert v.details["votes"] == {"pass": 2, "fail": 1, "error": 0, "abstained": 0}
    assert v.details["agreement"] == pytest.approx(2 / 3)
    assert panel_verdict(one_of_three).outcome == "fail"
    assert server.completions == 6


@pytest.mark.parametrize(("on_disagreement", "verdict", "decision"), [
    ("abstain", "skipped", "pass"), ("fail", "fail", "fail"), ("error", "error", "error")])
def test_unanimous_disagreement(tmp_path: Path, server: ChatServer, on_disagreement: str,
                                verdict: str, decision: str):
    engine = Engine(judges_suite(tmp_path, server, "unanimous", on_disagreement, "ab"),
                    get_registry())
    agree, split = engine.review([transcript("t1", "+a +b"), transcript("t2", "+a")])
    assert panel_verdict(agree).outcome == "pass"
    v = panel_verdict(split)
    assert v.outcome == verdict and v.details["disagreement"] is True
    assert split.outcome == decision  # an abstaining gate decides nothing, like skipped
    assert v.details.get("abstained", False) is (on_disagreement == "abstain")


def test_mean_of_member_scores_against_threshold(tmp_path: Path, server: ChatServer):
    (tmp_path / "checks.py").write_text(
        "def short(transcript):\n    return len(transcript.messages[-1].content) < 20\n")
    path = write_suite(tmp_path, f"""\
  - name: panel
    kind: panel
    aggregate: mean
    threshold: 0.6
    members:
      - {{name: says_please, kind: regex, pattern: please, expect: present}}
      - {{name: short, kind: python, function: "checks:short"}}
      - name: judge
        kind: llm_judge
        judge: {judge(server, "a")}
        rubric: "Good? {{{{ last_assistant }}}}"
""")
    engine = Engine(path, get_registry())
    two, one = engine.review([transcript("t1", "please +a"), transcript("t2", "please, " * 5)])
    v = panel_verdict(two)
    assert [m["kind"] for m in v.details["members"]] == ["regex", "python", "llm_judge"]
    assert v.score == pytest.approx(1.0) and v.outcome == "pass"
    assert panel_verdict(one).score == pytest.approx(1 / 3)
    assert panel_verdict(one).outcome == "fail"


def test_a_panel_of_cheap_criteria_runs_in_the_synchronous_stage(tmp_path: Path):
    path = write_suite(tmp_path, """\
  - name: panel
    kind: panel
    on_disagreement: abstain
    members:
      - {name: a, kind: regex, pattern: a, expect: present}
      - {name: b, kind: regex, pattern: b, expect: present}
""")
    engine = Engine(path, get_registry())
    assert engine.criteria[0].is_async is False and engine.criteria[0].cost == 0
    both, split = engine.review([transcript("t1", "ab"), transcript("t2", "a")])
    assert panel_verdict(both).outcome == "pass"
    assert panel_verdict(split).details["abstained"] is True


def test_member_errors_fail_closed(tmp_path: Path, server: ChatServer):
    server.fail_first(1, status=500)
    engine = Engine(judges_suite(tmp_path, server, "majority", "fail", "ab"), get_registry())
    (decision,) = engine.review([transcript("t1", "+a +b")])
    v = panel_verdict(decision)
    assert v.outcome == "error" and decision.outcome == "error"  # 1 pass of 2: no majority


def test_bad_panels_are_suite_errors(tmp_path: Path, server: ChatServer):
    one = write_suite(tmp_path, """\
  - name: panel
    kind: panel
    members: [{name: a, kind: regex, pattern: a, expect: present}]
""")
    with pytest.raises(SuiteError, match="members"):
        Engine(one, get_registry())
    gated = write_suite(tmp_path, """\
  - name: panel
    kind: panel
    members:
      - {name: a, kind: regex, pattern: a, expect: present, gate: false}
      - {name: b, kind: nosuchkind}
""")
    with pytest.raises(SuiteError, match="gate belong to the owner criterion"):
        Engine(gated, get_registry())
    both = judges_suite(tmp_path, server, "majority", "fail",
                        extra=f"    judge: {judge(server, 'a')}\n")
    with pytest.raises(SuiteError, match="not both"):
        Engine(both, get_registry())


def test_summary_reports_agreement_and_abstentions(tmp_path: Path, server: ChatServer):
    """Fleiss' kappa and Krippendorff's alpha of 3 judges over 4 transcripts, by hand:
    ratings PPP, FFF, PPF, PFF: P_i = 1, 1, 1/3, 1/3, mean 2/3; p(P) = p(F) = 1/2, P_e = 1/2;
    kappa = (2/3 - 1/2) / (1/2) = 1/3. Coincidences: o_PP = o_FF = 4, o_PF = o_FP = 2, n = 12;
    alpha = 1 - 11 * 4 / (6 * 6 * 2) = 28/72."""
    inputs = tmp_path / "in.jsonl"
    answers = ["+a +b +c", "none", "+a +b", "+a"]
    inputs.write_text("".join(json.dumps({"id": f"t{i}", "messages": [
        {"role": "user", "content": "Help me."}, {"role": "assistant", "content": a}]}) + "\n"
        for i, a in enumerate(answers)))
    path = judges_suite(tmp_path, server, "unanimous", "abstain")
    summary = harness.run(path, inputs, tmp_path / "run", workers=1)
    row = summary["criteria"]["panel"]
    assert (row["pass"], row["fail"], row["skipped"], row["abstained"]) == (1, 1, 2, 2)
    assert row["agreement"]["fleiss_kappa"] == pytest.approx(1 / 3)
    assert row["agreement"]["krippendorff_alpha"] == pytest.approx(28 / 72)
    assert row["agreement"]["units"] == 4 and row["agreement"]["raters"] == 3
    assert summary["passed"] == 3  # the two abstentions decide nothing; the gate passes
    report = (tmp_path / "run" / "report.html").read_text()
    assert "agreement: Fleiss κ 0.33, Krippendorff α 0.39; 2 abstained" in report


def test_agreement_with_missing_ratings():
    """A unit with a missing rating: out of Fleiss' kappa, in Krippendorff's alpha."""
    agreement = Agreement()
    for unit in (["pass", "pass"], ["fail", "fail"], ["pass", "fail"], ["pass", None]):
        agreement.add(unit)
    # Fleiss over 3 complete units: P_i = 1, 1, 0 -> 2/3; p = 1/2 each -> P_e = 1/2 -> 1/3
    assert agreement.fleiss_kappa() == pytest.approx(1 / 3)
    # alpha: o_PP = 2, o_FF = 2, o_PF = o_FP = 1, n = 6: 1 - 5 * 2 / (3 * 3 * 2) = 4/9
    assert agreement.krippendorff_alpha() == pytest.approx(4 / 9)
    same = Agreement()
    same.add(["pass", "pass"])
    assert same.fleiss_kappa() is None and same.krippendorff_alpha() is None


def seeded_judge(request: dict[str, Any]) -> str:
    """Repeats 0 and 1 pass, repeat 2 fails (the request's seed is the repeat index)."""
    return f"Hmm.\nVERDICT: {'FAIL' if request.get('seed') == 2 else 'PASS'}"


def test_repeats_record_stability_in_distinct_cache_entries(tmp_path: Path, server: ChatServer):
    server.reply = seeded_judge
    body = """\
  - name: judged
    kind: llm_judge
    judge: {judge}
    rubric: "Good? {{{{ last_assistant }}}}"
    repeats: {k}
"""
    cache = tmp_path / "cache"
    once = write_suite(tmp_path, body.format(judge=judge(server, "a"), k=1))
    (first,) = Engine(once, get_registry(), cache_dir=cache).review([transcript("t", "x")])
    assert "stability" not in panel_verdict(first, "judged").details
    assert server.completions == 1
    thrice = write_suite(tmp_path, body.format(judge=judge(server, "a"), k=3))
    (decision,) = Engine(thrice, get_registry(), cache_dir=cache).review([transcript("t", "x")])
    v = panel_verdict(decision, "judged")
    assert v.outcome == "pass" and v.details["stability"] == pytest.approx(2 / 3)
    assert [r["label"] for r in v.details["repeats"]] == ["PASS", "PASS", "FAIL"]
    assert server.completions == 3  # repeat 0 kept the single judgement's cache entry
    assert len(list(JudgeCache(cache).directory.rglob("*"))) > 0
    (again,) = Engine(thrice, get_registry(), cache_dir=cache).review([transcript("t", "x")])
    assert server.completions == 3 and panel_verdict(again, "judged").details["stability"] == \
        pytest.approx(2 / 3)


def test_export_min_stability_keeps_unstable_verdicts_out(tmp_path: Path, server: ChatServer,
                                                          cli: Any):
    def reply(request: dict[str, Any]) -> str:  # "wobbly" answers get one dissenting repeat
        wobbly = "wobbly" in answer_of(request) and request.get("seed") == 2
        return f"ok\nVERDICT: {'FAIL' if wobbly else 'PASS'}"

    server.reply = reply
    inputs = tmp_path / "in.jsonl"
    inputs.write_text("".join(json.dumps({"id": tid, "messages": [
        {"role": "user", "content": "Hi."}, {"role": "assistant", "content": a}]}) + "\n"
        for tid, a in (("steady", "hello"), ("wobbly", "wobbly hello"))))
    path = write_suite(tmp_path, f"""\
  - name: judged
    kind: llm_judge
    judge: {judge(server, "a")}
    rubric: "Good? {{{{ last_assistant }}}}"
    repeats: 3
""")
    summary = harness.run(path, inputs, tmp_path / "run", workers=1, report=False)
    assert summary["passed"] == 2
    assert summary["criteria"]["judged"]["mean_stability"] == pytest.approx((1 + 2 / 3) / 2)
    out = tmp_path / "train.jsonl"
    code, stdout, err = cli("export", tmp_path / "run", "-o", out, "--min-stability", "0.9")
    assert code == 0, err
    kept = [json.loads(line)["metadata"]["transcript_id"] for line in out.open()]
    assert kept == ["steady"]
    assert "stability below 0.9 1" in stdout
    everything = export_run(tmp_path / "run", tmp_path / "all.jsonl", "openai", {})
    assert everything["kept"] == 2


def test_combine_leaves_abstaining_members_out():
    def v(outcome: str, **details: Any) -> Verdict:
        return Verdict(outcome=outcome, score={"pass": 1.0, "fail": 0.0}.get(outcome),
                       details=details)

    abstain = v("skipped", abstained=True)
    majority = Panel(aggregate="majority", on_disagreement="error")
    assert combine(majority, [("a", v("pass")), ("b", abstain), ("c", v("fail"))]).outcome \
        == "error"  # 1 against 1: a disagreement
    assert combine(majority, [("a", v("pass")), ("b", abstain), ("c", v("pass"))]).outcome \
        == "pass"
    nobody = combine(majority, [("a", abstain), ("b", abstain)])
    assert nobody.outcome == "skipped" and nobody.details["abstained"] is True
    stable = combine(majority, [("a", v("pass", stability=0.6)), ("b", v("pass", stability=1))])
    assert stable.details["stability"] == 0.6  # the least stable member's


def test_a_member_naming_the_suite_judge_takes_its_settings(tmp_path: Path,
                                                           server: ChatServer) -> None:
    """`judges:` entries and panel members named like the suite's judge are that judge (its
    base_url, limits, prices), as --judge keeps them: one rule for a judge's name."""
    path = tmp_path / "suite.yaml"
    path.write_text(f"""\
name: named
judge: {judge(server, "a")}
criteria:
  - name: by_judges
    kind: llm_judge
    rubric: "Is this good? {{{{ last_assistant }}}}"
    judges: [openai/a, {judge(server, "b")}]
  - name: by_members
    kind: panel
    members:
      - {{name: one, kind: llm_judge, judge: openai/a, rubric: "Good? {{{{ last_assistant }}}}"}}
      - {{name: two, kind: regex, pattern: "zzz", expect: absent}}
""")
    with Engine(load_suite(path), get_registry()) as engine:
        (decision,) = engine.decide_batch([transcript("t", "fine +a +b")])
    verdicts = {v.criterion: v for v in decision.verdicts}
    assert verdicts["by_judges"].outcome == "pass", verdicts["by_judges"].explanation
    members = verdicts["by_members"].details["members"]
    assert members[0]["outcome"] == "pass", members[0]
    assert len(server.requests) == 3 and {r["model"] for r in server.requests} == {"a", "b"}
