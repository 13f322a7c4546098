"""The active review, in every process that collects and runs tests (xdist workers too).

It collects the suite's items, parametrizes test functions over the corpus, runs criteria and
turns each item's outcome into verdicts that ride on the test report (``report.harness``, plain
JSON that xdist carries to the controller as-is), where :mod:`.recorder` writes the run directory.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator
from contextlib import nullcontext
from itertools import islice
from pathlib import Path
from typing import Any

import pytest

from harness.engine import CHUNK_SIZE, Engine
from harness.models import InputError, Transcript, Verdict
from harness.options import RunOptions
from harness.plugins import PluginError, get_registry
from harness.policy import INPUT_CRITERION
from harness.pytest_plugin.corpus import Corpus, Record, expand_paths, param_id, record_key
from harness.pytest_plugin.evaluate import CriterionRunner
from harness.pytest_plugin.items import (
    INPUT_SPEC,
    CorpusInputItem,
    InputItem,
    ReviewItem,
    SuiteFile,
)
from harness.pytest_plugin.verdicts import (
    Tally,
    call_criterion,
    exception_verdict,
    plain_verdict,
    python_spec,
    result_verdict,
)
from harness.suite import SuiteError
from harness.text import safe

PARTS_DIR = ".pytest-parts"
# what an item carries from collection or its call to its report
REQUIRED, RESULT = pytest.StashKey[list[str]](), pytest.StashKey[Any]()
TALLY, PART = pytest.StashKey[Tally](), pytest.StashKey[str | None]()


def function_key(item: pytest.Function) -> str:
    """A test function's key in :attr:`ReviewPlugin.functions` (its node id, unparametrized)."""
    assert item.parent is not None  # an item's parent is the collector that made it
    return f"{item.parent.nodeid}::{item.originalname}"


