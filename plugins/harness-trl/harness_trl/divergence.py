"""How far a student's next-token distributions are from a teacher's: ``KL(teacher || student)``.

On each assistant token of the given transcripts (the teacher's own answers, typically), both
models see the same context; the divergence of their full next-token distributions is averaged
over the tokens. This is what distillation minimises, measured on prompts neither was trained
on.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import Any

from harness_trl.model_dirs import load_model, stop_token_ids, torch_threads


def _loaded(model: str | Path | tuple[Any, Any] | None) -> tuple[Any, Any]:
    if isinstance(model, tuple):
        return model
    lm, tokenizer, _ = load_model(model)
    return lm, tokenizer


def mean_token_kl(teacher: str | Path | tuple[Any, Any] | None,
                  student: str | Path | tuple[Any, Any] | None,
                  transcripts: Iterable[list[dict[str, Any]]]) -> float:
    """Mean over the assistant tokens (content and end-of-turn) of ``KL(teacher || student)``,
    in nats. The two models must share a tokenizer (the teacher's is used)."""
    import torch

    from harness_trl.chat_tokens import encode_chat

    t_model, tokenizer = _loaded(teacher)
    s_model, _ = _loaded(student)
    stops = stop_token_ids(t_model, tokenizer)
    total, count = 0.0, 0
    before = torch.get_num_threads()
    torch.set_num_threads(torch_threads())
    try:
        for messages in transcripts:
            encoded = encode_chat(tokenizer, messages, stops)
            positions = [j - 1 for turn in encoded.turns for j in range(turn.start, turn.end)
                         if j > 0]
            if not positions:
                continue
            ids = torch.tensor([encoded.input_ids])
            with torch.inference_mode():
                logp = torch.log_softmax(t_model(input_ids=ids).logits[0, positions].float(), -1)
                logq = torch.log_softmax(s_model(input_ids=ids).logits[0, positions].float(), -1)
            total += float((logp.exp() * (logp - logq)).sum())
            count += len(positions)
    finally:
        torch.set_num_threads(before)
    if not count:
        raise ValueError("no assistant token to compare on")
    return total / count
