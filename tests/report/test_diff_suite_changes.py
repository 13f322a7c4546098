"""`harness diff` shows what changed in the suite and attributes each flip to its cause."""

from __future__ import annotations

import json
import sys
from pathlib import Path

from conftest import chat

from harness.report.diff import compare

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "judges"))

from chat_server import ChatServer  # noqa: E402

SUITE = """\
name: policy
version: "{version}"
{threshold}
criteria:
  - name: no_script_tag
    kind: regex
    pattern: "<script>"
    expect: absent
  - name: no_sorry
    kind: regex
    version: "{sorry_version}"
    pattern: "{pattern}"
    flags: [IGNORECASE]
    expect: absent
    gate: {sorry_gate}
  - name: polite
    kind: regex
    pattern: "please|thanks"
    flags: [IGNORECASE]
    expect: present
    gate: false
"""

RECORDS = [
    chat("half-1", "hi", "Sorry, thanks."),       # no_sorry 0, polite 1: mean 0.5
    chat("half-2", "hi", "Sorry about that, thanks."),
    chat("full", "hi", "Here you go, thanks."),   # mean 1
    chat("apology", "hi", "I apologise; here, thanks."),
]


def _suite(tmp_path: Path, name: str, *, threshold: float | None = 0.5, version: str = "1",
           pattern: str = "sorry", sorry_gate: bool = False, sorry_version: str = "1") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(SUITE.format(
        version=version, threshold=f"threshold: {threshold}" if threshold is not None else "",
        pattern=pattern, sorry_gate="true" if sorry_gate else "false",
        sorry_version=sorry_version))
    return path


def test_a_threshold_change_is_named_as_the_cause(make_run, tmp_path: Path, cli) -> None:
    run_a = make_run(RECORDS, name="a", suite=_suite(tmp_path, "a", threshold=0.5))
    run_b = make_run(RECORDS, name="b", suite=_suite(tmp_path, "b", threshold=0.75))
    d = compare(run_a, run_b)
    assert d["flipped"] == 2 and d["flip_counts"] == {"pass->fail": 2}
    assert [(c["what"], c["a"], c["b"], c["policy"]) for c in d["suite_changes"]] == [
        ("suite threshold", "0.5", "0.75", True)]
    assert d["flip_causes"] == [{"cause": "suite threshold 0.5 -> 0.75", "flips": 2}]
    assert all(f["changed"] == [] for f in d["flips"])   # no verdict moved: not brevity's fault

    out = tmp_path / "diff.html"
    code, stdout, err = cli("diff", run_a, run_b, "-o", out)
    assert code == 0, err
    flat = " ".join(stdout.split())
    assert "suite threshold *" in flat and "suite threshold 0.5 -> 0.75" in flat
    html = out.read_text()
    assert "<b>2</b> flips: suite threshold 0.5 -&gt; 0.75" in html
    assert '<tr class="suite-change"><td>suite threshold' in html


def test_a_criterion_change_is_named_with_its_verdicts(make_run, tmp_path: Path) -> None:
    run_a = make_run(RECORDS, name="a", suite=_suite(tmp_path, "a", threshold=None,
                                                     sorry_gate=True))
    run_b = make_run(RECORDS, name="b", suite=_suite(
        tmp_path, "b", threshold=None, sorry_gate=True, pattern="sorry|apologi[sz]e",
        sorry_version="2"))
    d = compare(run_a, run_b)
    changes = {c["what"]: (c["a"], c["b"], c["policy"]) for c in d["suite_changes"]}
    assert changes == {"no_sorry version": ("1", "2", False),
                       "no_sorry config pattern": ("sorry", "sorry|apologi[sz]e", False)}
    (flip,) = d["flips"]
    assert flip["id"] == "apology"
    assert flip["cause"] == ("no_sorry pass -> fail (version 1 -> 2; config pattern sorry -> "
                             "sorry|apologi[sz]e)")


def test_a_gate_change_and_a_verdict_change_are_told_apart(make_run, tmp_path: Path) -> None:
    run_a = make_run(RECORDS, name="a", suite=_suite(tmp_path, "a", threshold=None))
    run_b = make_run(RECORDS, name="b", suite=_suite(
        tmp_path, "b", threshold=None, sorry_gate=True, pattern="sorry|apologi[sz]e"))
    d = compare(run_a, run_b)
    assert ("no_sorry gate", "no", "yes", True) in [
        (c["what"], c["a"], c["b"], c["policy"]) for c in d["suite_changes"]]
    causes = {f["id"]: f["cause"] for f in d["flips"]}
    # failed no_sorry in both runs: only the new gate makes it fail
    assert causes["half-1"] == causes["half-2"] == "no_sorry gate no -> yes"
    # the new pattern fails it, and the gate makes that count: both together
    assert causes["apology"] == ("no_sorry gate no -> yes with no_sorry pass -> fail "
                                 "(config pattern sorry -> sorry|apologi[sz]e)")
    assert {c["cause"]: c["flips"] for c in d["flip_causes"]} == {
        "no_sorry gate no -> yes": 2, causes["apology"]: 1}


