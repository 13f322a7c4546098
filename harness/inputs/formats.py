"""The built-in record shapes: OpenAI chat, ShareGPT and Anthropic HH-RLHF pairs."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from harness.canonical import canonical_bytes
from harness.hookspecs import hookimpl
from harness.models import Message, Role, Transcript, plain_message, trusted


@dataclass(frozen=True)
class InputFormat:
    """A record shape: how to recognise it and how to turn a record into transcripts."""

    name: str
    detect: Callable[[dict[str, Any]], bool]
    parse: Callable[[dict[str, Any], str], list[Transcript]]
    description: str = ""


def content_id(payload: Any) -> str:
    """A stable id from a record's content."""
    return "t-" + hashlib.sha256(canonical_bytes(payload)).hexdigest()[:16]


CONTENT_ID = re.compile(r"t-[0-9a-f]{16}(?::(?:chosen|rejected))?")


def is_content_id(tid: str) -> bool:
    """Whether ``tid`` is a hash of a record's content (:func:`content_id`; a pair's side
    suffixed): the same such id is the same content, not two records sharing a name."""
    return CONTENT_ID.fullmatch(tid) is not None


def _record_id(record: dict[str, Any], payload: Any) -> str:
    rid = record.get("id")
    if rid is None:
        return content_id(payload)
    if not isinstance(rid, str | int):
        raise ValueError(f"`id` must be a string or an integer, got {type(rid).__name__}")
    return str(rid)


def _metadata(record: dict[str, Any], own: frozenset[str]) -> dict[str, Any]:
    """The record's ``metadata`` plus its other top-level keys (``own`` ones left out)."""
    meta = record.get("metadata") or {}
    if not isinstance(meta, dict):
        raise ValueError("`metadata` must be an object")
    extra = {k: v for k, v in record.items() if k not in own}
    return {**extra, **meta} if extra else dict(meta)


