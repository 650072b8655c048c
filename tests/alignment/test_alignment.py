"""Word timings: whisperx's wav2vec2 alignment (real loading code, a tiny model built here,
since no wav2vec2 weights can be had offline) and the Whisper cross-attention fallback (real
weights)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from conftest import ENGLISH_TEXT, MODELS, NO_SAMPLING, normalize

JOB = {"diarization": False, "language": "en", "debug": True}


def build_tiny_wav2vec2(path: Path, letters: str) -> Path:
    """A randomly initialised Wav2Vec2ForCTC with a character vocabulary of `letters`, saved the
    way Hugging Face checkpoints are: whisperx loads it with from_pretrained like any other."""
    import torch
    from transformers import (
        Wav2Vec2Config,
        Wav2Vec2CTCTokenizer,
        Wav2Vec2FeatureExtractor,
        Wav2Vec2ForCTC,
        Wav2Vec2Processor,
    )

    path.mkdir(parents=True, exist_ok=True)
    chars = ["<pad>", "<s>", "</s>", "<unk>", "|", *letters]
    (path / "vocab.json").write_text(json.dumps({c: i for i, c in enumerate(chars)}))
    tokenizer = Wav2Vec2CTCTokenizer(str(path / "vocab.json"), word_delimiter_token="|")
    extractor = Wav2Vec2FeatureExtractor(feature_size=1, sampling_rate=16000)
    Wav2Vec2Processor(feature_extractor=extractor, tokenizer=tokenizer).save_pretrained(path)
    torch.manual_seed(0)
    config = Wav2Vec2Config(
        vocab_size=len(chars), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
        intermediate_size=64, conv_dim=(32,) * 7, num_conv_pos_embeddings=16,
        num_conv_pos_embedding_groups=4, pad_token_id=0,
    )
    Wav2Vec2ForCTC(config).save_pretrained(path)
    return path


@pytest.fixture(scope="session")
def tiny_wav2vec2(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_wav2vec2(tmp_path_factory.mktemp("tiny-wav2vec2"),
                               "abcdefghijklmnopqrstuvwxyz'")


def assert_words_are_sane(result: dict) -> None:
    """Every word timed, in order, inside its segment, with both scores; together they spell
    the text."""
    last_start = 0.0
    for segment in result["segments"]:
        words = segment["words"]
        assert words, segment
        for w in words:
            assert w["start"] is not None and w["end"] is not None, w
            assert segment["start"] - 0.01 <= w["start"] <= w["end"] <= segment["end"] + 0.01
            assert w["start"] >= last_start - 0.01
            assert 0.0 <= w["score"] <= 1.0
            assert 0.0 <= w["probability"] <= 1.0  # Whisper's own, beside alignment's score
            last_start = w["start"]
        assert normalize(" ".join(w["word"] for w in words)) == normalize(segment["text"])


def test_wav2vec2_alignment_with_a_local_model(run_job, english_wav, local_file, tiny_wav2vec2,
                                               monkeypatch):
    monkeypatch.setenv("ALLOW_REMOTE_MODELS", "true")  # a path outside MODELS_DIR
    result = run_job({"audio_file": local_file(english_wav), "align_model": str(tiny_wav2vec2),
                      "return_char_alignments": True} | JOB)
    assert "error" not in result, result["error"]
    assert result["debug_info"]["alignment"] == {"method": "wav2vec2",
                                                 "model": str(tiny_wav2vec2)}
    assert not any("alignment" in w for w in result["warnings"]), result["warnings"]
    assert "alignment" in result["debug_info"]["timings"]
    # whisperx splits windows into sentences with NLTK punkt_tab, which setup provides:
    # ENGLISH_TEXT has three sentences.
    assert len(result["segments"]) >= 3
    assert_words_are_sane(result)
    assert all("chars" in s for s in result["segments"])


def test_missing_alignment_model_falls_back_to_whisper_timings(run_job, english_wav,
                                                               local_file, monkeypatch):
    # Offline, whisperx's English model (a torchaudio download) isn't baked here: the worker
    # goes straight to the fallback, without trying the network.
    def no_network(*args, **kwargs):
        raise AssertionError(f"network call while offline: {args}")

    monkeypatch.setattr("socket.getaddrinfo", no_network)
    monkeypatch.setattr("socket.create_connection", no_network)
    result = run_job({"audio_file": local_file(english_wav), "word_timestamps": True} | JOB)
    assert "error" not in result, result["error"]
    assert result["debug_info"]["alignment"] == {"method": "whisper", "model": None}
    assert any(w.startswith("alignment model 'WAV2VEC2_ASR_BASE_960H' for language 'en' is "
                            "not in this image (")
               and w.endswith("downloads are off; word timings come from Whisper's "
                              "cross-attention (bake it with the image's ALIGN_LANGUAGES).")
               for w in result["warnings"]), result["warnings"]
    assert_words_are_sane(result)
    flat = result["word_timestamps"]
    assert [w["word"] for w in flat] == [w["word"] for s in result["segments"]
                                        for w in s["words"]]
    assert normalize(" ".join(w["word"] for w in flat)).startswith("please call")
    spoken = normalize(ENGLISH_TEXT).split()
    assert len(flat) >= 0.8 * len(spoken)


def test_bad_align_model_path_falls_back_with_warning(run_job, english_wav, local_file,
                                                      tmp_path, monkeypatch):
    monkeypatch.setenv("ALLOW_REMOTE_MODELS", "true")
    result = run_job({"audio_file": local_file(english_wav),
                      "align_model": str(tmp_path / "nope")} | JOB)
    assert "error" not in result, result["error"]
    assert any(w.startswith(f"alignment model '{tmp_path / 'nope'}' for language 'en' is not "
                            "in this image") for w in result["warnings"]), result["warnings"]
    assert_words_are_sane(result)


def test_language_without_alignment_model_uses_whisper_timings(run_job, english_wav,
                                                               local_file):
    # Whisper can be told the audio is Latin; whisperx has no Latin alignment model. (English
    # decoded as Latin fails every threshold: without NO_SAMPLING its text would be a draw at
    # temperature 1.0, whose word timings are not what is checked.)
    result = run_job({"audio_file": local_file(english_wav), "language": "la",
                      "diarization": False} | NO_SAMPLING)
    assert "error" not in result, result["error"]
    assert ("no alignment model for language 'la'; word timings come from Whisper's "
            "cross-attention (set align_model to a wav2vec2 CTC model for this language)."
            in result["warnings"])
    assert all(s["words"] for s in result["segments"])


def test_no_alignment_when_not_asked(run_job, english_wav, local_file):
    result = run_job({"audio_file": local_file(english_wav), "align_output": False} | JOB)
    assert result["debug_info"]["alignment"] is None
    assert all("words" not in s for s in result["segments"])


RUSSIAN_ALIGNER = "jonatasgrosman/wav2vec2-large-xlsr-53-russian"  # the manifest's for ru


@pytest.fixture
def models_with_a_russian_aligner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """MODELS_DIR as the image lays it out, with the manifest's Russian wav2vec2 model baked
    (a tiny one with a Cyrillic vocabulary, in the Hugging Face cache layout the image's build
    leaves) and no English one: the test suite's models, plus alignment/."""
    models = tmp_path / "models"
    models.mkdir()
    for entry in MODELS.iterdir():
        if entry.name != "alignment":
            (models / entry.name).symlink_to(entry)
    revision = "0" * 40
    repo = models / "alignment" / f"models--{RUSSIAN_ALIGNER.replace('/', '--')}"
    build_tiny_wav2vec2(repo / "snapshots" / revision, "абвгдеёжзийклмнопрстуфхцчшщъыьэюя")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    monkeypatch.setenv("MODELS_DIR", str(models))
    return models


