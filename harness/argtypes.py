"""Argument types for ``harness`` subcommands, the core's and plugins' alike.

Each turns a command-line string into a checked value, or says in one line what was expected
(argparse prints it as a usage error, exit 2)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import TypeVar

N = TypeVar("N", int, float)


def _number(kind: Callable[[str], N], ok: Callable[[N], bool],
            expected: str) -> Callable[[str], N]:
    def parse(value: str) -> N:
        try:
            number = kind(value)
        except ValueError:
            number = None
        if number is None or not ok(number):
            raise argparse.ArgumentTypeError(f"expected {expected}, got {value!r}")
        return number

    return parse


positive_int = _number(int, lambda n: n >= 1, "a whole number >= 1")
"""A count of at least 1 (workers, records, samples)."""
non_negative_int = _number(int, lambda n: n >= 0, "a whole number >= 0")
"""A count that may be 0."""
rate = _number(float, lambda r: 0.0 <= r <= 1.0, "a rate between 0 and 1 (0.9 for 90%)")
"""A share between 0 and 1."""
seconds = _number(float, lambda s: s > 0, "a number of seconds > 0")
"""A positive duration."""
usd = _number(float, lambda u: u >= 0, "an amount of USD >= 0")
"""A non-negative amount of money."""
