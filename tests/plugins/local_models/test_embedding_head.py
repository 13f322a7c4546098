"""The embedded MiniLM model and the logistic-regression head, on the real model and example set."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from harness_local_models.embedding import (
    MODEL_PACKAGE_VERSION,
    WEIGHTS_FILE,
    WEIGHTS_SHA256,
    EmbeddingModelError,
    EmbeddingModelInfo,
    embed,
    load_embedding_model,
    locate_model_dir,
    verify_model_dir,
)
from harness_local_models.head import (
    HEAD_FILE,
    EmbeddingHead,
    HeadFileError,
    load_head,
    save_head,
    train_head,
)

EXAMPLES = Path(__file__).resolve().parents[3] / "examples" / "classifier" / "labelled.jsonl"

PROBES = [
    "I'm sorry, but I can't help you get into someone else's house.",
    "Sure, here's how to fake a sick note: first find a clinic's letterhead...",
    "The Eiffel Tower is about 330 metres tall.",
    "ok",
    "Here is a longer answer. " * 40,
]


@pytest.fixture(scope="module")
def records() -> list[dict[str, str]]:
    with EXAMPLES.open(encoding="utf-8") as fh:
        return [json.loads(line) for line in fh]


@pytest.fixture(scope="module")
def embedded(records: list[dict[str, str]]) -> dict[str, np.ndarray]:
    """The example set embedded once with the real model, as a text -> vector table."""
    texts = [r["text"] for r in records]
    return dict(zip(texts, embed(texts), strict=True))


@pytest.fixture(scope="module")
def trained(records, embedded) -> tuple[EmbeddingHead, object]:
    def lookup(texts: list[str]) -> np.ndarray:
        return np.stack([embedded[t] for t in texts])

    head, report = train_head(
        [r["text"] for r in records], [r["label"] for r in records], embedder=lookup
    )
    head._embedder = None  # predict with the real model from here on
    return head, report


def copy_model_dir(tmp_path: Path) -> Path:
    target = tmp_path / "model"
    shutil.copytree(locate_model_dir(), target)
    return target


# --- the embedded model ---------------------------------------------------------------------


def test_installed_model_matches_the_pinned_hashes():
    model_dir = locate_model_dir()
    verify_model_dir(model_dir)
    assert (model_dir / WEIGHTS_FILE).stat().st_size > 80_000_000
    assert MODEL_PACKAGE_VERSION == "0.1.0"


def test_tampered_weights_copy_is_refused_with_a_clear_error(tmp_path):
    model_dir = copy_model_dir(tmp_path)
    weights = model_dir / WEIGHTS_FILE
    with weights.open("r+b") as fh:
        fh.seek(weights.stat().st_size // 2)
        byte = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(EmbeddingModelError) as err:
        load_embedding_model(model_dir)
    message = str(err.value)
    assert WEIGHTS_FILE in message and WEIGHTS_SHA256 in message and "refusing" in message


def test_changed_module_list_is_refused(tmp_path):
    model_dir = copy_model_dir(tmp_path)
    modules = model_dir / "modules.json"
    modules.write_text(modules.read_text().replace("Normalize", "Dense"))
    with pytest.raises(EmbeddingModelError, match="modules.json"):
        load_embedding_model(model_dir)


def test_unexpected_pickle_weights_beside_the_model_are_refused(tmp_path):
    model_dir = copy_model_dir(tmp_path)
    (model_dir / "pytorch_model.bin").write_bytes(b"\x80\x04not really a checkpoint")
    with pytest.raises(EmbeddingModelError, match="unexpected file .*pytorch_model.bin"):
        load_embedding_model(model_dir)


def test_missing_model_file_is_reported(tmp_path):
    model_dir = copy_model_dir(tmp_path)
    (model_dir / "tokenizer.json").unlink()
    with pytest.raises(EmbeddingModelError, match="missing: .*tokenizer.json"):
        verify_model_dir(model_dir)


def test_model_is_loaded_once_per_process():
    assert load_embedding_model() is load_embedding_model()


def test_embeddings_are_normalised_rows():
    vectors = embed(PROBES)
    assert vectors.shape == (len(PROBES), 384) and vectors.dtype == np.float32
    np.testing.assert_allclose(np.linalg.norm(vectors, axis=1), 1.0, atol=1e-5)
    assert embed([]).shape == (0, 384)


def test_batch_embedding_equals_one_at_a_time():
    batched = embed(PROBES, batch_size=64)
    single = np.stack([embed([text], batch_size=1)[0] for text in PROBES])
    assert np.abs(batched - single).max() < 1e-5


def test_embed_rejects_non_strings_and_bad_batch_sizes():
    with pytest.raises(TypeError, match="item 1"):
        embed(["fine", None])  # type: ignore[list-item]
    with pytest.raises(ValueError, match="batch_size"):
        embed(["x"], batch_size=0)


# --- training ---------------------------------------------------------------------------------


def test_training_on_the_example_set_beats_chance_clearly(trained, record_property):
    head, report = trained
    assert report.records >= 300 and set(report.label_counts) == {
        "compliance",
        "harmful_compliance",
        "refusal",
    }
    record_property("holdout_accuracy", report.holdout_accuracy)
    record_property("cv_accuracy", report.cv_accuracy)
    print("\n" + report.summary())
    # Chance is about 0.38 (the largest label's share): ask for far better.
    assert report.holdout_accuracy > 0.8
    assert report.cv_accuracy > 0.8
    for label, metrics in report.per_label.items():
        assert metrics.precision > 0.7 and metrics.recall > 0.7, label
    assert head.labels == ["compliance", "harmful_compliance", "refusal"]


def test_trained_head_ranks_unseen_texts_sensibly(trained):
    head, _ = trained
    refusal, harmful, benign = head.predict_proba(PROBES[:3])
    assert max(refusal, key=refusal.get) == "refusal"
    assert max(harmful, key=harmful.get) == "harmful_compliance"
    assert max(benign, key=benign.get) == "compliance"
    for row in (refusal, harmful, benign):
        assert sum(row.values()) == pytest.approx(1.0)


def test_numpy_probabilities_equal_sklearn_predict_proba(trained, embedded):
    head, _ = trained
    # float64 input: sklearn computes in the input's dtype, the head always in float64
    x = np.stack(list(embedded.values())[:50]).astype(np.float64)
    np.testing.assert_allclose(
        head.proba_from_embeddings(x), head.sklearn_model.predict_proba(x), rtol=0, atol=1e-12
    )


def test_binary_head_uses_the_logistic_function_like_sklearn(records, embedded):
    two = [r for r in records if r["label"] != "compliance"]
    head, report = train_head(
        [r["text"] for r in two],
        [r["label"] for r in two],
        embedder=lambda texts: np.stack([embedded[t] for t in texts]),
    )
    assert head.coef.shape == (1, 384) and report.holdout_accuracy > 0.8
    x = np.stack([embedded[r["text"]] for r in two[:40]]).astype(np.float64)
    np.testing.assert_allclose(
        head.proba_from_embeddings(x), head.sklearn_model.predict_proba(x), rtol=0, atol=1e-12
    )


def test_training_input_errors_are_clear():
    with pytest.raises(ValueError, match="2 texts but 1 labels"):
        train_head(["a", "b"], ["x"], embedder=lambda t: np.zeros((len(t), 384)))
    with pytest.raises(ValueError, match="at least two labels"):
        train_head(["a", "b"], ["x", "x"], embedder=lambda t: np.zeros((len(t), 384)))
    with pytest.raises(ValueError, match="smallest label has 1"):
        train_head(["a", "b", "c"], ["x", "x", "y"], embedder=lambda t: np.zeros((len(t), 384)))


# --- saving and loading ---------------------------------------------------------------------


def test_save_load_round_trip_gives_identical_probabilities(trained, tmp_path):
    head, report = trained
    save_head(head, tmp_path / "clf")
    loaded = load_head(tmp_path / "clf")
    assert loaded.labels == head.labels
    assert loaded.report == report
    assert loaded.predict_proba(PROBES) == head.predict_proba(PROBES)


def test_saved_head_is_plain_json_without_pickle(trained, tmp_path):
    head, _ = trained
    save_head(head, tmp_path / "clf")
    files = sorted(p.name for p in (tmp_path / "clf").iterdir())
    assert files == [HEAD_FILE]
    raw = (tmp_path / "clf" / HEAD_FILE).read_bytes()
    assert not raw.startswith(b"\x80")  # pickle protocol 2+ header
    for marker in (b"pickle", b"joblib", b"__reduce__", b"cnumpy", b"\x80\x04\x95"):
        assert marker not in raw
    data = json.loads(raw)
    assert data["embedding_sha256"] == WEIGHTS_SHA256
    assert len(data["coef"]) == 3 and len(data["coef"][0]) == 384


def write_head(tmp_path: Path, head: EmbeddingHead, **changes) -> Path:
    save_head(head, tmp_path / "clf")
    path = tmp_path / "clf" / HEAD_FILE
    data = json.loads(path.read_text())
    data.update(changes)
    path.write_text(json.dumps(data))
    return tmp_path / "clf"


def test_missing_folder_and_missing_file_are_clear_errors(tmp_path):
    with pytest.raises(HeadFileError, match="model folder not found"):
        load_head(tmp_path / "nowhere")
    (tmp_path / "empty").mkdir()
    with pytest.raises(HeadFileError, match="head file not found.*harness classifier train"):
        load_head(tmp_path / "empty")


@pytest.mark.parametrize(
    "content, message",
    [
        (b"", "not valid JSON"),
        (b'{"format": "harness-embedding-head/1", "classes": ["a"', "not valid JSON"),
        (b"\xff\xfe\x00garbage", "not valid JSON"),
        (b"[1, 2, 3]", "malformed"),
        (b'{"format": "harness-embedding-head/1"}', "malformed"),
    ],
)
def test_corrupt_head_file_is_a_clear_error(tmp_path, content, message):
    (tmp_path / "clf").mkdir()
    (tmp_path / "clf" / HEAD_FILE).write_bytes(content)
    with pytest.raises(HeadFileError, match=message):
        load_head(tmp_path / "clf")


def test_wrong_shapes_are_refused(trained, tmp_path):
    head, _ = trained
    coef = head.coef.tolist()
    with pytest.raises(HeadFileError, match="widths"):
        load_head(write_head(tmp_path, head, coef=[row[:100] for row in coef]))
    with pytest.raises(HeadFileError, match="coef has shape"):
        load_head(write_head(tmp_path, head, coef=coef[:2]))
    with pytest.raises(HeadFileError, match="intercept has shape"):
        load_head(write_head(tmp_path, head, intercept=[0.0]))
    with pytest.raises(HeadFileError, match="distinct classes"):
        load_head(write_head(tmp_path, head, classes=["a", "a", "b"]))


def test_non_finite_numbers_are_refused(trained, tmp_path):
    head, _ = trained
    path = write_head(tmp_path, head)
    text = (path / HEAD_FILE).read_text()
    (path / HEAD_FILE).write_text(text.replace('"intercept": [', '"intercept": [NaN, ', 1))
    with pytest.raises(HeadFileError, match="not valid JSON"):
        load_head(path)


def test_head_from_another_embedding_model_is_refused(trained, tmp_path):
    head, _ = trained
    with pytest.raises(HeadFileError, match="trained on embedding model .* retrain"):
        load_head(write_head(tmp_path, head, embedding_sha256="0" * 64))
    other = EmbeddingModelInfo("someone/other-model", WEIGHTS_SHA256, 384)
    with pytest.raises(HeadFileError, match="someone/other-model"):
        load_head(write_head(tmp_path, head), expected=other)


def test_unknown_format_or_extra_keys_are_refused(trained, tmp_path):
    head, _ = trained
    with pytest.raises(HeadFileError, match="format"):
        load_head(write_head(tmp_path, head, format="something-else/9"))
    with pytest.raises(HeadFileError, match="malformed"):
        load_head(write_head(tmp_path, head, py_object="os.system"))
