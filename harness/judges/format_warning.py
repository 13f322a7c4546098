"""A warning at suite build when a judge cannot follow the ``VERDICT: <label>`` format.

Some models (the embedded 135M ``local/smollm2``) ramble instead of ending with a verdict line:
in ``mode: generate`` every verdict would be an ``error``, each after a long generation. Their
backend says so (:attr:`~harness.judges.base.JudgeBackend.follows_verdict_format` false), and the
first criterion using one without ``mode: choice`` logs one warning per judge and run.
"""

from __future__ import annotations

import logging

from harness.criterion import SuiteContext
from harness.judges.base import JudgeBackend

logger = logging.getLogger("harness")


def warn_if_format_unfollowed(backend: JudgeBackend, mode: str, criterion: str,
                              context: SuiteContext) -> None:
    """Log (once per judge and run) that ``backend`` needs ``mode: choice``."""
    if mode == "choice" or backend.follows_verdict_format:
        return

    def warn() -> bool:
        logger.warning(
            "harness: warning: judge %s cannot follow the `VERDICT: <label>` format, so in "
            "`mode: generate` its verdicts would be errors (after a slow generation each); "
            "set `mode: choice` on criterion '%s' (and the other llm_judge criteria using it): "
            "each label is then scored, nothing generated", backend.name, criterion)
        return True

    context.shared(f"verdict-format-warning:{backend.name}", warn)
