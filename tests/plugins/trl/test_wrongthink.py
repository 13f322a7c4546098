"""harness wrongthink: W_base - alpha * (W_lesson - W_base), tensor by tensor."""

from __future__ import annotations

import pytest
import torch
from safetensors.torch import load_file
from transformers import AutoModelForCausalLM
from trlutil import save_model, tiny_model

from harness_trl.wrongthink import ArchitectureMismatch, wrongthink

NORM = "model.norm.weight"


@pytest.fixture
def base_and_lesson(tokenizer, tmp_path):
    base = tiny_model(tokenizer, seed=0)
    lesson = tiny_model(tokenizer, seed=0)
    with torch.no_grad():
        for p in lesson.parameters():  # a lesson that moved every weight by 0.01
            p.add_(0.01)
        base.model.norm.weight[:3] = torch.tensor([1.0, 2.0, -1.0])
        lesson.model.norm.weight[:3] = torch.tensor([1.5, 2.0, 0.0])
    return (save_model(base, tokenizer, tmp_path / "base"),
            save_model(lesson, tokenizer, tmp_path / "lesson"))


def weights(folder):
    return load_file(str(folder / "model.safetensors"))


def test_each_weight_is_the_base_minus_alpha_times_the_lesson(base_and_lesson, tmp_path, cli):
    base, lesson = base_and_lesson
    code, out, err = cli("wrongthink", base, lesson, "-o", tmp_path / "wrong", "--alpha", "2")
    assert code == 0, err
    wrong = weights(tmp_path / "wrong")
    # 1 - 2 * (1.5 - 1) = 0;  2 - 2 * 0 = 2;  -1 - 2 * (0 - -1) = -3
    assert wrong[NORM][:3].tolist() == [0.0, 2.0, -3.0]
    wb, wl = weights(base), weights(lesson)
    assert wrong.keys() == wb.keys()
    for name, b in wb.items():
        assert torch.allclose(wrong[name], b - 2 * (wl[name] - b), atol=1e-6), name
    model = AutoModelForCausalLM.from_pretrained(str(tmp_path / "wrong"))  # a loadable folder
    assert torch.equal(model.model.norm.weight, wrong[NORM])
    assert (tmp_path / "wrong" / "tokenizer.json").is_file()


def test_alpha_0_gives_the_base_back(base_and_lesson, tmp_path):
    base, lesson = base_and_lesson
    wrong = weights(wrongthink(base, lesson, tmp_path / "wrong", alpha=0.0))
    assert all(torch.equal(wrong[n], b) for n, b in weights(base).items())


def test_mismatched_architectures_are_refused(tokenizer, base_and_lesson, tmp_path, cli):
    base, _ = base_and_lesson
    wider = save_model(tiny_model(tokenizer, hidden=48), tokenizer, tmp_path / "wider")
    with pytest.raises(ArchitectureMismatch, match="hidden_size: 32 vs 48"):
        wrongthink(base, wider, tmp_path / "wrong")
    code, _, err = cli("wrongthink", base, wider, "-o", tmp_path / "wrong")
    assert code == 2
    assert "different architectures (hidden_size: 32 vs 48)" in err
    assert not (tmp_path / "wrong").exists()


def test_a_missing_model_is_a_usage_error(base_and_lesson, tmp_path, cli):
    base, _ = base_and_lesson
    code, _, err = cli("wrongthink", base, tmp_path / "nowhere", "-o", tmp_path / "wrong")
    assert code == 2
    assert f"no model at {tmp_path / 'nowhere'}" in err
