"""The dataset card: a Markdown file next to the export stating what is in it and why.

It has the Hugging Face dataset-card front matter (so ``datasets`` finds the data file when the
folder is pushed as a dataset), the counts, each in its unit (transcripts read, kept, masked,
not exported and why; examples or pairs written and their duplicates; what the format could
not carry),
the filters used, each criterion with its version, pass rate and mean score, and provenance.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.export.provenance import RunInfo

LOADERS = {
    "parquet": ('import pandas as pd\ndf = pd.read_parquet("{name}")\n\n'
                'from datasets import load_dataset\n'
                'ds = load_dataset("parquet", data_files="{name}", split="train")'),
    "jsonl": ('from datasets import load_dataset\n'
              'ds = load_dataset("json", data_files="{name}", split="train")'),
}


def card_path(out: Path) -> Path:
    """``OUT.card.md``, after the whole output name: ``sft.jsonl.gz`` -> ``sft.jsonl.gz.card.md``,
    so no two exports in one folder share a card (``sft.jsonl`` keeps ``sft.jsonl.card.md``)."""
    return out.with_name(f"{out.name}.card.md")


def count(n: int, noun: str) -> str:
    """``0 turns``, ``1 turn``, ``2 turns``."""
    return f"{n} {noun}" if n == 1 else f"{n} {noun}s"


def kept_phrase(kept: int, kept_masked: int, turns_masked: int) -> str:
    """``kept 32 transcripts``; ``kept 4 transcripts, 3 of them with masked assistant turns (4
    turns at weight 0)``: the masking is only mentioned when some transcript has it."""
    text = f"kept {count(kept, 'transcript')}"
    if kept_masked:
        which = "" if kept == 1 else "all of them " if kept_masked == kept else \
            f"{kept_masked} of them "
        text += (f", {which}with masked assistant turns "
                 f"({count(turns_masked, 'turn')} at weight 0)")
    return text


PER_EXAMPLE = {"openai": "one per transcript", "parquet": "one per transcript",
               "prompt-completion": "one per trained assistant turn",
               "distill": "one per trained assistant turn"}
"""What one example of a built-in format is made of (pairs are counted as pairs)."""


def unit(result: dict[str, Any]) -> str:
    """What the export writes: ``pair`` or ``example``."""
    return "pair" if result.get("format") == "pairs" else "example"


def examples_phrase(result: dict[str, Any]) -> str:
    """``4 examples (one per transcript)``, ``1 pair``: what was written, in its unit."""
    per = PER_EXAMPLE.get(result.get("format", ""))
    return count(result["examples"], unit(result)) + (f" ({per})" if per else "")


def duplicates_phrase(n: int, result: dict[str, Any] | None = None) -> str:
    """``1 exact duplicate example dropped``, ``0 exact duplicate pairs dropped``."""
    return f"{count(n, 'exact duplicate ' + unit(result or {}))} dropped"


def not_exported(result: dict[str, Any]) -> tuple[dict[str, int], dict[str, int]]:
    """Why things were not exported: ``(transcripts by reason, prompts by reason)``; the
    second is for pairs (a prompt group that made no pair)."""
    transcripts = {**result.get("dropped", {}), **result.get("not_grouped", {})}
    return transcripts, dict(result.get("unpaired", {}))


NOT_CARRIED_SHOWN = 20
"""Kinds of left-out data listed one by one (field names come from the records)."""


def not_carried(result: dict[str, Any]) -> list[tuple[str, int]]:
    """``(what, how many)`` the export's format could not carry, most frequent first; past
    :data:`NOT_CARRIED_SHOWN` kinds, the rest in one line."""
    found = sorted(result.get("not_carried", {}).items(), key=lambda kv: (-kv[1], kv[0]))
    if len(found) <= NOT_CARRIED_SHOWN:
        return found
    rest = found[NOT_CARRIED_SHOWN - 1:]
    return [*found[:NOT_CARRIED_SHOWN - 1],
            (f"{len(rest)} other kinds of fields", sum(n for _, n in rest))]


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:.1%}"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.3f}"


def _cell(text: Any) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def _written(result: dict[str, Any]) -> str:
    per = PER_EXAMPLE.get(result.get("format", ""))
    return f"{unit(result)}s written" + (f" ({per})" if per else "")


def _masked_cell(result: dict[str, Any]) -> str:
    n = result["kept_masked"]
    return f"{n} ({count(result['messages_masked'], 'turn')} at weight 0)" if n else "0"


def render_card(run: RunInfo, result: dict[str, Any]) -> str:
    """The card's Markdown for one export."""
    out = Path(result["out"])
    kind = "parquet" if out.name.endswith(".parquet") else "jsonl"
    lines = [
        "---", "configs:", "- config_name: default", f"  data_files: {out.name}",
        "tags: [harness, reviewed]", "---", "",
        f"# {out.name}", "",
        f"Exported by `harness export --format {result['format']}` from the run directory "
        f"`{run.run_dir}`, reviewed with suite **{run.suite}** version {run.suite_version} "
        f"(fingerprint `{run.suite_fingerprint}`).",
        *_counts(result), *_filters(result), *_criteria(result),
        "", "## Provenance", "",
        "Every example carries `transcript_id`, `source`, `suite`, `suite_version`, "
        "`criterion_versions`, `judge_models`, `rubric_hashes`, the decision score and each "
        "criterion's score (`criterion_scores`, per-message scores in `criteria`), and the "
        "record's own metadata (`record_metadata`). Messages are written as the records wrote "
        "them, with the records' `tools`; what this format has no place for is counted above "
        "(`not carried`), never dropped silently.",
        "",
        f"- run started: {run.started or '-'}",
        f"- inputs: {', '.join(f'`{p}`' for p in run.inputs) or '-'}",
        "", "## Loading", "", "```python", LOADERS[kind].format(name=out.name), "```", "",
    ]
    return "\n".join(lines)


