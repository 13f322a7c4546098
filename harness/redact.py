"""Credentials kept out of what harness writes: URLs with their userinfo and secret-looking query
parameters shown as ``***``.

``run.json``, ``report.html``, summaries, exports' cards and error messages are shared; a URL
written there must not carry ``user:password@`` nor ``?api_key=...``, ``?sig=...``.
:func:`redact_url` redacts one URL, :func:`redact_text` every URL inside a text (an error
message), :func:`redact_config` every string of a nested config. :func:`url_secrets` says what a
URL carries, for a judge to refuse it at load.
"""

from __future__ import annotations

import re
from typing import Any
from urllib.parse import unquote, urlsplit

MASK = "***"
SECRET_WORDS = frozenset({
    "key", "apikey", "token", "secret", "password", "passwd", "pwd", "pass", "sig",
    "signature", "credential", "credentials", "auth", "authorization", "code", "session",
    "jwt", "bearer", "accesskey", "secretkey", "sas",
})
"""A query parameter whose name has one of these words (split at ``-``, ``_``, ``.``, and
case changes) holds a secret: ``api_key``, ``access_token``, ``X-Amz-Signature``, ``sig``..."""
_WORD = re.compile(r"[A-Z]?[a-z0-9]+|[A-Z]+(?![a-z])")
_WHOLE_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://\S+")
_URL_IN_TEXT = re.compile(r"\b[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>`]+")


def is_secret_param(name: str) -> bool:
    """Whether a query parameter (or header) of this name looks like it holds a secret."""
    name = unquote(name)
    words = {w.lower() for part in re.split(r"[-_.\s]+", name) for w in _WORD.findall(part)}
    return name.lower() in SECRET_WORDS or bool(words & SECRET_WORDS)


def url_secrets(url: str) -> list[str]:
    """What in ``url`` is a credential: ``userinfo`` and the names of secret-looking query
    parameters (empty when none)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return []
    found = ["userinfo"] if "@" in parts.netloc else []
    for item in parts.query.split("&") if parts.query else ():
        name = item.split("=", 1)[0]
        if is_secret_param(name):
            found.append(unquote(name))
    return found


def redact_url(url: str) -> str:
    """``url`` with its userinfo and the values of secret-looking query parameters as ``***``
    (the rest as written)."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return url
    if "@" not in parts.netloc and not parts.query:
        return url
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
    query = "&".join(
        f"{item.split('=', 1)[0]}={MASK}" if "=" in item and is_secret_param(item.split("=")[0])
        else item
        for item in parts.query.split("&")) if parts.query else ""
    out = f"{parts.scheme}://{netloc}{parts.path}"
    if query:
        out += "?" + query
    if parts.fragment:
        out += "#" + parts.fragment
    return out


def redact_text(text: str) -> str:
    """``text`` with every URL in it redacted (:func:`redact_url`)."""
    if "://" not in text:
        return text
    return _URL_IN_TEXT.sub(lambda m: redact_url(m.group(0)), text)


def redact_config(value: Any) -> Any:
    """A nested config (dicts, lists, strings) with every string that is a URL redacted (text
    such as a rubric is left as written); a copy only where something changed."""
    if isinstance(value, str):
        return redact_url(value) if _WHOLE_URL.fullmatch(value) else value
    if isinstance(value, dict):
        out = {k: redact_config(v) for k, v in value.items()}
        return value if all(out[k] is value[k] for k in value) else out
    if isinstance(value, list):
        items = [redact_config(v) for v in value]
        return value if all(a is b for a, b in zip(items, value, strict=True)) else items
    return value
