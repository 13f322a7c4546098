"""Corrections: a supervisor interrupts where a transcript went wrong, the generator continues.

``harness correct RUN_DIR -o NEW_RUN_DIR`` (or :func:`correct_run`) cuts every correctable
failing transcript at its first failed assistant message, adds the supervisor's ``No, <why>``
(:mod:`harness.correct.supervise`), lets the generator continue and reviews the result with the
run's own suite, up to ``max_rounds`` times (:mod:`harness.correct.loop`). The failed turn stays,
masked (``weight: 0``), so training keeps the correction and never the mistake
(:mod:`harness.correct.cut`). Generator and supervisor are judge backends
(:mod:`harness.correct.agents`).
"""

from harness.correct.loop import CorrectOptions, correct_run

__all__ = ["CorrectOptions", "correct_run"]