def _counts(result: dict[str, Any]) -> list[str]:
    lines = [
        "", "## Counts", "", "| | |", "|---|---|",
        f"| transcripts read | {result['read']} |",
        f"| passed / failed / errored | {result['passed']} / {result['failed']} / "
        f"{result['errored']} |",
        f"| {_written(result)} | {result['examples']} |",
    ]
    transcripts, prompts = not_exported(result)
    if result["format"] == "pairs":
        lines.append(f"| prompt groups | {result.get('groups', 0)} |")
        lines += [f"| transcripts in no pair: {_cell(reason)} | {n} |"
                  for reason, n in sorted(transcripts.items())]
        lines += [f"| prompts without a pair: {_cell(reason)} | {n} |"
                  for reason, n in sorted(prompts.items())]
    else:
        lines += [f"| transcripts kept | {result['kept']} |",
                  f"| kept with masked assistant turns | {_masked_cell(result)} |"]
        lines += [f"| transcripts not exported: {_cell(reason)} | {n} |"
                  for reason, n in sorted(transcripts.items())]
    lines.append(f"| exact duplicate {unit(result)}s dropped | {result['duplicates']} |")
    lines += [f"| not carried by {result['format']}: {_cell(what)} | {n} |"
              for what, n in not_carried(result)]
    if result.get("unscored"):
        lines.append(f"| examples without the weighting score (weight null) | "
                     f"{result['unscored']} |")
    return lines


def _filters(result: dict[str, Any]) -> list[str]:
    opts = result["options"]
    lines = [
        "", "## Filters", "",
        f"- format: `{result['format']}`",
        f"- on failure: `{opts['on_fail']}`" + (
            " (failing transcripts kept when masking the assistant turns that failed a "
            "message-scoped criterion makes them pass)" if opts["on_fail"] == "mask" else
            " (only passing transcripts)"),
        f"- minimum score: {opts['min_score'] if opts['min_score'] is not None else 'none'}",
        f"- weight: {('`' + opts['weight_by'] + '`') if opts['weight_by'] else 'none'}",
        f"- deduplication: {'exact duplicates dropped' if opts['dedup'] else 'off'}",
    ]
    if result["format"] == "pairs":
        lines.append(f"- pair margin: {opts['margin'] if opts['margin'] is not None else 'none'}")
    return lines


def _criteria(result: dict[str, Any]) -> list[str]:
    lines = [
        "", "## Criteria", "",
        "Pass rates are over every verdict of the run that the criterion decided: one per "
        "transcript, or one per assistant message for `scope: message`.",
        "",
        "| criterion | kind | version | gate | scope | pass rate | mean score | pass | fail "
        "| error | skipped |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for name, c in result["criteria"].items():
        lines.append(
            f"| {_cell(name)} | {c['kind']} | {_cell(c['version'])} | "
            f"{'yes' if c['gate'] else 'no'} | {c['scope']} | {_pct(c['pass_rate'])} | "
            f"{_num(c['mean_score'])} | {c['pass']} | {c['fail']} | {c['error']} | "
            f"{c['skipped']} |")
    return lines


def write_card(run: RunInfo, result: dict[str, Any], path: Path | None = None) -> Path:
    """Write the card next to the export (or at ``path``); return where."""
    path = path or card_path(Path(result["out"]))
    path.write_text(render_card(run, result), encoding="utf-8")
    return path
