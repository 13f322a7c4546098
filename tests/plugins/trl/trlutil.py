"""Helpers for the harness-trl tests: a corrected conversation, tiny random models."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

CONVERSATION = [
    {"role": "system", "content": "You are a careful arithmetic tutor."},
    {"role": "user", "content": "What is 17 × 24?"},
    {"role": "assistant", "content": "17 × 24 = 398.", "weight": 0},
    {"role": "user", "content": "No, 17 × 24 is 408, not 398."},
    {"role": "assistant", "content": "You're right: 17 × 24 = 408.", "weight": 1},
]
"""A mistake at weight 0, the supervisor's objection, the correction at weight 1."""


def tiny_model(tokenizer: Any, *, hidden: int = 32, seed: int = 0) -> Any:
    """A 2-layer Llama with SmolLM2's vocabulary, randomly initialised."""
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=hidden,
                         intermediate_size=2 * hidden, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2,
                         max_position_embeddings=512, tie_word_embeddings=True,
                         eos_token_id=tokenizer.eos_token_id,
                         pad_token_id=tokenizer.pad_token_id)
    return LlamaForCausalLM(config).eval()


def save_model(model: Any, tokenizer: Any, folder: Path) -> Path:
    model.save_pretrained(str(folder))
    tokenizer.save_pretrained(str(folder))
    return folder
