"""What ``harness train`` trains on: a run directory's training set, or an exported file.

* ``sft``: chat examples (``{"messages": [...]}``, assistant turns with ``weight``): the run's
  ``train.jsonl``, or a chat JSONL file (``harness export --format openai``);
* ``distill``: rows of ``harness export --format distill`` (prompt, completion, the generator's
  top-k ``tokens``): exported from the run directory on the fly, or a distill JSONL/Parquet file.

A run that kept nothing, or whose examples have no assistant turn to learn (every one at
weight 0), is an error that says so: there is nothing to train on.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path
from typing import Any

from harness.errors import UsageError


def _records(path: Path) -> list[dict[str, Any]]:
    """JSON objects of a JSONL file, or rows of a Parquet file."""
    if path.suffix == ".parquet":
        import pandas as pd

        return [_plain(r) for r in pd.read_parquet(path).to_dict("records")]
    records = []
    with path.open(encoding="utf-8") as fh:
        for number, line in enumerate(fh, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except ValueError as exc:
                raise UsageError(f"{path}:{number}: not valid JSON: {exc}") from None
            if not isinstance(record, dict):
                raise UsageError(f"{path}:{number}: expected a JSON object")
            records.append(record)
    return records


def _plain(value: Any) -> Any:
    """Parquet cells (numpy arrays, NaN) as plain Python values."""
    if hasattr(value, "tolist") and not isinstance(value, str | bytes):
        value = value.tolist()
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_plain(v) for v in value]
    if isinstance(value, float) and value != value:  # NaN
        return None
    return value


def _open_run(run_dir: Path) -> None:
    """Raise the run directory's own error when it is not a finished run."""
    from harness.run_access import open_run

    open_run(run_dir)


def chat_examples(source: str | Path) -> list[list[dict[str, Any]]]:
    """The chat examples (each a list of messages) of a run directory or a chat JSONL file.

    :raises UsageError: no such file, not a finished run, no training set, or nothing in it to
        learn (no assistant turn with a weight other than 0).
    """
    path = Path(source)
    if path.is_dir():
        _open_run(path)
        path = path / "train.jsonl"
        if not path.is_file():
            raise UsageError(f"{path.parent} has no training set (train.jsonl is missing); "
                             f"rebuild the outputs with `harness run ... -o {path.parent} "
                             f"--resume`")
    elif not path.is_file():
        raise UsageError(f"{path}: no such run directory or file")
    examples = []
    for number, record in enumerate(_records(path), 1):
        messages = record.get("messages")
        if not isinstance(messages, list):
            raise UsageError(f"{path}:{number}: not a chat example (no `messages` list)")
        examples.append(messages)
    if not any(_has_target(m) for m in examples):
        what = ("no transcript passed the review" if not examples
                else "every assistant turn is at weight 0")
        raise UsageError(f"{source}: no training set to learn from ({what}); nothing to train on")
    return examples


def _has_target(messages: list[dict[str, Any]]) -> bool:
    return any(isinstance(m, dict) and m.get("role") == "assistant" and m.get("weight") != 0
               for m in messages)


def distill_rows(source: str | Path) -> list[dict[str, Any]]:
    """The distill rows of a run directory (exported here, as ``--format distill`` does) or of a
    distill JSONL/Parquet file.

    :raises UsageError: as :func:`chat_examples`, and when no row is a distill row.
    """
    path = Path(source)
    if path.is_dir():
        from harness.export import export_run

        _open_run(path)
        with tempfile.TemporaryDirectory(prefix="harness-distill-") as tmp:
            out = Path(tmp) / "distill.jsonl"
            export_run(path, out, "distill")
            rows = _records(out)
    elif path.is_file():
        rows = _records(path)
    else:
        raise UsageError(f"{path}: no such run directory or file")
    for number, row in enumerate(rows, 1):
        if not isinstance(row.get("prompt"), list) or not isinstance(row.get("completion"), str):
            raise UsageError(f"{path}:{number}: not a distill row (`prompt` messages and a "
                             f"`completion`, as `harness export --format distill` writes)")
    if not rows:
        raise UsageError(f"{source}: no training set to learn from (no transcript passed the "
                         f"review); nothing to train on")
    return rows
