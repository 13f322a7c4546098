"""The run directory: a journal of decisions written as they come, and what is built from it.

``journal.jsonl`` gets one line per decided transcript, ``{"seq", "sub", "decision"}``, as soon
as it is decided (in completion order). It holds no copy of the transcripts: ``seq`` is the
record's position in the run's inputs and ``sub`` the transcript's index in that record (an
HH-RLHF record holds two), so :func:`iter_journal` reads the inputs again and joins them with
the journal, in input order. ``run.json`` records the inputs (resolved paths, sizes, mtimes): a
resume or an export refuses inputs that changed.

Guarantees: one run at a time per directory (a lock); the journal is idempotent by transcript
(the last line for a ``(seq, sub)`` wins, a torn or corrupted line is skipped and reported, and
its transcript reviewed again on ``--resume``); ``state`` in ``run.json`` says whether the
outputs are complete (``complete``) or not (``running``, ``finalizing``).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import hashlib
import json
import os
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any, cast

import orjson

from harness.inputs.ids import IdWatch
from harness.inputs.sources import (
    DEFAULT_MESSAGES_COLUMN,
    DIGEST,
    Source,
    content_digest,
    describe_sources,
    iter_entries,
    resolve_inputs,
    same_inputs,
)
from harness.judges.batch import BatchOptions
from harness.judges.override import MODEL_SPECIFIC
from harness.judges.ratelimit import RateLimits
from harness.judges.retry import RetryPolicy
from harness.models import Decision, InputError, Transcript, compact_json, with_defaults
from harness.options import RunOptions
from harness.policy import criterion_errored
from harness.redact import redact_config
from harness.stops import RunStopped
from harness.suite import Suite

JOURNAL = "journal.jsonl"
RUN_META = "run.json"
LOCK = ".lock"
OUTPUTS = ("results.parquet", "decisions.parquet", "train.jsonl", "rejected.jsonl",
           "errors.jsonl", "summary.json", "report.html")
"""Files built from the journal; removed when a run starts over."""


class RunDirError(Exception):
    """The run directory cannot be used as asked (exists without --resume, suite changed...)."""


class IncompleteRunError(RunDirError):
    """The run did not finish: its outputs are not complete."""


NOT_VERDICTS = frozenset({"max_concurrency", *RetryPolicy.model_fields, *BatchOptions.model_fields,
                          *RateLimits.model_fields, *MODEL_SPECIFIC})
"""Keys of a judge mapping that change how (and at what price) it is called, never what it
answers: a resume may change them."""


def verdict_material(suite: Suite, options: dict[str, Any] | None = None) -> dict[str, Any]:
    """What a resumed run must share with the run it continues, normalised: the suite and the
    options that change verdicts, a ``--judge`` mapping parsed (key order is not a change) and
    judge mappings without the keys that only say how to call them (:data:`NOT_VERDICTS`)."""
    from harness.judges.override import parse_override

    data = suite.model_dump(mode="json", exclude={"path"})
    for c in data["criteria"]:
        c.pop("origin", None)
    data["options"] = dict(options or {})
    if data["options"].get("judge") is not None:
        data["options"]["judge"] = parse_override(data["options"]["judge"])
    return cast("dict[str, Any]", _calls_left_out(data))  # a dict stays a dict


def _calls_left_out(value: Any) -> Any:
    if isinstance(value, list):
        return [_calls_left_out(v) for v in value]
    if not isinstance(value, dict):
        return value
    judge = isinstance(value.get("name"), str) and "/" in value["name"]
    return {k: _calls_left_out(v) for k, v in value.items()
            if not (judge and k in NOT_VERDICTS)}


def suite_fingerprint(suite: Suite, options: dict[str, Any] | None = None) -> str:
    """A short hash of :func:`verdict_material`."""
    return _digest(verdict_material(suite, options))


def _digest(material: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(material, sort_keys=True).encode()).hexdigest()[:16]


def _as_flag(path: str) -> str:
    """``options.messages_column`` as the user gave it: ``--messages-column``."""
    if not path.startswith("options."):
        return path
    option, _, rest = path.removeprefix("options.").partition(".")
    return "--" + option.replace("_", "-") + (f" ({rest})" if rest else "")


def _differences(before: Any, now: Any, path: str = "") -> list[str]:
    """Where two materials differ, as dotted paths (criteria by name)."""
    if isinstance(before, dict) and isinstance(now, dict):
        return [d for k in sorted(set(before) | set(now), key=str)
                for d in _differences(before.get(k), now.get(k), f"{path}.{k}".lstrip("."))]
    if isinstance(before, list) and isinstance(now, list) and len(before) == len(now):
        named = all(isinstance(x, dict) and "name" in x for x in before + now)
        return [d for i, (b, n) in enumerate(zip(before, now, strict=True))
                for d in _differences(b, n, f"{path}.{b['name'] if named else i}")]
    return [] if before == now else [path or "(all)"]


def recorded_sources(meta: dict[str, Any]) -> list[Source]:
    """The input files a run read, rebuilt from its ``run.json`` (to read them again)."""
    column = meta.get("messages_column") or DEFAULT_MESSAGES_COLUMN
    return [Source.from_description(i, column) for i in meta.get("inputs", [])]


# --- reading the journal ------------------------------------------------------------------------
@dataclass
class JournalIndex:
    """Where each transcript's latest journal line is, sorted by ``(seq, sub)``."""

    keys: list[tuple[int, int]] = field(default_factory=list)
    offsets: list[int] = field(default_factory=list)
    errored: set[tuple[int, int]] = field(default_factory=set)
    """Transcripts with a criterion error (not an unreadable record), whatever their outcome."""
    bad_lines: list[int] = field(default_factory=list)
    """Line numbers of lines that are not journal entries (skipped)."""
    duplicates: int = 0

    def __len__(self) -> int:
        return len(self.keys)


