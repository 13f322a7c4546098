"""examples/correct_loop.py: the whole loop offline on the embedded model (slow)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pandas as pd
import pytest

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "correct_loop.py"


@pytest.mark.slow
def test_generate_review_correct_export_offline(tmp_path: Path) -> None:
    pytest.importorskip("harness_local_models")
    spec = importlib.util.spec_from_file_location("correct_loop", EXAMPLE)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    out = tmp_path / "loop"
    assert module.main(["-o", str(out), "--max-rounds", "1", "--max-new-tokens", "24"]) == 0

    candidates = [json.loads(x) for x in (out / "candidates.jsonl").open()]
    assert all(c["messages"][-1]["logprobs"]["content"] for c in candidates)
    block = json.loads((out / "corrected" / "summary.json").read_text())["corrections"]
    fates = ("passed", "corrected", "still_failing", "not_correctable", "error", "input_error")
    assert sum(block[k] for k in fates) == len(candidates)
    assert block["error"] == 0 and block["usage"]["generator"]["calls"] >= block["corrected"]
    sft = [json.loads(x) for x in (out / "sft.jsonl").open()]
    masked = [r for r in sft if r["metadata"]["masked_messages"]]
    assert len(sft) == block["passed"] + block["corrected"]
    assert len(masked) == block["corrected"]
    distill = pd.read_parquet(out / "distill.parquet")
    assert len(distill) == len(sft) and distill.tokens.notna().all()
