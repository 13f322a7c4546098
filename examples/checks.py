"""Python criteria used by the example suite (importable because they sit next to it)."""

from harness import Transcript


def ends_with_assistant(transcript: Transcript) -> bool:
    last = transcript.messages[-1]
    return last.role == "assistant" and bool(last.content.strip())


def conciseness(transcript: Transcript, limit: int = 1200) -> float:
    answer = transcript.last_assistant()
    if answer is None:
        return 0.0
    return max(0.0, 1.0 - len(answer.content) / limit)
