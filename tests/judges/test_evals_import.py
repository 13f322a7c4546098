"""Importing OpenAI-evals model-graded specs as llm_judge criteria."""

from __future__ import annotations

from pathlib import Path

import jinja2
import jinja2.sandbox
import pytest

from harness.judges.evals_import import EvalsImportError, import_evals_spec, spec_to_criterion
from harness.judges.verdicts import VerdictScheme

FACT_LIKE = """\
prompt: |-
  Compare a submitted answer with an expert answer.
  [BEGIN DATA]
  [Question]: {input}
  [Expert]: {ideal}
  [Submission]: {completion}
  [END DATA]
  Literal braces stay: {{not a field}} and jinja-looking {{% text %}}.
  (A) subset (B) superset (C) same (D) disagreement
choice_strings: ABCD
input_outputs:
  input: completion
"""

HUMOR_LIKE = """\
prompt: |-
  Is the following funny?

  {completion}
choice_scores:
  "Yes": 1.0
  "No": 0.0
  "Unsure": 0.5
choice_strings:
  - "Yes"
  - "No"
  - "Unsure"
input_outputs:
  input: completion
eval_type: classify
"""


def render(rubric: str, **ctx: object) -> str:
    env = jinja2.sandbox.SandboxedEnvironment(undefined=jinja2.StrictUndefined)
    return env.from_string(rubric).render(**ctx)


def test_fact_like_spec_maps_fields_and_keeps_the_prompt(tmp_path: Path) -> None:
    path = tmp_path / "fact.yaml"
    path.write_text(FACT_LIKE)
    config = import_evals_spec(path, pass_labels=["B", "C"])
    assert config["kind"] == "llm_judge"
    assert config["chain_of_thought"] is True  # cot_classify by default
    scheme = VerdictScheme.parse(config["scheme"])
    assert scheme.labels() == ["A", "B", "C", "D"]
    assert [scheme.passes(c) for c in "ABCD"] == [False, True, True, False]
    text = render(config["rubric"], context="Q?", last_assistant="S.", metadata={"ideal": "E."})
    assert "[Question]: Q?\n[Expert]: E.\n[Submission]: S." in text
    assert "Literal braces stay: {not a field} and jinja-looking {% text %}." in text


def test_missing_metadata_field_is_a_strict_error(tmp_path: Path) -> None:
    config = spec_to_criterion(
        {"prompt": "{completion} vs {ideal}", "choice_strings": "AB"}, pass_labels=["A"]
    )
    with pytest.raises(jinja2.UndefinedError):
        render(config["rubric"], context="", last_assistant="x", metadata={})


def test_humor_like_spec_with_scores_and_classify(tmp_path: Path) -> None:
    path = tmp_path / "humor.yaml"
    path.write_text(HUMOR_LIKE)
    config = import_evals_spec(path)
    assert config["chain_of_thought"] is False
    scheme = VerdictScheme.parse(config["scheme"])
    assert scheme.scores() == {"Yes": 1.0, "No": 0.0, "Unsure": 0.5}
    assert scheme.passes("Unsure")  # score 0.5 reaches the default threshold


def test_from_strings_scores_are_rescaled_to_unit_interval() -> None:
    spec = {
        "prompt": [{"role": "system", "content": "Rate it."}, {"role": "user", "content": "{x}"}],
        "choice_strings": [str(i) for i in range(1, 11)],
        "choice_scores": "from_strings",
        "input_outputs": {"input": "x"},
    }
    config = spec_to_criterion(spec)
    scores = config["scheme"]["choices"]
    assert scores["1"] == 0.0 and scores["10"] == 1.0 and scores["4"] == pytest.approx(1 / 3)
    assert config["rubric"] == "Rate it.\n\n{{ last_assistant }}"


def test_named_specs_in_one_file(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text("one:\n  prompt: '{completion}'\n  choice_strings: AB\n"
                    "  choice_scores: {A: 1, B: 0}\n"
                    "two:\n  prompt: 'x {completion}'\n  choice_strings: AB\n"
                    "  choice_scores: {A: 0, B: 1}\n")  # fmt: skip
    with pytest.raises(EvalsImportError, match="several specs"):
        import_evals_spec(path)
    assert import_evals_spec(path, name="two")["scheme"]["choices"] == {"A": 0.0, "B": 1.0}


@pytest.mark.parametrize(
    ("spec", "kwargs", "message"),
    [
        ({"choice_strings": "AB"}, {}, "no 'prompt'"),
        ({"prompt": "{completion}", "choice_strings": "AB"}, {}, "pass_labels"),
        ({"prompt": "{completion}", "choice_strings": "AB"}, {"pass_labels": ["Z"]}, "not among"),
        (
            {"prompt": "{completion}", "choice_strings": "AB", "choice_scores": {"A": 1}},
            {},
            "no score",
        ),
        (
            {"prompt": "{completion}", "choice_strings": "AB", "eval_type": "rank"},
            {"pass_labels": ["A"]},
            "eval_type",
        ),
        ({"prompt": "{0}", "choice_strings": "AB"}, {"pass_labels": ["A"]}, "unsupported"),
        ({"prompt": "{completion}", "choice_strings": "from_n"}, {}, "multicomp_n"),
    ],
)
def test_bad_specs_are_clear_errors(spec: dict, kwargs: dict, message: str) -> None:
    with pytest.raises(EvalsImportError, match=message):
        spec_to_criterion(spec, **kwargs)


def test_not_a_spec_file(tmp_path: Path) -> None:
    path = tmp_path / "x.yaml"
    path.write_text("just: text\n")
    with pytest.raises(EvalsImportError, match="not an OpenAI-evals"):
        import_evals_spec(path)
    with pytest.raises(EvalsImportError, match="cannot read"):
        import_evals_spec(tmp_path / "missing.yaml")
