"""Which inputs a run reads: one rule for every entry point (CLI, API, pytest plugin, engines).

:func:`resolve_inputs` turns what a user names (files, folders, globs, URLs of any fsspec
filesystem, Hugging Face ``save_to_disk`` folders) into an ordered list of :class:`Source`,
one per file; :func:`iter_entries` numbers their records ``seq = 0, 1, ...`` in that order,
the numbering a run's journal, resume and finalize all key on.

The rule, for local paths and URLs alike:

- a file is read whatever its name (``.parquet``, ``.arrow``, ``.json``/``.json.gz`` by name,
  anything else as JSONL, gzip detected by content);
- a folder stands for the readable files under it (:data:`READABLE`), recursively, sorted by
  name at each level; names starting with ``.`` or ``_`` are skipped (``.git``, ``_SUCCESS``);
  a folder saved by ``datasets`` (``save_to_disk``) stands for its Arrow files, in the
  dataset's own order (a ``DatasetDict``: each split in its order);
- a glob (``*``, ``?``, ``[``; ``**`` crosses folders) stands for the readable files it
  matches (and the folders it matches, expanded as above), sorted; a name starting with ``.``
  or ``_`` that only a wildcard reached is skipped, as in a folder (``data/*.jsonl`` skips
  ``data/_SKIP.jsonl``; ``data/_*.jsonl`` or the name spelt out reads it);
- a file reached twice is read once.

A name that matches nothing readable is an :class:`InputSpecError` before anything is read.

For an execution engine: ``start(engine, inputs, args)`` gets the inputs as given; resolve them
with ``resolve_inputs(inputs, messages_column=args.messages_column)``, read a source with
``source.records()`` (``(position, raw)``, as :func:`harness.inputs.iter_raw`), and number
records as :func:`iter_entries` does: a source's first record is ``first_seqs(sources)[i]``,
and ``args.limit`` (when set) keeps records with ``seq < limit`` only.
"""

from __future__ import annotations

import fnmatch
import glob as globlib
import hashlib
import json
import os
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any, cast

from harness.errors import UsageError

READABLE = (".jsonl", ".jsonl.gz", ".json", ".json.gz", ".parquet", ".arrow")
"""The file names a folder or a glob picks (a file named on its own is read whatever its name)."""
DEFAULT_MESSAGES_COLUMN = "messages"
_URL = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")
_MAGIC = re.compile(r"[*?[]")


class InputSpecError(UsageError, ValueError):
    """An input names nothing harness can read (missing, an empty folder, a glob matching no
    readable file, an unreachable URL): a usage error, raised before anything is read."""


