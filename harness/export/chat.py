"""Messages and records in the OpenAI chat layout, written back as the record wrote them.

The review reads some things another way than the record spelled them (a ``developer`` role
as ``system``, a ``function`` role as ``tool``, a null ``content`` or content parts as text,
``reasoning_content`` as the reasoning); :class:`~harness.models.Message` keeps how they were
written (``wire``) and the keys it does not read (``extra``). Every chat line harness writes
(``train.jsonl`` and the exports) goes through :func:`chat_message`, so what the record held
comes out again (a strict OpenAI line, :func:`strict`, keeps only the keys OpenAI's fine-tuning
accepts). The record's top-level tool keys (``tools``, legacy ``functions``,
``parallel_tool_calls``) are kept in the transcript's metadata and written back beside the
messages (:func:`record_fields`).
"""

from __future__ import annotations

from typing import Any

from harness.inputs.formats import OPENAI_ROLES, content_text

CHAT_KEYS = ("role", "content", "name", "tool_calls", "tool_call_id", "function_call",
             "reasoning")
"""The message fields of the chat layout, in the order they are written."""
OPENAI_KEYS = frozenset({"role", "content", "name", "tool_calls", "tool_call_id", "function_call",
                         "weight"})
"""The message keys OpenAI's fine-tuning accepts: a strict line (``train.jsonl``,
``--messages-only``) has no others (no reasoning, logprobs nor keys harness does not know)."""
RECORD_KEYS = ("tools", "functions", "parallel_tool_calls")
"""Top-level keys of a chat record besides ``messages`` that a chat export writes back."""


def chat_message(message: dict[str, Any], *, logprobs: bool = False) -> dict[str, Any]:
    """A message (a :class:`~harness.models.Message` dumped without None values) in the chat
    layout, as the record wrote it: its role and content as spelled, the reasoning under its
    key, and the keys the review does not read; ``logprobs`` too when asked."""
    out = {k: message[k] for k in CHAT_KEYS if message.get(k) is not None}
    if logprobs and message.get("logprobs") is not None:
        out["logprobs"] = message["logprobs"]
    wire = message.get("wire")
    if wire:
        role = wire.get("role")
        if isinstance(role, str) and OPENAI_ROLES.get(role) == out["role"]:
            out["role"] = role
        # the content as written, unless the text the review read was changed since
        if "content" in wire and _text_or_none(wire["content"]) == out.get("content"):
            out["content"] = wire["content"]
        if wire.get("reasoning_key") == "reasoning_content" and "reasoning" in out:
            out["reasoning_content"] = out.pop("reasoning")
    extra = message.get("extra")
    if extra:
        for key, value in extra.items():
            out.setdefault(key, value)  # never in place of a field the review read
    return out


def _text_or_none(content: Any) -> str | None:
    try:
        return content_text(content, "content")
    except ValueError:
        return None


def record_fields(metadata: dict[str, Any]) -> dict[str, Any]:
    """The record's top-level tool keys (``tools``, ``functions``, ``parallel_tool_calls``),
    from the transcript's metadata."""
    return {k: metadata[k] for k in RECORD_KEYS if metadata.get(k) is not None}


def record_metadata(metadata: dict[str, Any]) -> dict[str, Any]:
    """The record's own metadata (its ``metadata`` and other top-level keys), less the tool
    keys :func:`record_fields` writes beside the messages."""
    return {k: v for k, v in metadata.items() if k not in RECORD_KEYS}


def strict(message: dict[str, Any]) -> tuple[dict[str, Any], list[str]]:
    """A chat message with only the keys OpenAI's fine-tuning accepts, and the keys left out."""
    left = [k for k in message if k not in OPENAI_KEYS]
    if not left:
        return message, []
    return {k: v for k, v in message.items() if k in OPENAI_KEYS}, left


LEFT_OUT = {"reasoning": "reasoning (OpenAI fine-tuning has no field for it)",
            "reasoning_content": "reasoning (OpenAI fine-tuning has no field for it)",
            "logprobs": "token logprobs (--format distill carries them)"}
"""How a key a strict line leaves out is counted in the dataset card."""


def left_out(key: str) -> str:
    """The card's name for a message key a format leaves out."""
    return LEFT_OUT.get(key) or f"message field `{key}`"
