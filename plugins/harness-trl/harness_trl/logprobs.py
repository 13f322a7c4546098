"""``harness logprobs``: how likely a model finds each assistant turn, in its context.

For every assistant message of every transcript: the mean log-probability of its tokens (its
content and the end-of-turn token, the tokens training targets), teacher-forced on the whole
conversation before it. Compare a model before and after training to see what it learned: the
corrections should become likelier, the masked mistakes (``weight`` 0) not.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness.errors import UsageError

COLUMNS = ["transcript_id", "message", "weight", "tokens", "mean_logprob", "sum_logprob"]


def read_transcripts(source: str | Path) -> list[Any]:
    """The transcripts to score: a run directory's training set (``train.jsonl``, with the
    weights), or any input harness reads (files, folders, globs).

    :raises UsageError: nothing readable there, or no assistant turn to score.
    """
    from harness.api import iter_items
    from harness.models import Transcript
    from harness.plugins import get_registry

    path = Path(source)
    if path.is_dir() and (path / "run.json").is_file():
        from harness_trl.training_set import chat_examples

        chat_examples(path)  # the run's own errors: incomplete, no training set
        path = path / "train.jsonl"
    items = list(iter_items(str(path), get_registry()))
    transcripts = [t for t in items if isinstance(t, Transcript)]
    if not any(m.role == "assistant" for t in transcripts for m in t.messages):
        raise UsageError(f"{source}: no assistant turn to score")
    return transcripts


def turn_logprobs(model: str | Path | tuple[Any, Any] | None,
                  transcripts: str | Path | Iterable[Any]) -> Any:
    """A pandas DataFrame, one row per assistant turn: ``transcript_id``, ``message`` (its
    index), ``weight`` (1 when unset), ``tokens``, ``mean_logprob``, ``sum_logprob``.

    ``model``: a model folder, ``smollm2``/``None`` (the embedded model), or a loaded
    ``(model, tokenizer)``. ``transcripts``: a run directory or input path (see
    :func:`read_transcripts`), or :class:`harness.Transcript` objects / chat records.
    """
    import pandas as pd
    import torch

    from harness_trl.chat_tokens import encode_chat
    from harness_trl.model_dirs import load_model, stop_token_ids, torch_threads

    if isinstance(model, tuple):
        lm, tokenizer = model
    else:
        lm, tokenizer, _ = load_model(model)
    if isinstance(transcripts, str | Path):
        transcripts = read_transcripts(transcripts)
    stops = stop_token_ids(lm, tokenizer)
    rows = []
    before = torch.get_num_threads()
    torch.set_num_threads(torch_threads())
    try:
        for n, t in enumerate(transcripts):
            tid, messages = _as_messages(t, n)
            encoded = encode_chat(tokenizer, messages, stops)
            if not encoded.turns:
                continue
            with torch.inference_mode():
                logits = lm(input_ids=torch.tensor([encoded.input_ids])).logits[0]
                logp = torch.log_softmax(logits.float(), dim=-1)
            ids = torch.tensor(encoded.input_ids)
            for turn in encoded.turns:
                if turn.end <= turn.start or turn.start == 0:
                    continue
                positions = torch.arange(turn.start, turn.end)
                values = logp[positions - 1, ids[positions]]
                rows.append({"transcript_id": tid, "message": turn.message,
                             "weight": turn.weight, "tokens": len(positions),
                             "mean_logprob": float(values.mean()),
                             "sum_logprob": float(values.sum())})
    finally:
        torch.set_num_threads(before)
    return pd.DataFrame(rows, columns=COLUMNS)


def _as_messages(item: Any, n: int) -> tuple[str, list[dict[str, Any]]]:
    if isinstance(item, dict):
        return str(item.get("id", n)), list(item["messages"])
    return item.id, [m.model_dump(exclude_none=True) for m in item.messages]
