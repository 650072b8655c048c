"""Machine translation (src/enrich/translation.py) with a tiny MADLAD-style T5 model built here:
randomly initialised transformers T5 + a word-level tokenizer holding `<2xx>` target tokens,
converted with CTranslate2's TransformersConverter, then run through the real loader, batching
and output code. Its output words are random; what is checked is everything around them."""

from __future__ import annotations

from pathlib import Path

import pytest

from conftest import MODELS, build_tiny_madlad
from enrich import translation as mt
from worker.errors import InputError


@pytest.fixture(scope="module")
def tiny_madlad(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_madlad(tmp_path_factory.mktemp("mt"))


SEGMENTS = [
    {"id": 0, "start": 0.5, "end": 2.0, "speaker": "SPEAKER_00",
     "text": " Hello there. How are you today?"},
    {"id": 1, "start": 2.2, "end": 2.6, "speaker": "SPEAKER_01", "text": " Mm-hmm."},
    {"id": 2, "start": 3.0, "end": 6.0, "speaker": "SPEAKER_00",
     "text": " I am fine, thank you. The weather is good. We go home now."},
]


def test_loader_detects_madlad_kind_and_cpu_compute_type(tiny_madlad):
    model = mt.load(str(tiny_madlad), "cpu", [])
    assert model.kind == "madlad"
    assert model.compute_type == "int8"
    assert model.target_token("de") == "<2de>"
    assert model.target_token("ja") is None


def test_translation_keeps_segments_ids_timings_speakers(tiny_madlad, monkeypatch):
    # the random model never emits </s> early; a loose ratio lets its output through
    monkeypatch.setattr(mt, "MAX_LENGTH_RATIO", 50.0)
    warnings: list[str] = []
    model = mt.load(str(tiny_madlad), "cpu", warnings)
    result = mt.translate(model, SEGMENTS, "en", "de", warnings)
    assert result is not None
    assert result.language == "de" and result.model == str(tiny_madlad)
    assert len(result.segments) == len(SEGMENTS)
    for source, out in zip(SEGMENTS, result.segments, strict=True):
        assert (out["id"], out["start"], out["end"], out["speaker"]) == (
            source["id"], source["start"], source["end"], source["speaker"])
    # the filler is passed through untouched, not sent to the model; the rest is model output
    assert result.segments[1]["text"] == "Mm-hmm."
    assert result.kept_source == 0 and warnings == []
    for i in (0, 2):
        assert result.segments[i]["text"] and result.segments[i]["text"] != SEGMENTS[i][
            "text"].strip()


def test_own_code_is_accepted(tiny_madlad):
    model = mt.load(str(tiny_madlad), "cpu", [])
    assert mt.target_language(model, "<2fr>") == ("fr", "<2fr>")
    assert mt.target_language(model, "German") == ("de", "<2de>")


def test_unknown_target_names_field_and_how_to_find_codes(tiny_madlad):
    model = mt.load(str(tiny_madlad), "cpu", [])
    with pytest.raises(InputError) as err:
        mt.translate(model, SEGMENTS, "en", "ja", [])
    message = str(err.value)
    assert message.startswith("translate_to: 'ja' is not a language translation_model")
    assert "ISO 639-1" in message and "<2de>" in message
    assert "docs/translation-and-embeddings.md" in message


def test_same_language_is_a_noop_with_warning(tiny_madlad):
    warnings: list[str] = []
    model = mt.load(str(tiny_madlad), "cpu", warnings)
    assert mt.translate(model, SEGMENTS, "en", "en", warnings) is None
    assert warnings == ["translate_to: the audio is already in 'en'; nothing to translate."]


def test_runaway_output_keeps_source_with_warning(tiny_madlad):
    # the random model runs on to the length limit: a real runaway, as on noisy speech text
    warnings: list[str] = []
    model = mt.load(str(tiny_madlad), "cpu", warnings)
    result = mt.translate(model, SEGMENTS[:1], "en", "de", warnings)
    assert result.kept_source == 2
    assert result.segments[0]["text"] == "Hello there. How are you today?"
    assert warnings == ["translation: 2 sentence(s) came out much longer than the source (a "
                        "repetition loop); the source text was kept for them."]


def test_multi_sentence_text_is_split_with_punkt(tiny_madlad):
    model = mt.load(str(tiny_madlad), "cpu", [])
    assert mt.split(SEGMENTS[2]["text"], "en", model.tokenizer) == [
        "I am fine, thank you.", "The weather is good.", "We go home now."]
    assert mt.split("Привет. Как дела?", "ru", model.tokenizer) == ["Привет.", "Как дела?"]


def test_long_sentence_is_cut_on_word_boundaries(tiny_madlad, monkeypatch):
    monkeypatch.setattr(mt, "MAX_SOURCE_TOKENS", 5)
    model = mt.load(str(tiny_madlad), "cpu", [])
    pieces = mt.split("we go home now we go home now we go home", "en", model.tokenizer)
    assert " ".join(pieces) == "we go home now we go home now we go home"
    assert all(len(model.tokenizer.tokenize(p)) <= 5 for p in pieces)


def test_unknown_translation_model_lists_what_is_here():
    with pytest.raises(InputError) as err:
        mt.load("nope", "cpu", [])
    assert str(err.value) == (
        f"translation_model: 'nope' is not a CTranslate2 translation model in MODELS_DIR "
        f"({MODELS}) nor a local path. Available: none.")


def test_a_missing_translation_model_fails_the_job_before_any_work(
        run_job, sample_clip, local_file, tiny_madlad, tmp_path, monkeypatch):
    """madlad400-3b-mt is not in this MODELS_DIR: the job fails before the download, not after
    transcribing, naming the folder the image's translation models are baked into."""
    models = tmp_path / "models"
    (models / "translation").mkdir(parents=True)
    (models / "base").symlink_to(MODELS / "base")
    (models / "translation" / "tiny-madlad").symlink_to(tiny_madlad)
    monkeypatch.setenv("MODELS_DIR", str(models))
    job = {"audio_file": local_file(sample_clip(4)), "language": "en", "diarization": False,
           "translate_to": "de"}
    result = run_job(job)
    assert result["error"] == (
        f"translation_model: 'madlad400-3b-mt' is not a CTranslate2 translation model in "
        f"MODELS_DIR ({models}) nor a local path. Available: translation/tiny-madlad.")
    assert "stage " not in result["logs"]  # no stage ran, download included
    # and both missing models are named at once
    both = run_job(job | {"embeddings": "both", "embedding_model": "nope"})
    assert both["error"] == result["error"] + (
        f" embedding_model: 'nope' is not a sentence-transformers or USE model folder in "
        f"MODELS_DIR ({models}) nor a local path. Available: none.")


def test_madlad_never_runs_in_float16():
    assert mt.compute_type("madlad", "cpu", []) == "int8"
    assert mt.compute_type("marian", "cpu", []) == "int8"


def test_whisper_models_that_cannot_translate_get_a_warning():
    note = mt.cant_translate_warning("faster-whisper-large-v3-russian", "/models/x")
    assert note and "translate_to: en" in note
    assert mt.cant_translate_warning("base", "models/base") is None


def test_translate_to_through_the_handler(run_job, sample_clip, local_file, tiny_madlad,
                                         monkeypatch):
    monkeypatch.setattr(mt, "MAX_LENGTH_RATIO", 50.0)
    result = run_job({"audio_file": local_file(sample_clip(8)), "language": "en",
                      "diarization": False, "align_output": False, "translate_to": "de",
                      "translation_model": str(tiny_madlad), "output_format": "srt",
                      "debug": True})
    assert "error" not in result, result.get("error")
    translated = result["translated"]
    assert translated["language"] == "de" and translated["model"] == str(tiny_madlad)
    assert len(translated["segments"]) == len(result["segments"]) > 0
    for i, (source, out) in enumerate(zip(result["segments"], translated["segments"],
                                          strict=True)):
        assert out["id"] == source.get("id", i)
        assert (out["start"], out["end"]) == (source["start"], source["end"])
    assert translated["srt"].startswith("1\n00:00:")
    assert translated["srt"].count(" --> ") == len(translated["segments"])
    assert result["debug_info"]["timings"]["translation"] >= 0


def test_unknown_target_through_the_handler_is_a_clear_error(run_job, sample_clip, local_file,
                                                             tiny_madlad):
    result = run_job({"audio_file": local_file(sample_clip(8)), "language": "en",
                      "diarization": False, "align_output": False, "translate_to": "xx",
                      "translation_model": str(tiny_madlad)})
    assert "translate_to: 'xx'" in result["error"]


def test_task_translate_on_real_russian_speech_gives_english(run_job, russian_speech,
                                                             local_file):
    path, _ = russian_speech
    result = run_job({"audio_file": local_file(path), "task": "translate", "language": "ru",
                      "diarization": False, "align_output": False,
                      "temperature_increment_on_fallback": None})
    assert "error" not in result, result.get("error")
    text = " ".join(s["text"] for s in result["segments"]).lower()
    assert "operator" in text and "password" in text, text
    assert not any("а" <= ch <= "я" for ch in text)
    # models/base was trained to translate: no suggestion to use translate_to
    assert not any("translate_to" in w for w in result["warnings"])


def test_translation_and_embedding_models_live_in_the_one_model_cache(monkeypatch, tiny_madlad,
                                                                     tmp_path):
    """MAX_LOADED_MODELS holds for MT and text embeddings too: beyond the budget of a kind, the
    least recently used model is unloaded (no second cache that never evicts)."""
    import shutil

    from enrich import text_embeddings
    from worker import models

    monkeypatch.setattr(models, "_cache", models.ModelCache(1))
    first = mt.load(str(tiny_madlad), "cpu", [])
    assert mt.load(str(tiny_madlad), "cpu", []) is first  # warm
    assert models.cache().loaded("translation") == [(str(tiny_madlad), "cpu")]
    embedder = text_embeddings.load("all-MiniLM-L6-v2", "cpu")
    assert text_embeddings.load("all-MiniLM-L6-v2", "cpu") is embedder
    other = tmp_path / "other-madlad"
    shutil.copytree(tiny_madlad, other)
    mt.load(str(other), "cpu", [])  # a second translation model: the first one goes
    assert models.cache().loaded("translation") == [(str(other), "cpu")]
    assert len(models.cache().loaded("embedding")) == 1  # another kind keeps its own
