"""``--judge``: one judge for every ``llm_judge`` criterion, keeping the suite's endpoint.

The override is a judge name (``openai/gpt-4o``) or a mapping, given as a dict or as a YAML/JSON
string (``'{name: openai/gpt-4o, base_url: http://localhost:8000/v1}'``; ``model`` is accepted
for ``name``). Options the override does not give come from the judge it replaces (the
criterion's, else the suite's) when both use the same backend prefix: the endpoint
(``base_url``, ``api_key_env``), the runner settings (``max_concurrency``, ``timeout_s``...) and
the rest, except the prices of the replaced model (``price_*_per_mtok``), which only carry over
to the very same model. A different prefix (``anthropic/...`` over an ``openai/...`` suite judge)
keeps nothing.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import yaml

MODEL_SPECIFIC = frozenset({"price_in_per_mtok", "price_out_per_mtok",
                            "price_cached_input_per_mtok", "price_cache_write_per_mtok"})
"""Options that describe one model, dropped when the override names another."""


def parse_override(value: str | dict[str, Any]) -> dict[str, Any]:
    """The override as a mapping with ``name`` (``ValueError`` when it is neither shape)."""
    if isinstance(value, str):
        text = value.strip()
        if text.startswith("{") or ": " in text or "\n" in text:
            try:
                loaded = yaml.safe_load(text)
            except yaml.YAMLError as exc:
                raise ValueError(f"--judge {value!r} is neither PREFIX/MODEL nor a YAML/JSON "
                                 f"mapping: {' '.join(str(exc).split())}") from None
            if not isinstance(loaded, dict):
                raise ValueError(f"--judge {value!r}: expected a mapping like "
                                 "{name: openai/gpt-4o, base_url: ...}")
            value = loaded
        else:
            value = {"name": text}
    mapping = dict(value)
    if "model" in mapping:
        if "name" in mapping:
            raise ValueError("--judge: give the judge as `name` or `model`, not both")
        mapping["name"] = mapping.pop("model")
    name = mapping.get("name")
    if not isinstance(name, str):
        raise ValueError(f"--judge {value!r}: the mapping needs `name: PREFIX/MODEL`")
    if "/" not in name.strip("/"):
        raise ValueError(f"--judge {name!r}: a judge is named PREFIX/MODEL "
                         "(e.g. openai/gpt-4o-mini)")
    return mapping


def _prefix(name: str) -> str:
    return name.split("/", 1)[0]


def _as_mapping(judge: str | dict[str, Any]) -> dict[str, Any]:
    return {"name": judge} if isinstance(judge, str) else dict(judge)


def apply_override(
    override: str | dict[str, Any], candidates: Sequence[str | dict[str, Any]]
) -> dict[str, Any]:
    """The judge mapping used instead of the first of ``candidates`` (criterion's, suite's).

    A candidate naming the override's very model lends all its options; else the replaced judge
    lends its options but its prices, when its backend prefix is the override's.
    """
    given = parse_override(override)
    olds = [_as_mapping(c) for c in candidates]
    same = [old for old in olds if old.get("name") == given["name"]]
    if same:
        return {**same[0], **given}
    if not olds or not isinstance(olds[0].get("name"), str) \
            or _prefix(olds[0]["name"]) != _prefix(given["name"]):
        return given
    kept = {k: v for k, v in olds[0].items() if k not in MODEL_SPECIFIC}
    return {**kept, **given}
