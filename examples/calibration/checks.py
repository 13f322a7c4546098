"""The calibration example's Python criterion (found because it sits next to suite.yaml)."""

from harness import Transcript


def conciseness(transcript: Transcript, limit: int = 600) -> float:
    """1 for an empty answer, 0 from ``limit`` characters on."""
    answer = transcript.last_assistant()
    return 0.0 if answer is None else max(0.0, 1.0 - len(answer.content) / limit)