def decided_records(run_dir: str | Path, *, retry_errors: bool = True,
                    limit: int | None = None) -> int:
    """Input records a resumed run will not review again (for its progress): those with a
    journaled decision, less those with a criterion error when ``retry_errors``."""
    index = index_journal(run_dir)
    again = {seq for seq, _ in index.errored} if retry_errors else set()
    return len({seq for seq, _ in index.keys
                if seq not in again and (limit is None or seq < limit)})


def index_journal(run_dir: str | Path) -> JournalIndex:
    """Read the journal once: the latest valid line of each transcript, bad lines listed."""
    path = Path(run_dir) / JOURNAL
    latest: dict[tuple[int, int], int] = {}
    index = JournalIndex()
    if not path.exists():
        return index
    with path.open("rb") as fh:
        offset, number = 0, 0
        for line in fh:
            number += 1
            start, offset = offset, offset + len(line)
            if not line.endswith(b"\n"):  # torn by a kill: the transcript is reviewed again
                index.bad_lines.append(number)
                break
            try:
                entry = orjson.loads(line)
                key = (entry["seq"], entry["sub"])
                decision = entry["decision"]
                if not (isinstance(key[0], int) and isinstance(key[1], int)
                        and decision["outcome"] in ("pass", "fail", "error")):
                    raise TypeError
            except (orjson.JSONDecodeError, KeyError, TypeError):
                index.bad_lines.append(number)
                continue
            if key in latest:
                index.duplicates += 1
            latest[key] = start
            if criterion_errored(decision.get("errored") or ()):  # whatever the outcome
                index.errored.add(key)
            else:
                index.errored.discard(key)
    for key in sorted(latest):
        index.keys.append(key)
        index.offsets.append(latest[key])
    return index


REREAD_CHUNK = 512
"""Records per chunk when worker processes read the inputs again."""


def _identity(item: Any) -> Any:
    return item


def _render(chunk: list[tuple[int, str, Any]], formats: Any, input_format: str,
            render: Callable[[Any], Any]) -> list[tuple[int, int, Any]]:
    from harness.stages import parse_entry

    return [(seq, sub, render(item)) for seq, source, raw in chunk
            for sub, item in enumerate(parse_entry((seq, source, raw, frozenset()), formats,
                                                   input_format))]


@functools.lru_cache(maxsize=4)
def _formats(plugins_dir: str | None) -> Any:
    from harness.plugins import get_registry

    return get_registry(plugins_dir).formats


def _render_chunk(plugins_dir: str | None, input_format: str, render: Callable[[Any], Any],
                  chunk: list[tuple[int, str, Any]]) -> list[tuple[int, int, Any]]:
    """In a worker process: the registry's formats are built once per process."""
    return _render(chunk, _formats(plugins_dir), input_format, render)


