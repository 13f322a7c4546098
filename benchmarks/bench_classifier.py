"""Classifier criterion throughput: transcripts/s through the engine at batch sizes 1, 32, 128.

    python benchmarks/bench_classifier.py [--n 500] [--head DIR] [--batch-sizes 1,32,128]

Trains a head on ``examples/classifier/labelled.jsonl`` (unless ``--head`` names one), builds
``--n`` two-message transcripts whose assistant turns are distinct texts from the example set,
and reviews them with a one-criterion suite (``kind: classifier``) through ``harness.Engine``,
with the engine batch and the model batch both set to each batch size. The embedded
all-MiniLM-L6-v2 runs on the CPU; model loading is done once before timing and reported apart.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
LABELLED = ROOT / "examples" / "classifier" / "labelled.jsonl"
SUITE = """name: bench-classifier
criteria:
  - name: not_harmful
    kind: classifier
    model: {model}
    label: harmful_compliance
    batch_size: {batch_size}
"""


def transcripts(n: int) -> list:
    from harness import Message, Transcript

    texts = [json.loads(line)["text"] for line in LABELLED.read_text().splitlines()]
    out = []
    for i in range(n):
        text = texts[i % len(texts)]
        if i >= len(texts):  # keep every text distinct: the criterion scores a repeat once
            text = f"{text} ({i // len(texts)})"
        out.append(Transcript(id=f"c{i}", messages=[
            Message(role="user", content="Can you help me with something?"),
            Message(role="assistant", content=text)]))
    return out


def train(out: Path) -> float:
    from harness_local_models.head import save_head, train_head

    records = [json.loads(line) for line in LABELLED.read_text().splitlines()]
    start = time.perf_counter()
    head, report = train_head([r["text"] for r in records], [r["label"] for r in records])
    save_head(head, out)
    seconds = time.perf_counter() - start
    print(f"trained head on {report.records} records in {seconds:.1f}s (embedding "
          f"{report.embed_seconds:.1f}s, fitting {report.fit_seconds:.2f}s); "
          f"cv accuracy {report.cv_accuracy:.3f}, held-out accuracy {report.holdout_accuracy:.3f}")
    return seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=500, help="transcripts (default 500)")
    parser.add_argument("--head", type=Path, help="a trained head folder (default: train one)")
    parser.add_argument("--batch-sizes", default="1,32,128", help="comma-separated")
    args = parser.parse_args()
    sizes = [int(s) for s in args.batch_sizes.split(",")]

    import torch

    from harness import Engine, load_suite
    from harness_local_models.embedding import load_embedding_model

    start = time.perf_counter()
    load_embedding_model()
    print(f"model load (sha256 check + sentence-transformers): {time.perf_counter() - start:.1f}s;"
          f" torch {torch.__version__}, {torch.get_num_threads()} threads")
    with tempfile.TemporaryDirectory() as tmp:
        head = args.head or Path(tmp) / "head"
        if args.head is None:
            train(head)
        items = transcripts(args.n)
        print(f"{'batch size':>10} {'transcripts/s':>14} {'seconds':>8}  (n={args.n})")
        for size in sizes:
            suite_path = Path(tmp) / f"suite-{size}.yaml"
            suite_path.write_text(SUITE.format(model=json.dumps(str(head)), batch_size=size))
            engine = Engine(load_suite(suite_path), batch_size=size)
            engine.decide_batch(items[:size])  # warm-up: same shapes, allocator, threads
            start = time.perf_counter()
            decided = sum(1 for _ in engine.review(items, batch_size=size))
            seconds = time.perf_counter() - start
            assert decided == len(items)
            print(f"{size:>10} {len(items) / seconds:>14.1f} {seconds:>8.2f}")


if __name__ == "__main__":
    main()
