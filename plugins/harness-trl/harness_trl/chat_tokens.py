"""A conversation as token ids, each assistant turn's tokens known: the loss mask comes from here.

The chat template is rendered with a placeholder for each message's content; the template's
own text is tokenized with special tokens, each content as plain text (a transcript containing
``<|im_end|>`` cannot forge a turn), as the embedded model does when it generates. An assistant
turn's tokens are its content and the end-of-turn token that closes it (so a model learns to
stop). A turn with ``weight`` 0 is context: its labels are -100, it is never a target.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

IGNORE = -100
"""The label of a position that is not a target."""
_PLACEHOLDER = "\ue000{}\ue001"
_PLACEHOLDER_RE = re.compile("\ue000(\\d+)\ue001")


@dataclass
class Turn:
    """Where one assistant message's tokens are in the encoded conversation."""

    message: int
    """Index of the message in the conversation."""
    start: int
    """First token (of the content)."""
    end: int
    """One past the last token (the end-of-turn token, when the template has one)."""
    weight: float
    """The message's training weight (1 when unset)."""


@dataclass
class EncodedChat:
    """Token ids, labels (-100 where nothing is learned) and the assistant turns."""

    input_ids: list[int] = field(default_factory=list)
    labels: list[int] = field(default_factory=list)
    turns: list[Turn] = field(default_factory=list)


def text_ids(tokenizer: Any, text: str) -> list[int]:
    """Ids of plain text: special-token strings in it stay ordinary text."""
    if not text:
        return []
    return list(tokenizer(text, add_special_tokens=False, split_special_tokens=True)["input_ids"])


def _template_ids(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"]) if text else []


def _render(tokenizer: Any, messages: list[dict[str, Any]], generation_prompt: bool) -> str:
    for m in messages:
        if not isinstance(m, dict) or "role" not in m or not isinstance(m.get("content"), str):
            raise ValueError(f"a chat message needs a role and a string content: {m!r}")
    placeholders = [{"role": m["role"], "content": _PLACEHOLDER.format(i)}
                    for i, m in enumerate(messages)]
    return tokenizer.apply_chat_template(placeholders, tokenize=False,
                                         add_generation_prompt=generation_prompt)


def prompt_ids(tokenizer: Any, messages: list[dict[str, Any]]) -> list[int]:
    """The chat template with the generation prompt: what a model answering ``messages`` sees."""
    rendered = _render(tokenizer, messages, True)
    ids: list[int] = []
    pos = 0
    for match in _PLACEHOLDER_RE.finditer(rendered):
        ids += _template_ids(tokenizer, rendered[pos:match.start()])
        ids += text_ids(tokenizer, messages[int(match.group(1))]["content"])
        pos = match.end()
    return ids + _template_ids(tokenizer, rendered[pos:])


def encode_chat(tokenizer: Any, messages: list[dict[str, Any]],
                stop_ids: set[int]) -> EncodedChat:
    """The whole conversation, with labels on the assistant turns whose weight is not 0."""
    rendered = _render(tokenizer, messages, False)
    out = EncodedChat()
    pos = 0
    open_turn: Turn | None = None
    for match in [*_PLACEHOLDER_RE.finditer(rendered), None]:
        between = _template_ids(tokenizer, rendered[pos:match.start() if match else None])
        if open_turn is not None:  # the end-of-turn token after an assistant's content is its own
            closing = next((n + 1 for n, t in enumerate(between) if t in stop_ids), 0)
            _append(out, between[:closing], open_turn.weight != 0)
            open_turn.end = len(out.input_ids)
            between = between[closing:]
            open_turn = None
        _append(out, between, False)
        if match is None:
            break
        index = int(match.group(1))
        message = messages[index]
        content = text_ids(tokenizer, message["content"])
        if message["role"] == "assistant":
            weight = message.get("weight")
            open_turn = Turn(index, len(out.input_ids), 0, 1.0 if weight is None else float(weight))
            out.turns.append(open_turn)
            _append(out, content, open_turn.weight != 0)
            open_turn.end = len(out.input_ids)
        else:
            _append(out, content, False)
        pos = match.end()
    return out


def _append(out: EncodedChat, ids: list[int], trained: bool) -> None:
    out.input_ids += ids
    out.labels += ids if trained else [IGNORE] * len(ids)