def numbered_items(inputs: Sequence[str | Path | Source], formats: Any, input_format: str = "auto",
                   *, render: Callable[[Any], Any] | None = None, workers: int = 1,
                   plugins_dir: str | None = None,
                   limit: int | None = None) -> Iterator[tuple[int, int, Any]]:
    """``(seq, sub, item)`` for every transcript of the inputs, as the engine numbered them
    (the first ``limit`` records only, when given).

    ``render`` maps each item (a Transcript or InputError) to what the caller needs; with
    ``workers`` > 1 records are parsed and rendered in that many processes (``render`` must
    then be a module-level function), in input order.
    """
    render = render or _identity
    sources = resolve_inputs(inputs)
    if workers <= 1:
        for entry in iter_entries(sources, limit=limit):
            yield from _render([entry], formats, input_format, render)
        return
    import multiprocessing

    from harness.stages import ctrl_c_deferred, worker_init

    pool = ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                               initializer=worker_init)
    task = functools.partial(_render_chunk, plugins_dir, input_format, render)
    window: deque[Future[list[tuple[int, int, Any]]]] = deque()
    try:
        chunk: list[tuple[int, str, Any]] = []
        for entry in iter_entries(sources, limit=limit):
            chunk.append(entry)
            if len(chunk) >= REREAD_CHUNK:
                with ctrl_c_deferred():  # may start a worker process
                    window.append(pool.submit(task, chunk))
                chunk = []
                while len(window) > 2 * workers:
                    yield from window.popleft().result()
        if chunk:
            with ctrl_c_deferred():
                window.append(pool.submit(task, chunk))
        while window:
            yield from window.popleft().result()
    finally:
        pool.shutdown(wait=True, cancel_futures=True)


PARALLEL_FROM = 20_000
"""Journaled transcripts from which worker processes (when allowed) read the inputs again."""


def transcript_dict(item: Transcript | InputError) -> dict[str, Any] | None:
    """A transcript as the JSON-ready dict consumers read (``None`` for an input error)."""
    return item.model_dump(mode="json", exclude_none=True) if isinstance(item, Transcript) \
        else None


def read_meta(run_dir: str | Path) -> dict[str, Any]:
    path = Path(run_dir) / RUN_META
    return json.loads(path.read_text()) if path.exists() else {}


def check_complete(run_dir: str | Path, *, allow_incomplete: bool = False) -> dict[str, Any]:
    """The run's metadata; :class:`IncompleteRunError` unless its outputs are complete."""
    run_dir = Path(run_dir)
    if not (run_dir / JOURNAL).is_file():
        raise RunDirError(f"{run_dir} is not a run directory (no {JOURNAL})")
    meta = read_meta(run_dir)
    state = meta.get("state", "complete")
    if state != "complete" and not allow_incomplete:
        holder = lock_holder(run_dir)
        if holder is not None:
            raise IncompleteRunError(
                f"{run_dir}: a harness run is writing this directory now (pid {holder}); wait "
                "for it to finish, then try again (its outputs are not written yet)")
        raise IncompleteRunError(
            f"{run_dir}: the run is incomplete (state: {state}); finish it with "
            f"`harness run ... -o {run_dir} --resume` (its outputs would be partial)")
    return meta


def checked_sources(run_dir: Path, meta: dict[str, Any]) -> list[Source]:
    """The run's inputs, to read again; :class:`RunDirError` when one is gone or changed."""
    inputs = meta.get("inputs", [])
    sources = recorded_sources(meta)
    if isinstance(inputs, list) and all(isinstance(i, dict) for i in inputs):
        for recorded, source in zip(inputs, sources, strict=True):
            try:
                now = source.describe()
            except OSError:
                raise RunDirError(
                    f"{run_dir}: input {recorded['path']} is gone ({recorded['resolved']}); the "
                    "run's transcripts are read from its inputs: moved, they can be found again "
                    f"with `harness relink {run_dir} NEW_PATH...`") from None
            if not same_inputs([recorded], [now]):
                raise RunDirError(f"{run_dir}: input {recorded['path']} changed since the run "
                                  "(its size, or its bytes); its outputs cannot be rebuilt")
    return sources


