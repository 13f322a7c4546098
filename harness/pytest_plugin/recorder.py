"""The controller's side: verdicts gathered from every report, decided into a run directory.

Wherever a test ran (this process or an xdist worker), its verdicts arrive here on its report.
They are kept per transcript source, so a re-run item replaces its verdicts and nothing is
counted twice. At the end of the session the corpus is read again, in order, and every
transcript whose selected criteria all ran is decided with the engine's decision policy and
journaled; :func:`harness.outputs.finalize` then builds the same files as ``harness run``.
In per-criterion mode each criterion item streamed its verdicts to a part file in corpus order;
the parts are merged in lockstep, so memory stays bounded.
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest

from harness.models import InputError, Transcript, Verdict
from harness.options import RunOptions
from harness.policy import INPUT_CRITERION, decide, input_error_decision
from harness.pytest_plugin.corpus import record_key
from harness.pytest_plugin.session import PARTS_DIR, ReviewPlugin
from harness.rundir import JOURNAL, RunWriter, numbered_items
from harness.suite import CriterionSpec, Suite, load_suite


class RunRecorder:
    """Registered in the controller only (never in an xdist worker)."""

    def __init__(self, config: pytest.Config, review: ReviewPlugin) -> None:
        self.review = review
        self.run_dir = review.run_dir
        self.specs: dict[str, tuple[int, dict[str, Any]]] = {}
        self.records: dict[str, dict[str, Any]] = {}
        self.parts: dict[str, str] = {}
        self.required_criteria: set[str] = set()
        self.rates: dict[str, dict[str, Any]] = {}
        self.summary: dict[str, Any] | None = None
        self.notes: list[str] = []
        self.started = datetime.now(UTC)
        self.t0 = time.perf_counter()
        if self.run_dir is not None:
            if (self.run_dir / JOURNAL).exists() and not config.getoption("review_overwrite"):
                raise pytest.UsageError(f"--review-out {self.run_dir} already holds a run: pass "
                                        "--review-overwrite to replace it, or choose another "
                                        "directory")
            shutil.rmtree(self.run_dir / PARTS_DIR, ignore_errors=True)

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        data = getattr(report, "harness", None)
        if not data:
            return
        name = data["criterion"]
        if name != INPUT_CRITERION:  # an unreadable record's item is not a criterion
            self.specs.setdefault(name, (data["rank"], data["spec"]))
        if data["mode"] == "criterion":
            self.required_criteria.update(data["required"])
            self.rates[name] = data["tally"]
            if data.get("part"):
                self.parts[name] = data["part"]
            return
        record = self.records.setdefault(data["key"], {"required": data["required"],
                                                       "verdicts": {}})
        record["verdicts"][name] = data["verdicts"]

    def _suite(self) -> Suite:
        criteria = [CriterionSpec.model_validate(spec)
                    for _, spec in sorted(self.specs.values(), key=lambda x: x[0])]
        if self.review.suite_path is not None:
            return load_suite(self.review.suite_path).model_copy(update={"criteria": criteria})
        return Suite(name="pytest", criteria=criteria)

    def _records(self) -> Iterator[tuple[int, int, Transcript | InputError]]:
        corpus = self.review.corpus
        return numbered_items(list(corpus.paths), corpus.registry.formats,
                          corpus.input_format)

    def _decided(self, suite: Suite) -> Iterator[tuple[int, int, Any]]:
        if self.review.mode == "criterion":
            missing = sorted(self.required_criteria - set(self.parts))
            if missing:
                self.notes.append(f"run directory not written: criteria {missing} did not "
                                  "finish (-x, interrupted or not run)")
                return
            order = [s.name for s in suite.criteria]
            files = [open(self.parts[n], encoding="utf-8") for n in order]  # noqa: SIM115
            try:
                for seq, sub, record in self._records():
                    lines = [json.loads(next(fh)) for fh in files]
                    if any(line["source"] != record_key(record) for line in lines):
                        raise RuntimeError("criterion part files are out of step with the corpus")
                    if isinstance(record, InputError):
                        yield seq, sub, input_error_decision(record)
                        continue
                    verdicts = [Verdict.model_validate(v) for line in lines
                                for v in line["verdicts"]]
                    yield seq, sub, decide(record, verdicts, suite.criteria, suite.threshold)
            finally:
                for fh in files:
                    fh.close()
            return
        incomplete = 0
        for seq, sub, record in self._records():
            entry = self.records.get(record_key(record))
            if entry is None:
                continue
            if any(name not in entry["verdicts"] for name in entry["required"]):
                incomplete += 1
                continue
            if isinstance(record, InputError):
                yield seq, sub, input_error_decision(record)
                continue
            chosen = [s for s in suite.criteria if s.name in entry["required"]]
            verdicts = [Verdict.model_validate(v)
                        for s in chosen for v in entry["verdicts"][s.name]]
            yield seq, sub, decide(record, verdicts, chosen, suite.threshold)
        if incomplete:
            self.notes.append(f"{incomplete} transcript(s) not decided: not all their selected "
                              "criteria ran (-x or interrupted)")

    @pytest.hookimpl(trylast=True)
    def pytest_sessionfinish(self, session: pytest.Session) -> None:
        if self.run_dir is None:
            return
        if not self.specs:
            if session.exitstatus in (pytest.ExitCode.USAGE_ERROR, pytest.ExitCode.INTERNAL_ERROR):
                return
            self.notes.append(f"run directory not written: no review item ran ({self.run_dir})")
            return
        from harness.outputs import finalize

        try:
            suite = self._suite()
            corpus = self.review.corpus
            opt = self.review.config.getoption
            options = RunOptions(judge=opt("review_judge"), input_format=corpus.input_format,
                                 all_criteria=opt("review_all_criteria"),
                                 plugins_dir=corpus.registry.plugins_dir)
            writer = RunWriter(self.run_dir, suite, list(corpus.paths), options, overwrite=True)
            decided = 0
            try:
                try:
                    for seq, sub, decision in self._decided(suite):
                        writer.write(seq, sub, decision)
                        decided += 1
                finally:
                    writer.close()
                wall = time.perf_counter() - self.t0
                timings = {"started": self.started.isoformat(timespec="seconds"),
                           "finished": datetime.now(UTC).isoformat(timespec="seconds"),
                           "wall_s": round(wall, 3), "decided_this_run": decided,
                           "skipped_as_done": 0, "runner": "pytest",
                           "transcripts_per_s": round(decided / wall, 1) if wall > 0 else None}
                self.summary = finalize(self.run_dir, timings)
            finally:
                writer.release()
            shutil.rmtree(self.run_dir / PARTS_DIR, ignore_errors=True)
        except Exception as exc:  # noqa: BLE001 - report it, keep the test results
            self.notes.append(f"run directory NOT written: {type(exc).__name__}: {exc}")
            if session.exitstatus == 0:
                session.exitstatus = pytest.ExitCode.TESTS_FAILED

    def pytest_terminal_summary(self, terminalreporter: Any) -> None:
        tr = terminalreporter
        if self.rates:
            tr.section("harness criteria")
            for name, _ in sorted(self.specs.items(), key=lambda x: x[1][0]):
                r = self.rates.get(name)
                if r is None:
                    continue
                rate = "-" if r["pass_rate"] is None else f"{r['pass_rate']:.1%}"
                state = "BELOW" if r["pass_rate"] is not None and \
                    r["pass_rate"] < r["min_pass_rate"] else "ok"
                tr.write_line(f"{name}: pass rate {rate} (pass {r['pass']}, fail {r['fail']}, "
                              f"error {r['error']}), min {r['min_pass_rate']:.1%} {state}")
        if self.summary is not None or self.notes:
            tr.section("harness review")
        if self.summary is not None and self.run_dir is not None:  # a summary is of a run dir
            s = self.summary
            tr.write_line(f"{s['read']} transcripts decided: {s['passed']} passed, "
                          f"{s['failed']} failed, {s['errored']} errored")
            if s.get("input_errors"):
                tr.write_line(f"{s['input_errors']} unreadable record(s): see "
                              f"{self.run_dir / 'errors.jsonl'}")
            tr.write_line(f"run directory: {self.run_dir}  (train set: "
                          f"{self.run_dir / 'train.jsonl'})")
        for note in self.notes:
            tr.write_line(note)
