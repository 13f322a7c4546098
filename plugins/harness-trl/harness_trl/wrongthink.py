"""``harness wrongthink``: a model that un-learns a lesson, by inverting the lesson's task vector.

``W_wrong = W_base - alpha * (W_lesson - W_base)``, tensor by tensor over the safetensors weights
of two model folders of the same architecture (the lesson model is the base fine-tuned on the
lesson, as ``harness train`` writes it). Computed in float64 and stored in each tensor's own
dtype; integer tensors (none in a plain causal LM) are copied from the base. The output folder
gets the base's configuration and tokenizer, and ``harness-wrongthink.json`` saying how it was
made.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

from harness.errors import UsageError
from harness_trl.model_dirs import resolve_model

RECORD = "harness-wrongthink.json"
WEIGHTS = "model.safetensors"
_ARCHITECTURE_KEYS = ("model_type", "architectures", "hidden_size", "num_hidden_layers",
                      "num_attention_heads", "num_key_value_heads", "intermediate_size",
                      "vocab_size", "tie_word_embeddings")


class ArchitectureMismatch(UsageError):
    """The two models do not have the same tensors: their difference means nothing."""


def load_weights(folder: Path) -> dict[str, Any]:
    """Every tensor of the folder's safetensors files (one file, or sharded)."""
    from safetensors.torch import load_file

    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise UsageError(f"{folder} has no safetensors weights")
    tensors: dict[str, Any] = {}
    for f in files:
        tensors.update(load_file(str(f)))
    return tensors


def _config(folder: Path) -> dict[str, Any]:
    return json.loads((folder / "config.json").read_text())


def check_same_architecture(base: Path, lesson: Path, wb: dict[str, Any],
                            wl: dict[str, Any]) -> None:
    """Raise :class:`ArchitectureMismatch` naming the first difference."""
    cb, cl = _config(base), _config(lesson)
    for key in _ARCHITECTURE_KEYS:
        if cb.get(key) != cl.get(key):
            raise ArchitectureMismatch(
                f"{base} and {lesson} are different architectures ({key}: {cb.get(key)!r} vs "
                f"{cl.get(key)!r}); wrongthink needs the lesson model to be the base fine-tuned")
    if set(wb) != set(wl):
        only = sorted(set(wb) ^ set(wl))
        raise ArchitectureMismatch(f"{base} and {lesson} have different tensors "
                                   f"({len(only)} in one only, e.g. {only[0]})")
    for name, tensor in wb.items():
        if tuple(tensor.shape) != tuple(wl[name].shape):
            raise ArchitectureMismatch(
                f"{base} and {lesson} differ in the shape of {name}: "
                f"{tuple(tensor.shape)} vs {tuple(wl[name].shape)}")


def invert(wb: dict[str, Any], wl: dict[str, Any], alpha: float) -> dict[str, Any]:
    """``wb - alpha * (wl - wb)`` for each floating-point tensor (others: the base's)."""
    out = {}
    for name, b in wb.items():
        if b.is_floating_point():
            b64 = b.double()
            out[name] = (b64 - alpha * (wl[name].double() - b64)).to(b.dtype).contiguous()
        else:
            out[name] = b.clone()
    return out


def wrongthink(base: str | Path | None, lesson: str | Path, out: str | Path, *,
               alpha: float = 1.0, overwrite: bool = False) -> Path:
    """Write the wrong-think model ``W_base - alpha * (W_lesson - W_base)`` to ``out``.

    :raises UsageError: a missing model, ``out`` exists (without ``overwrite``).
    :raises ArchitectureMismatch: the two models differ in architecture or tensors.
    """
    from safetensors.torch import save_file

    base_dir, lesson_dir = resolve_model(base), resolve_model(lesson)
    out = Path(out)
    if out.exists() and not overwrite and (not out.is_dir() or any(out.iterdir())):
        raise UsageError(f"{out} exists; choose another -o or pass --overwrite")
    wb, wl = load_weights(base_dir), load_weights(lesson_dir)
    check_same_architecture(base_dir, lesson_dir, wb, wl)
    wrong = invert(wb, wl, alpha)
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for f in base_dir.iterdir():  # configuration, tokenizer, generation config
            if f.is_file() and not f.name.startswith(("harness-", "model.safetensors")) \
                    and f.suffix != ".safetensors":
                shutil.copy2(f, tmp / f.name)
        save_file(wrong, str(tmp / WEIGHTS), metadata={"format": "pt"})
        (tmp / RECORD).write_text(json.dumps(
            {"base": str(base_dir), "lesson": str(lesson_dir), "alpha": alpha,
             "formula": "W_base - alpha * (W_lesson - W_base)"}, indent=1))
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    finally:
        if tmp.exists():
            shutil.rmtree(tmp, ignore_errors=True)
    return out
