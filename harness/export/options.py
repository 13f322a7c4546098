"""The options every exporter takes (``harness export ... --weight-by/--on-fail/--min-score``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field


class ExportOptions(BaseModel):
    """What to export from a run directory and how to weigh it."""

    model_config = ConfigDict(extra="forbid")

    on_fail: Literal["drop", "mask"] = "drop"
    """``drop``: only passing transcripts. ``mask``: also failing transcripts whose only failures
    are message-scoped verdicts on assistant messages, with those messages at weight 0."""
    weight_by: str | None = None
    """``score`` (the decision score over the trained messages) or a criterion name: written as
    the example's ``weight`` (a soft label in [0, 1])."""
    min_score: float | None = Field(default=None, ge=0.0, le=1.0)
    """Drop examples whose score (over the trained messages) is below this."""
    margin: float | None = Field(default=None, ge=0.0, le=1.0)
    """Pairs only: also pair two passing candidates whose scores differ by at least this."""
    messages_only: bool = False
    """OpenAI only: lines hold just ``messages``; provenance goes to ``OUT.provenance.jsonl``."""
    dedup: bool = True
    """Drop exact duplicates (same training content), counting them."""