def iter_decisions(run_dir: str | Path, *, allow_incomplete: bool = False
                   ) -> Iterator[tuple[tuple[int, int], dict[str, Any]]]:
    """``((seq, sub), decision)`` for every decided transcript, in input order, read from the
    journal alone (the inputs are not read: see :func:`transcripts_at` for the few a caller
    shows)."""
    run_dir = Path(run_dir)
    check_complete(run_dir, allow_incomplete=allow_incomplete)
    index = index_journal(run_dir)
    with (run_dir / JOURNAL).open("rb") as journal:
        for key, offset in zip(index.keys, index.offsets, strict=True):
            journal.seek(offset)
            yield key, with_defaults(Decision, orjson.loads(journal.readline())["decision"])


def transcripts_at(run_dir: str | Path, keys: set[tuple[int, int]],
                   render: Callable[[Any], Any] = transcript_dict) -> dict[tuple[int, int], Any]:
    """The transcripts at ``keys`` (``(seq, sub)``), read again from the run's inputs and
    rendered; only their records are parsed, and reading stops after the last."""
    if not keys:
        return {}
    run_dir = Path(run_dir)
    meta = read_meta(run_dir)
    sources = checked_sources(run_dir, meta)
    seqs = {seq for seq, _ in keys}
    formats = _formats(meta.get("plugins_dir"))
    found: dict[tuple[int, int], Any] = {}
    for entry in iter_entries(sources, limit=max(seqs) + 1):  # journal keys are within --limit
        if entry[0] in seqs:
            found.update(((seq, sub), item) for seq, sub, item in
                         _render([entry], formats, meta.get("input_format", "auto"), render)
                         if (seq, sub) in keys)
    return found


def iter_journal(run_dir: str | Path, *, allow_incomplete: bool = False,
                 stats: dict[str, int] | None = None,
                 render: Callable[[Any], Any] | None = None,
                 workers: int = 1) -> Iterator[dict[str, Any]]:
    """Every decided transcript in input order: ``{"decision": ..., "transcript": ...}``.

    The transcript is read again from the run's inputs: a dict (``None`` for an unreadable
    record), or what ``render`` makes of the parsed item, computed in ``workers`` processes
    for a large run. Refuses an incomplete run unless ``allow_incomplete``. ``stats`` (if
    given) receives the counts of bad journal lines and of input transcripts with no decision.
    """
    from harness.plugins import get_registry

    run_dir = Path(run_dir)
    meta = check_complete(run_dir, allow_incomplete=allow_incomplete)
    sources = checked_sources(run_dir, meta)
    index = index_journal(run_dir)
    formats = get_registry(meta.get("plugins_dir")).formats
    missing, pos = 0, 0
    keys, offsets = index.keys, index.offsets
    if len(keys) < PARALLEL_FROM:
        workers = 1
    items = numbered_items(sources, formats, meta.get("input_format", "auto"),
                           render=render or transcript_dict, workers=workers,
                           plugins_dir=meta.get("plugins_dir"), limit=meta.get("limit"))
    with (run_dir / JOURNAL).open("rb") as journal:
        for seq, sub, transcript in items:
            key = (seq, sub)
            while pos < len(keys) and keys[pos] < key:
                pos += 1
            if pos == len(keys) or keys[pos] != key:
                missing += 1
                continue
            journal.seek(offsets[pos])
            decision = with_defaults(Decision, orjson.loads(journal.readline())["decision"])
            yield {"decision": decision, "transcript": transcript}
    if stats is not None:
        stats.update(bad_journal_lines=len(index.bad_lines), not_decided=missing,
                     duplicate_journal_lines=index.duplicates)


# --- writing ------------------------------------------------------------------------------------
def _repair_journal(path: Path) -> None:
    """Cut a line torn by a kill, so appending goes on from a clean end."""
    if not path.exists():
        return
    with path.open("rb+") as fh:
        fh.seek(0, os.SEEK_END)
        size = fh.tell()
        if size == 0:
            return
        pos = size
        while pos > 0:
            step = min(65536, pos)
            fh.seek(pos - step)
            chunk = fh.read(step)
            cut = chunk.rfind(b"\n")
            if cut != -1:
                end = pos - step + cut + 1
                if end != size:
                    fh.truncate(end)
                return
            pos -= step
        fh.truncate(0)


def mark_stopped(run_dir: Path, stop: RunStopped) -> None:
    """Record in ``run.json`` that the run stopped (its outputs are not rebuilt)."""
    write_meta(run_dir, {**read_meta(run_dir), "state": "stopped", "stop": stop.stop.value,
                         "stop_reason": str(stop)})


