"""hf/FOLDER: a model folder as generator (harness correct) or judge, cached by its weights."""

from __future__ import annotations

import asyncio

import pytest
from trlutil import save_model, tiny_model

from harness.errors import UsageError
from harness.judges.base import JudgeRequest
from harness.plugins import get_registry


def test_a_folder_generates_and_its_identity_follows_the_weights(tokenizer, tmp_path):
    folder = save_model(tiny_model(tokenizer, seed=0), tokenizer, tmp_path / "m")
    make = get_registry().judges["hf"]
    backend = make(str(folder), {})
    assert backend.name == f"hf/{folder}"
    request = JudgeRequest(messages=[{"role": "user", "content": "hi"}], max_tokens=3,
                           top_logprobs=2)
    response = asyncio.run(backend.complete(request))
    assert response.tokens_out == len(response.tokens) <= 3
    before = backend.identity()
    save_model(tiny_model(tokenizer, seed=1), tokenizer, folder)  # retrained in place
    assert make(str(folder), {}).identity()["weights_sha256"] != before["weights_sha256"]


def test_a_missing_folder_is_named(tmp_path):
    with pytest.raises(UsageError, match="no model at"):
        get_registry().judges["hf"](str(tmp_path / "nowhere"), {})
