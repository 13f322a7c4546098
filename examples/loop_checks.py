"""Python criteria of loop_suite.yaml (importable because they sit next to it)."""

from harness import Transcript


def complete_answer(transcript: Transcript) -> bool:
    """The generator stopped on its own: ``finish_reason`` is not ``length``."""
    return transcript.metadata.get("finish_reason") != "length"