def test_a_codeswitched_call_aligns_each_language_with_its_own_model(
        run_job, local_file, media_dir, models_with_a_russian_aligner):
    """multilingual: the Russian turns go through the baked Russian wav2vec2 model (found by
    the manifest, loaded by whisperx from the cache), the English ones, whose model isn't
    baked, through Whisper's cross-attention, with one warning naming the language."""
    import soundfile

    import conversations

    mix, turns = conversations.codeswitched(1, "heldout", turns=4)
    path = media_dir / "codeswitched-align.wav"
    soundfile.write(path, mix.audio, conversations.RATE)
    out = run_job({"audio_file": local_file(path), "multilingual": True, "diarization": False,
                   "debug": True} | NO_SAMPLING)
    assert "error" not in out, out
    # Which languages base detects in the pieces is its call (a Russian piece may come back
    # as Ukrainian): every language but Russian has no model here.
    languages = {s["language"] for s in out["segments"]}
    assert {"en", "ru"} <= languages, [(s["language"], s["text"]) for s in out["segments"]]
    others = sorted(languages - {"ru"})
    alignment = out["debug_info"]["alignment"]
    main = "wav2vec2" if out["detected_language"] == "ru" else "whisper"
    assert alignment["method"] == main
    assert alignment["by_language"] == {"ru": RUSSIAN_ALIGNER} | dict.fromkeys(others, "whisper")
    assert (f"no alignment model in this image for language(s) {', '.join(others)}; their "
            "segments' word timings come from Whisper's cross-attention (bake them with the "
            "image's ALIGN_LANGUAGES, or set align_model for the main language)."
            in out["warnings"]), out["warnings"]
    assert sum("alignment" in w for w in out["warnings"]) == 1, out["warnings"]
    assert_words_are_sane(out)
    starts = [s["start"] for s in out["segments"]]
    assert starts == sorted(starts)  # the two languages' passes back in time order
