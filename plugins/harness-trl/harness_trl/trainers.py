"""The two trainers: TRL's ``SFTTrainer`` on masked labels, and a ``Trainer`` for distributions.

``sft``: the examples reach TRL already tokenized, with ``labels`` (-100 on everything but the
trained assistant turns, :func:`harness_trl.chat_tokens.encode_chat`); TRL uses such labels as
they are, so its loss is the mean negative log-likelihood of exactly the trained tokens.

``distill``: TRL's distillation trainers need the teacher model at hand; a distill export
carries the teacher's top-k instead, so this is transformers' ``Trainer`` with the loss of
:func:`harness_trl.distill.distill_loss`.

Both count the tokens of each step for :class:`~harness_trl.progress.StepMeter`.
"""

from __future__ import annotations

from typing import Any

from transformers import Trainer
from trl import SFTTrainer

from harness_trl.distill import distill_loss
from harness_trl.progress import StepMeter


class _Metered:
    meter: StepMeter | None = None

    def training_step(self, model: Any, inputs: dict[str, Any], *args: Any, **kwargs: Any):
        if self.meter is not None and "attention_mask" in inputs:
            self.meter.tokens += int(inputs["attention_mask"].sum())
        loss = super().training_step(model, inputs, *args, **kwargs)  # type: ignore[misc]
        if self.meter is not None:
            self.meter.loss = float(loss.detach())
        return loss


class MaskedSFTTrainer(_Metered, SFTTrainer):
    """TRL's SFT trainer, given ``input_ids`` and ``labels``."""


class DistillTrainer(_Metered, Trainer):
    """A ``Trainer`` whose batches carry ``target_ids``/``target_probs`` (see
    :func:`harness_trl.distill.collate`)."""

    def compute_loss(self, model: Any, inputs: dict[str, Any], return_outputs: bool = False,
                     num_items_in_batch: Any = None) -> Any:
        target_ids = inputs.pop("target_ids")
        target_probs = inputs.pop("target_probs")
        outputs = model(input_ids=inputs["input_ids"], attention_mask=inputs["attention_mask"],
                        use_cache=False)
        loss = distill_loss(outputs.logits, target_ids, target_probs)
        return (loss, outputs) if return_outputs else loss