def content_text(content: Any, where: str) -> str:
    """The text of a message's content: a string, null (``""``) or OpenAI content parts (their
    texts, one a line)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    if isinstance(content, list):  # OpenAI content parts
        texts = []
        for part in content:
            if isinstance(part, dict) and isinstance(part.get("text"), str):
                texts.append(part["text"])
            elif isinstance(part, str):
                texts.append(part)
        return "\n".join(texts)
    raise ValueError(f"{where}: content must be a string, got {type(content).__name__}")


OPENAI_OWN = frozenset({"messages", "id", "metadata"})
SHAREGPT_OWN = frozenset({"conversations", "id", "metadata"})
HH_OWN = frozenset({"chosen", "rejected", "id", "metadata"})
OPENAI_ROLES = {"system": "system", "developer": "system", "user": "user",
                "assistant": "assistant", "tool": "tool", "function": "tool"}
MESSAGE_KEYS = ("name", "tool_calls", "tool_call_id", "reasoning", "weight", "logprobs",
                "function_call")
READ_KEYS = frozenset({"role", "content", *MESSAGE_KEYS})
"""The message keys the review reads; any other key is kept in ``Message.extra``."""


def _openai_message(raw: Any, i: int) -> dict[str, Any]:
    """A message of the record as :class:`Message` fields. What the review reads another way
    (a ``developer`` or ``function`` role, a ``content`` that is not text, the reasoning under
    ``reasoning_content``) is noted in ``wire`` and the keys it does not read are kept in
    ``extra``, so that the exports write the message back as it was."""
    if not isinstance(raw, dict):
        raise ValueError(f"messages[{i}] must be an object, got {type(raw).__name__}")
    role = raw.get("role")
    mapped = OPENAI_ROLES.get(role) if isinstance(role, str) else None
    if mapped is None:
        raise ValueError(f"messages[{i}]: unknown role {role!r}")
    content = raw.get("content")
    if len(raw) == 2 and mapped == role and isinstance(content, str):  # the common case
        return {"role": role, "content": content}
    wire: dict[str, Any] = {}
    if mapped != role:
        wire["role"] = role
    if not isinstance(content, str):
        wire["content"] = content
        content = content_text(content, f"messages[{i}]")
    fields = {k: raw[k] for k in MESSAGE_KEYS if raw.get(k) is not None}
    used = READ_KEYS
    if "reasoning" not in fields and isinstance(raw.get("reasoning_content"), str):
        fields["reasoning"] = raw["reasoning_content"]
        wire["reasoning_key"] = "reasoning_content"
        used = used | {"reasoning_content"}
    extra = {k: v for k, v in raw.items() if k not in used and v is not None}
    fields["role"] = mapped
    fields["content"] = content
    if wire:
        fields["wire"] = wire
    if extra:
        fields["extra"] = extra
    return fields


PLAIN_ROLES = frozenset({"system", "user", "assistant", "tool"})


def _plain_messages(raw: list[Any]) -> bool:
    """Whether every message is already a bare ``{"role", "content": str}`` of our own roles,
    to hand to validation as is (the common case, and the fast path)."""
    for m in raw:
        if type(m) is not dict or len(m) != 2:
            return False
        role = m.get("role")
        if type(role) is not str or role not in PLAIN_ROLES or type(m.get("content")) is not str:
            return False
    return True


def parse_openai(record: dict[str, Any], source: str) -> list[Transcript]:
    raw = record["messages"]
    if not isinstance(raw, list) or not raw:
        raise ValueError("`messages` must be a non-empty list")
    if _plain_messages(raw):  # checked above: built without validation (the hot path)
        return [trusted(Transcript, id=_record_id(record, raw), source=source,
                        messages=[plain_message(m["role"], m["content"])
                                  for m in raw],
                        metadata=_metadata(record, OPENAI_OWN))]
    return [Transcript.model_validate({
        "id": _record_id(record, raw), "source": source,
        "messages": [_openai_message(m, i) for i, m in enumerate(raw)],
        "metadata": _metadata(record, OPENAI_OWN)})]


SHAREGPT_ROLES: dict[str, Role] = {
    "system": "system", "human": "user", "user": "user", "gpt": "assistant",
    "assistant": "assistant", "chatgpt": "assistant", "bard": "assistant",
    "bing": "assistant", "model": "assistant", "tool": "tool",
    "function": "tool", "observation": "tool", "function_call": "assistant"}


def parse_sharegpt(record: dict[str, Any], source: str) -> list[Transcript]:
    raw = record["conversations"]
    if not isinstance(raw, list) or not raw:
        raise ValueError("`conversations` must be a non-empty list")
    messages = []
    for i, turn in enumerate(raw):
        if not isinstance(turn, dict):
            raise ValueError(f"conversations[{i}] must be an object")
        who = str(turn.get("from", "")).lower()
        if who not in SHAREGPT_ROLES:
            raise ValueError(f"conversations[{i}]: unknown speaker {turn.get('from')!r}")
        messages.append(plain_message(SHAREGPT_ROLES[who], content_text(
            turn.get("value"), f"conversations[{i}]")))
    return [trusted(Transcript, id=_record_id(record, raw), messages=messages,
                    metadata=_metadata(record, SHAREGPT_OWN), source=source)]


HH_TURN = re.compile(r"\n\n(Human|Assistant):[ ]?")
HH_ROLES: dict[str, Role] = {"Human": "user", "Assistant": "assistant"}


def parse_hh_dialogue(text: str, which: str) -> list[Message]:
    """Split an HH-RLHF ``\\n\\nHuman: ...\\n\\nAssistant: ...`` string into messages."""
    if not isinstance(text, str):
        raise ValueError(f"`{which}` must be a string")
    parts = HH_TURN.split(text)
    if parts[0].strip():
        raise ValueError(f"`{which}` must start with '\\n\\nHuman:'")
    if len(parts) < 3:
        raise ValueError(f"`{which}` has no 'Human:'/'Assistant:' turns")
    return [plain_message(HH_ROLES[parts[i]], parts[i + 1])
            for i in range(1, len(parts), 2)]


def parse_hh_rlhf(record: dict[str, Any], source: str) -> list[Transcript]:
    chosen = parse_hh_dialogue(record["chosen"], "chosen")
    rejected = parse_hh_dialogue(record["rejected"], "rejected")
    pair_id = _record_id(record, [record["chosen"], record["rejected"]])
    meta = _metadata(record, HH_OWN)
    return [  # every value made or checked here: built without validation (the hot path)
        trusted(Transcript, id=f"{pair_id}:{side}", messages=messages,
                source=f"{source}:{side}", metadata={**meta, "pair_id": pair_id,
                                                     "pair_role": side})
        for side, messages in (("chosen", chosen), ("rejected", rejected))
    ]


OPENAI = InputFormat("openai", lambda r: "messages" in r, parse_openai,
                     'OpenAI chat: {"messages": [{"role", "content"}, ...]}')
SHAREGPT = InputFormat("sharegpt", lambda r: "conversations" in r, parse_sharegpt,
                       'ShareGPT: {"conversations": [{"from", "value"}, ...]}')
HH_RLHF = InputFormat("hh-rlhf", lambda r: "chosen" in r and "rejected" in r, parse_hh_rlhf,
                      'Anthropic HH-RLHF pairs: {"chosen": "\\n\\nHuman: ...", "rejected": ...}')


@hookimpl
def register_input_formats(register: Callable[[InputFormat], None]) -> None:
    for fmt in (OPENAI, SHAREGPT, HH_RLHF):
        register(fmt)