@dataclass(frozen=True)
class Source:
    """One input file. Plain strings only, so it pickles to worker processes and Ray tasks.

    ``name`` is how the user reaches it (as spelt, or the folder/glob as spelt plus the rest
    of the path): every record's position is ``name:line`` (``name:row`` for Parquet and
    Arrow, ``name:N`` for the N-th record of a ``.json`` array). ``location`` is where it is
    opened: an absolute local path, or a URL (``s3://...``). ``kind`` is ``jsonl``, ``json``,
    ``parquet`` or ``arrow``. ``messages_column`` is the Parquet/Arrow column holding the chat.
    """

    name: str
    location: str
    kind: str
    messages_column: str = DEFAULT_MESSAGES_COLUMN

    @property
    def is_url(self) -> bool:
        return is_url(self.location)

    def records(self) -> Iterator[tuple[str, Any]]:
        """``(position, raw)`` per record, in order; never raises (see :func:`iter_raw`)."""
        from harness.inputs.reader import iter_source

        return iter_source(self)

    def count(self) -> int:
        """Exactly how many entries :meth:`records` yields (unreadable ones included), read
        without parsing any record."""
        from harness.inputs.reader import count_source

        return count_source(self)

    def describe(self) -> dict[str, Any]:
        """What ``run.json`` records to tell later whether this input changed: the name, the
        resolved location, size and modification time (and ETag/version where the filesystem
        gives one). Raises ``OSError`` when the input is gone."""
        base = {"path": self.name, "resolved": self.location, "kind": self.kind}
        if not self.is_url:
            st = os.stat(self.location)
            return {**base, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
        try:
            fs, path = url_fs(self.location)
            info = fs.info(path)
        except FileNotFoundError:
            raise
        except Exception as exc:  # noqa: BLE001 - a remote store's own errors
            raise OSError(f"{self.name}: {type(exc).__name__}: {exc}") from exc
        return {**base, "size": info.get("size"), "mtime_ns": _mtime_ns(info),
                "etag": _etag(info)}

    @classmethod
    def from_description(cls, recorded: dict[str, Any] | str,
                         messages_column: str = DEFAULT_MESSAGES_COLUMN) -> Source:
        """The source a ``run.json`` entry (:meth:`describe`) names, to read it again."""
        if isinstance(recorded, str):
            recorded = {"path": recorded, "resolved": os.path.abspath(recorded)}
        location = recorded["resolved"]
        return cls(recorded.get("path") or location, location,
                   recorded.get("kind") or kind_of(location), messages_column)


def is_url(spec: str) -> bool:
    """Whether ``spec`` is a URL (``scheme://...``) rather than a local path."""
    return bool(_URL.match(spec))


def kind_of(name: str) -> str:
    """How a file is read, from its name: ``parquet``, ``arrow``, ``json`` or ``jsonl``."""
    if name.endswith(".parquet"):
        return "parquet"
    if name.endswith(".arrow"):
        return "arrow"
    if name.endswith((".json", ".json.gz")):
        return "json"
    return "jsonl"


def url_fs(url: str) -> tuple[Any, str]:
    """The fsspec filesystem and path of a URL (fsspec is imported only for URLs)."""
    try:
        from fsspec.core import url_to_fs
    except ImportError as exc:  # pragma: no cover - a core dependency
        raise InputSpecError(f"{url}: reading URLs needs fsspec (pip install fsspec)") from exc
    return cast("tuple[Any, str]", url_to_fs(url))


def resolve_inputs(specs: Iterable[str | Path | Source], *,
                   messages_column: str = DEFAULT_MESSAGES_COLUMN) -> list[Source]:
    """The files the inputs ``specs`` stand for, in reading order (see the module docstring).

    Raises :class:`InputSpecError` for a spec that names nothing readable. A :class:`Source`
    given is kept as is.
    """
    sources: dict[str, Source] = {}
    for spec in specs:
        if isinstance(spec, Source):
            found = [spec]
        else:
            text = os.fspath(spec)
            if not text:
                raise InputSpecError("an empty input name")
            found = _resolve_url(text) if is_url(text) and not text.startswith("file://") \
                else _resolve_local(text)
        for source in found:
            if source.messages_column != messages_column and not isinstance(spec, Source):
                source = Source(source.name, source.location, source.kind, messages_column)
            sources.setdefault(source.location, source)
    return list(sources.values())


def iter_entries(sources: Iterable[Source], *, limit: int | None = None
                 ) -> Iterator[tuple[int, str, Any]]:
    """``(seq, position, raw)`` for every record of the sources, ``seq`` counting from 0 across
    all of them: THE numbering of a run (journal, resume, finalize, every engine). ``limit``
    stops after that many records."""
    seq = 0
    if limit is not None and limit <= 0:
        return
    for source in sources:
        for position, raw in source.records():
            yield seq, position, raw
            seq += 1
            if limit is not None and seq >= limit:
                return


def first_seqs(sources: list[Source]) -> list[int]:
    """The ``seq`` of each source's first record in :func:`iter_entries`' numbering (every
    source but the last is counted, without parsing: :meth:`Source.count`)."""
    firsts, seq = [], 0
    for i, source in enumerate(sources):
        firsts.append(seq)
        if i + 1 < len(sources):
            seq += source.count()
    return firsts


def describe_sources(sources: Iterable[Source]) -> list[dict[str, Any]]:
    """:meth:`Source.describe` of each source (``run.json``'s ``inputs``)."""
    return [source.describe() for source in sources]


def input_names(recorded: Iterable[Any], most: int = 10) -> list[str]:
    """The names of inputs recorded by :func:`describe_sources` (older runs recorded plain
    paths), for people to read: at most ``most``, then ``"and N more"``."""
    names = [cast(str, r.get("path", r.get("resolved", "?"))) if isinstance(r, dict) else str(r)
             for r in recorded]
    if len(names) > most:
        names = [*names[:most], f"and {len(names) - most:,} more"]
    return names


DIGEST = "blake2b"
"""The ``run.json`` key of a local input's content digest (:func:`content_digest`)."""
_IDENTITY = ("resolved", "size", "mtime_ns", "etag")


def content_digest(path: str) -> str:
    """BLAKE2b-128 of a local file's bytes, hex: what tells a touched input (same bytes, a new
    modification time) from an edited one."""
    digest = hashlib.blake2b(digest_size=16)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def sealed(recorded: list[Any]) -> list[Any]:
    """``run.json``'s inputs, each local file still as recorded given its content digest, so
    that a later read accepts it after a ``touch`` or a copy that kept its bytes."""
    out = []
    for entry in recorded:
        if isinstance(entry, dict) and "size" in entry and DIGEST not in entry \
                and not is_url(entry["resolved"]):
            try:
                now = Source.from_description(entry).describe()
                if same_inputs([entry], [now]):
                    entry = {**entry, DIGEST: content_digest(entry["resolved"])}
            except OSError:
                pass  # gone since: nothing to seal
        out.append(entry)
    return out


def same_inputs(recorded: list[Any], now: list[dict[str, Any]]) -> bool:
    """Whether inputs recorded by :func:`describe_sources` are the same files, unchanged: the
    same size and modification time (and ETag), or, for a local file whose run recorded its
    digest (:func:`sealed`), the same size and bytes."""
    if not isinstance(recorded, list) or not all(isinstance(r, dict) for r in recorded):
        return False
    return len(recorded) == len(now) and all(
        _same(r, n) for r, n in zip(recorded, now, strict=True))


def _same(recorded: dict[str, Any], now: dict[str, Any]) -> bool:
    if all(recorded.get(k) == now.get(k) for k in _IDENTITY):
        return True
    digest = recorded.get(DIGEST)
    if digest is None or recorded.get("resolved") != now.get("resolved") \
            or recorded.get("size") != now.get("size") or is_url(now["resolved"]):
        return False
    try:
        return bool(content_digest(now["resolved"]) == digest)
    except OSError:
        return False


# -- local paths --------------------------------------------------------------------------------


def _resolve_local(spec: str) -> list[Source]:
    path_text = spec[len("file://"):] if spec.startswith("file://") else spec
    path = Path(path_text)
    if path.is_file():
        return [_local_file(spec if spec.startswith("file://") else os.fspath(path), path)]
    if path.is_dir():
        base = spec.rstrip("/") if spec.startswith("file://") else os.fspath(path)
        found = list(_walk(_LocalTree(), os.path.abspath(path), base))
        if not found:
            raise InputSpecError(f"input folder {spec} holds no file harness can read "
                                 f"({', '.join(READABLE)}; names starting with . or _ are "
                                 "skipped)")
        return found
    if _MAGIC.search(path_text):
        matches = sorted(globlib.glob(path_text, recursive=True), key=_parts)
        prefix = "file://" if spec.startswith("file://") else ""
        return _from_matches(spec, [(prefix + m, os.path.isdir(m)) for m in matches],
                             _LocalTree(), lambda m: os.path.abspath(m.removeprefix("file://")))
    raise InputSpecError(f"input file not found: {spec}")


def _local_file(name: str, path: Path) -> Source:
    return Source(name, str(path.resolve()), kind_of(path.name))


class _LocalTree:
    """Listing and reading a local folder (the walk's view of a filesystem)."""

    def entries(self, location: str) -> list[tuple[str, bool]]:
        with os.scandir(location) as it:
            return sorted((e.name, e.is_dir()) for e in it)

    def read_text(self, location: str) -> str:
        with open(location, encoding="utf-8") as fh:
            return fh.read()

    def join(self, location: str, name: str) -> str:
        return os.path.join(location, name)


# -- URLs ---------------------------------------------------------------------------------------


class _RemoteTree:
    """Listing and reading a folder of an fsspec filesystem; locations are full URLs."""

    def __init__(self, fs: Any) -> None:
        self.fs = fs

    def entries(self, location: str) -> list[tuple[str, bool]]:
        path = self.fs._strip_protocol(location).rstrip("/")
        out = []
        for info in self.fs.ls(path, detail=True):
            name = info["name"].rstrip("/")
            if name == path:
                continue
            out.append((name.rsplit("/", 1)[-1], info.get("type") == "directory"))
        return sorted(out)

    def read_text(self, location: str) -> str:
        with self.fs.open(self.fs._strip_protocol(location), "rb") as fh:
            data: bytes = fh.read()
            return data.decode("utf-8")

    def join(self, location: str, name: str) -> str:
        return location.rstrip("/") + "/" + name


def _resolve_url(spec: str) -> list[Source]:
    try:
        fs, path = url_fs(spec)
        tree = _RemoteTree(fs)
        if _MAGIC.search(path) and not fs.exists(path):
            return _remote_glob(spec, fs, tree)
        if fs.isdir(path):
            found = list(_walk(tree, fs.unstrip_protocol(path), spec.rstrip("/")))
            if not found:
                raise InputSpecError(f"input folder {spec} holds no file harness can read "
                                     f"({', '.join(READABLE)}; names starting with . or _ "
                                     "are skipped)")
            return found
        if fs.isfile(path):
            return [Source(spec, fs.unstrip_protocol(path), kind_of(path))]
    except InputSpecError:
        raise
    except Exception as exc:  # noqa: BLE001 - missing backend, credentials, network...
        raise InputSpecError(f"cannot open input {spec}: {type(exc).__name__}: {exc}") from None
    raise InputSpecError(f"input file not found: {spec}")


def _remote_glob(spec: str, fs: Any, tree: _RemoteTree) -> list[Source]:
    head = _MAGIC.split(spec, maxsplit=1)[0]  # up to the first wildcard
    root_spec = head[: head.rfind("/") + 1]
    root = fs._strip_protocol(root_spec).rstrip("/") + "/"
    matches = fs.glob(fs._strip_protocol(spec), detail=True)
    named = []
    for path, info in sorted(matches.items(), key=lambda kv: _parts(kv[0])):
        path = path.rstrip("/")
        name = root_spec + path[len(root):] if path.startswith(root) \
            else fs.unstrip_protocol(path)
        named.append((name, info.get("type") == "directory", fs.unstrip_protocol(path)))
    locations = {name: location for name, _, location in named}
    return _from_matches(spec, [(name, is_dir) for name, is_dir, _ in named], tree,
                         locations.__getitem__)


# -- shared: globs, folders, saved datasets -----------------------------------------------------


def _from_matches(spec: str, matches: list[tuple[str, bool]], tree: Any,
                  locate: Any) -> list[Source]:
    """The sources of a glob's matches: readable files, and folders expanded."""
    found: list[Source] = []
    files = 0
    for name, is_dir in matches:
        if _hidden_by_wildcard(spec, name):
            continue
        if is_dir:
            found.extend(_walk(tree, locate(name), name.rstrip("/")))
            continue
        files += 1
        if name.endswith(READABLE):
            found.append(Source(name, locate(name), kind_of(name)))
    if not found:
        what = f"matches {files} file(s), none of them readable ({', '.join(READABLE)})" \
            if files else "matches no file"
        raise InputSpecError(f"input pattern {spec} {what}")
    return found


def _hidden_by_wildcard(spec: str, name: str) -> bool:
    """Whether a glob's match has a name starting with ``.`` or ``_`` that only a wildcard
    reached (a folder skips those names; so does a glob): one the pattern spells out, or
    matches with a part that itself starts with ``.``/``_``, is asked for and kept."""
    pattern = [p for p in _parts(spec) if p]
    asked = {p for p in pattern if not _MAGIC.search(p)}
    explicit = [p for p in pattern if _MAGIC.search(p) and p.startswith((".", "_"))]
    for part in _parts(name):
        if not part.startswith((".", "_")) or part in (".", "..") or part in asked:
            continue
        if not any(fnmatch.fnmatchcase(part, p) for p in explicit):
            return True
    return False


def _walk(tree: Any, location: str, name: str) -> Iterator[Source]:
    entries = tree.entries(location)
    names = {entry for entry, is_dir in entries if not is_dir}
    if "dataset_dict.json" in names:
        yield from _saved_dataset_dict(tree, location, name)
        return
    if "state.json" in names and "dataset_info.json" in names:
        yield from _saved_dataset(tree, location, name)
        return
    for entry, is_dir in entries:
        if entry.startswith((".", "_")):
            continue
        if is_dir:
            yield from _walk(tree, tree.join(location, entry), f"{name}/{entry}")
        elif entry.endswith(READABLE):
            yield Source(f"{name}/{entry}", tree.join(location, entry), kind_of(entry))


def _saved_dataset(tree: Any, location: str, name: str) -> Iterator[Source]:
    """The Arrow files of a ``Dataset.save_to_disk`` folder, in the dataset's order."""
    try:
        state = json.loads(tree.read_text(tree.join(location, "state.json")))
        files = [f["filename"] for f in state["_data_files"]]
    except Exception as exc:  # noqa: BLE001
        raise InputSpecError(f"{name}: not a readable saved dataset (state.json: "
                             f"{type(exc).__name__}: {exc})") from None
    for filename in files:
        yield Source(f"{name}/{filename}", tree.join(location, filename), "arrow")


def _saved_dataset_dict(tree: Any, location: str, name: str) -> Iterator[Source]:
    """Each split of a ``DatasetDict.save_to_disk`` folder, in the order it lists them."""
    try:
        splits = json.loads(tree.read_text(tree.join(location, "dataset_dict.json")))["splits"]
    except Exception as exc:  # noqa: BLE001
        raise InputSpecError(f"{name}: not a readable saved dataset (dataset_dict.json: "
                             f"{type(exc).__name__}: {exc})") from None
    for split in splits:
        yield from _saved_dataset(tree, tree.join(location, split), f"{name}/{split}")


def _parts(path: str) -> tuple[str, ...]:
    return tuple(part for part in path.replace("\\", "/").split("/") if part)


def _mtime_ns(info: dict[str, Any]) -> int | None:
    """A modification time from an fsspec ``info()`` (keys differ by filesystem), in ns."""
    for key in ("mtime", "LastModified", "last_modified", "updated", "modified", "created"):
        value = info.get(key)
        if value is None:
            continue
        if isinstance(value, str):
            try:
                value = datetime.fromisoformat(value.replace("Z", "+00:00"))
            except ValueError:
                continue
        if isinstance(value, datetime):
            return int(value.timestamp() * 1e9)
        if isinstance(value, int | float):
            return int(value * 1e9)
    return None


def _etag(info: dict[str, Any]) -> str | None:
    for key in ("ETag", "etag", "md5Hash", "blob_id", "VersionId", "version_id", "generation"):
        value = info.get(key)
        if value:
            return str(value).strip('"')
    lfs = info.get("lfs")
    if isinstance(lfs, dict) and lfs.get("sha256"):
        return str(lfs["sha256"])
    return None
