"""The ``transformers`` classifier backend refuses broken weights instead of random ones.

A tiny real BERT text classifier is built in a temporary folder (no network); its
``model.safetensors`` is then emptied, truncated, stripped of tensors or given extra ones.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from harness_local_models.classifier_backends import (
    ClassifierModelError,
    make_transformers_backend,
)

VOCAB = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]", "hello", "sorry", "sure", "no", "yes"]
WEIGHTS = "model.safetensors"


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A 2-label BertForSequenceClassification (hidden size 8), saved with safetensors."""
    import torch
    from transformers import BertConfig, BertForSequenceClassification, BertTokenizerFast

    folder = tmp_path_factory.mktemp("tiny-bert")
    (folder / "vocab.txt").write_text("\n".join(VOCAB) + "\n")
    BertTokenizerFast(vocab_file=str(folder / "vocab.txt")).save_pretrained(folder)
    torch.manual_seed(0)
    config = BertConfig(vocab_size=len(VOCAB), hidden_size=8, num_hidden_layers=1,
                        num_attention_heads=2, intermediate_size=16, max_position_embeddings=32,
                        num_labels=2, id2label={0: "ok", 1: "bad"}, label2id={"ok": 0, "bad": 1})
    BertForSequenceClassification(config).save_pretrained(folder, safe_serialization=True)
    assert (folder / WEIGHTS).is_file()
    return folder


def _copy(tiny_model: Path, tmp_path: Path, name: str = "model") -> Path:
    return Path(shutil.copytree(tiny_model, tmp_path / name))


def _rewrite(folder: Path, keep=lambda key: True, extra: dict | None = None) -> None:
    """Re-save the weights with only the tensors ``keep`` accepts, plus ``extra``."""
    from safetensors.torch import load_file, save_file

    tensors = {k: v for k, v in load_file(folder / WEIGHTS).items() if keep(k)}
    save_file({**tensors, **(extra or {})}, folder / WEIGHTS, metadata={"format": "pt"})


def _error(folder: Path) -> str:
    with pytest.raises(ClassifierModelError) as info:
        make_transformers_backend(str(folder), {})
    message = str(info.value)
    assert str(folder) in message and "\n" not in message, message
    return message


def test_intact_model_loads_and_scores(tiny_model: Path) -> None:
    backend = make_transformers_backend(str(tiny_model), {})
    assert backend.labels == ["ok", "bad"]
    (row,) = backend.predict_proba(["hello sorry"])
    assert set(row) == {"ok", "bad"} and abs(sum(row.values()) - 1) < 1e-6


def test_empty_weights_file_is_an_error_naming_the_file(tiny_model: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_model, tmp_path)
    (folder / WEIGHTS).write_bytes(b"")
    message = _error(folder)
    assert WEIGHTS in message and "empty" in message


@pytest.mark.parametrize("keep", [0.5, 0.01, 12])
def test_truncated_weights_file_is_an_error(tiny_model: Path, tmp_path: Path, keep: float) -> None:
    folder = _copy(tiny_model, tmp_path)
    data = (folder / WEIGHTS).read_bytes()
    (folder / WEIGHTS).write_bytes(data[: int(len(data) * keep) if keep < 1 else int(keep)])
    message = _error(folder)
    assert WEIGHTS in message and "not a readable safetensors file" in message


def test_weights_file_without_tensors_is_an_error(tiny_model: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file

    folder = _copy(tiny_model, tmp_path)
    expected = sorted(load_file(folder / WEIGHTS))
    _rewrite(folder, keep=lambda key: False)
    message = _error(folder)
    assert f"{len(expected)} missing weights ({expected[0]}, " in message
    assert f" and {len(expected) - 8} more)" in message


def test_missing_classifier_head_is_an_error_naming_the_keys(tiny_model: Path,
                                                             tmp_path: Path) -> None:
    """The classic silent failure: a fresh random head on a base model."""
    folder = _copy(tiny_model, tmp_path)
    _rewrite(folder, keep=lambda key: not key.startswith("classifier."))
    message = _error(folder)
    assert "missing weights" in message
    assert "classifier.bias" in message and "classifier.weight" in message
    assert "bert.embeddings" not in message


def test_unexpected_weights_are_an_error_naming_the_keys(tiny_model: Path,
                                                         tmp_path: Path) -> None:
    import torch

    folder = _copy(tiny_model, tmp_path)
    _rewrite(folder, extra={"bogus.weight": torch.zeros(2)})
    message = _error(folder)
    assert "unexpected weights" in message and "bogus.weight" in message


def test_renamed_weights_list_a_few_keys_and_a_count(tiny_model: Path, tmp_path: Path) -> None:
    from safetensors.torch import load_file, save_file

    folder = _copy(tiny_model, tmp_path)
    tensors = load_file(folder / WEIGHTS)
    save_file({k.replace("bert.", "roberta."): v for k, v in tensors.items()}, folder / WEIGHTS,
              metadata={"format": "pt"})
    message = _error(folder)
    assert "missing weights" in message and "unexpected weights" in message
    assert "more" in message and len(message) < 1500


def test_broken_model_through_the_cli_is_one_line_exit_2(tiny_model: Path,
                                                        tmp_path: Path) -> None:
    folder = _copy(tiny_model, tmp_path)
    _rewrite(folder, keep=lambda key: not key.startswith("classifier."))
    suite = tmp_path / "suite.yaml"
    suite.write_text("name: s\ncriteria:\n  - name: clf\n    kind: classifier\n"
                     f"    model: {json.dumps(str(folder))}\n    backend: transformers\n"
                     "    label: bad\n")
    inputs = tmp_path / "in.jsonl"
    inputs.write_text(json.dumps({"messages": [{"role": "user", "content": "hi"},
                                               {"role": "assistant", "content": "sure"}]}) + "\n")
    harness = Path(sys.executable).parent / "harness"
    proc = subprocess.run([str(harness), "run", str(suite), str(inputs), "-o",
                           str(tmp_path / "run")], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 2, proc.stderr[-3000:]
    assert proc.stderr.startswith("harness: error: "), proc.stderr[-3000:]
    assert proc.stderr.count("\n") == 1, proc.stderr[-3000:]
    assert "classifier.weight" in proc.stderr and str(folder) in proc.stderr
