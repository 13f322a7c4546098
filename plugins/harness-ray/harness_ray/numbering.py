"""The run's record numbering, made by the driver as blocks come back.

Read tasks number each input's records from 0; the run numbers them across the inputs
(:func:`harness.inputs.iter_entries`: ``seq`` of an input's first record = the records of
every input before it). The driver learns how many records an input holds from its ``END`` row
(or from :func:`harness_ray.reading.count_prefix`, for the inputs counted up front), so the
decisions of an input wait here only while an input before it has not ended; Ray Data hands
blocks back in input order, so in practice nothing waits.
"""

from __future__ import annotations

from harness.stages import Finished


class Numbering:
    """``(file, index)`` -> ``seq``, for decisions that may arrive before the inputs before
    theirs have ended."""

    def __init__(self, inputs: int, firsts: list[int] | None = None) -> None:
        self.inputs = inputs
        self.firsts: list[int] = list(firsts or [0])
        """``seq`` of the first record of inputs 0.. (known for a prefix of the inputs)."""
        self.sizes: dict[int, int] = {}
        """Records of the inputs whose ``END`` row came back, beyond the known prefix."""
        self.waiting: dict[int, list[tuple[int, Finished]]] = {}

    def first(self, file: int) -> int | None:
        return self.firsts[file] if file < len(self.firsts) else None

    def ended(self, file: int, records: int) -> None:
        """Input ``file`` holds ``records`` records."""
        if file + 1 < len(self.firsts):
            return  # counted up front
        self.sizes[file] = records
        while len(self.firsts) < self.inputs and (len(self.firsts) - 1) in self.sizes:
            last = len(self.firsts) - 1
            self.firsts.append(self.firsts[last] + self.sizes.pop(last))

    def number(self, decided: list[tuple[int, int, Finished]]) -> list[Finished]:
        """The decisions whose ``seq`` is known (now, or since the last call), numbered."""
        out: list[Finished] = []
        for file, index, finished in decided:
            self.waiting.setdefault(file, []).append((index, finished))
        for file in sorted(self.waiting):
            first = self.first(file)
            if first is None:
                break
            for index, finished in self.waiting.pop(file):
                finished.seq = first + index
                out.append(finished)
        return out

    @property
    def held(self) -> int:
        """Decisions waiting for an earlier input to end."""
        return sum(len(v) for v in self.waiting.values())
