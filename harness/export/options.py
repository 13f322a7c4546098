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
    min_stability: float | None = Field(default=None, ge=0.0, le=1.0)
    """Drop transcripts with a verdict less stable than this (``details.stability``: the share
    of a judge's ``repeats`` that agree; a panel's least stable member). Verdicts without a
    stability (one judgement) are not affected."""
    """Pairs only: also pair two passing candidates whose scores differ by at least this."""
    prefer: str | None = None
    """Pairs only: a ``pairwise`` criterion whose preference picks the chosen and rejected side
    (its confidence is written as ``preference_confidence``); a tie makes no pair."""
    messages_only: bool = False
    """OpenAI only: lines hold just ``messages``; provenance goes to ``OUT.provenance.jsonl``."""
    dedup: bool = True
    """Drop exact duplicates (same training content), counting them."""
