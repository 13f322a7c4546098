"""The pytest plugin (entry point ``pytest11``): review suites that run as pytest.

Inert unless ``--transcripts`` is given: it only adds its options, the ``criterion`` marker and a
``transcript`` fixture that skips when there is no corpus. Importing it imports nothing of
harness; the review machinery loads when a review is asked for.

With ``--transcripts PATH...``, a test function taking the ``transcript`` fixture is a criterion,
parametrized over the corpus, and ``--review-suite SUITE.yaml`` adds the suite's criteria as
items. ``--review-out RUN_DIR`` writes the same run directory as ``harness run``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pytest

from harness.pytest_plugin.names import PLUGIN_NAME

if TYPE_CHECKING:
    from harness.pytest_plugin.assertions import ReviewFailure, assert_passes

__all__ = ["PLUGIN_NAME", "ReviewFailure", "assert_passes"]


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("harness", "harness review (transcripts as test parameters)")
    group.addoption("--transcripts", nargs="+", action="extend", metavar="PATH", default=None,
                    help="review these transcript files or folders (.jsonl, .jsonl.gz, .parquet); "
                         "takes every path after it, so put test paths before it")
    group.addoption("--review-suite", metavar="SUITE.yaml", default=None,
                    help="a harness suite: its criteria become items (with no test paths given, "
                         "only the suite is collected)")
    group.addoption("--review-out", metavar="RUN_DIR", default=None,
                    help="write the run directory, as `harness run -o RUN_DIR` does")
    group.addoption("--review-overwrite", action="store_true", default=False,
                    help="replace a run already in --review-out")
    group.addoption("--review-mode", choices=("transcript", "criterion"), default="transcript",
                    help="transcript (default): one item per criterion x transcript; criterion: "
                         "one item per criterion over the whole corpus, failing below its "
                         "min_pass_rate")
    group.addoption("--review-min-pass-rate", type=float, default=1.0, metavar="RATE",
                    help="criterion mode: pass rate required of criteria without min_pass_rate "
                         "(default 1.0)")
    group.addoption("--input-format", default="auto", metavar="FORMAT",
                    help="record format of --transcripts: auto (default), openai, sharegpt, "
                         "hh-rlhf")
    group.addoption("--review-judge", metavar="NAME", default=None,
                    help="use this judge for every llm_judge criterion of the suite")
    group.addoption("--review-all-criteria", action="store_true", default=False,
                    help="run expensive criteria even after a gate failed")
    group.addoption("--review-batch-size", type=int, default=None, metavar="N",
                    help="criterion mode: transcripts evaluated together (default: the "
                         "engine's chunk size, 256, as harness run)")
    group.addoption("--review-plugins-dir", metavar="DIR", default=None,
                    help="a harness plugins folder (as `harness --plugins-dir`)")


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers",
        "criterion(name=None, gate=True, weight=1.0, version='1', description=None, "
        "min_pass_rate=None, threshold=0.5): harness criterion settings of a test that takes "
        "the `transcript` fixture",
    )
    if not config.getoption("transcripts"):
        for flag, dest in (("--review-suite", "review_suite"), ("--review-out", "review_out")):
            if config.getoption(dest):
                raise pytest.UsageError(f"{flag} needs a corpus: add --transcripts PATH...")
        return
    from harness.pytest_plugin.recorder import RunRecorder
    from harness.pytest_plugin.session import ReviewPlugin

    review = ReviewPlugin(config)
    config.pluginmanager.register(review, PLUGIN_NAME)
    if not hasattr(config, "workerinput"):  # the controller (or a run without xdist)
        config.pluginmanager.register(RunRecorder(config, review), f"{PLUGIN_NAME}-recorder")


@pytest.fixture
def transcript(request: pytest.FixtureRequest) -> Any:
    """The transcript under review: the test runs once per transcript of ``--transcripts``."""
    review = request.config.pluginmanager.get_plugin(PLUGIN_NAME)
    if review is None:
        pytest.skip("no transcripts to review: pass --transcripts PATH...")
    return review.transcript_for(request)


def __getattr__(name: str) -> Any:
    if name in ("assert_passes", "ReviewFailure"):
        from harness.pytest_plugin import assertions

        return getattr(assertions, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
