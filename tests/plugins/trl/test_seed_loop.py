"""examples/seed_loop: the whole loop on the embedded model, in miniature (slow)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

EXAMPLE = Path(__file__).resolve().parents[3] / "examples" / "seed_loop" / "seed_loop.py"


@pytest.mark.slow
def test_lesson_wrongthink_correct_train_measure(tmp_path: Path) -> None:
    spec = importlib.util.spec_from_file_location("seed_loop", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "loop"
    assert module.main(["-o", str(out), "--per-set", "4", "--held-out", "1",
                        "--lesson-steps", "3", "--steps", "1", "--batch-size", "4",
                        "--max-new-tokens", "16", "--no-controls"]) == 0

    figures = json.loads((out / "measurements.json").read_text())
    for name in ("lesson", "wrongthinker", "corrected"):
        assert (out / "models" / name / "model.safetensors").is_file(), name
    assert json.loads((out / "models" / "wrongthinker" / "harness-wrongthink.json")
                      .read_text())["alpha"] == 1.0
    fates = figures["corrections"]
    assert fates["reviewed"] == 4 and fates["corrected"] >= 1  # 3 of 4 here
    # the corrected transcripts: the wrong-thinker's turn at weight 0, the correction trained
    kept = [json.loads(x) for x in (out / "runs" / "corrected" / "train.jsonl").open()]
    masked = [r for r in kept if any(m.get("weight") == 0 for m in r["messages"])]
    assert len(masked) == fates["corrected"]
    assert all(m["messages"][3]["content"].startswith("No, ") for m in masked)
    train = json.loads((out / "models" / "corrected" / "harness-train.json").read_text())
    assert train["examples"] == len(kept) and len(train["losses"]) == 1
    assert set(figures["failure_rate"]) == {"base", "lesson", "wrongthinker", "corrected"}
    assert all(0 <= rate <= 1 for rate in figures["failure_rate"].values())
