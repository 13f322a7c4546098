"""Exporting a run directory as training data: chat, prompt/completion, pairs, Parquet.

``harness export RUN_DIR --format F -o OUT`` (or :func:`export_run`) streams the run's journal
through the export policy (:mod:`harness.export.select`), writes ``OUT`` atomically and a dataset
card next to it (:mod:`harness.export.card`). Formats are exporters registered through the
``register_exporters`` hook; the built-in ones are in :mod:`harness.export.plugin`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness.export.card import card_path, write_card
from harness.export.options import ExportOptions
from harness.export.provenance import load_run
from harness.plugins import Registry, get_registry


def export_run(
    run_dir: str | Path,
    out: str | Path,
    fmt: str = "openai",
    options: ExportOptions | dict[str, Any] | None = None,
    *,
    card: str | Path | None = None,
    registry: Registry | None = None,
) -> dict[str, Any]:
    """Export ``run_dir`` as ``fmt`` into ``out`` and write the dataset card.

    Returns the exporter's counts with ``card`` (the card's path) added.
    """
    registry = registry or get_registry()
    exporter = registry.exporters.get(fmt)
    if exporter is None:
        raise UsageError(f"unknown export format {fmt!r}; known: {', '.join(registry.exporters)}")
    opts = options if isinstance(options, ExportOptions) else ExportOptions(**(options or {}))
    out = Path(out)
    if out.is_dir():
        raise UsageError(f"-o {out} is a directory; give a file name (e.g. {out}/train.jsonl)")
    result: dict[str, Any] = exporter(Path(run_dir), out, opts.model_dump())
    result["card"] = str(write_card(load_run(run_dir), result,
                                    Path(card) if card else card_path(out)))
    return result


__all__ = ["ExportOptions", "export_run"]