def test_same_suite_shows_no_changes(make_run, tmp_path: Path, cli) -> None:
    run_a = make_run(RECORDS, name="a", suite=_suite(tmp_path, "a"))
    d = compare(run_a, run_a)
    assert d["suite_changes"] == [] and d["flip_causes"] == []
    code, stdout, _ = cli("diff", run_a, run_a)
    assert code == 0 and "suite changes" not in stdout


def _judge_suite(tmp_path: Path, name: str, url: str, rubric_text: str) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / "helpful.j2").write_text(rubric_text)
    path = folder / "suite.yaml"
    path.write_text(json.dumps({
        "name": "judged",
        "judge": {"name": "openai/judge-model", "base_url": url, "max_attempts": 1},
        "criteria": [{"name": "helpful", "kind": "llm_judge", "rubric_file": "helpful.j2"}],
    }))
    return path


def test_an_edited_rubric_file_is_named_with_the_flips_it_caused(make_run, tmp_path: Path,
                                                                cli) -> None:
    """Same suite text, the rubric file edited: only the rubric hash the verdicts recorded
    tells the runs apart."""
    def reply(request: dict) -> str:
        strict = "strictly" in json.dumps(request)
        return "Not enough.\nVERDICT: FAIL" if strict else "Fine.\nVERDICT: PASS"

    records = [chat(f"t{i}", "hi", f"answer {i}") for i in range(3)]
    with ChatServer(reply=reply) as server:
        run_a = make_run(records, name="a", suite=_judge_suite(
            tmp_path, "sa", server.base_url, "Is this helpful? {{ last_assistant }}"))
        run_b = make_run(records, name="b", suite=_judge_suite(
            tmp_path, "sb", server.base_url, "Judge strictly: helpful? {{ last_assistant }}"))
    d = compare(run_a, run_b)
    [rubric] = [c for c in d["suite_changes"] if c["what"] == "helpful rubric sha256 (used)"]
    assert rubric["a"] != rubric["b"]
    assert d["flip_causes"] == [{"cause": f"helpful pass -> fail (rubric sha256 {rubric['a']} "
                                          f"-> {rubric['b']})", "flips": 3}]
    code, stdout, err = cli("diff", run_a, run_b)
    assert code == 0, err
    assert "helpful rubric sha256 (used)" in " ".join(stdout.split())


BREVITY = '''
from harness import Verdict


def brevity(transcript, limit=100):
    n = len(transcript.messages[-1].content)
    score = max(0.0, 1.0 - n / limit)
    return Verdict(outcome="pass" if score >= 0.5 else "fail", score=score,
                   explanation=f"{n} characters against a limit of {limit}")
'''


def _brevity_suite(tmp_path: Path, name: str, limit: int) -> Path:
    (tmp_path / "brevity_checks.py").write_text(BREVITY)
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"""\
name: brevity
threshold: 0.3
criteria:
  - name: no_sorry
    kind: regex
    pattern: sorry
    expect: absent
  - name: brevity
    kind: python
    function: brevity_checks:brevity
    args: {{limit: {limit}}}
    gate: false
""")
    return path


def test_score_moves_are_one_cause_and_the_page_names_them(make_run, tmp_path: Path,
                                                           cli) -> None:
    """A stricter limit lowers brevity's score on four transcripts (still failing, a non-gate)
    and their means fall under the threshold: one cause, not one per score; the page lists
    the criterion that moved and its explanation."""
    records = [chat(f"long-{n}", "hi", "x" * n) for n in (58, 60, 62, 64)]
    run_a = make_run(records, name="a", suite=_brevity_suite(tmp_path, "a", 100))
    run_b = make_run(records, name="b", suite=_brevity_suite(tmp_path, "b", 70))
    d = compare(run_a, run_b)
    assert d["flipped"] == 4 and d["flip_counts"] == {"pass->fail": 4}
    assert [c["flips"] for c in d["flip_causes"]] == [4]
    [cause] = [c["cause"] for c in d["flip_causes"]]
    assert cause.startswith("brevity score fell") and "config args" in cause
    first = d["flips"][0]
    assert [(c["criterion"], c["a"], c["b"], round(c["score_a"], 3), round(c["score_b"], 3))
            for c in first["changed"]] == [("brevity", "fail", "fail", 0.42, 0.171)]
    assert first["explanations"] == {"brevity": "58 characters against a limit of 70"}
    out = tmp_path / "diff.html"
    code, _, err = cli("diff", run_a, run_b, "-o", out)
    assert code == 0, err
    html = out.read_text()
    assert "brevity: fail 0.420 → fail 0.171" in html
    assert "<b>brevity</b>: 58 characters against a limit of 70" in html
