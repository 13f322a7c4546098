"""Several rubrics in one judge call: the prompt's task, its answer format, and the parser.

An ``llm_judge`` with ``rubrics:`` asks once for every rubric (see
:mod:`harness_criteria.rubric_set`). The judge is told to end its answer with one line per
rubric, in the order asked::

    VERDICT clarity: PASS
    VERDICT accuracy: FAIL

Plain lines, so any backend can answer (no JSON mode or schema needed, the embedded local model
included; with ``mode: choice`` each label is scored right after its ``VERDICT name:``).

**Parsing** (:func:`parse_rubric_verdicts`) reads only the *final block* of the answer: the
``VERDICT name: label`` lines that end it (blank lines between them allowed). A rubric's
verdict is its line in that block; the reasoning before the block is every rubric's
explanation. Fail-closed, per rubric: a rubric whose line is missing from the block, written
more than once, out of the order asked, or whose label is not one of the scheme's, gets an
error (its verdict is ``error``, never a pass), and the other rubrics keep theirs. A
``VERDICT other: PASS`` quoted from the transcript in the reasoning is not in the final block,
so it binds nothing; nor does a line for a rubric that was not asked in this call.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence

from harness.judges.verdicts import ParsedVerdict, VerdictScheme, _from_rest

RUBRIC_KEY = re.compile(r"[A-Za-z0-9_-]{1,64}")
"""What a rubric's name may be: it is printed in the prompt and in criterion names."""
_NAMED_LINE = re.compile(
    r"^[ \t>*_#-]*verdict[*_]*[ \t]+[*_`]*(?P<name>[A-Za-z0-9_-]+)[*_`]*[ \t]*[:：]"
    r"(?P<rest>[^\n]*)$",
    re.IGNORECASE | re.MULTILINE,
)
_SHOWN = 60


def rubrics_task(texts: Mapping[str, str]) -> str:
    """The task of a prompt asking for several rubrics: each rendered rubric under its name."""
    sections = "\n\n".join(f"### Rubric `{name}`\n\n{text.rstrip()}"
                           for name, text in texts.items())
    return ("Grade the material against each of these rubrics, each on its own (one verdict "
            f"per rubric):\n\n{sections}")


def rubrics_answer_format(names: Sequence[str], scheme: VerdictScheme,
                          chain_of_thought: bool = True) -> str:
    """The instruction telling the judge how to end its answer: one line per rubric."""
    if scheme.kind == "scale":
        options = f"an integer from {scheme.min} to {scheme.max}"
    else:
        options = "one of " + ", ".join(scheme.labels())
    lines = "\n".join(f"VERDICT {name}: <label>" for name in names)
    where = f"where each <label> is {options}"
    if chain_of_thought:
        return ("First explain your reasoning briefly, step by step, for each rubric. Then end "
                "your answer with these lines, one per rubric, in this order, and nothing after "
                f"them ({where}):\n{lines}")
    return ("Answer with exactly these lines, one per rubric, in this order, and nothing else "
            f"({where}):\n{lines}")


def _final_block(text: str) -> tuple[list[re.Match[str]], int]:
    """The ``VERDICT name:`` lines ending ``text`` (in order) and where the block starts."""
    found: list[re.Match[str]] = []
    end = len(text.rstrip())
    start = end
    while end > 0:
        line_start = text.rfind("\n", 0, end) + 1
        line = text[line_start:end]
        if line.strip():
            match = _NAMED_LINE.match(text, line_start, end)
            if match is None:
                break
            found.append(match)
            start = line_start
        end = line_start - 1 if line_start > 0 else 0
    found.reverse()
    return found, start


def parse_rubric_verdicts(text: str, names: Sequence[str],
                          scheme: VerdictScheme) -> dict[str, ParsedVerdict]:
    """Each asked rubric's verdict from the final block of ``text`` (see the module doc)."""
    block, start = _final_block(text)
    explanation = text[:start].strip()
    asked = {name.lower(): name for name in names}
    lines: dict[str, list[re.Match[str]]] = {name: [] for name in names}
    order: list[str] = []
    for match in block:
        name = asked.get(match.group("name").lower())
        if name is not None:
            lines[name].append(match)
            order.append(name)
    once = [name for name in names if len(lines[name]) == 1]
    in_order = [name for name in order if name in once]
    out: dict[str, ParsedVerdict] = {}
    for name in names:
        found = lines[name]
        if not found:
            tail = text.rstrip()
            shown = repr(tail if len(tail) <= _SHOWN else "…" + tail[-_SHOWN:])
            error = (f"no 'VERDICT {name}: <label>' line among the verdict lines ending the "
                     f"judge's output (labels: {', '.join(scheme.labels())}); it ends with "
                     f"{shown}")
        elif len(found) > 1:
            error = f"'VERDICT {name}:' is written {len(found)} times in the final verdict lines"
        elif in_order.index(name) != once.index(name):
            error = (f"the verdict lines are not in the order asked ({', '.join(names)}): "
                     f"'VERDICT {name}:' is out of place")
        else:
            match = found[0]
            parsed = _from_rest(text, match.start("rest"), match.start(), scheme,
                                f"the line 'VERDICT {name}:'")
            out[name] = parsed.model_copy(update={"explanation": explanation})
            continue
        out[name] = ParsedVerdict(error=error, explanation=explanation)
    return out