def relink(run_dir: str | Path, inputs: Sequence[str]) -> list[str]:
    """Point a run at its inputs where they are now (moved or copied): ``inputs`` resolve, in
    order, to as many files as the run read, each the same size as the one it replaces and,
    when the run recorded it, the same bytes. ``run.json`` is rewritten; the names records are
    known by (``name:line``) stay. Returns a warning per file that could not be checked by
    content (a run that never finished records no digest)."""
    run_dir = Path(run_dir)
    meta = check_complete(run_dir, allow_incomplete=True)
    if lock_holder(run_dir) is not None:
        raise RunDirError(f"{run_dir}: a harness run is writing this directory now")
    recorded = meta.get("inputs", [])
    if not isinstance(recorded, list) or not all(isinstance(r, dict) for r in recorded):
        raise RunDirError(f"{run_dir}: its run.json records no input files to relink")
    found = resolve_inputs(list(inputs))
    if len(found) != len(recorded):
        raise RunDirError(f"{run_dir}: the run read {len(recorded)} input file(s), "
                          f"{' '.join(inputs)} name(s) {len(found)}: give them all, in order")
    warnings, out = [], []
    for old, source in zip(recorded, found, strict=True):
        now = source.describe()
        where = f"{source.name} (for {old['path']})"
        if now.get("kind") != old.get("kind") or now.get("size") != old.get("size"):
            raise RunDirError(f"{run_dir}: {where} is not the file the run read: its "
                              f"{'kind' if now.get('kind') != old.get('kind') else 'size'} "
                              "differs")
        if DIGEST in old and not source.is_url:
            if content_digest(source.location) != old[DIGEST]:
                raise RunDirError(f"{run_dir}: {where} is not the file the run read: its "
                                  "bytes differ")
            now[DIGEST] = old[DIGEST]
        else:
            warnings.append(f"{where}: same size, not checked by content (the run recorded "
                            "no digest)")
        out.append({**now, "path": old["path"]})
    write_meta(run_dir, {**meta, "inputs": out})
    return warnings


def write_meta(run_dir: Path, meta: dict[str, Any]) -> None:
    """``run.json``, replaced atomically."""
    atomic_write_text(run_dir / RUN_META, json.dumps(meta, indent=2))


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def check_writable(run_dir: Path, *, resume: bool, overwrite: bool) -> None:
    """Refuse a run directory that is a file, or that holds a run not to be resumed or
    overwritten (before anything is read or shown)."""
    if run_dir.exists() and not run_dir.is_dir():
        raise RunDirError(f"{run_dir} is a file, not a run directory")
    if (run_dir / JOURNAL).exists() and not (resume or overwrite):
        raise RunDirError(f"{run_dir} already holds a run: pass --resume to go on with it, "
                          "--overwrite to start again, or choose another directory")


