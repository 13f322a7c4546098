"""Learning a distribution over the next token: the teacher's top-k, renormalised.

A ``--format distill`` row carries, per generated token, the generator's log-probabilities of
its top-k alternatives. The student is fed exactly the tokens the teacher generated (its prompt
as the chat template gives it, then the chosen tokens), and at each generated position the loss
is ``KL(p || q) = sum_k p_k (log p_k - log q_k)``: ``p`` the teacher's top-k probabilities
renormalised to sum to 1, ``q`` the student's full softmax. Positions without a distribution
(a row without ``tokens``, the text before ``tokens_start`` of an inline correction, the
end-of-turn token) have a one-hot target, for which the loss is the usual cross-entropy. The
loss of a batch is the mean over its target positions.

Token texts are mapped to the student's ids through its vocabulary (texts that several ids
decode to, such as a lone byte of a multi-byte character, are ambiguous): an alternative that
does not map is left out before renormalising; a row whose chosen tokens do not all map is
trained on its text with one-hot targets, and counted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch

from harness_trl.chat_tokens import prompt_ids, text_ids


@dataclass
class DistillExample:
    """One row as the student sees it: ``targets[j]`` is ``[(token id, probability), ...]``
    for the token at position ``j`` (empty: not a target)."""

    input_ids: list[int]
    targets: list[list[tuple[int, float]]]


@dataclass
class DistillStats:
    """How much of the training set carried the teacher's distributions."""

    rows: int = 0
    soft_positions: int = 0
    """Positions trained towards the teacher's top-k."""
    hard_positions: int = 0
    """Positions trained towards one token (no distribution known)."""
    rows_unaligned: int = 0
    """Rows with tokens that could not be mapped to the student's vocabulary."""
    alternatives_dropped: int = 0
    """Top-k alternatives left out (their text maps to no single id)."""
    examples: list[DistillExample] = field(default_factory=list)


def vocabulary_map(tokenizer: Any) -> dict[str, int]:
    """Token text -> id, for the texts exactly one id decodes to."""
    seen: dict[str, int] = {}
    ambiguous: set[str] = set()
    for i in range(len(tokenizer)):
        text = tokenizer.decode([i])
        if text in seen:
            ambiguous.add(text)
        else:
            seen[text] = i
    return {t: i for t, i in seen.items() if t not in ambiguous}


def _soft_target(token: dict[str, Any], vocab: dict[str, int],
                 stats: DistillStats) -> list[tuple[int, float]]:
    probs: dict[int, float] = {}
    for alt in token.get("top_logprobs") or ():
        i = vocab.get(alt["token"])
        if i is None:
            stats.alternatives_dropped += 1
        else:
            probs[i] = max(probs.get(i, 0.0), math.exp(alt["logprob"]))
    chosen = vocab[token["token"]]
    probs.setdefault(chosen, math.exp(token["logprob"]))
    mass = sum(probs.values())
    return [(i, p / mass) for i, p in probs.items()]


def build_example(tokenizer: Any, row: dict[str, Any], vocab: dict[str, int], stop_id: int | None,
                  stats: DistillStats) -> DistillExample:
    """The student's ids and targets for one distill row."""
    ids = prompt_ids(tokenizer, row["prompt"])
    targets: list[list[tuple[int, float]]] = [[] for _ in ids]
    completion = row["completion"]
    tokens = row.get("tokens")
    start = row.get("tokens_start")
    aligned = (tokens is not None and start is not None
               and all(t["token"] in vocab for t in tokens))
    if tokens is not None and not aligned:
        stats.rows_unaligned += 1
    hard = text_ids(tokenizer, completion[:start] if aligned else completion)
    ids += hard
    targets += [[(i, 1.0)] for i in hard]
    stats.hard_positions += len(hard)
    if aligned:
        for token in tokens:
            ids.append(vocab[token["token"]])
            targets.append(_soft_target(token, vocab, stats))
        stats.soft_positions += len(tokens)
    if stop_id is not None:
        ids.append(stop_id)
        targets.append([(stop_id, 1.0)])
        stats.hard_positions += 1
    stats.rows += 1
    return DistillExample(ids, targets)


def build_examples(tokenizer: Any, rows: list[dict[str, Any]], stop_id: int | None
                   ) -> DistillStats:
    """Every row as a :class:`DistillExample` (in ``stats.examples``), with the counts."""
    stats = DistillStats()
    vocab = vocabulary_map(tokenizer)
    stats.examples = [build_example(tokenizer, row, vocab, stop_id, stats) for row in rows]
    return stats


def collate(examples: list[DistillExample], pad_id: int) -> dict[str, torch.Tensor]:
    """A padded batch: ``input_ids``, ``attention_mask``, and ``target_ids``/``target_probs``
    of shape ``(batch, length, k)`` (probability 0 where there is no target)."""
    length = max(len(e.input_ids) for e in examples)
    k = max(1, max(len(t) for e in examples for t in e.targets))
    input_ids = torch.full((len(examples), length), pad_id, dtype=torch.long)
    attention = torch.zeros((len(examples), length), dtype=torch.long)
    target_ids = torch.zeros((len(examples), length, k), dtype=torch.long)
    target_probs = torch.zeros((len(examples), length, k), dtype=torch.float32)
    for b, e in enumerate(examples):
        input_ids[b, :len(e.input_ids)] = torch.tensor(e.input_ids)
        attention[b, :len(e.input_ids)] = 1
        for j, target in enumerate(e.targets):
            for n, (i, p) in enumerate(target):
                target_ids[b, j, n] = i
                target_probs[b, j, n] = p
    return {"input_ids": input_ids, "attention_mask": attention,
            "target_ids": target_ids, "target_probs": target_probs}


def distill_loss(logits: torch.Tensor, target_ids: torch.Tensor,
                 target_probs: torch.Tensor) -> torch.Tensor:
    """Mean over target positions of ``KL(p || q)``; ``logits[:, j]`` predicts position
    ``j + 1`` (``target_*[:, j + 1]``)."""
    logq = torch.log_softmax(logits[:, :-1].float(), dim=-1)
    ids, p = target_ids[:, 1:], target_probs[:, 1:]
    picked = logq.gather(-1, ids)
    logp = torch.where(p > 0, torch.log(p.clamp_min(1e-30)), torch.zeros_like(p))
    per_position = (p * (logp - picked)).sum(-1)
    is_target = p.sum(-1) > 0
    return per_position[is_target].sum() / is_target.sum().clamp_min(1)
