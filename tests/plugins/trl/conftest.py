"""Fixtures for harness-trl: the embedded model's tokenizer, and tiny random models built from a
configuration (for the mask, distill and weight arithmetic; the real model runs in the slow
tests). Without the plugin installed, these tests are not collected."""

from __future__ import annotations

import importlib.util
from pathlib import Path
from typing import Any

import pytest

if importlib.util.find_spec("harness_trl") is None:
    collect_ignore_glob = ["test_*.py"]


@pytest.fixture(scope="session")
def tokenizer() -> Any:
    from transformers import AutoTokenizer

    from harness_local_models.chat_model import converted_model_dir

    return AutoTokenizer.from_pretrained(str(converted_model_dir()), local_files_only=True)


@pytest.fixture(scope="session")
def tiny_dir(tokenizer: Any, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny model folder, as ``harness train --base`` takes one."""
    from trlutil import save_model, tiny_model

    return save_model(tiny_model(tokenizer), tokenizer, tmp_path_factory.mktemp("tiny"))
