"""Printing tables whole: names are never cut, in a terminal or in a CI log.

A rich console that is not a terminal (a CI log, ``nohup``, a pipe) is 80 columns wide and cuts
what does not fit ("no_ai_bo…"). :func:`table_console` gives a console as wide as the widest
table instead (columns of prose wrap at :data:`PROSE_WIDTH`, names never); in a terminal the
width is the terminal's, and :func:`name_column` folds a long name onto the next lines rather than
cutting it.
"""

from __future__ import annotations

from typing import Any

from rich.console import Console, RenderableType
from rich.table import Table

MIN_WIDTH = 80
"""The narrowest console outside a terminal (rich's default)."""
PROSE_WIDTH = 60
"""The widest a column of prose (descriptions, lists of keys) grows before it wraps."""
UNBOUNDED = 100_000


def table_console(*renderables: RenderableType, stderr: bool = False, **options: Any) -> Console:
    """A console to print ``renderables`` whole: the terminal, else as wide as they need."""
    console = Console(stderr=stderr, **options)
    if console.is_terminal:
        return console
    unbounded = console.options.update_width(UNBOUNDED)
    needed = max((console.measure(r, options=unbounded).maximum for r in renderables),
                 default=MIN_WIDTH)
    return Console(stderr=stderr, width=max(MIN_WIDTH, needed), **options)


def print_tables(*renderables: RenderableType, stderr: bool = False, **options: Any) -> None:
    """Print ``renderables`` (tables, text) on one :func:`table_console`."""
    console = table_console(*renderables, stderr=stderr, **options)
    for renderable in renderables:
        console.print(renderable)


def name_column(table: Table, header: str, **options: Any) -> None:
    """Add a column of names (criteria, kinds, plugins, ids): folded in a narrow terminal,
    never cut short with an ellipsis."""
    table.add_column(header, overflow="fold", **options)