class RunWriter:
    """Appends decisions to a run directory's journal; knows what a resumed run can skip.

    Holds the directory's lock until :meth:`close`: a second run on the same directory is an
    error, not a second writer. ``retry_errors`` (the default on resume) leaves transcripts
    whose decision errored out of :attr:`done`, so they are reviewed again.
    """

    def __init__(self, run_dir: str | Path, suite: Suite, inputs: list[str | Path | Source],
                 options: RunOptions | None = None, *, resume: bool = False,
                 overwrite: bool = False, retry_errors: bool = True) -> None:
        self.run_dir = Path(run_dir)
        check_writable(self.run_dir, resume=resume, overwrite=overwrite)
        self.suite = suite
        self.options = options = options or RunOptions()
        self.sources = resolve_inputs(inputs, messages_column=options.messages_column)
        """The input files, in reading order (folders, globs and URLs resolved)."""
        self.limit = options.limit
        self.ids = IdWatch(warn=True)
        """The ids written so far: a record reusing another's id is warned about."""
        journal = self.run_dir / JOURNAL
        self.done: set[tuple[int, int]] = set()
        self.index = JournalIndex()
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self._lock = _lock(self.run_dir)
        try:
            material = verdict_material(suite, options.verdict_options())
            fingerprint = _digest(material)
            described = describe_sources(self.sources)
            self.fresh = not (resume and journal.exists())
            """Whether the journal starts empty (not a resumed run)."""
            if not self.fresh:
                meta = self._resumed(material, described, retry_errors)
            else:
                for name in (JOURNAL, *OUTPUTS):
                    with contextlib.suppress(FileNotFoundError):
                        (self.run_dir / name).unlink()
                meta = {"started": _now()}
            # run.json is shared: URLs in it (a judge's base_url...) go without credentials
            meta.update(suite_fingerprint=fingerprint, verdicts_from=redact_config(material),
                        suite=redact_config(_suite_info(suite)), inputs=described,
                        options=redact_config(options.record()),
                        input_format=options.input_format,
                        plugins_dir=options.plugins_dir, state="running",
                        input_specs=[s.name if isinstance(s, Source) else os.fspath(s)
                                     for s in inputs],
                        messages_column=options.messages_column, limit=options.limit)
            self.meta = meta
            write_meta(self.run_dir, meta)
            self._journal: IO[bytes] = journal.open("ab")
        except BaseException:
            self._lock.close()
            raise

    def _resumed(self, material: dict[str, Any], described: list[dict[str, Any]],
                 retry_errors: bool) -> dict[str, Any]:
        """The run's metadata, checked: a resume goes on with the same suite and inputs."""
        meta = read_meta(self.run_dir)
        if meta.get("suite_fingerprint") not in (None, _digest(material)):
            changed = _differences(meta.get("verdicts_from"), redact_config(material)) \
                if isinstance(meta.get("verdicts_from"), dict) else []
            changed = [_as_flag(c) for c in changed]
            what = ", ".join(changed[:8]) + (" ..." if len(changed) > 8 else "") if changed \
                else "the suite, --judge, --all-criteria, --input-format or --messages-column"
            raise RunDirError(f"{self.run_dir}: what decides the verdicts changed since this "
                              f"run started ({what}); start a new run directory (or "
                              "--overwrite)")
        if "inputs" in meta and not same_inputs(meta["inputs"], described):
            raise RunDirError(f"{self.run_dir}: the inputs differ from the run's (other files, "
                              "another order, or changed since): resume with the same inputs, "
                              "or --overwrite")
        _repair_journal(self.run_dir / JOURNAL)
        self.index = index_journal(self.run_dir)
        self.done = set(self.index.keys)
        if retry_errors:
            self.done -= self.index.errored
        meta["resumed"] = [*meta.get("resumed", []), _now()]
        return meta

    def write(self, seq: int, sub: int, decision: Decision | bytes,
              ident: tuple[str, str, Sequence[str]] | None = None) -> None:
        """Journal one decision (an object, or its JSON and, when known, its
        ``(transcript_id, source, errored)``)."""
        self.ids.observe(decision, ident)
        if not isinstance(decision, bytes):
            decision = compact_json(decision)
        self._journal.write(b'{"seq":%d,"sub":%d,"decision":%s}\n' % (seq, sub, decision))

    def flush(self) -> None:
        self._journal.flush()

    def close(self) -> None:
        """Close the journal; the lock is held until :meth:`release` (finalize runs under it)."""
        if not self._journal.closed:
            self._journal.close()

    def release(self) -> None:
        self.close()
        self._lock.close()


def lock_holder(run_dir: Path) -> str | None:
    """The pid of the harness run holding ``run_dir``'s lock now, else ``None``."""
    try:
        fh = (run_dir / LOCK).open("r")
    except OSError:
        return None
    with fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except BlockingIOError:
            return fh.read().strip() or "?"
        fcntl.flock(fh, fcntl.LOCK_UN)
    return None


def _lock(run_dir: Path) -> IO[str]:
    fh = (run_dir / LOCK).open("a+")
    try:
        fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        fh.seek(0)
        holder = fh.read().strip() or "?"
        fh.close()
        raise RunDirError(f"{run_dir} is in use by another harness run (pid {holder}); wait "
                          "for it to end, or choose another directory") from None
    fh.seek(0)
    fh.truncate()
    fh.write(str(os.getpid()))
    fh.flush()
    return fh


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _suite_info(suite: Suite) -> dict[str, Any]:
    return {
        "name": suite.name,
        "version": suite.version,
        "path": str(suite.path) if suite.path else None,
        "threshold": suite.threshold,
        "judge": suite.judge,
        "criteria": [
            {"name": c.name, "kind": c.kind, "gate": c.gate, "weight": c.weight,
             "version": c.version, "scope": c.scope, "description": c.description,
             "min_pass_rate": c.min_pass_rate, "config": c.config}
            for c in suite.criteria
        ],
    }
