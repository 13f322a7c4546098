"""harness: review LLM transcripts against pluggable criteria; keep what passes for training."""

from harness.api import review, run
from harness.criterion import Criterion, CriterionConfig, SuiteContext
from harness.engine import Engine
from harness.frames import review_frame
from harness.hookspecs import hookimpl
from harness.models import Decision, InputError, Message, Span, Transcript, Verdict
from harness.plugins import get_registry
from harness.run_access import Run, RunSummary, open_run
from harness.rundir import IncompleteRunError, RunDirError
from harness.suite import Suite, SuiteError, load_suite

__all__ = [
    "Criterion", "CriterionConfig", "Decision", "Engine", "InputError", "Message", "Span",
    "Suite", "SuiteContext", "SuiteError", "Transcript", "Verdict", "get_registry", "hookimpl",
    "load_suite", "review", "run",
    "IncompleteRunError", "Run", "RunDirError", "RunSummary", "open_run", "review_frame",
]