class ReviewPlugin:
    """Registered as ``harness-review`` when ``--transcripts`` is given."""

    def __init__(self, config: pytest.Config) -> None:
        opt = config.getoption
        base = config.invocation_params.dir
        self.config = config
        self.worker = hasattr(config, "workerinput")
        self.mode: str = opt("review_mode")
        try:
            self.registry = get_registry(opt("review_plugins_dir"))
        except PluginError as exc:
            raise pytest.UsageError(f"harness: {exc}") from None
        self.corpus = Corpus(expand_paths(opt("transcripts"), base), self.registry,
                             opt("input_format"))
        self.suite_path: Path | None = \
            (base / opt("review_suite")).resolve() if opt("review_suite") else None
        self.run_dir = (base / opt("review_out")).resolve() if opt("review_out") else None
        self.default_min_rate: float = opt("review_min_pass_rate")
        self.batch_size: int = max(1, opt("review_batch_size") or CHUNK_SIZE)
        self._engine: Engine | None = None
        self._runners: dict[int, CriterionRunner] = {}
        self._yaml_specs: dict[str, dict[str, Any]] | None = None
        # test nodeid -> (spec, threshold)
        self.functions: dict[str, tuple[dict[str, Any], float]] = {}
        self.ranks: dict[str, int] = {}
        if self.suite_path is not None:
            if not self.suite_path.is_file():
                raise pytest.UsageError(f"--review-suite {opt('review_suite')}: file not found")
            self._add_suite_to_args()

    # -- the suite and its engine (in every process that runs items) ----------------------------

    def _add_suite_to_args(self) -> None:
        config, suite = self.config, self.suite_path
        assert suite is not None
        if config.args_source != pytest.Config.ArgsSource.ARGS:
            config.args[:] = [str(suite)]
            return
        base = self.config.invocation_params.dir
        for arg in config.args:
            path = (base / arg.split("::")[0]).resolve()
            if suite == path or suite.is_relative_to(path):
                return
        config.args.append(str(suite))

    def engine(self) -> Engine:
        if self._engine is None:
            opt = self.config.getoption
            options = RunOptions(judge=opt("review_judge"), cache_dir=self.run_dir,
                                 all_criteria=opt("review_all_criteria"))
            assert self.suite_path is not None  # only a suite's items ask for the engine
            self._engine = Engine(self.suite_path, self.registry, options)
        return self._engine

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        """Release the engine (judge clients, the judge cache: a closed SQLite database leaves
        no ``-wal``/``-shm`` files behind), after the run directory is written."""
        if self._engine is not None:
            self._engine.close()
            self._engine = None

    def runner(self, memo_size: int = 4096) -> CriterionRunner:
        if memo_size not in self._runners:
            self._runners[memo_size] = CriterionRunner(self.engine(), memo_size)
        return self._runners[memo_size]

    def yaml_specs(self) -> dict[str, dict[str, Any]]:
        if self._yaml_specs is None:
            self._yaml_specs = {c.name: c.model_dump(mode="json")
                                for c in self.engine().suite.criteria}
        return self._yaml_specs

    # -- collection ------------------------------------------------------------------------------

    def pytest_collect_file(self, file_path: Path, parent: pytest.Collector) -> Any:
        if self.suite_path is not None and file_path.resolve() == self.suite_path:
            return SuiteFile.from_parent(parent, path=file_path)
        return None

    def pytest_generate_tests(self, metafunc: pytest.Metafunc) -> None:
        if "transcript" not in metafunc.fixturenames:
            return
        defs = metafunc._arg2fixturedefs.get("transcript") or []
        if not defs or getattr(defs[-1].func, "__module__", "") != "harness.pytest_plugin":
            return  # the test uses its own `transcript` fixture
        for mark in metafunc.definition.iter_markers("parametrize"):
            names = mark.args[0] if mark.args else ""
            names = names.split(",") if isinstance(names, str) else names
            if "transcript" in [n.strip() for n in names]:
                return
        nodeid = metafunc.definition.nodeid
        self.functions[nodeid] = python_spec(nodeid, metafunc.function,
                                             metafunc.definition.get_closest_marker("criterion"))
        if self.mode == "transcript":  # unreadable records get their own item
            records = [r for r in self.corpus.records() if isinstance(r, Transcript)]
            metafunc.parametrize("transcript", records, ids=[param_id(r) for r in records],
                                 indirect=True)

    @pytest.hookimpl(tryfirst=True)  # before -k / -m / --lf select among the items
    def pytest_collection_modifyitems(self, session: pytest.Session,
                                      items: list[pytest.Item]) -> None:
        """One error item per unreadable record, first, when the session reviews anything (in
        per-criterion mode, one item for all of them: the corpus is streamed, not held)."""
        if not any(self.item_info(i) for i in items):
            return
        if self.mode == "criterion":
            first = Path(self.corpus.paths[0].location) if self.corpus.paths else Path(".")
            rel = os.path.relpath(first, self.config.rootpath).replace(os.sep, "/")
            items[:0] = [CorpusInputItem.from_parent(
                session, name=f"{INPUT_CRITERION}[corpus]", path=first,
                nodeid=f"{rel}::{INPUT_CRITERION}[corpus]", criterion=INPUT_CRITERION)]
            return
        bad = [r for r in self.corpus.records() if isinstance(r, InputError)]
        rootpath = self.config.rootpath
        new = []
        for record in bad:
            file = Path(record.source.rsplit(":", 1)[0])
            rel = os.path.relpath(file, rootpath).replace(os.sep, "/")
            pid = param_id(record)
            new.append(InputItem.from_parent(session, name=f"{INPUT_CRITERION}[{pid}]",
                                             path=file, nodeid=f"{rel}::{INPUT_CRITERION}[{pid}]",
                                             criterion=INPUT_CRITERION, record=record))
        items[:0] = new

    def item_info(self, item: pytest.Item) -> tuple[dict[str, Any], Record | None] | None:
        """The criterion spec an item stands for and its record (None in criterion mode)."""
        if isinstance(item, CorpusInputItem):
            return None
        if isinstance(item, InputItem):
            return INPUT_SPEC, item.record
        if isinstance(item, ReviewItem):
            return self.yaml_specs()[item.criterion], item.record
        if isinstance(item, pytest.Function):
            found = self.functions.get(function_key(item))
            if found is not None:
                callspec = getattr(item, "callspec", None)
                record = callspec.params.get("transcript") if callspec else None
                return found[0], record
        return None

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        origins: dict[str, str] = {}
        if self.suite_path:
            try:
                self.ranks = {name: i for i, name in enumerate(self.yaml_specs())}
            except (SuiteError, PluginError):
                return  # the suite file's collection error says why
        rank = len(self.ranks)
        required: dict[str, set[str]] = {}
        for item in session.items:
            info = self.item_info(item)
            if info is None:
                continue
            spec, record = info
            name = spec["name"]
            if origins.setdefault(name, spec["origin"]) != spec["origin"]:
                raise pytest.UsageError(
                    f"two criteria are named {name!r}: {origins[name]} and {spec['origin']}; "
                    "name one with @pytest.mark.criterion(name=...)")
            if name not in self.ranks and spec is not INPUT_SPEC:
                self.ranks[name] = rank
                rank += 1
            key = record_key(record) if record is not None else ""
            required.setdefault(key, set()).add(name)
        for item in session.items:
            info = self.item_info(item)
            if info is not None:
                key = record_key(info[1]) if info[1] is not None else ""
                item.stash[REQUIRED] = sorted(required[key])

    # -- running ---------------------------------------------------------------------------------

    def transcript_for(self, request: pytest.FixtureRequest) -> Any:
        if self.mode == "criterion":
            return None  # the criterion item calls the test once per transcript
        record = getattr(request, "param", None)
        if record is None:
            pytest.skip("this test is not parametrized over --transcripts")
        if isinstance(record, InputError):
            pytest.fail(f"unreadable record {safe(record.source)}: {safe(record.reason, 1000)}",
                        pytrace=False)
        return record

    @pytest.hookimpl(tryfirst=True)
    def pytest_pyfunc_call(self, pyfuncitem: pytest.Function) -> bool | None:
        info = self.item_info(pyfuncitem)
        if info is None:
            return None
        function = pyfuncitem.obj
        args = {a: pyfuncitem.funcargs[a] for a in pyfuncitem._fixtureinfo.argnames}
        spec, threshold = self.functions[function_key(pyfuncitem)]
        if self.mode == "transcript":
            pyfuncitem.stash[RESULT] = function(**args)
        else:
            self.run_over_corpus(pyfuncitem, spec, lambda transcripts: [
                [call_criterion(function, args, spec, threshold, t)] for t in transcripts])
        return True

    def run_over_corpus(self, item: pytest.Item, spec: dict[str, Any],
                        evaluate: Callable[[list[Transcript]], list[list[Verdict]]]) -> None:
        """Per-criterion mode: the criterion over the whole corpus, streamed, to a part file."""
        min_rate = spec.get("min_pass_rate")
        tally = Tally(spec, self.default_min_rate if min_rate is None else min_rate)
        part = None
        if self.run_dir is not None:
            part = self.run_dir / PARTS_DIR / f"{self.ranks.get(spec['name'], 0):04d}.jsonl"
            part.parent.mkdir(parents=True, exist_ok=True)
        stream: Iterator[Record] = self.corpus.stream()
        with part.open("w", encoding="utf-8") if part else nullcontext() as fh:
            while batch := list(islice(stream, self.batch_size)):
                transcripts = [r for r in batch if isinstance(r, Transcript)]
                results = iter(evaluate(transcripts))
                for record in batch:
                    line: dict[str, Any] = {"source": record_key(record)}
                    if isinstance(record, Transcript):
                        verdicts = next(results)
                        tally.add(record, verdicts)
                        line["verdicts"] = [v.model_dump(mode="json") for v in verdicts]
                    if fh is not None:
                        fh.write(json.dumps(line, ensure_ascii=False) + "\n")
        item.stash[TALLY] = tally
        item.stash[PART] = str(part) if part else None
        if tally.failed:
            pytest.fail(tally.report(), pytrace=False)

    def _verdicts(self, item: pytest.Item, call: pytest.CallInfo[None], report: pytest.TestReport,
                  spec: dict[str, Any], record: Record | None) -> list[Verdict] | None:
        """The verdicts of a per-transcript item, from its outcome; None if not decided here."""
        if call.when == "teardown" or (call.when == "setup" and report.passed):
            return None
        found: list[Verdict] | None = getattr(item, "harness_verdicts", None)
        if found is not None:
            return found
        excinfo = call.excinfo
        if report.skipped and hasattr(report, "wasxfail"):
            return [plain_verdict(spec, "fail", f"xfail: {report.wasxfail}")]
        if excinfo is None:
            key = function_key(item) if isinstance(item, pytest.Function) else ""
            threshold = self.functions.get(key, (spec, 0.5))[1]
            return [result_verdict(spec, threshold, item.stash.get(RESULT, None))]
        if call.when == "setup" and not isinstance(excinfo.value, pytest.skip.Exception):
            if isinstance(record, InputError):
                return [plain_verdict(spec, "error", f"unreadable record: {record.reason}")]
            value = excinfo.value
            return [plain_verdict(spec, "error", f"setup failed: {type(value).__name__}: {value}")]
        return [exception_verdict(spec, excinfo.value)]

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        report = yield
        info = self.item_info(item)
        if info is None:
            return report
        spec, record = info
        required = item.stash.get(REQUIRED, [spec["name"]])
        base = {"mode": self.mode, "criterion": spec["name"], "spec": spec,
                "rank": self.ranks.get(spec["name"], 0), "required": required}
        if self.mode == "criterion":
            tally = item.stash.get(TALLY, None)
            if call.when != "call" or tally is None:
                return report
            report.harness = {**base, "part": item.stash.get(PART, None),
                              "tally": tally.summary()}
            item.user_properties.extend([("criterion", spec["name"]),
                                         ("pass_rate", f"{tally.rate}"),
                                         ("min_pass_rate", f"{tally.min_pass_rate}")])
            return report
        verdicts = self._verdicts(item, call, report, spec, record)
        if verdicts is None or record is None:
            return report
        from harness.policy import aggregate

        outcome, score = aggregate(verdicts)
        tid = record.id if isinstance(record, Transcript) else (record.transcript_id or "")
        report.harness = {**base, "key": record_key(record), "transcript_id": tid,
                          "verdicts": [v.model_dump(mode="json") for v in verdicts]}
        item.user_properties.extend([  # copied into the teardown report, where JUnit reads them
            ("criterion", spec["name"]), ("transcript_id", safe(tid, 200)),
            ("source", safe(record.source, 300)), ("verdict", outcome),
            ("score", "" if score is None else f"{score:.4f}")])
        return report
