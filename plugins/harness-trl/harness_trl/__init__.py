"""Training on what the review keeps, with TRL, on the CPU and offline.

- :func:`train` (``harness train``): fine-tune on a run's training set, per-turn ``weight`` as
  the loss mask, or on its token distributions (``--objective distill``);
- :func:`wrongthink` (``harness wrongthink``): ``W_base - alpha * (W_lesson - W_base)``;
- :func:`turn_logprobs` (``harness logprobs``): each assistant turn's mean token log-probability;
- :func:`mean_token_kl`: ``KL(teacher || student)`` per token, on held-out transcripts;
- :func:`reward_function`: the review as a reward for TRL's ``GRPOTrainer``.

The names are imported on first use, so loading the plugin (every ``harness`` command does)
costs no torch import.
"""

from __future__ import annotations

from importlib import import_module
from typing import Any

_EXPORTS = {
    "train": "harness_trl.training",
    "TrainResult": "harness_trl.training",
    "wrongthink": "harness_trl.wrongthink",
    "turn_logprobs": "harness_trl.logprobs",
    "mean_token_kl": "harness_trl.divergence",
    "reward_function": "harness_trl.reward",
    "ReviewReward": "harness_trl.reward",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(f"module 'harness_trl' has no attribute {name!r}")
    return getattr(import_module(module), name)
